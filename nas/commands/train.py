"""`tracknas train-supernet CONFIG` (LightTrack Alg. 1) and `tracknas pretrain-backbone CONFIG` (phase 1: the
backbone supernet as an image classifier), in-process or on Ray Train workers."""
from __future__ import annotations

import argparse
from pathlib import Path

from nas.argtypes import int_range


def add_run_arguments(p: argparse.ArgumentParser, *, workers_help: str, resume_help: str) -> None:
    """CONFIG, --workers, --address, --resume, --no-tb: shared by the commands that run a config."""
    p.add_argument("config", type=Path, help="run config YAML (see nas/config.py; runs/quickstart.yaml)")
    p.add_argument("--workers", type=int_range(0, 256), default=0, help=f"{workers_help}; 0 = in-process (default)")
    p.add_argument("--address", help="join an existing Ray cluster (default: a private loopback instance)")
    p.add_argument("--resume", action="store_true", help=resume_help)
    p.add_argument("--no-tb", dest="tb", action="store_false",
                   help="write no TensorBoard event files (default: under runs/<name>/tb/)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-supernet", help="train the weight-sharing supernet of a run config")
    add_run_arguments(p, workers_help="Ray Train workers", resume_help="continue from the run's last epoch checkpoint")
    p.set_defaults(func=_train)

    b = sub.add_parser("pretrain-backbone", help="pretrain the space's backbone supernet on an ImageFolder "
                                                 "(the config's pretrain: section); -> supernet.backbone_checkpoint")
    add_run_arguments(b, workers_help="Ray Train workers (one GPU each on CUDA)",
                      resume_help="continue from the last epoch checkpoint")
    b.set_defaults(func=_pretrain)


def _train(args: argparse.Namespace) -> int:
    import nas.raytools  # noqa: F401  (loopback-only Ray must be configured before ray is imported)
    from nas.config import load_config
    from nas.jobs.validate import validate_run
    from nas.train.supernet_trainer import launch, supernet_dir

    cfg = load_config(args.config)
    validate_run(cfg, search=False)
    history = launch(cfg, workers=args.workers, address=args.address, resume=args.resume, tb=args.tb)
    last = history[-1]
    print(f"supernet trained: {len(history)} epochs, final loss {last['loss']:.4f}; "
          f"checkpoint {supernet_dir(cfg) / 'last.pt'}")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    import nas.raytools  # noqa: F401  (loopback-only Ray must be configured before ray is imported)
    from nas.config import load_config
    from nas.train.pretrain import BACKBONE, launch_pretrain, pretrain_dir

    cfg = load_config(args.config)
    history = launch_pretrain(cfg, workers=args.workers, address=args.address, resume=args.resume, tb=args.tb)
    last = history[-1]
    print(f"backbone pretrained: {len(history)} epochs, final loss {last['loss']:.4f} (chance "
          f"{last['chance_loss']:.4f}), top-1 {last['accuracy']:.3f}; set supernet.backbone_checkpoint: "
          f"{pretrain_dir(cfg) / BACKBONE}")
    return 0
