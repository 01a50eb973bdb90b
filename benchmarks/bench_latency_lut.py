"""Latency lookup table accuracy: predicted vs end-to-end measured per-frame latency, as JSON.

    flock /tmp/tracknas-bench.lock python benchmarks/bench_latency_lut.py [--space lighttrack-mobile]
        [--runtime torch] [--threads 2] [--device cpu] [--archs 50] [--seed 0] [--rebuild] [--quantile 0.5]
        [--window 300]

Builds the space's table for the setting (or reuses the cached one; `--rebuild` times it afresh),
then measures `--archs` random architectures end to end (the search branch, as `measure_latency`)
and prints `tracknas latency validate --json` with the build time and the load average before and
after: on a shared machine, numbers taken under a load above the core count are not the machine's.
Targets (issue 12, Mobile, torch, 2 threads): MAPE <= 10 %, Kendall tau >= 0.8, over >= 50 architectures.
"""
from __future__ import annotations

import argparse
import json
import os
import time

from nas.commands.latency import setting_from_args, timing_from_args
from nas.cost.lut import DEVICES, RUNTIMES, TABLE_TIMING, build_latency_table, latency_table, validate_table
from nas.space import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="lighttrack-mobile")
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--archs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true", help="time the table afresh instead of using the cache")
    parser.add_argument("--quantile", type=float, default=0.5, help="per-call summary (0.5 median; 0.1 under load)")
    parser.add_argument("--window", type=float, default=TABLE_TIMING.window_s,
                        help="seconds a new table spans at least")
    args = parser.parse_args()
    space = load_space(args.space)
    setting, timing = setting_from_args(args), timing_from_args(args)
    load_before = [round(v, 2) for v in os.getloadavg()]
    start = time.perf_counter()
    if args.rebuild:
        build_latency_table(space, setting, timing)
    else:
        latency_table(space, setting, timing)
    build_s = time.perf_counter() - start
    result = validate_table(space, setting, archs=args.archs, seed=args.seed)
    print(json.dumps({"benchmark": "latency_lut", **result, "table_s": round(build_s, 1),
                      "load_average_before": load_before, "cores": os.cpu_count(),
                      "targets": {"mape": 10.0, "kendall_tau": 0.8, "archs": 50}}, indent=2))


if __name__ == "__main__":
    main()
