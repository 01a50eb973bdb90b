"""`tracknas cost ARCH.json`: params and FLOPs from the lookup table, optionally fvcore and latency."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.argtypes import int_range
from nas.config import LATENCY_DEFAULTS, MAX_THREADS
from nas.space import load_arch, load_space


def register(sub: argparse._SubParsersAction) -> None:
    cost = sub.add_parser("cost", help="params, per-frame FLOPs and template FLOPs of an architecture")
    cost.add_argument("arch", type=Path, help="architecture JSON")
    cost.add_argument("--space", help="DSL file or name when the architecture's space is not built in")
    cost.add_argument("--json", action="store_true", help="print one JSON object")
    cost.add_argument("--reference", action="store_true", help="also count with fvcore on the built subnet")
    cost.add_argument("--latency", action="store_true", help="also measure search-branch latency")
    cost.add_argument("--threads", type=int_range(1, MAX_THREADS), default=LATENCY_DEFAULTS["threads"],
                      help=f"torch threads for --latency (default {LATENCY_DEFAULTS['threads']})")
    cost.add_argument("--runs", type=int_range(1, 100_000), default=50, help="timed runs for --latency (median reported)")
    cost.add_argument("--warmup", type=int_range(0, 100_000), default=10, help="untimed warm-up runs for --latency")
    cost.set_defaults(func=_cost)


def _cost(args: argparse.Namespace) -> int:
    from nas.cost.table import cost_table

    space = load_space(args.space) if args.space else None
    arch = load_arch(args.arch, space)
    space = arch.space
    result = {"arch_id": arch.arch_id, "space": space.name, **cost_table(space).cost(arch)}
    if args.reference or args.latency:
        from trackers.lighttrack.model import build_subnet

        model = build_subnet(space, arch)
        if args.reference:
            from nas.cost.counting import reference_cost

            result["fvcore"] = reference_cost(model, space.spec.template_size, space.spec.search_size)
        if args.latency:
            from nas.cost.latency import measure_latency

            result.update(measure_latency(model, space.spec.template_size, space.spec.search_size,
                                          runs=args.runs, warmup=args.warmup, threads=args.threads))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.arch}  ({space.name}, id {arch.arch_id})")
    print(f"  params          {result['params']:>14,}")
    print(f"  flops           {result['flops']:>14,}   per-frame search branch")
    print(f"  template_flops  {result['template_flops']:>14,}   once per sequence")
    if "update_flops" in result:
        print(f"  update_flops    {result['update_flops']:>14,}   per gradnet template update (forward)")
    if "fvcore" in result:
        ref = result["fvcore"]
        update = f", update {ref['update_flops']:,}" if "update_flops" in ref else ""
        print(f"  fvcore check    params {ref['params']:,}, flops {ref['flops']:,}, template {ref['template_flops']:,}"
              f"{update}")
    if "latency_ms" in result:
        print(f"  latency         {result['latency_ms']:.2f} ms median ({result['latency_runs']} runs, "
              f"{result['latency_threads']} threads, {result['latency_device']})")
    return 0
