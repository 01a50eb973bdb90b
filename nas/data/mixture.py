"""Training data made of several sources (video datasets and COCO-style still images), each opened alone.

A source is a plain mapping `{path, format, split, weight, frames}` (the list form of the config's
`data:`); `open_source` reads one with the reader of its format (`nas.data.datasets`, or
`nas.data.coco` for still images), keeps each video's optional 1-based frame range `frames: [first,
last]`, and refuses a source without a single pair to draw, naming it. `nas.data.pairs.PairSampler`
draws each pair's source by weight.
"""
from __future__ import annotations

from collections.abc import Sequence as SequenceABC
from pathlib import Path

from nas.data.coco import coco_splits, read_coco
from nas.data.datasets import DATASET_FORMATS, open_dataset
from nas.data.pairs import visible_frames
from nas.data.sequence import Sequence
from nas.errors import DataError

SOURCE_FORMATS = (*DATASET_FORMATS, "coco")


def open_source(path: str | Path, fmt: str | None = None, split: str | None = None,
                frames: SequenceABC[int] | None = None) -> list[Sequence]:
    """The videos of one source that hold a pair to draw; `fmt` None: COCO when `annotations/` holds an
    instances file, else the video layout `open_dataset` detects."""
    root = Path(path)
    if not root.is_dir():
        raise DataError("dataset root is not a directory", source=str(root))
    if fmt is None and coco_splits(root):
        fmt = "coco"
    sequences = read_coco(root, split) if fmt == "coco" else open_dataset(root, fmt, split)
    where = ""
    if frames is not None:
        first, last = frames
        sequences = [seq.window(first - 1, last) for seq in sequences]
        where = f" within frames {first}..{last}"
    usable = [seq for seq in sequences if len(visible_frames(seq))]
    if not usable:
        raise DataError(f"no sequence has a frame with a visible target{where}", source=str(root))
    return usable


def open_sources(sources: SequenceABC[dict]) -> list[list[Sequence]]:
    """The videos of each source (mappings with path, format, split and frames), in order."""
    return [open_source(s["path"], s.get("format"), s.get("split"), s.get("frames")) for s in sources]
