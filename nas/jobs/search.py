"""The product's main job, `tracknas search CONFIG`: data -> supernet -> evolution -> export.

Each stage is resumable on its own: the synthetic data is created once, supernet training resumes
from its last epoch checkpoint, the search from its per-candidate state, and the export is
rewritten from the search result. Everything lands in the run directory:

    runs/<name>/config.json          the resolved configuration
    runs/<name>/supernet/            last.pt, history.json
    runs/<name>/search/state.json    resumable search state
    runs/<name>/search/final.json    the top-k re-scored over BN samples x validation subsets
    runs/<name>/best.json            best architecture (space hash, choices, FLOPs, params, fitness
                                     mean +- std, the identity and reference-architecture floors,
                                     seed, supernet checkpoint hash; with a latency table, `latency`:
                                     predicted and measured ms, runtime, threads, device)
    runs/<name>/pareto.json          Pareto front over the configured objectives
    runs/<name>/generations.csv, logbook.json, search.png
    runs/<name>/best/                standalone export (arch.json, space.yaml, model.pt)
    runs/<name>/report.html          one self-contained page about the run (`nas.jobs.report_html`)
    runs/<name>/tb/                  TensorBoard event files (supernet/, search/; `nas.tb`)
"""
from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from nas.config import RunConfig
from nas.cost.lut import LatencySetting, Timing, latency_table, measure_archs_us
from nas.cost.table import cost_table
from nas.errors import ConfigError
from nas.fitness.supernet_fitness import FitnessSpec, SupernetFitness, identity_scores
from nas.io import atomic_write_json, load_json, torch_load
from nas.jobs.report_html import write_report
from nas.search import LocalEvaluator, RayPoolEvaluator, SearchSettings, SearchState, run_search
from nas.search.final import Trials, final_ranking
from nas.search.report import write_reports
from nas.space import Arch, Bounds, SearchSpace, arch_to_json, load_space
from nas.space.arch import arch_from_json, reference_arch
from nas.tb import tb_dir
from nas.train.supernet_trainer import (
    CHECKPOINT,
    HISTORY,
    check_devices,
    ensure_data,
    launch,
    run_log_dir,
    supernet_dir,
)
from trackers.lighttrack.export import write_export


SEARCH_ONLY = {"fitness", "search", "pretrain"}
"""Config sections a resumed run may change: they leave the trained supernet valid (the search restarts)."""
SPEED_ONLY = {"supernet": ("data_workers",)}
"""Settings that change how fast, never what: a resumed run may change them freely."""
LATENCY_RUNS = 20  # timed search-branch runs per candidate when latency is an objective without a latency table


def search_settings(cfg: RunConfig, space: SearchSpace) -> SearchSettings:
    sc = cfg.search
    bounds = dict(sc.bounds)
    preset = bounds.pop("preset", None)
    base = Bounds()
    if preset is not None:
        if preset not in space.constraints:
            raise ConfigError(f"unknown constraint preset {preset!r}; the space declares "
                              f"{', '.join(space.constraints) or 'none'}", source=cfg.source, key="search.bounds.preset")
        base = space.constraints[preset]
    seeds: tuple = ()
    if sc.seed_reference:
        reference = reference_arch(space)
        if reference is None:
            raise ConfigError(f"space {space.name!r} names no reference architecture to seed the search with",
                              source=cfg.source, key="search.seed_reference")
        seeds = (reference[1].genotype,)
    bounds = replace(base, **bounds)
    return SearchSettings(population=sc.population, top_k=sc.top_k, mutations=sc.mutations, crossovers=sc.crossovers,
                          mutation_prob=sc.mutation_prob, generations=sc.generations, seed=cfg.seed,
                          bounds=bounds, algorithm=sc.algorithm, objectives=tuple(sc.objectives),
                          max_retries=sc.max_retries, seeds=seeds, latency=latency_setting(cfg, bounds))


def latency_setting(cfg: RunConfig, bounds: Bounds) -> LatencySetting | None:
    """The latency table a search predicts with: `search.latency`, else the default setting when latency is
    bounded; None otherwise (a `latency_ms` objective is then measured by the fitness)."""
    if cfg.search.latency:
        return LatencySetting(**cfg.search.latency)
    return LatencySetting() if bounds.latency_ms is not None else None


