"""The one tracker interface, shared by found subnets and baselines alike.

Frames are HxWx3 uint8 arrays in **RGB** order; boxes are `(x, y, w, h)` floats in pixels with
(x, y) the top-left corner (the OTB/GOT-10k convention). The harness only ever calls these two
methods, so any tracker that implements them is scored identically.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np
import torch


def pick_device(requested: torch.device | str | None = None) -> torch.device:
    """The requested device, or CUDA when present, else the CPU: one rule for every tracker."""
    if requested is not None:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TrackResult(NamedTuple):
    box: np.ndarray  # (4,) float64 x, y, w, h
    score: float  # tracker confidence for this frame (higher = surer)


class Tracker(ABC):
    """initialize(frame, box) once per sequence, then track(frame) for every later frame."""

    name: str = "tracker"
    reads_frames: bool = True  # False: the harness may pass None instead of decoding each frame

    @abstractmethod
    def initialize(self, frame: np.ndarray, box: np.ndarray) -> None:
        """Start a sequence on `frame` with the target at `box` (x, y, w, h)."""

    @abstractmethod
    def track(self, frame: np.ndarray) -> TrackResult:
        """Locate the target in the next frame."""
