"""Where a run stands (`tracknas status RUN`), read only from its directory.

Why only files: a run may be running in another process, on another machine, or killed; what it
wrote (config.json, supernet/history.json and last.pt, search/state.json, best.json, the export)
is the whole truth about it, and reading it never disturbs the run.
"""
from __future__ import annotations

import math
from pathlib import Path

from nas.config import load_run_config
from nas.errors import ConfigError
from nas.io import load_json
from nas.search.state import SearchState
from nas.train.supernet_trainer import CHECKPOINT, HISTORY, data_ready, supernet_dir

STAGES = ("data", "supernet", "search", "re-scoring", "export", "finished")


def _history(run_dir: Path) -> list[dict]:
    path = run_dir / "supernet" / HISTORY
    history = load_json(path, error=ConfigError, what="supernet history") if path.is_file() else []
    if not isinstance(history, list):
        raise ConfigError("expected a list of epoch records", source=str(path))
    return history


def _best_record(state: SearchState) -> dict | None:
    finite = [(aid, r) for aid, r in state.evaluated.items() if math.isfinite(r["fitness"])]
    if not finite:
        return None
    aid, record = min(finite, key=lambda item: (-item[1]["fitness"], item[0]))  # the search's own tie-break
    return {"arch_id": aid, "fitness": record["fitness"]}


def _search_eta(run_dir: Path, state: SearchState) -> float | None:
    """Seconds left in the search: candidates still to evaluate x seconds per candidate so far (from the
    per-generation timings, or for generation 0 the time since the supernet's last epoch was written)."""
    settings = state.settings
    closed = sum(1 for r in state.evaluated.values() if r["generation"] < state.generation)
    if state.timings and closed:
        per_candidate = sum(t["seconds"] for t in state.timings) / closed
    elif state.evaluated and (run_dir / "supernet" / HISTORY).is_file():
        elapsed = (run_dir / "search" / "state.json").stat().st_mtime - (run_dir / "supernet" / HISTORY).stat().st_mtime
        per_candidate = max(elapsed, 0.0) / len(state.evaluated)
    else:
        return None
    in_generation = sum(1 for r in state.evaluated.values() if r["generation"] == state.generation)
    left = max(len(state.pending) - in_generation, 0)
    later = max(settings.generations - state.generation - 1, 0)
    left += later * (settings.mutations + settings.crossovers)
    return round(left * per_candidate, 1)


def run_status(run_dir: str | Path) -> dict:
    """The run's stage, progress, a rough ETA of the stage, the best so far, and whether `--resume`
    can continue it (one JSON-ready object)."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    history = _history(run_dir)
    epochs = cfg.supernet.epochs
    status: dict = {"run_dir": str(run_dir), "name": cfg.name, "config": cfg.source,
                    "supernet": {"epochs_done": len(history), "epochs": epochs,
                                 "checkpoint": (supernet_dir(cfg) / CHECKPOINT).is_file()},
                    "search": None, "eta_s": None, "best": None, "last_candidate": None, "failed": 0,
                    "resumable": True, "reason": None}
    state_path = run_dir / "search" / "state.json"
    state = None
    if state_path.is_file():
        try:
            state = SearchState.load(state_path)
        except ConfigError as err:
            status.update(resumable=False, reason=str(err))
    if state is not None:
        in_generation = sum(1 for r in state.evaluated.values() if r["generation"] == state.generation)
        status["search"] = {"generation": state.generation, "generations": state.settings.generations,
                            "evaluated": len(state.evaluated), "in_generation": in_generation,
                            "planned": len(state.pending), "done": state.done}
        status["best"] = _best_record(state)
        status["failed"] = sum(1 for r in state.evaluated.values() if r["error"] or not math.isfinite(r["fitness"]))
        if state.evaluated:
            aid, record = next(reversed(state.evaluated.items()))
            status["last_candidate"] = {"arch_id": aid, "fitness": record["fitness"] if math.isfinite(
                record["fitness"]) else None, "generation": record["generation"]}
    if (run_dir / "best.json").is_file():
        best = load_json(run_dir / "best.json", error=ConfigError, what="search result (JSON)")
        status["best"] = {"arch_id": best["arch_id"], "fitness": best["fitness"], "fitness_std": best.get("fitness_std")}
        status["stage"] = "finished" if (run_dir / "best" / "arch.json").is_file() else "export"
    elif state is not None and state.done:
        status["stage"] = "re-scoring"
    elif state is not None or len(history) >= epochs:
        status["stage"] = "search"
        status["eta_s"] = _search_eta(run_dir, state) if state is not None else None
    elif history or data_ready(cfg):
        status["stage"] = "supernet"
        status["eta_s"] = round((epochs - len(history)) * sum(r["seconds"] for r in history) / len(history), 1) \
            if history else None
    else:
        status["stage"] = "data"
    if status["stage"] == "finished":
        status.update(resumable=False, reason="finished")
    return status


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def format_status(status: dict) -> str:
    """`run_status` as a few aligned lines for the terminal."""
    sn, search = status["supernet"], status["search"]
    stage = status["stage"]
    if stage == "supernet":
        stage = f"supernet training, epoch {min(sn['epochs_done'] + 1, sn['epochs'])} of {sn['epochs']}"
    elif stage == "search" and search is not None:
        stage = (f"search generation {search['generation'] + 1} of {search['generations']} "
                 f"({search['in_generation']} of {search['planned']} candidates of this generation evaluated)")
    lines = [f"run       {status['run_dir']} ({status['name']})", f"stage     {stage}",
             f"supernet  {sn['epochs_done']}/{sn['epochs']} epochs" + ("" if sn["checkpoint"] else ", no checkpoint")]
    if search is not None:
        lines.append(f"search    {search['evaluated']} candidates evaluated ({status['failed']} failed), "
                     f"{search['generation']}/{search['generations']} generations closed")
    if status["stage"] in ("supernet", "search"):
        lines.append(f"eta       ~{_duration(status['eta_s'])} left in this stage")
    best, last = status["best"], status["last_candidate"]
    if best is not None:
        lines.append(f"best      {best['arch_id']} fitness {best['fitness']:.4f}")
    if last is not None:
        fitness = "failed" if last["fitness"] is None else f"fitness {last['fitness']:.4f}"
        lines.append(f"last      {last['arch_id']} {fitness} (generation {last['generation']})")
    reason = f" ({status['reason']})" if status["reason"] else f" (tracknas search {status['config']} --resume)"
    lines.append(f"resumable {'yes' if status['resumable'] else 'no'}{reason}")
    return "\n".join(lines)