def fitness_spec(cfg: RunConfig, threads: int | None = None, device: str | None = None) -> FitnessSpec:
    fc = cfg.fitness
    return FitnessSpec(space=cfg.space, checkpoint=str(supernet_dir(cfg) / CHECKPOINT), data_root=cfg.data.root,
                       data_format=cfg.data.format, val_split=fc.val_split, train_split=cfg.data.split or "train",
                       bn_batches=fc.bn_batches, bn_batch_size=fc.bn_batch_size, max_sequences=fc.max_sequences,
                       max_frames=fc.max_frames, metric=fc.metric, tracker_preset=fc.tracker_preset, seed=cfg.seed,
                       threads=threads, latency_runs=LATENCY_RUNS if "latency_ms" in cfg.search.objectives
                       and not cfg.search.latency else 0,
                       val_root=fc.val_root, val_format=fc.val_format, eao_year=fc.eao_year,
                       runtime=fc.runtime,
                       device=device)


def actor_device(cfg: RunConfig) -> str:
    """The device of a fitness actor: "cuda" when it reserves a GPU fraction (Ray then lists only its GPU in
    CUDA_VISIBLE_DEVICES, so cuda:0 is the actor's), else "cpu": Ray 2.60 leaves CUDA_VISIBLE_DEVICES alone
    for actors without GPUs, and an actor that reserved none must not run on one."""
    return "cuda" if cfg.search.gpus_per_worker > 0 else "cpu"


def _comparable(config: dict) -> dict:
    """A config as this version writes it (a key added since the run started compares as its default),
    without the `SPEED_ONLY` settings."""
    try:
        config = RunConfig.from_dict(config).to_dict()
    except (TypeError, KeyError, AttributeError):
        config = dict(config)  # not ours: compared as it is
    for section, keys in SPEED_ONLY.items():
        if isinstance(config.get(section), dict):
            config[section] = {k: v for k, v in config[section].items() if k not in keys}
    return config


def _check_run_dir(cfg: RunConfig, resume: bool) -> Path:
    run_dir = Path(cfg.output)
    saved = run_dir / "config.json"
    if saved.is_file():
        if not resume:
            raise ConfigError(f"run directory {run_dir} already holds a run; pass --resume to continue it or "
                              "choose another name/output", source=cfg.source, key="name")
        previous = load_json(saved, error=ConfigError, what="run config (JSON)")
        if not isinstance(previous, dict):
            raise ConfigError("expected a JSON object", source=str(saved))
        previous, current = _comparable(previous), _comparable(cfg.to_dict())
        changed = sorted(k for k in set(previous) | set(current) if k != "source" and previous.get(k) != current.get(k))
        if set(changed) - SEARCH_ONLY:
            raise ConfigError(f"config differs from the one {run_dir} was started with in {', '.join(changed)}; a "
                              f"resumed run may change only {' and '.join(sorted(SEARCH_ONLY))}", source=cfg.source)
        if changed:  # the trained supernet stays valid: keep it, search again
            old = run_dir / "search"
            if old.is_dir():
                kept = next(run_dir / f"search.previous-{i}" for i in range(1, 10_000)
                            if not (run_dir / f"search.previous-{i}").exists())
                old.rename(kept)
                print(f"{', '.join(changed)} changed: keeping the trained supernet; the previous search moved to "
                      f"{kept}", flush=True)
    atomic_write_json(saved, cfg.to_dict())
    return run_dir


def supernet_finished(cfg: RunConfig) -> bool:
    path = supernet_dir(cfg) / CHECKPOINT
    return path.is_file() and int(torch_load(path)["epoch"]) >= cfg.supernet.epochs


