"""The one tracker interface, shared by found subnets and baselines alike.

Frames are HxWx3 uint8 arrays in **RGB** order; boxes are `(x, y, w, h)` floats in pixels with
(x, y) the top-left corner (the OTB/GOT-10k convention). The harness only ever calls these two
methods, so any tracker that implements them is scored identically.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn


def center_size(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre x, y; size w, h) of an (x, y, w, h) box: the state the crop-based trackers move."""
    x, y, w, h = np.asarray(box, dtype=np.float64)
    return np.array([x + w / 2.0, y + h / 2.0]), np.array([w, h])


def corner_box(center: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The (x, y, w, h) box of a centre and a size."""
    return np.concatenate([center - size / 2.0, size])


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


class NetworkTracker(Tracker):
    """A tracker over one network: it runs on the picked device in eval mode, with frozen settings.

    `frame_index` is None until `initialize` sets it to 0; `next_frame` counts each tracked frame.
    """

    def __init__(self, model: nn.Module, config: Any, device: torch.device | str | None = None):
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.frame_index: int | None = None

    def next_frame(self) -> int:
        """The index of the frame being tracked (1 for the first after `initialize`)."""
        if self.frame_index is None:
            raise RuntimeError("track() called before initialize()")
        self.frame_index += 1
        return self.frame_index
