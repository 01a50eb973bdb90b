"""Supernet training benchmark as JSON: path samplers compared, and samples/s on 1 and 2 Ray workers.

    python benchmarks/bench_supernet_training.py --data data/synth [--space tests/spaces/tiny.yaml]
        [--epochs 4] [--pairs 64] [--batch 8] [--workers 0 1 2] [--samplers uniform fair sandwich]

Samplers: each trains the same supernet from the same seed; quality is the mean loss of 12 fixed
random paths on a fixed held-out batch after training (BN on batch statistics), plus the spread
over those paths (a sampler that neglects some options leaves some paths much worse).
Throughput: samples/s of the training epochs (startup excluded) and wall time including Ray start.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from nas.config import DataConfig, RunConfig, SupernetConfig
from nas.data.datasets import open_dataset
from nas.data.pairs import PairSampler, collate
from nas.io import torch_load
import nas.raytools  # noqa: F401  (loopback-only Ray before ray is imported)
from nas.space import load_space
from nas.supernet import Supernet
from nas.train.supernet_trainer import launch, supernet_dir
from trackers.lighttrack.geometry import output_strides
from trackers.lighttrack.losses import tracking_loss


def fixed_path_losses(cfg: RunConfig) -> list[float]:
    space = load_space(cfg.space)
    model = Supernet(space)
    model.load_state_dict(torch_load(supernet_dir(cfg) / "last.pt")["model"])
    model.train()
    pairs = PairSampler(open_dataset(cfg.data.root, split="val"), template_size=space.spec.template_size,
                        search_size=space.spec.search_size, strides=output_strides(space), length=16, seed=999)
    batch = collate([pairs[i] for i in range(16)])
    losses = []
    with torch.no_grad():
        for i in range(12):
            arch = space.sample(np.random.default_rng(1000 + i))
            out = model(arch, batch["template"], batch["search"])
            losses.append(tracking_loss(out, batch["labels"][model.arch_stride(arch)])[0].item())
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="GOT-10k-layout data with train and val splits")
    parser.add_argument("--space", default=str(Path(__file__).resolve().parents[1] / "tests" / "spaces" / "tiny.yaml"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samplers", nargs="+", default=["uniform", "fair", "sandwich"])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tn-bench-"))
    space = str(Path(args.space).resolve()) if Path(args.space).is_file() else args.space  # Ray workers run elsewhere
    base = RunConfig(name="bench", space=space, output=str(root / "base"),
                     data=DataConfig(root=str(args.data.resolve()), split="train"),
                     supernet=SupernetConfig(epochs=args.epochs, pairs_per_epoch=args.pairs, batch_size=args.batch,
                                             shards=2, lr=args.lr, warmup_epochs=0, end_lr=args.lr / 4))
    samplers = {}
    for sampler in args.samplers:
        cfg = replace(base, output=str(root / sampler), supernet=replace(base.supernet, path_sampler=sampler))
        with contextlib.redirect_stdout(sys.stderr):  # training's epoch lines: stdout is the JSON alone
            history = launch(cfg)
        losses = fixed_path_losses(cfg)
        samplers[sampler] = {"final_train_loss": round(history[-1]["loss"], 4),
                             "fixed_paths_mean_loss": round(float(np.mean(losses)), 4),
                             "fixed_paths_worst_loss": round(float(np.max(losses)), 4),
                             "fixed_paths_std": round(float(np.std(losses)), 4)}
    throughput = []
    for workers in args.workers:
        cfg = replace(base, output=str(root / f"workers{workers}"))
        started = time.monotonic()
        if workers:
            nas.raytools.init_ray(num_cpus=workers, temp_dir=tempfile.mkdtemp(prefix="tn-ray-"), log_to_driver=False)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                history = launch(cfg, workers=workers)
        finally:
            if workers:
                import ray

                ray.shutdown()
        wall = time.monotonic() - started
        train_seconds = sum(h["seconds"] for h in history)
        samples = args.epochs * (args.pairs // args.batch) * args.batch
        throughput.append({"workers": workers, "samples_per_s": round(samples / train_seconds, 2),
                           "wall_s_including_startup": round(wall, 1), "final_loss": round(history[-1]["loss"], 4)})
    print(json.dumps({"benchmark": "supernet_training", "space": load_space(args.space).name,
                      "threads": torch.get_num_threads(), "epochs": args.epochs, "pairs_per_epoch": args.pairs,
                      "batch": args.batch, "samplers": samplers, "throughput": throughput}, indent=2))


if __name__ == "__main__":
    main()
