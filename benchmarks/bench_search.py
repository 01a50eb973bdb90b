"""Search-engine benchmark, as JSON: EA bookkeeping per generation, and Ray pool throughput.

    python benchmarks/bench_search.py [--space lighttrack-mobile] [--generations 6] [--work 0.25] [--jobs 24]

- bookkeeping: a search with an (almost) free fitness, so each generation's time is selection +
  constrained variation + cost-table checks + one atomic state write per evaluated candidate;
  the toy fitness's own time is measured apart and subtracted.
- throughput: candidates/hour of `RayPoolEvaluator` with 1 and 2 actors on a fitness that takes a
  fixed `--work` seconds per candidate (a sleep, so the figure isolates the pool's overhead from
  CPU contention), after a warm-up batch so actor start-up is excluded; scaling efficiency =
  throughput(2) / (2 * throughput(1)).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from nas.cost.sampling import sample_within
import nas.raytools  # before ray: loopback-only
from nas.search import LocalEvaluator, RayPoolEvaluator, SearchSettings, run_search
from nas.search.toy import ToyFactory
from nas.space import Bounds, load_space


def bookkeeping(space_ref: str, population: int, generations: int, bounds: Bounds) -> dict:
    space = load_space(space_ref)
    factory = ToyFactory(space_ref, 0, bounds)
    settings = SearchSettings(population=population, mutations=population // 2,
                              crossovers=population - population // 2, generations=generations, bounds=bounds)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.json"
        result = run_search(space, settings, LocalEvaluator(factory), state, progress=False)
        fitness = factory()
        start = time.perf_counter()
        for record in result.evaluated.values():
            fitness.evaluate(record["genotype"])
        fitness_s = (time.perf_counter() - start) / len(result.evaluated)
        state_kb = state.stat().st_size / 1024
    per_gen = [t["seconds"] - e["evals"] * fitness_s for t, e in zip(result.timings, result.logbook)]
    return {"population": population, "generations": generations, "evaluated": len(result.evaluated),
            "bookkeeping_s_per_generation_median": round(statistics.median(per_gen), 3),
            "bookkeeping_s_last_generation": round(per_gen[-1], 3),
            "bookkeeping_ms_per_candidate_median": round(1000 * statistics.median(
                p / e["evals"] for p, e in zip(per_gen, result.logbook)), 2),
            "toy_fitness_ms_per_candidate": round(1000 * fitness_s, 3), "final_state_kb": round(state_kb, 1)}


def throughput(space_ref: str, workers: int, work: float, jobs: int, bounds: Bounds) -> dict:
    space = load_space(space_ref)
    import numpy as np

    rng = np.random.default_rng(workers)
    genotypes = [sample_within(space, rng, bounds).genotype for _ in range(jobs + workers)]
    pool = RayPoolEvaluator(ToyFactory(space_ref, 0, bounds, delay=work), workers)
    try:
        list(pool.evaluate(genotypes[:workers]))  # warm-up: every actor built and importing done
        start = time.perf_counter()
        done = list(pool.evaluate(genotypes[workers:]))
        elapsed = time.perf_counter() - start
    finally:
        pool.close()
    assert all(not o.failed for o in done)
    return {"workers": workers, "candidates": jobs, "seconds": round(elapsed, 3),
            "candidates_per_hour": round(jobs / elapsed * 3600), "ideal_per_hour": round(workers / work * 3600)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="lighttrack-mobile")
    parser.add_argument("--generations", type=int, default=6)
    parser.add_argument("--work", type=float, default=0.25, help="seconds of work per candidate (pool test)")
    parser.add_argument("--jobs", type=int, default=24, help="candidates per pool measurement")
    args = parser.parse_args()
    space = load_space(args.space)
    bounds = space.constraints.get("default", Bounds())
    report = {"space": args.space, "bounds": {"flops": bounds.flops, "params": bounds.params},
              "bookkeeping": [bookkeeping(args.space, p, args.generations, bounds) for p in (48, 100)]}
    temp_dir = tempfile.mkdtemp(prefix="tn-ray-")
    started = nas.raytools.init_ray(num_cpus=2, temp_dir=temp_dir)
    try:
        pools = [throughput(args.space, w, args.work, args.jobs, bounds) for w in (1, 2)]
    finally:
        if started:
            import ray

            ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    report["ray_pool"] = pools
    report["ray_scaling_efficiency_2_workers"] = round(
        pools[1]["candidates_per_hour"] / (2 * pools[0]["candidates_per_hour"]), 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
