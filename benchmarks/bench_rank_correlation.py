"""Ranking quality of a trained supernet: Kendall tau between inherited and standalone fitness, as JSON.

    python benchmarks/bench_rank_correlation.py runs/quickstart [--archs 8] [--epochs 3] [--pairs 1600]
        [--bn-samples N] [--subsets N]

Picks `--archs` architectures spread evenly over the FLOPs range of the run's search bounds (the
FLOPs quantiles of 2,000 feasible samples). For each it measures
- the supernet-inherited fitness: the path extracted from the run's supernet, BN-recalibrated,
  tracked on the fitness subset (what the search ranks by), averaged over the run's final trials;
- the standalone fitness: the same architecture trained from scratch with one fixed budget (the
  run's training recipe with `--epochs` x `--pairs`), tracked on the same trials.
Then prints Kendall's tau-b between the two lists, with a bootstrap 90% interval over architectures,
and both fitness lists beside the identity floor. Standalone trainings are checkpointed under
RUN/bench/rank/<arch_id>/, so an interrupted benchmark resumes.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from nas.config import RunConfig
from nas.cost.lut import kendall_tau
from nas.cost.sampling import sample_within
from nas.cost.table import cost_table
from nas.fitness.supernet_fitness import SupernetFitness, identity_scores, score_tracker
from nas.io import torch_load
from nas.jobs.retrain import subnet_target
from nas.jobs.search import fitness_spec, search_settings
from nas.search.final import Trials
from nas.space import Arch, load_space
from nas.train.supernet_trainer import CHECKPOINT, train
from trackers.lighttrack.tracker import LightTrackTracker, preset


def bootstrap_interval(a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(resamples):
        idx = rng.integers(0, len(a), len(a))
        tau = kendall_tau(a[idx], b[idx])
        if np.isfinite(tau):
            taus.append(tau)
    return [float(np.percentile(taus, 5)), float(np.percentile(taus, 95))]


def spread_archs(cfg: RunConfig, count: int) -> list[Arch]:
    space = load_space(cfg.space)
    bounds = search_settings(cfg, space).bounds
    table = cost_table(space)
    rng = np.random.default_rng([cfg.seed, 0xBE7C])
    pool = sorted((sample_within(space, rng, bounds) for _ in range(2000)), key=table.flops)
    return [pool[int(round(q))] for q in np.linspace(0, len(pool) - 1, count)]


def standalone_fitness(cfg: RunConfig, arch: Arch, out_dir: Path, fitness: SupernetFitness, trials: Trials) -> float:
    target = subnet_target(cfg, arch, "scratch", out_dir)
    if not (out_dir / CHECKPOINT).is_file() or torch_load(out_dir / CHECKPOINT)["epoch"] < \
            cfg.supernet.epochs:
        train(cfg, target=target, resume=True, progress=False)
    state = torch_load(out_dir / CHECKPOINT)["model"]
    target.model.load_state_dict(state)
    subnet = target.model.subnet
    scores = []
    for trial in trials.grid():
        fitness.recalibrate(subnet, trial["bn_sample"])  # the same BN recalibration as the inherited path
        tracker = LightTrackTracker(subnet, preset(fitness.spec.tracker_preset), str(fitness.device))
        scores.append(score_tracker(tracker, fitness.subset(trial["subset"]), fitness.spec.metric)["fitness"])
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--archs", type=int, default=8, help="architectures (>= 8 for a meaningful tau)")
    parser.add_argument("--epochs", type=int, default=3, help="standalone training epochs (fixed budget)")
    parser.add_argument("--pairs", type=int, default=1600, help="standalone training pairs per epoch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bn-samples", type=int, help="trials: BN samples (default: the run's final_bn_samples)")
    parser.add_argument("--subsets", type=int, help="trials: validation subsets (default: the run's final_subsets)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = RunConfig.from_dict(json.loads((args.run_dir / "config.json").read_text()))
    standalone_cfg = replace(cfg, supernet=replace(cfg.supernet, epochs=args.epochs, pairs_per_epoch=args.pairs))
    spec = fitness_spec(cfg)
    fitness = SupernetFitness(spec)
    table = cost_table(load_space(cfg.space))
    trials = Trials(args.bn_samples or cfg.fitness.final_bn_samples, args.subsets or cfg.fitness.final_subsets)
    started = time.monotonic()
    rows = []
    for arch in spread_archs(cfg, args.archs):
        inherited = float(np.mean([fitness.evaluate(arch.genotype, **t)["fitness"] for t in trials.grid()]))
        alone = standalone_fitness(standalone_cfg, arch, args.run_dir / "bench" / "rank" / arch.arch_id, fitness,
                                   trials)
        rows.append({"arch_id": arch.arch_id, "flops": table.flops(arch), "inherited": inherited,
                     "standalone": alone})
        print(json.dumps(rows[-1]), flush=True)
    a = np.array([r["inherited"] for r in rows])
    b = np.array([r["standalone"] for r in rows])
    identity = float(np.mean([s["fitness"] for s in identity_scores(spec, trials.subsets)]))
    print(json.dumps({"benchmark": "rank_correlation", "run": str(args.run_dir), "archs": len(rows),
                      "kendall_tau": kendall_tau(a, b), "tau_90ci": bootstrap_interval(a, b),
                      "identity": identity, "standalone_budget": {"epochs": args.epochs, "pairs_per_epoch": args.pairs,
                                                                  "batch_size": cfg.supernet.batch_size},
                      "trials": trials.grid(), "rows": rows, "seconds": round(time.monotonic() - started, 1),
                      "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
