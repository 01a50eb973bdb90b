"""Evolution vs random search with the same number of evaluations on a trained run, as JSON.

    python benchmarks/bench_search_quality.py runs/quickstart [--workers 2] [--seeds 0]

Uses the run's supernet, fitness settings and bounds; runs the run's evolution settings and a
random search with the same budget (each seed in its own state file under RUN/bench/, resumable),
and reports the best fitness of each, the median random architecture (all inside the same bounds)
and evaluated candidates per hour.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import nas.raytools  # noqa: F401  (loopback-only Ray before ray is imported)
from nas.config import RunConfig
from nas.search import LocalEvaluator, RayPoolEvaluator, run_search
from nas.search.job import fitness_spec, search_settings
from nas.space import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    cfg = RunConfig.from_dict(json.loads((args.run_dir / "config.json").read_text()))
    space = load_space(cfg.space)
    spec = fitness_spec(cfg, threads=1 if args.workers else None)
    evaluator = RayPoolEvaluator(spec, args.workers, num_cpus=args.workers) if args.workers else LocalEvaluator(spec)
    rows = []
    try:
        for seed in args.seeds:
            base = replace(search_settings(cfg, space), seed=seed)
            row = {"seed": seed}
            for algorithm in ("evolution", "random"):
                started = time.monotonic()
                result = run_search(space, replace(base, algorithm=algorithm), evaluator,
                                    args.run_dir / "bench" / f"{algorithm}-seed{seed}.json", resume=True,
                                    progress=False)
                fitness = [c["fitness"] for c in result.evaluated.values() if c["fitness"] is not None]
                row[algorithm] = {"best": result.best.fitness, "median": statistics.median(fitness),
                                  "evaluated": len(fitness), "best_flops": result.best.metrics["flops"],
                                  "seconds": round(time.monotonic() - started, 1)}
            row["evolution_beats_random_best"] = row["evolution"]["best"] > row["random"]["best"]
            row["evolution_beats_random_median"] = row["evolution"]["best"] > row["random"]["median"]
            rows.append(row)
    finally:
        evaluator.close()
    print(json.dumps({"benchmark": "search_quality", "run": str(args.run_dir), "workers": args.workers,
                      "bounds": {"flops": base.bounds.flops, "params": base.bounds.params},
                      "budget": rows[0]["evolution"]["evaluated"], "seeds": rows}, indent=2))


if __name__ == "__main__":
    main()
