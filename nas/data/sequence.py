"""`Sequence`: the in-memory view of one annotated video that every reader returns.

Frames are decoded lazily with OpenCV (RGB uint8) so a dataset of thousands of videos costs only
its file lists until a frame is needed.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from nas.errors import DataError, SkippedSequence


@dataclass
class Sequence:
    """One video: frame paths, ground-truth boxes (N, 4) x,y,w,h and optional per-frame labels.

    `visible` is False where the target is absent/fully occluded/out of view (None = always visible).
    `cover` is the GOT-10k visible-ratio bin 0..8 per frame (None when the format has no such label).
    `resolution` is (W, H) when known from metadata (GOT-10k meta_info.ini), else read from frame 0.
    `scored` marks the frames the one-pass protocols count (None = all): UAV123 leaves out its NaN
    rows, as got10k's `ExperimentUAV123` and pytracking do.
    `regions` holds VOT ground truth as the toolkit scores it (`nas.data.regions`: boxes, rotated
    polygons, special codes), one per frame; `boxes` are then their axis-aligned bounds.
    """

    name: str
    frames: list[Path]
    boxes: np.ndarray
    visible: np.ndarray | None = None
    cover: np.ndarray | None = None
    resolution: tuple[int, int] | None = None
    scored: np.ndarray | None = None
    regions: list[np.ndarray] | None = None
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
        return self.window(0, n)

    def window(self, start: int, stop: int) -> "Sequence":
        """Frames `start..stop-1` (0-based, as a slice) as a sequence of their own (a source's frame range)."""
        cut = lambda a: None if a is None else a[start:stop]  # noqa: E731
        return replace(self, frames=self.frames[start:stop], boxes=self.boxes[start:stop], visible=cut(self.visible),
                       cover=cut(self.cover), scored=cut(self.scored), regions=cut(self.regions))

    def image_size(self) -> tuple[int, int]:
        """(W, H) of the video: metadata when available, else the size of frame 0."""
        if self.resolution is None:
            h, w = self.frame(0).shape[:2]
            self.resolution = (w, h)
        return self.resolution


def initial_box_error(seq: Sequence) -> str | None:
    """Why `seq` cannot be tracked (its first box is not finite with w, h > 0), or None."""
    box = np.asarray(seq.boxes, dtype=np.float64).reshape(-1, 4)[:1]
    if len(box) and np.isfinite(box).all() and box[0, 2] > 0 and box[0, 3] > 0:
        return None
    return (f"sequence {seq.name}: the initial box (frame 1) must be finite with w, h > 0, "
            f"got {box[0].tolist() if len(box) else 'none'}; sequence skipped")


def split_trackable(sequences: list[Sequence]) -> tuple[list[Sequence], dict[str, str]]:
    """The sequences a tracker can start on, and {name: reason} for the others.

    Each skipped sequence is also reported as one `SkippedSequence` warning (the CLI prints it as an
    error line), so one bad video never stops a benchmark.
    """
    usable, skipped = [], {}
    for seq in sequences:
        reason = initial_box_error(seq)
        if reason is None:
            usable.append(seq)
        else:
            skipped[seq.name] = reason
            warnings.warn(reason, SkippedSequence)  # one location: a repeated line is shown once
    if sequences and not usable:
        raise DataError(f"no sequence has a valid first box ({len(sequences)} skipped), "
                        f"e.g. {next(iter(skipped.values()))}")
    return usable, skipped
