"""Memory of supernet training as JSON: peak RSS at batch 32 on CPU, and whether RSS grows per step.

    flock /tmp/tracknas-bench.lock python benchmarks/bench_memory.py [--space lighttrack-quick]
        [--steps 200] [--every 20] [--batch 32] [--data-workers 0]

Trains the space's supernet in-process on synthetic data (`nas.data.synth`) for `steps` steps, one
epoch per `every` steps, and samples the process's resident set size after each epoch (training's
per-epoch report). RSS rises at first by design: a choice's optimizer state (AdamW's two moments)
is created the first time a sampled path trains it, the allocator's pools and the frame cache
(bounded, `nas.data.pairs.FRAME_CACHE_BYTES`) fill, and it then moves up and down by a few
percent with the activations of the sampled path. A leak keeps rising, so a least-squares line
through the samples after the first quarter of the run gives the growth per 100 steps; `bounded`
is true when that line adds less than `--tolerance-pct` of the mean RSS over the whole run. Peak
RSS is the kernel's high-water mark (VmHWM) of this process; with `--data-workers` the workers' own
memory is reported beside it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nas.config import DataConfig, RunConfig, SupernetConfig
from nas.data.synth import generate_dataset
from nas.space import load_space
from nas.train.supernet_trainer import train


def _status_mb(field: str, pid: int | str = "self") -> float:
    """A `VmRSS`/`VmHWM` line of /proc/<pid>/status in MiB (0 once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children_rss_mb() -> float:
    """Resident memory of this process's children (DataLoader workers), MiB."""
    try:
        children = open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split()
    except OSError:
        return 0.0
    return sum(_status_mb("VmRSS", pid) for pid in children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="lighttrack-quick")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--data-workers", type=int, default=0)
    parser.add_argument("--tolerance-pct", type=float, default=5.0)
    args = parser.parse_args()
    if args.steps % args.every or args.steps < 4 * args.every:
        parser.error("--steps must be a multiple of --every, with at least 4 samples")
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="tn-bench-memory-"))
    generate_dataset(root / "data", sequences=16, frames=40, seed=0, overwrite=True)
    cfg = RunConfig(name="memory", space=args.space, output=str(root / "run"),
                    data=DataConfig(root=str(root / "data"), split="train"),
                    supernet=SupernetConfig(epochs=args.steps // args.every, pairs_per_epoch=args.every * args.batch,
                                            batch_size=args.batch, optimizer="adamw", lr=1e-3, warmup_epochs=0,
                                            end_lr=3e-4, weight_sharing="kernel", data_workers=args.data_workers))
    samples: list[tuple[int, float, float]] = []  # (step, RSS MiB, workers' RSS MiB)

    def report(record: dict) -> None:
        samples.append((record["epoch"] * args.every, _status_mb("VmRSS"), _children_rss_mb()))

    started = time.monotonic()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            train(cfg, report=report, progress=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    seconds = time.monotonic() - started
    late = [(s, r) for s, r, _ in samples if s > args.steps // 4]
    slope = float(np.polyfit([s for s, _ in late], [r for _, r in late], 1)[0])  # MiB per step
    tolerance = args.tolerance_pct / 100 * float(np.mean([r for _, r in late]))
    print(json.dumps({
        "benchmark": "memory", "space": load_space(args.space).name, "batch": args.batch, "steps": args.steps,
        "device": "cpu", "threads": torch.get_num_threads(), "data_workers": args.data_workers,
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
        "rss_mb_every_step": {str(s): round(r, 1) for s, r, _ in samples},
        "workers_rss_mb_last": round(samples[-1][2], 1),
        "growth_mb_per_100_steps": round(100 * slope, 2),
        "growth_mb_over_run": round(slope * args.steps, 2),
        "growth_first_to_last_sample_mb": round(samples[-1][1] - samples[0][1], 1),
        "rss_range_after_warmup_mb": round(max(r for _, r in late) - min(r for _, r in late), 1),
        "bounded": bool(slope * args.steps < tolerance), "tolerance_mb": round(tolerance, 1),
        "seconds": round(seconds, 1), "s_per_step": round(seconds / args.steps, 3),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()]}, indent=2))


if __name__ == "__main__":
    main()
