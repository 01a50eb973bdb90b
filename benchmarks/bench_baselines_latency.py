"""Per-frame CPU latency of every baseline tracker on a real frame of OTB Crossing, as one JSON object.

Each tracker is initialised on frame 0 of Crossing and then times, on frame 1 after `--warmup`
untimed rounds, the median (p10, p90) of `--runs` rounds of two steps:

* `per_frame`: a whole `track()` call (crops, network, decoding, and whatever online learning the
  tracker does on that frame: MetaRTT's sample collection and its update every 10th call, DiMP's
  filter refinement every 20th, GradNet's template update every 5th), which is what a user waits for;
* `forward`: the per-frame network alone (the spec's `frame_network`, the same network
  whose FLOPs the comparison table reports), under `torch.no_grad`.

Weights are random (seeded) unless `--checkpoints` names the checkpoint folder of a `tracknas
baselines` run (with the same `--train-config`); latency does not depend on the weights, except
through the online-learning decisions (e.g. MetaRTT's success test). Network sizes are the paper
defaults unless `--train-config` changes them.

    python benchmarks/bench_baselines_latency.py [--runs 30] [--warmup 5] [--threads 1] [--only dimp metartt]
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from bench_tracker_latency import _timed
from nas.data.datasets import open_dataset
from nas.fitness.baselines import (
    BASELINE_NAMES, CHECKPOINT_NAMES, BaselineConfig, baseline_specs, load_baseline_config)

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed warm-up rounds (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenCV intra-op threads (default 1)")
    parser.add_argument("--otb", default=str(REPO.parent / "shared" / "data" / "otb"),
                        help="OTB root holding Crossing (default ../shared/data/otb)")
    parser.add_argument("--train-config", help="baseline settings YAML (network widths, tracker settings)")
    parser.add_argument("--checkpoints", help="checkpoint folder of a `tracknas baselines` run")
    parser.add_argument("--only", nargs="+", choices=BASELINE_NAMES, help="time only these baselines")
    args = parser.parse_args(argv)

    import cv2

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    config = load_baseline_config(args.train_config) if args.train_config else BaselineConfig()
    checkpoints = {name: Path(args.checkpoints) / f"{name}.pt" if args.checkpoints else None
                   for name in CHECKPOINT_NAMES}
    specs, notes = baseline_specs(config, checkpoints)
    seq = next(s for s in open_dataset(args.otb, "otb") if s.name == "Crossing")
    first, frame = seq.frame(0), seq.frame(1)
    results = {}
    for name in args.only or BASELINE_NAMES:
        tracker = specs[name]()
        tracker.initialize(first, seq.boxes[0])
        module, inputs = specs[name].frame_network(tracker, frame)
        module.eval()

        def forward() -> object:
            with torch.no_grad():
                return module(*inputs)

        results[name] = {**_timed({"per_frame": lambda: tracker.track(frame), "forward": forward},
                                  args.runs, args.warmup),
                         "params": sum(p.numel() for p in module.parameters()), "weights": notes[name]}
        results[name]["fps_per_frame"] = 1e3 / results[name]["per_frame"]["median_ms"]
    out = {"sequence": "Crossing", "frame_size": list(frame.shape[1::-1]), "threads": args.threads,
           "runs": args.runs, "warmup": args.warmup, "torch": torch.__version__, "trackers": results,
           "load_average": list(os.getloadavg())}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