def run_job(cfg: RunConfig, *, workers: int = 0, address: str | None = None, resume: bool = False,
            tb: bool = True) -> dict:
    """Run (or resume) the whole job; returns a summary of the best architecture. `tb`: TensorBoard event
    files under `runs/<name>/tb/` (`nas.tb`)."""
    check_devices(cfg, workers=workers, address=address, search=True)
    space = load_space(cfg.space)
    settings = search_settings(cfg, space)
    run_dir = _check_run_dir(cfg, resume)
    ensure_data(cfg)
    if not supernet_finished(cfg):
        print(f"[1/4] training the supernet ({cfg.supernet.epochs} epochs)", flush=True)
        launch(cfg, workers=workers, address=address, resume=True, tb=tb)
    else:
        print("[1/4] supernet already trained", flush=True)
    print(f"[2/4] searching: {settings.algorithm}, {settings.generations} generations, "
          f"{'in-process' if workers == 0 else f'{workers} Ray workers'}", flush=True)
    spec = fitness_spec(cfg, threads=None if workers == 0 else 1, device=None if workers == 0 else actor_device(cfg))
    evaluator = LocalEvaluator(spec) if workers == 0 else RayPoolEvaluator(
        spec, workers, address, num_cpus=None if address else workers, log_dir=run_log_dir(cfg),
        num_gpus=cfg.search.gpus_per_worker)
    try:
        result = run_search(space, settings, evaluator, run_dir / "search" / "state.json", resume=resume,
                            events=tb_dir(run_dir, "search", tb))
        if result.best is None:
            raise ConfigError("every candidate failed to evaluate; see the errors in search/state.json",
                              source=str(run_dir))
        trials = Trials(cfg.fitness.final_bn_samples, cfg.fitness.final_subsets)
        top_k = cfg.fitness.final_top_k or settings.top_k
        print(f"[3/4] re-scoring the top {top_k} and the references on {len(trials.grid())} trials "
              f"({trials.bn_samples} BN samples x {trials.subsets} validation subsets)", flush=True)
        final = final_ranking(evaluator, result, top_k=top_k, trials=trials,
                              identity=identity_scores(spec, trials.subsets), reference=reference_arch(space),
                              path=run_dir / "search" / "final.json")
    finally:
        evaluator.close()
    checkpoint = supernet_dir(cfg) / CHECKPOINT
    write_reports(run_dir, space, settings, result, checkpoint, cfg.seed, final)
    print("[4/4] exporting the best architecture", flush=True)
    export = export_run(cfg, None)
    if settings.latency is not None:
        stamp_latency(run_dir / "best.json", space, settings.latency)
    write_report(run_dir)
    best = json.loads((run_dir / "best.json").read_text())
    history = json.loads((supernet_dir(cfg) / HISTORY).read_text())
    return {"run_dir": str(run_dir), "export": str(export), "arch_id": best["arch_id"], "fitness": best["fitness"],
            "fitness_std": best["fitness_std"], "fitness_by_subset": best["fitness_by_subset"], "trials": best["trials"],
            "references": best["references"],
            "flops": best["cost"]["flops"], "params": best["cost"]["params"], "evaluated": len(result.evaluated),
            "supernet_cls": history[-1]["cls"]}


def stamp_latency(best_path: Path, space: SearchSpace, setting: LatencySetting) -> dict:
    """Add `latency` to best.json: the table's prediction beside the best architecture measured end to end
    (the same runtime, threads and device), so the prediction the search ranked by can be checked."""
    best = load_json(best_path, error=ConfigError, what="search result (JSON)")
    arch = arch_from_json(best, space, source=str(best_path))
    measured = measure_archs_us(space, [arch], setting, Timing())[0] / 1e3
    best["latency"] = {"predicted_ms": latency_table(space, setting).predict_ms(arch), "measured_ms": measured,
                       **asdict(setting)}
    atomic_write_json(best_path, best)
    return best["latency"]


def export_run(cfg: RunConfig, arch_id: str | None, *, onnx: bool = False, out_dir: Path | None = None) -> Path:
    """Extract an evaluated architecture from the run's supernet, re-estimate BN, write the export."""
    run_dir = Path(cfg.output)
    space = load_space(cfg.space)
    arch_json = _arch_json_from_run(run_dir, space, arch_id)
    arch = arch_from_json(arch_json, space, source=str(run_dir / "best.json"))
    fitness = SupernetFitness(fitness_spec(cfg))
    model = fitness.recalibrated_subnet(arch)
    return write_export(out_dir or run_dir / ("best" if arch_id is None else arch.arch_id), arch_json, model, onnx=onnx)


def _arch_json_from_run(run_dir: Path, space: SearchSpace, arch_id: str | None) -> dict:
    """`best.json` of a finished search, or the evaluated candidate `arch_id` from its search state's record."""
    best_path = run_dir / "best.json"
    if not best_path.is_file():
        raise ConfigError("no best.json: the search has not finished (run `tracknas search --resume`)",
                          source=str(run_dir))
    best = load_json(best_path, error=ConfigError, what="search result (JSON)")
    if arch_id is None or arch_id == best.get("arch_id"):
        return best
    record = SearchState.load(run_dir / "search" / "state.json").evaluated.get(arch_id)
    if record is None:
        raise ConfigError(f"architecture {arch_id!r} was not evaluated in this run", source=str(run_dir))
    arch = Arch(space, tuple(record["genotype"]))
    return arch_to_json(arch, cost=record.get("cost") or cost_table(space).cost(arch), fitness=record["fitness"],
                        metrics=record["metrics"], provenance=best.get("provenance"))
