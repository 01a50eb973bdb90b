"""A small VOT workspace with hand-written supervised result files, shared by `tests/test_vot.py` and
`benchmarks/vot_reference.py` (which scores it with the official vot-toolkit 0.9.0).

Only numpy and OpenCV are used, so the toolkit's own venv can import this file. Everything is a
fixed function of the code below (no RNG state shared with anything else): the same files every time.

Sequences (96x72 frames):
* `boxes`    flat frames, 4-number boxes, partly outside the image; two repetitions, no failure.
* `rotated`  `sequence` file + `color/`, 8-number rotated rectangles; repetition 1 fails three
             times, repetition 2 once (stochastic tracker).
* `nearend`  flat frames, rotated polygons; fails early and 8 frames before the end (re-initialises
             3 frames before the end and tracks to it).
* `pastend`  `color/` + `sequence`, boxes; fails 3 frames before the end, so the re-initialisation
             would be past the last frame (the run ends in 2, 0, 0).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 96, 72
TRACKER = "handmade"
SKIP = 5  # the toolkit's skip_initialize in the VOT2018/2019 stacks


def _boxes(n: int, phase: float) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    x = 30 + 40 * np.sin(t / 37 + phase)  # dips below 0 and past the right edge
    y = 20 + 14 * np.cos(t / 23 + phase)
    w = 22 + 6 * np.sin(t / 11)
    h = 16 + 4 * np.cos(t / 13)
    boxes = np.stack([x, y, w, h], axis=1)
    boxes[::7] = np.round(boxes[::7] * 2) / 2  # exact halves: the toolkit rounds them half to even
    return boxes


def _rotated(boxes: np.ndarray) -> np.ndarray:
    """8-number polygons: each box rotated about its centre by a slowly changing angle."""
    angle = np.arange(len(boxes)) / 29.0
    cx, cy = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    dx, dy = corners[None, :, 0] * boxes[:, 2:3], corners[None, :, 1] * boxes[:, 3:4]
    xs, ys = cx[:, None] + cos * dx - sin * dy, cy[:, None] + sin * dx + cos * dy
    return np.stack([xs, ys], axis=2).reshape(len(boxes), 8)


def _bounds(region: np.ndarray) -> np.ndarray:
    if len(region) == 4:
        return region
    xs, ys = region[0::2], region[1::2]
    return np.array([xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()])


def _prediction(truth: np.ndarray, frame: int, seed: int) -> np.ndarray:
    """A box near the truth's bounds, jittered by a fixed rule (overlap stays > 0)."""
    box = _bounds(truth).copy()
    wobble = np.sin(frame * np.array([0.7, 1.3, 0.9, 1.1]) + seed)
    box[:2] += wobble[:2] * 0.2 * box[2:]
    box[2:] *= 1 + 0.15 * wobble[2:]
    return box


def _line(values: np.ndarray) -> str:
    return ",".join(f"{v:.4f}" for v in values)


# name: (frames, 8-number polygons, layout, failures per repetition)
SEQUENCES = {
    "boxes": (400, False, "flat", [[], []]),
    "rotated": (420, True, "color", [[60, 190, 301], [120]]),
    "nearend": (300, True, "flat", [[30, 292]]),
    "pastend": (200, False, "color", [[197]]),
}


def trajectory(truth: list[np.ndarray], failures: list[int], seed: int) -> list[str]:
    """Result lines of one supervised run that fails on `failures` (re-initialising SKIP frames later)."""
    n = len(truth)
    lines = ["0"] * n
    frame = 0
    while frame < n:
        lines[frame] = "1"
        frame += 1
        while frame < n:
            if frame in failures:
                lines[frame] = "2"
                frame += SKIP
                break
            lines[frame] = _line(_prediction(truth[frame], frame, seed))
            frame += 1
    return lines


def ground_truth(name: str) -> list[np.ndarray]:
    n, polygons, _, _ = SEQUENCES[name]
    boxes = _boxes(n, phase=len(name))
    return list(_rotated(boxes) if polygons else boxes)


def write_sequence(sequences: Path, name: str, truth: list[np.ndarray], layout: str,
                   size: tuple[int, int] = (WIDTH, HEIGHT), frames: int | None = None) -> Path:
    """One VOT sequence folder: grey frames (`color/` + a `sequence` file, or flat), groundtruth.txt
    (4 or 8 numbers a line) and an `occlusion.tag` shorter than the sequence."""
    n = len(truth) if frames is None else frames
    folder = sequences / name
    images = folder / "color" if layout == "color" else folder
    images.mkdir(parents=True, exist_ok=True)
    image = np.full((size[1], size[0], 3), 127, dtype=np.uint8)
    for i in range(1, n + 1):
        cv2.imwrite(str(images / f"{i:08d}.jpg"), image)
    if layout == "color":
        (folder / "sequence").write_text(f"channels.color=color/%08d.jpg\nfps=30\nformat=default\nname={name}\n")
    (folder / "groundtruth.txt").write_text("".join(_line(region) + "\n" for region in truth))
    (folder / "occlusion.tag").write_text("".join("1\n" if 4 <= i < 8 else "0\n" for i in range(n - 2)))
    return folder


def write_workspace(root: Path) -> Path:
    """Write `root/sequences/` and `root/results/<TRACKER>/baseline/`; returns root."""
    root = Path(root)
    sequences = root / "sequences"
    sequences.mkdir(parents=True, exist_ok=True)
    (sequences / "list.txt").write_text("".join(f"{name}\n" for name in SEQUENCES))
    for name, (_, _, layout, runs) in SEQUENCES.items():
        truth = ground_truth(name)
        write_sequence(sequences, name, truth, layout)
        results = root / "results" / TRACKER / "baseline" / name
        results.mkdir(parents=True, exist_ok=True)
        for repetition, failures in enumerate(runs, start=1):
            lines = trajectory(truth, failures, seed=repetition)
            (results / f"{name}_{repetition:03d}.txt").write_text("".join(line + "\n" for line in lines))
    return root
