"""`tracknas search CONFIG` (the whole job) and `tracknas export RUN_DIR`."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from nas.commands.train import add_run_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="data -> supernet -> evolutionary search -> export, into runs/<name>/")
    add_run_arguments(p, workers_help="Ray workers for training and fitness",
                      resume_help="continue the run in the config's run directory")
    p.set_defaults(func=_search)

    e = sub.add_parser("export", help="a run's best (or chosen) architecture -> JSON + standalone checkpoint")
    e.add_argument("run_dir", type=Path, help="run directory (runs/<name>)")
    e.add_argument("--arch-id", help="an evaluated architecture instead of the best")
    e.add_argument("--onnx", action="store_true", help="also write template.onnx and search.onnx")
    e.add_argument("-o", "--out", type=Path, help="export directory (default RUN_DIR/best or RUN_DIR/<arch-id>)")
    e.set_defaults(func=_export)


def _search(args: argparse.Namespace) -> int:
    import nas.raytools  # noqa: F401  (loopback-only Ray must be configured before ray is imported)
    from nas.config import load_config
    from nas.jobs.validate import validate_run
    from nas.jobs.search import run_job

    if args.workers < 0:
        from nas.errors import ConfigError

        raise ConfigError(f"expected --workers >= 0, got {args.workers}", key="--workers")
    cfg = load_config(args.config)
    validate_run(cfg, search=True)
    summary = run_job(cfg, workers=args.workers, address=args.address, resume=args.resume, tb=args.tb)
    print(f"best architecture {summary['arch_id']}: {summary['flops'] / 1e6:.1f} MFLOPs, "
          f"{summary['params'] / 1e6:.3f} M params ({summary['evaluated']} candidates evaluated)")
    print(f"run directory {summary['run_dir']}; standalone export {summary['export']}")
    identity = summary["references"]["identity"]
    if summary["fitness_by_subset"][0] <= identity["fitness_by_subset"][0] or summary["fitness"] <= identity["fitness"]:
        print(f"warning: the best architecture does not beat the identity tracker on the same frames "
              f"({summary['fitness']:.4f} vs {identity['fitness']:.4f} over every trial): the supernet has not "
              "learned enough to rank candidates", file=sys.stderr, flush=True)
    print(summary_line(summary))
    return 0


def summary_line(summary: dict) -> str:
    """The job's last line: the supernet's cls loss, the best fitness on the fitness subset and over every
    trial, each beside the identity floor on the same frames, and the reference architecture's."""
    identity, reference = summary["references"]["identity"], summary["references"].get("reference_arch")
    best_sub, id_sub = summary["fitness_by_subset"][0], identity["fitness_by_subset"][0]
    text = (f"supernet cls loss {summary['supernet_cls']:.3f} (chance {math.log(2):.3f}); best fitness "
            f"{best_sub:.4f} on the fitness subset = {best_sub / max(id_sub, 1e-9):.2f}x identity {id_sub:.4f}; "
            f"over all {len(summary['trials'])} trials {summary['fitness']:.4f} +- {summary['fitness_std']:.4f} = "
            f"{summary['fitness'] / max(identity['fitness'], 1e-9):.2f}x identity {identity['fitness']:.4f}")
    if reference:
        text += (f"; reference {reference['name']} {reference['fitness_by_subset'][0]:.4f} "
                 f"({reference['fitness']:.4f} +- {reference['fitness_std']:.4f})")
    return text


def _export(args: argparse.Namespace) -> int:
    from nas.config import load_run_config
    from nas.jobs.search import export_run

    out = export_run(load_run_config(args.run_dir), args.arch_id, onnx=args.onnx, out_dir=args.out)
    print(f"exported to {out}")
    return 0
