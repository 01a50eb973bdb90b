"""`tracknas space list|show|sample`: inspect a search space and draw (constrained) architectures."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from nas import __version__
from nas.commands.latency import latency_setting_options, setting_from_args
from nas.cost.sampling import sample_within
from nas.errors import TrackNASError
from nas.space import Bounds, arch_to_json, list_spaces, load_space, parse_quantity, save_arch
from nas.space.space import SearchSpace


def register(sub: argparse._SubParsersAction) -> None:
    space = sub.add_parser("space", help="list, inspect and sample search spaces")
    verbs = space.add_subparsers(dest="verb", metavar="VERB", parser_class=type(space))
    verbs.required = True

    verbs.add_parser("list", help="built-in search spaces").set_defaults(func=_list)

    show = verbs.add_parser("show", help="size, choices per position, constraints and cost range")
    show.add_argument("space", help="built-in name or path to a DSL .yaml file")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--no-cost", action="store_true", help="skip the cost range (no lookup-table build)")
    show.set_defaults(func=_show)

    sample = verbs.add_parser("sample", help="draw architectures uniformly, optionally within cost bounds")
    sample.add_argument("space", help="built-in name or path to a DSL .yaml file")
    sample.add_argument("-n", type=int, default=1, help="number of architectures (default 1)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--flops-max", help="per-frame FLOPs bound, e.g. 600M")
    sample.add_argument("--params-max", help="parameter bound, e.g. 2M")
    sample.add_argument("--latency-max", type=positive_ms, help="predicted per-frame latency bound in ms, from the "
                        "latency table of --runtime/--threads/--device (built first when none is cached)")
    latency_setting_options(sample)
    sample.add_argument("--preset", help="named constraint preset of the space (e.g. default, LargeA)")
    sample.add_argument("-o", "--out", type=Path, help="directory for arch_<i>.json (default: JSON lines on stdout)")
    sample.set_defaults(func=_sample)


def positive_ms(text: str) -> float:
    """A latency bound: a finite number of milliseconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 1e6):
        raise argparse.ArgumentTypeError(f"expected milliseconds in (0, 1e6], got {text!r}")
    return value


def bounds_from_args(space: SearchSpace, preset: str | None, flops: str | None, params: str | None,
                     latency_ms: float | None = None) -> Bounds:
    """A named preset, overridden field by field by explicit --flops-max / --params-max / --latency-max."""
    base = Bounds()
    if preset is not None:
        if preset not in space.constraints:
            raise TrackNASError(f"unknown constraint preset {preset!r} for space {space.name!r}; expected one of "
                                f"{', '.join(space.constraints) or '(none declared)'}", key="--preset")
        base = space.constraints[preset]
    return Bounds(flops=parse_quantity(flops, key="--flops-max") if flops is not None else base.flops,
                  params=parse_quantity(params, key="--params-max") if params is not None else base.params,
                  latency_ms=latency_ms if latency_ms is not None else base.latency_ms)


def _list(args: argparse.Namespace) -> int:
    for name in list_spaces():
        space = load_space(name)
        print(f"{name:24s} {space.size():.2e} architectures  {space.spec.description[:70]}")
    return 0


def _show(args: argparse.Namespace) -> int:
    space = load_space(args.space)
    spec = space.spec
    info = {"name": space.name, "hash": space.hash, "file": spec.source, "description": spec.description,
            "input": {"template": spec.template_size, "search": spec.search_size},
            "size": space.size(), "genes": [{"name": g.name, "options": list(g.labels)} for g in space.genes],
            "constraints": {k: {"flops": b.flops, "params": b.params} for k, b in spec.constraints.items()}}
    if not args.no_cost:
        from nas.cost.table import cost_table

        print(f"cost table for {space.name}: loading or building (once per space)...", file=sys.stderr, flush=True)
        info["cost_range"] = {k: {"min": lo, "max": hi} for k, (lo, hi) in cost_table(space).extremes().items()}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"space {space.name}  (hash {space.hash})\n  file: {spec.source}")
    if spec.description:
        print(f"  {spec.description}")
    print(f"  input: template {spec.template_size}, search {spec.search_size}")
    print(f"  size: {space.size():.3e} architectures over {len(space.genes)} genes")
    width = max(len(g.name) for g in space.genes)
    for g in space.genes:
        print(f"    {g.name:{width}s}  {len(g.options):2d}  {' | '.join(g.labels)}")
    for name, b in spec.constraints.items():
        flops = f"{b.flops / 1e6:.0f}M" if b.flops is not None else "-"
        params = f"{b.params / 1e6:.2f}M" if b.params is not None else "-"
        print(f"  constraints {name}: flops <= {flops}, params <= {params}")
    if "cost_range" in info:
        f, p = info["cost_range"]["flops"], info["cost_range"]["params"]
        print(f"  cost range: flops {f['min'] / 1e6:.1f}M .. {f['max'] / 1e6:.1f}M, "
              f"params {p['min'] / 1e6:.3f}M .. {p['max'] / 1e6:.3f}M (per-frame search branch, fvcore)")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from nas.cost.table import cost_table

    if args.n < 1:
        raise TrackNASError(f"expected -n >= 1, got {args.n}", key="-n")
    space = load_space(args.space)
    bounds = bounds_from_args(space, args.preset, args.flops_max, args.params_max, args.latency_max)
    table = cost_table(space)
    latency = None
    if bounds.latency_ms is not None:
        from nas.cost.lut import latency_table

        latency = latency_table(space, setting_from_args(args))
    rng = np.random.default_rng(args.seed)
    for i in range(args.n):
        arch = sample_within(space, rng, bounds, latency)
        info = {"cost": latency.annotate(table.cost(arch), arch) if latency is not None else table.cost(arch),
                "provenance": {"tool": f"tracknas {__version__}", "command": "space sample", "seed": args.seed,
                               "index": i, "bounds": {"flops": bounds.flops, "params": bounds.params,
                                                      "latency_ms": bounds.latency_ms},
                               **({"latency": latency.data["setting"]} if latency is not None else {})}}
        if args.out:
            path = save_arch(args.out / f"arch_{i:03d}.json", arch, **info)
            c = info["cost"]
            print(f"{path}  flops {c['flops'] / 1e6:.1f}M  params {c['params'] / 1e6:.3f}M  id {arch.arch_id}")
        else:
            print(json.dumps(arch_to_json(arch, **info)))
    return 0
