"""Cost-model benchmark: constraint checks from the lookup table vs one fvcore trace, as JSON.

    python benchmarks/bench_cost.py [--space lighttrack-mobile] [--archs 20000] [--traces 10] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from nas.cost.counting import reference_cost
from nas.cost.table import CostTable
from nas.space import Arch, Bounds, load_space
from trackers.lighttrack.model import build_subnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="lighttrack-mobile")
    parser.add_argument("--archs", type=int, default=20000, help="architectures for the table timing")
    parser.add_argument("--traces", type=int, default=10, help="architectures traced with fvcore")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = load_space(args.space)
    bounds = space.constraints.get("default", Bounds(flops=600_000_000, params=2_000_000))

    start = time.perf_counter()
    table = CostTable.build(space)
    build_s = time.perf_counter() - start

    rng = np.random.default_rng(args.seed)
    genotypes = [space.random_genotype(rng) for _ in range(args.archs)]
    start = time.perf_counter()
    feasible = sum(bounds.admits({"flops": table.flops(g), "params": table.params(g)}) for g in genotypes)
    check_us = (time.perf_counter() - start) / args.archs * 1e6

    trace_ms, build_ms, exact = [], [], 0
    for g in genotypes[: args.traces]:
        arch = Arch(space, g)
        t0 = time.perf_counter()
        model = build_subnet(space, arch)
        t1 = time.perf_counter()
        ref = reference_cost(model, space.spec.template_size, space.spec.search_size)
        t2 = time.perf_counter()
        build_ms.append((t1 - t0) * 1e3)
        trace_ms.append((t2 - t1) * 1e3)
        exact += ref == table.cost(arch)
    trace_median = statistics.median(trace_ms)
    print(json.dumps({
        "benchmark": "cost_model", "space": space.name, "threads": args.threads,
        "table_build_s": round(build_s, 2), "table_entries_traced": "all distinct (block, context) pieces",
        "constraint_check_us_per_arch": round(check_us, 2), "constraint_check_target_us": 20,
        "archs_checked": args.archs, "feasible_fraction": round(feasible / args.archs, 4),
        "bounds": {"flops": bounds.flops, "params": bounds.params},
        "fvcore_trace_ms_median": round(trace_median, 1), "subnet_build_ms_median": round(statistics.median(build_ms), 1),
        "speedup_table_vs_trace": round(trace_median * 1e3 / check_us), "table_equals_fvcore": f"{exact}/{len(trace_ms)}",
    }, indent=2))


if __name__ == "__main__":
    main()
