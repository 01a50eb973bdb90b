"""SiamFC's scale search, shared by the GradNet and DiMP trackers: its settings and its pyramid.

Each frame scores a pyramid of crops `scale_step` apart around the current target size; the best
peak after `scale_penalty` on the off-centre scales picks the scale, the size moves
toward it at rate `scale_lr` and stays within [min_scale, max_scale] x its first value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class ScaleSearchConfig:
    """The scale-search settings; the defaults are SiamFC's (a tracker may override `scale_lr`).

    Keyword-only, so a tracker config that inherits them keeps its own positional field order.
    """

    num_scales: int = 3
    scale_step: float = 1.04
    scale_penalty: float = 0.97
    scale_lr: float = 0.5
    min_scale: float = 0.2
    max_scale: float = 5.0

    def scales(self) -> np.ndarray:
        """The pyramid's scale factors, smallest first, symmetric around 1."""
        n = self.num_scales
        return self.scale_step ** (np.arange(n) - (n - 1) / 2.0)
