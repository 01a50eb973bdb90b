"""LightTrack's learning-rate schedule: linear warm-up, then log-linear decay, one value per epoch."""
from __future__ import annotations

import math


def epoch_lr(epoch: int, *, epochs: int, base: float, warmup_epochs: int = 0, warmup_start: float | None = None,
             end: float | None = None) -> float:
    """lr of `epoch` (0-based): warm-up steps from `warmup_start` to `base` over `warmup_epochs`, then
    decays log-linearly from `base` to `end` by the last epoch (constant when `end` is None)."""
    if epoch < warmup_epochs:
        start = base if warmup_start is None else warmup_start
        return start + (base - start) * epoch / max(warmup_epochs, 1)
    if end is None or epochs - warmup_epochs <= 1:
        return base
    t = (epoch - warmup_epochs) / (epochs - warmup_epochs - 1)
    return math.exp(math.log(base) + t * (math.log(end) - math.log(base)))


def cosine_lr(step: int, *, steps: int, base: float, end: float = 0.0, warmup_steps: int = 0) -> float:
    """lr of `step` (0-based) of `steps`: linear warm-up towards `base` over `warmup_steps`, then a
    half cosine from `base` down to `end` at the last step (the usual ImageNet classification schedule)."""
    if step < warmup_steps:
        return base * (step + 1) / (warmup_steps + 1)
    t = (step - warmup_steps) / max(steps - warmup_steps - 1, 1)
    return end + (base - end) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
