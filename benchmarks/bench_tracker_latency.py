"""Per-frame CPU latency of LightTrack-Mobile (random weights), printed as one JSON object.

Protocol (the one behind the reference figures): `torch.set_num_threads(T)`, `torch.inference_mode`,
FP32 eager, template features computed once, `--warmup` untimed runs, then the median of `--runs`.
Two numbers: the search-branch forward alone (`model.track(x, state)` on a 1x3x256x256 crop), and the
whole per-frame step of the tracker (crop + normalise + forward + decoding), which is what a user
waits for. The reference ~21 ms (2 threads, quiet machine; ~34 ms when other jobs share the cores)
was measured for the forward alone on a machine like ours; `load_average` shows how busy this one was.

    python benchmarks/bench_tracker_latency.py [--runs 200] [--warmup 50] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from trackers.lighttrack.tracker import LightTrackSpec, TrackerConfig

REFERENCE = {"forward_ms_quiet": 21.1, "forward_ms_contended": 34.0, "threads": 2, "instance_size": 256,
             "source": "notes/lighttrack.md (e): 2 vCPUs, torch 2.13 CPU, median of 200 after 50 warm-up"}


def _timed(steps: dict[str, Callable[[], object]], runs: int, warmup: int,
           settle_s: float = 0.0) -> dict[str, dict[str, float]]:
    """Median, p10 and p90 (ms) of each step over `runs` rounds after `warmup` untimed rounds.

    The steps alternate within each round, so load from other jobs on a shared machine hits all of
    them alike and their ratio stays meaningful even when the absolute numbers drift. `settle_s`
    of untimed idle before each step lets the previous step's spinning worker threads (OpenMP's spin
    after a torch call) go to sleep, so they do not take a core from the step being timed, as a
    tracker's threads are idle between two camera frames.
    """
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for round_index in range(warmup + runs):
        for name, step in steps.items():
            if settle_s:
                time.sleep(settle_s)
            start = time.perf_counter()
            step()
            if round_index >= warmup:
                samples[name].append((time.perf_counter() - start) * 1e3)
    summary = {}
    for name, values in samples.items():
        p10, p90 = np.percentile(values, [10, 90])
        summary[name] = {"median_ms": statistics.median(values), "p10_ms": float(p10), "p90_ms": float(p90)}
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed rounds, each timing every step once (default 200)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed warm-up rounds (default 50)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--instance-size", type=int, default=256, help="search crop side (256, or 288)")
    args = parser.parse_args(argv)

    import cv2

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    spec = LightTrackSpec("lighttrack-mobile", TrackerConfig(instance_size=args.instance_size), device="cpu")
    tracker = spec()  # runs a BatchNorm-folded copy of the model
    unfolded = spec.build_model().eval()
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)  # content does not change the cost
    box = np.array([280.0, 180.0, 80.0, 120.0])  # 3% of the image: the normal (non-big) search size

    with torch.inference_mode():
        z = torch.from_numpy(rng.standard_normal((1, 3, 128, 128), dtype=np.float32))
        x = torch.from_numpy(rng.standard_normal((1, 3, args.instance_size, args.instance_size),
                                                 dtype=np.float32))
        state = tracker.model.template(z)
        tracker.initialize(frame, box)  # template once, as in tracking
        timings = _timed({"forward": lambda: tracker.model.track(x, state),
                          "forward_unfolded": lambda: unfolded.track(x, state),
                          "per_frame": lambda: tracker.track(frame),
                          "template": lambda: tracker.model.template(z)}, args.runs, args.warmup)

    result = {
        "model": spec.name, "params": sum(p.numel() for p in unfolded.parameters()), "batchnorm_folded": True,
        "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
        "instance_size": args.instance_size, "torch": torch.__version__,
        **timings, "fps_per_frame": 1e3 / timings["per_frame"]["median_ms"],
        "load_average": list(os.getloadavg()), "reference": REFERENCE,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
