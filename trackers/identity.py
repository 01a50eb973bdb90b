"""The do-nothing floor: a tracker that reports the first box on every frame.

Why: on short or slow-moving sequences a tracker that never moves already scores well, so a
fitness, an evaluation or a baselines table is only meaningful next to this number on the same
frames. It runs through the same harness and metrics as every real tracker.
"""
from __future__ import annotations

import numpy as np

from trackers.base import Tracker, TrackResult


class IdentityTracker(Tracker):
    name = "identity"
    reads_frames = False

    def __init__(self) -> None:
        self._box: np.ndarray | None = None

    def initialize(self, frame: np.ndarray, box: np.ndarray) -> None:
        self._box = np.asarray(box, dtype=np.float64).copy()

    def track(self, frame: np.ndarray) -> TrackResult:
        if self._box is None:
            raise RuntimeError("IdentityTracker.track called before initialize")
        return TrackResult(self._box.copy(), 1.0)
