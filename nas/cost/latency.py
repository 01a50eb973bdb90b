"""Measured CPU/GPU latency of a subnet's per-frame search branch (median of N timed runs).

This is the definition of per-frame latency: the latency lookup tables (`nas.cost.lut`) predict it
from per-piece timings plus a fitted overhead, and `tracknas latency validate` checks the
prediction against this kind of end-to-end measurement.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn


def measure_latency(model: nn.Module, template_size: int, search_size: int, *, runs: int = 50, warmup: int = 10,
                    threads: int | None = 2, device: str | None = None) -> dict[str, float]:
    """Median/p90 milliseconds of `model.track(x, state)` on one search crop (template state cached once)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        model = model.to(device).eval()
        z = torch.randn(1, 3, template_size, template_size, device=device)
        x = torch.randn(1, 3, search_size, search_size, device=device)
        times = []
        with torch.inference_mode():
            state = model.template(z)
            for i in range(warmup + runs):
                start = time.perf_counter()
                model.track(x, state)
                if device == "cuda":
                    torch.cuda.synchronize()
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1e3)
    finally:
        torch.set_num_threads(previous_threads)
    return {"latency_ms": float(np.median(times)), "latency_p90_ms": float(np.percentile(times, 90)),
            "latency_runs": runs, "latency_threads": threads or previous_threads, "latency_device": device}
