"""Per-frame CPU speed of LightTrack-Mobile on eager PyTorch, BN-folded eager and ONNX Runtime, side by side.

For each thread count (default 1 and 2): torch/OpenCV and the onnxruntime sessions use that many
intra-op threads; the three contenders are timed in alternation inside every round (`_timed` of
`bench_tracker_latency.py`), so load from other jobs hits them alike and their ratios hold. Two
numbers per contender: the search-branch forward alone (1x3x256x256 crop, template state cached) and
the tracker's whole per-frame step (crop + normalise + forward + decoding). Contenders:

* `eager`: the subnet as built (BatchNorm separate);
* `folded`: BatchNorm folded into the convs (`fold_batchnorm`, what `LightTrackTracker` runs on torch);
* `ort`: the folded subnet exported to static-shape ONNX graphs in onnxruntime
  (`--runtime onnxruntime`: `trackers.runtime.onnxruntime_session`'s options).

Each timed step follows `--settle-ms` of untimed idle: back to back, torch's OpenMP threads still spin
after its call and take a core from whatever is timed next (onnxruntime's second thread, mostly).

Prints one JSON object: the timings, `ort_forward_ratio_<T>_threads` = ort / eager (and the folded and
per-frame ratios), `load_average` and the versions; `contended` says the load exceeded the cores, when
the ratios are not to be trusted (torch's OpenMP threads stall behind other jobs much more than
onnxruntime's). Run it under `flock /tmp/tracknas-bench.lock` on a shared machine. Target:
`ort_forward_ratio_2_threads` <= 0.5.

    python benchmarks/bench_onnx_runtime.py [--runs 200] [--warmup 30] [--threads 1 2]
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch
from bench_tracker_latency import _timed

from trackers.lighttrack.tracker import LightTrackSpec

CONTENDERS = ("eager", "folded", "ort")


def _time_threads(threads: int, runs: int, warmup: int, settle_s: float) -> dict:
    """Forward and per-frame medians of every contender at `threads` intra-op threads."""
    import cv2

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    spec = LightTrackSpec("lighttrack-mobile", device="cpu")
    trackers = {"folded": spec(), "ort": spec.with_runtime("onnxruntime")()}  # sessions take `threads`
    trackers["eager"] = spec()
    trackers["eager"].model = spec.build_model().eval()  # the same weights, BatchNorm left separate
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)  # content does not change the cost
    box = np.array([280.0, 180.0, 80.0, 120.0])  # 3% of the image: the normal (256) search size
    z = torch.from_numpy(rng.standard_normal((1, 3, 128, 128), dtype=np.float32))
    x = torch.from_numpy(rng.standard_normal((1, 3, 256, 256), dtype=np.float32))
    steps = {}
    with torch.inference_mode():
        for name in CONTENDERS:
            tracker = trackers[name]
            tracker.initialize(frame, box)  # template once, as in tracking
            state = tracker.model.template(z)
            steps[f"{name}_forward"] = lambda t=tracker, s=state: t.model.track(x, s)
            steps[f"{name}_per_frame"] = lambda t=tracker: t.track(frame)
        timings = _timed({key: steps[key] for key in sorted(steps, key=lambda k: (k.split("_", 1)[1], k))},
                         runs, warmup, settle_s)
    ratios = {}
    for other in ("folded", "ort"):
        for part in ("forward", "per_frame"):
            ratios[f"{other}_{part}_ratio_{threads}_threads"] = (
                timings[f"{other}_{part}"]["median_ms"] / timings[f"eager_{part}"]["median_ms"])
    return {"timings": timings, "ratios": ratios}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed rounds (default 200)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed warm-up rounds (default 30)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--settle-ms", type=float, default=5.0,
                        help="untimed idle before each timed step, so no contender runs beside the previous one's "
                             "still-spinning OpenMP threads (default 5; 0 to time back to back)")
    args = parser.parse_args(argv)

    import onnxruntime

    load_before = list(os.getloadavg())
    result: dict = {"model": "lighttrack-mobile", "instance_size": 256, "runs": args.runs, "warmup": args.warmup,
                    "settle_ms": args.settle_ms,
                    "threads": args.threads, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
    for threads in args.threads:
        measured = _time_threads(threads, args.runs, args.warmup, args.settle_ms / 1e3)
        result[f"{threads}_threads"] = measured["timings"]
        result.update(measured["ratios"])
    target = result.get("ort_forward_ratio_2_threads")
    load_after = list(os.getloadavg())
    # other jobs on the cores (beyond this one's threads) stall torch's OpenMP teams far more than
    # onnxruntime's pool: ratios measured then overstate onnxruntime's gain
    contended = max(load_before[0], load_after[0]) > (os.cpu_count() or 1)
    result.update({"target_ort_forward_ratio_2_threads": 0.5,
                   "target_met": None if target is None else target <= 0.5,
                   "load_average_before": load_before, "load_average": load_after,
                   "cpu_count": os.cpu_count(), "contended": contended})
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
