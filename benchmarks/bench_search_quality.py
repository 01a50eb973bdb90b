"""Evolution vs random search with the same number of evaluations on a trained run, as JSON.

    python benchmarks/bench_search_quality.py runs/quickstart [--workers 2] [--seeds 0]

Uses the run's supernet, fitness settings and bounds; runs the run's evolution settings and a
random search with the same budget (each seed in its own state file under RUN/bench/, resumable).
Each search's pick is made as the main job makes it: its top-k re-scored over the run's trials (BN
samples x validation subsets), highest mean wins. Reported per seed: each pick's mean +- std, the
median random architecture, and the verdict against the noise: evolution beats random only when
the gap exceeds the two standard errors combined (`margin`), otherwise "within noise". The
identity floor on the same trials is printed beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

from nas.config import RunConfig
from nas.fitness.supernet_fitness import identity_scores
from nas.jobs.search import fitness_spec, search_settings
import nas.raytools  # noqa: F401  (loopback-only Ray before ray is imported)
from nas.search import LocalEvaluator, RayPoolEvaluator, run_search
from nas.search.final import Trials, final_ranking
from nas.space import load_space
from nas.space.arch import reference_arch


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
    trials = Trials(cfg.fitness.final_bn_samples, cfg.fitness.final_subsets)
    identity = identity_scores(spec, trials.subsets)
    top_k = cfg.fitness.final_top_k or cfg.search.top_k
    rows = []
    try:
        for seed in args.seeds:
            # no seed architectures: the comparison is of the two algorithms, not of a shared head start
            base = replace(search_settings(cfg, space), seed=seed, seeds=())
            row = {"seed": seed}
            for algorithm in ("evolution", "random"):
                started = time.monotonic()
                result = run_search(space, replace(base, algorithm=algorithm), evaluator,
                                    args.run_dir / "bench" / f"{algorithm}-seed{seed}.json", resume=True,
                                    progress=False)
                fitness = [c["fitness"] for c in result.evaluated.values() if c["fitness"] is not None]
                final = final_ranking(evaluator, result, top_k=top_k, trials=trials, identity=identity,
                                      reference=reference_arch(space),
                                      path=args.run_dir / "bench" / f"{algorithm}-seed{seed}-final.json")
                pick = next(c for c in final["candidates"] if c["genotype"] == final["best_genotype"])
                row[algorithm] = {"best": pick["fitness"], "best_std": pick["fitness_std"],
                                  "best_search": pick["fitness_search"], "median": statistics.median(fitness),
                                  "evaluated": len(fitness), "seconds": round(time.monotonic() - started, 1)}
                row["identity"] = final["identity"]["fitness"]
            n = len(trials.grid())
            margin = 2 * ((row["evolution"]["best_std"] ** 2 + row["random"]["best_std"] ** 2) / n) ** 0.5
            gap = row["evolution"]["best"] - row["random"]["best"]
            row["gap"], row["margin"] = gap, margin
            row["verdict"] = ("evolution better" if gap > margin else "random better" if gap < -margin
                              else "within noise")
            rows.append(row)
    finally:
        evaluator.close()
    print(json.dumps({"benchmark": "search_quality", "run": str(args.run_dir), "workers": args.workers,
                      "bounds": {"flops": base.bounds.flops, "params": base.bounds.params},
                      "budget": rows[0]["evolution"]["evaluated"], "trials": trials.grid(),
                      "loadavg": os.getloadavg(), "seeds": rows}, indent=2))


if __name__ == "__main__":
    main()
