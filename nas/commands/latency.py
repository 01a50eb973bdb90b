"""`tracknas latency build|validate SPACE`: per-device latency lookup tables and their prediction error."""
from __future__ import annotations

import argparse
import dataclasses
import json

from nas.argtypes import int_range, number_range
from nas.config import LATENCY_DEFAULTS
from nas.cost.lut import (DEVICES, MAX_THREADS, RUNTIMES, TABLE_TIMING, LatencySetting, Timing, build_latency_table,
                         validate_table)


def register(sub: argparse._SubParsersAction) -> None:
    latency = sub.add_parser("latency", help="per-device latency lookup tables: build, validate")
    verbs = latency.add_subparsers(dest="verb", metavar="VERB", parser_class=type(latency))
    verbs.required = True

    build = verbs.add_parser("build", help="time every distinct block of a space on this machine and cache the table")
    _setting_options(build)
    build.set_defaults(func=_build)

    validate = verbs.add_parser("validate", help="predicted vs measured latency of random architectures "
                                                 "(builds the table first if none is cached)")
    _setting_options(validate)
    validate.add_argument("--archs", type=int_range(2, 100_000), default=50,
                          help="random architectures measured end to end (default 50)")
    validate.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0)
    validate.set_defaults(func=_validate)


def _setting_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", help="built-in name or path to a DSL .yaml file")
    latency_setting_options(parser)
    parser.add_argument("--quantile", type=number_range(0.0, 1.0), default=0.5,
                        help="summary of each piece's timed calls when building (default 0.5, the median; "
                             "0.1 resists a loaded machine)")
    parser.add_argument("--window", type=number_range(0.0, 86_400.0), default=TABLE_TIMING.window_s,
                        metavar="SECONDS",
                        help=f"time a new table over at least this long (default {TABLE_TIMING.window_s:.0f}): a "
                             "shared machine's speed swings over minutes; 0 on a quiet, dedicated device")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def timing_from_args(args: argparse.Namespace) -> Timing:
    """The table timing of --quantile and --window (also `benchmarks/bench_latency_lut.py`)."""
    return dataclasses.replace(TABLE_TIMING, quantile=args.quantile, window_s=args.window)


def latency_setting_options(parser: argparse.ArgumentParser) -> None:
    """--runtime, --threads, --device: which latency table (also `space sample --latency-max`)."""
    default = LATENCY_DEFAULTS
    parser.add_argument("--runtime", choices=RUNTIMES, default=default["runtime"],
                        help=f"latency table: what runs the network (default {default['runtime']})")
    parser.add_argument("--threads", type=int_range(1, MAX_THREADS), default=default["threads"],
                        help=f"latency table: intra-op threads (default {default['threads']})")
    parser.add_argument("--device", choices=DEVICES, default=default["device"],
                        help=f"latency table: device (default {default['device']})")


def setting_from_args(args: argparse.Namespace) -> LatencySetting:
    """The checked setting (one-line error for a missing runtime package or GPU)."""
    return LatencySetting(args.runtime, args.threads, args.device).check()


def _build(args: argparse.Namespace) -> int:
    from nas.space import load_space

    space, setting = load_space(args.space), setting_from_args(args)
    table, path = build_latency_table(space, setting, timing_from_args(args))
    low, high = table.range_ms()
    info = {"space": space.name, "table": str(path), **table.data["setting"], "pieces": table.data["pieces"],
            "overhead_ms": table.overhead_us / 1e3, "range_ms": {"min": low, "max": high},
            "machine": table.data["machine"]}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"{path}\n  {info['pieces']} pieces timed ({setting.describe()}); overhead {info['overhead_ms']:.2f} ms;"
              f" predicted {low:.2f} .. {high:.2f} ms per frame")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from nas.space import load_space

    space, setting = load_space(args.space), setting_from_args(args)
    result = validate_table(space, setting, archs=args.archs, seed=args.seed, timing=timing_from_args(args))
    if args.json:
        print(json.dumps(result))
    else:
        m = result["measured_ms"]
        print(f"{space.name} ({setting.describe()}), {result['archs']} random architectures: MAPE "
              f"{result['mape']:.1f}%, max error {result['max_error']:.1f}%, Kendall tau {result['kendall_tau']:.3f}; "
              f"measured {m['min']:.2f} .. {m['max']:.2f} ms (load average {result['load_average']})")
        if result["drift"]:
            d = result["drift"]
            print(f"  since the table was built this machine runs its fit architectures {d['median']:.2f}x as long "
                  f"({d['min']:.2f} .. {d['max']:.2f}x); mape with the overhead refitted now {result['mape_refit']:.1f}%")
    return 0
