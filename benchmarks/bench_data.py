"""Training-pair throughput as JSON: pairs/s built with 0, 1 and 2 DataLoader workers on 1280x720 JPEGs.

    flock /tmp/tracknas-bench.lock python benchmarks/bench_data.py [--sequences 6] [--frames 30]
        [--pairs 384] [--batch 32] [--rounds 2]

Generates a GOT-10k-layout set of 1280x720 JPEG sequences (cv2) in a temp dir, then builds the same
pairs (LightTrack geometry: template 128, search 256, stride 16) through `nas.data.loader.pair_batches`
with each worker count, `rounds` times interleaved (the best round counts; worker start-up included),
and checks the batches are identical. `per_pair_ms` splits one pair's in-process cost into decoding
its two frames, cutting its two crops (frame mean, affine warp, normalisation) and its label maps.
The machine's load average is recorded before and after: on a shared box the speed-ups are only as
good as the idle cores.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nas.data.datasets import open_dataset
from nas.data.loader import pair_batches
from nas.data.pairs import FrameCache, PairSampler, make_labels
from nas.data.synth import generate_dataset

WORKER_COUNTS = (0, 1, 2)


def cost_breakdown(pairs: PairSampler, count: int) -> dict[str, float]:
    """Mean ms per pair of decoding (2 frames), cropping (2 crops of decoded frames) and labels."""
    totals = {"decode": 0.0, "crop": 0.0, "labels": 0.0}
    cache = pairs.frames
    for index in range(count):
        rng = np.random.default_rng([pairs.seed, 99, index])
        seq, vis = pairs.videos[index % len(pairs.videos)]
        frames = [int(vis[i]) for i in pairs.interval.sample(rng, len(vis))[:2]]
        pairs.frames = FrameCache(2**30)
        started = time.perf_counter()
        for t in frames:
            pairs.frames.frame(seq, t)
        totals["decode"] += time.perf_counter() - started
        started = time.perf_counter()
        _, box = pairs._crop(seq, frames[0], pairs.template_size, "template", rng)
        _, box = pairs._crop(seq, frames[1], pairs.search_size, "search", rng)
        totals["crop"] += time.perf_counter() - started
        started = time.perf_counter()
        for stride in pairs.strides:
            make_labels(box, pairs.search_size, stride)
        totals["labels"] += time.perf_counter() - started
    pairs.frames = cache
    return {key: round(1e3 * value / count, 3) for key, value in totals.items()}


def measure(pairs: PairSampler, batches: list[range], workers: int) -> tuple[float, list[torch.Tensor]]:
    """Seconds to receive every batch (worker start-up included), and each batch's search crops; every
    run starts from an empty frame cache."""
    pairs.frames = FrameCache()
    started = time.perf_counter()
    searches = [batch["search"] for batch in pair_batches(pairs, batches, workers=workers)]
    return time.perf_counter() - started, searches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=384)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="tn-bench-data-"))
    try:
        generate_dataset(root, sequences=args.sequences, frames=args.frames, size=(1280, 720), seed=0,
                         val_fraction=0.0, overwrite=True)
        sequences = open_dataset(root, "got10k", "train")
        pairs = PairSampler(sequences, template_size=128, search_size=256, strides=(16,), length=args.pairs, seed=0)
        batches = [range(i, min(i + args.batch, args.pairs)) for i in range(0, args.pairs, args.batch)]
        seconds: dict[int, list[float]] = {w: [] for w in WORKER_COUNTS}
        reference, identical = None, True
        for _ in range(args.rounds):
            for workers in WORKER_COUNTS:
                elapsed, searches = measure(pairs, batches, workers)
                if workers == 0:
                    hit_rate = pairs.frames.hits / max(pairs.frames.hits + pairs.frames.misses, 1)
                seconds[workers].append(elapsed)
                reference = reference if reference is not None else searches
                identical &= all(torch.equal(a, b) for a, b in zip(reference, searches))
        rate = {w: args.pairs / min(s) for w, s in seconds.items()}
        breakdown = cost_breakdown(pairs, min(64, args.pairs))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({
        "benchmark": "data_loading", "frame_size": [1280, 720], "sequences": args.sequences, "frames": args.frames,
        "pairs": args.pairs, "batch": args.batch, "rounds": args.rounds,
        "pairs_per_s": {f"{w}_workers": round(r, 1) for w, r in rate.items()},
        "speedup_1_worker": round(rate[1] / rate[0], 3), "speedup_2_workers": round(rate[2] / rate[0], 3),
        "seconds": {f"{w}_workers": [round(s, 3) for s in values] for w, values in seconds.items()},
        "per_pair_ms": {**breakdown, "total": round(sum(breakdown.values()), 3)},
        "frame_cache_hit_rate": round(hit_rate, 3),  # of the in-process runs
        "batches_identical_across_workers": identical,
        "cpus": os.cpu_count(), "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()]}, indent=2))


if __name__ == "__main__":
    main()
