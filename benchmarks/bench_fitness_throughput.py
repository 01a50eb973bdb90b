"""Tracking-fitness throughput of a trained run: evaluated candidates per hour with 1..N Ray workers.

    python benchmarks/bench_fitness_throughput.py runs/quickstart [--candidates 8] [--workers 1 2]

Each worker keeps the supernet resident and evaluates candidates (BN recalibration + tracking the
validation subset of the run's fitness settings); the same feasible candidates are used for every
worker count. Prints JSON with candidates/hour and the scaling efficiency against 1 worker.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from nas.config import RunConfig
from nas.cost.sampling import sample_within
from nas.jobs.search import fitness_spec, search_settings
import nas.raytools  # noqa: F401  (loopback-only Ray before ray is imported)
from nas.search import RayPoolEvaluator
from nas.space import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    cfg = RunConfig.from_dict(json.loads((args.run_dir / "config.json").read_text()))
    space = load_space(cfg.space)
    bounds = search_settings(cfg, space).bounds
    rng = np.random.default_rng(args.seed)
    genotypes = [sample_within(space, rng, bounds).genotype for _ in range(args.candidates)]
    spec = fitness_spec(cfg, threads=1)
    rows = []
    for workers in args.workers:
        evaluator = RayPoolEvaluator(spec, workers, num_cpus=workers)
        try:
            list(evaluator.evaluate(genotypes[:workers]))  # warm-up: actors load the supernet and data
            started = time.monotonic()
            outcomes = list(evaluator.evaluate(genotypes))
            seconds = time.monotonic() - started
        finally:
            evaluator.close()
        failed = sum(1 for o in outcomes if o.failed)
        rows.append({"workers": workers, "seconds": round(seconds, 1), "failed": failed,
                     "candidates_per_hour": round(len(outcomes) / seconds * 3600, 1),
                     "seconds_per_candidate": round(seconds / len(outcomes), 2)})
    base = rows[0]["candidates_per_hour"] / rows[0]["workers"]
    for row in rows:
        row["scaling_efficiency"] = round(row["candidates_per_hour"] / (base * row["workers"]), 3)
    print(json.dumps({"benchmark": "fitness_throughput", "run": str(args.run_dir), "candidates": args.candidates,
                      "fitness": {"bn_batches": spec.bn_batches, "bn_batch_size": spec.bn_batch_size,
                                  "max_sequences": spec.max_sequences, "max_frames": spec.max_frames},
                      "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
