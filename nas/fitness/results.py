"""Per-sequence tracking result files in the layout got10k and pytracking write and read.

`<seq>.txt` holds one ``x,y,w,h`` line per frame (the first line is the init box), `<seq>_time.txt`
one frame time in seconds per line. Both are written atomically, time file first, so the presence of
the box file means the sequence finished: an interrupted run resumes from `has_result`.
The reader also accepts tab/space separators and integer files, as other tools write them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nas.data.datasets import read_numbers
from nas.errors import DataError
from nas.io import atomic_write_text


def result_paths(out_dir: str | os.PathLike, seq_name: str) -> tuple[Path, Path]:
    """(box file, time file) of one sequence."""
    out_dir = Path(out_dir)
    return out_dir / f"{seq_name}.txt", out_dir / f"{seq_name}_time.txt"


def write_sequence_result(out_dir: str | os.PathLike, seq_name: str, boxes: np.ndarray, times: np.ndarray) -> None:
    """Write the (N, 4) boxes as `%.4f` comma lines and the (N,) frame times; box file last."""
    boxes = np.asarray(boxes, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or times.shape != (len(boxes),):
        raise ValueError(f"expected boxes (N, 4) and times (N,), got {boxes.shape} and {times.shape}")
    box_path, time_path = result_paths(out_dir, seq_name)
    atomic_write_text(time_path, "".join(f"{t:.8f}\n" for t in times))
    atomic_write_text(box_path, "".join(",".join(f"{v:.4f}" for v in row) + "\n" for row in boxes))


def read_sequence_result(out_dir: str | os.PathLike, seq_name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(boxes (N, 4), times (N,) or None when there is no time file); DataError when missing or malformed."""
    box_path, time_path = result_paths(out_dir, seq_name)
    key = f"sequence {seq_name}"
    if not box_path.is_file():
        raise DataError("no result file for this sequence", source=str(box_path), key=key)
    boxes = read_numbers(box_path, key=key, columns=4)
    if not time_path.is_file():
        return boxes, None
    times = read_numbers(time_path, key=key, columns=1).ravel()
    if len(times) != len(boxes):
        raise DataError(f"has {len(times)} times but {box_path.name} has {len(boxes)} boxes",
                        source=str(time_path), key=key)
    return boxes, times


def has_result(out_dir: str | os.PathLike, seq_name: str, n_frames: int) -> bool:
    """True when the sequence's box file exists with exactly `n_frames` non-blank lines."""
    box_path, _ = result_paths(out_dir, seq_name)
    try:
        lines = box_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    return sum(1 for line in lines if line.strip()) == n_frames
