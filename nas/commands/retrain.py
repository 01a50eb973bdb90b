"""`tracknas retrain ARCH.json CONFIG`: train a found architecture standalone, then evaluate it."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrain", help="train a found architecture standalone (optionally a Ray Tune sweep)")
    p.add_argument("arch", type=Path, help="architecture JSON (e.g. runs/<name>/best.json or an export's arch.json)")
    p.add_argument("config", type=Path, help="run config YAML: data, training hyper-parameters, output")
    p.add_argument("--init", choices=("scratch", "supernet"), default="scratch",
                   help="random init (default) or the weights inherited from the run's supernet")
    p.add_argument("--tune", type=int, default=0, metavar="N_TRIALS", help="Ray Tune ASHA sweep over lr/wd")
    p.add_argument("--workers", type=int, default=0, help="parallel Tune trials / evaluation workers")
    p.add_argument("--address", help="join an existing Ray cluster for the sweep")
    p.add_argument("-o", "--out", type=Path, help="output directory (default runs/<name>/retrain/<arch_id>)")
    p.set_defaults(func=_retrain)


def _retrain(args: argparse.Namespace) -> int:
    import json

    from nas.config import load_config
    from nas.space import load_space
    from nas.space.arch import arch_from_json, load_arch_json
    from nas.jobs.retrain import retrain

    cfg = load_config(args.config)
    arch_json = load_arch_json(args.arch)
    arch = arch_from_json(arch_json, load_space(cfg.space), source=str(args.arch))
    summary = retrain(cfg, arch, arch_json, init=args.init, tune_trials=args.tune, workers=args.workers,
                      address=args.address, out_dir=args.out)
    print(json.dumps(summary, indent=2))
    return 0
