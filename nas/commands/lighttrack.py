"""`tracknas import-lighttrack` / `export-lighttrack`: official LightTrack path strings <-> JSON."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.space import arch_to_json, from_lighttrack_string, load_arch, load_space, save_arch, to_lighttrack_string


def register(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser("import-lighttrack", help="LightTrack path string -> architecture JSON")
    imp.add_argument("string", help="e.g. back_04502514044521042540+cls_211000022+reg_100000111_ops_32")
    imp.add_argument("--space", default="lighttrack-mobile", help="search space (default lighttrack-mobile)")
    imp.add_argument("-o", "--out", type=Path, help="output JSON file (default: stdout)")
    imp.set_defaults(func=_import)

    exp = sub.add_parser("export-lighttrack", help="architecture JSON -> LightTrack path string")
    exp.add_argument("arch", type=Path, help="architecture JSON")
    exp.add_argument("--space", help="DSL file or name when the architecture's space is not built in")
    exp.set_defaults(func=_export)


def _import(args: argparse.Namespace) -> int:
    from nas.cost.table import cost_table

    space = load_space(args.space)
    arch = from_lighttrack_string(space, args.string, source="import-lighttrack")
    info = {"cost": cost_table(space).cost(arch), "provenance": {"lighttrack_string": args.string}}
    if args.out:
        save_arch(args.out, arch, **info)
        print(f"wrote {args.out}  (id {arch.arch_id})")
    else:
        print(json.dumps(arch_to_json(arch, **info), indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    arch = load_arch(args.arch, load_space(args.space) if args.space else None)
    print(to_lighttrack_string(arch))
    return 0
