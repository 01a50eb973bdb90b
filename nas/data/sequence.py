"""`Sequence`: the in-memory view of one annotated video that every reader returns.

Frames are decoded lazily with OpenCV (RGB uint8) so a dataset of thousands of videos costs only
its file lists until a frame is needed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from nas.errors import DataError


@dataclass
class Sequence:
    """One video: frame paths, ground-truth boxes (N, 4) x,y,w,h and optional per-frame labels.

    `visible` is False where the target is absent/fully occluded/out of view (None = always visible).
    `cover` is the GOT-10k visible-ratio bin 0..8 per frame (None when the format has no such label).
    `resolution` is (W, H) when known from metadata (GOT-10k meta_info.ini), else read from frame 0.
    """

    name: str
    frames: list[Path]
    boxes: np.ndarray
    visible: np.ndarray | None = None
    cover: np.ndarray | None = None
    resolution: tuple[int, int] | None = None
    dataset: str = ""
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, i: int) -> np.ndarray:
        """Frame `i` as an HxWx3 RGB uint8 array; a one-line DataError if it cannot be decoded."""
        path = self.frames[i]
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError("cannot read image (missing or not a decodable image)", source=str(path),
                            key=f"sequence {self.name} frame {i}")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def head(self, n: int) -> "Sequence":
        """The first `n` frames as a sequence of their own (quick evaluations, fitness subsets)."""
        cut = lambda a: None if a is None else a[:n]  # noqa: E731
        return replace(self, frames=self.frames[:n], boxes=self.boxes[:n], visible=cut(self.visible),
                       cover=cut(self.cover))

    def image_size(self) -> tuple[int, int]:
        """(W, H) of the video: metadata when available, else the size of frame 0."""
        if self.resolution is None:
            h, w = self.frame(0).shape[:2]
            self.resolution = (w, h)
        return self.resolution
