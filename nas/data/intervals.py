"""Frame-interval strategies: how far apart the template and search frames of a pair are.

The pair sampler asks a strategy for a frame pair; strategies are pluggable (uniform within a max
gap by default; SSTrack's success-aware bin scheduler plugs in through the same protocol).
"""
from __future__ import annotations

from typing import Protocol

import numpy as np


class IntervalStrategy(Protocol):
    """Chooses (template index, search index, bin id) for a video of `length` frames.

    `bin_id` identifies the interval bin the pair came from (0 when the strategy has no bins), so
    a schedule can weight each sample's loss by its bin and collect per-bin statistics.
    """

    def sample(self, rng: np.random.Generator, length: int) -> tuple[int, int, int]: ...


class UniformInterval:
    """Template frame uniform over the video; search frame uniform within `max_gap` of it."""

    def __init__(self, max_gap: int = 100):
        if max_gap < 0:
            raise ValueError("max_gap must be >= 0")
        self.max_gap = int(max_gap)

    def sample(self, rng: np.random.Generator, length: int) -> tuple[int, int, int]:
        t_z = int(rng.integers(length))
        lo, hi = max(0, t_z - self.max_gap), min(length - 1, t_z + self.max_gap)
        return t_z, int(rng.integers(lo, hi + 1)), 0
