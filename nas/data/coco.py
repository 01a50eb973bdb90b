"""Still-image detection data in COCO JSON form, read as one-frame pseudo-sequences.

Why: LightTrack and SiamRPN++ add detection images (COCO, DET) to their video data: every object box is
a "video" of one frame whose template and search crops are cut from the same image with independent
jitter (`nas.data.pairs` pairs a one-frame video with itself), which adds object classes and
backgrounds the tracking sets lack.

Layout (the official one): `root/annotations/instances_<split>.json` (`images`: id, file_name, width,
height; `annotations`: id, image_id, bbox [x, y, w, h], iscrowd) over `root/<split>/<file_name>`.
Crowd regions and boxes without area are not objects to track and are left out; a missing image, a
malformed entry or a file without any usable box is a one-line `DataError`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from nas.data.sequence import Sequence
from nas.errors import DataError
from nas.io import load_json

COCO_MAX_BYTES = 4 * 2**30  # instances_train2017.json is 448 MB; Objects365's files are larger
_PREFIX, _SUFFIX = "instances_", ".json"


def coco_splits(root: Path) -> list[str]:
    """The splits `root/annotations/instances_<split>.json` provides."""
    folder = Path(root) / "annotations"
    if not folder.is_dir():
        return []
    return sorted(name[len(_PREFIX):-len(_SUFFIX)] for name in os.listdir(folder)
                  if name.startswith(_PREFIX) and name.endswith(_SUFFIX))


def read_coco(root: Path, split: str | None = None) -> list[Sequence]:
    """One one-frame `Sequence` per usable object box of `split` (default: the only split there is)."""
    root = Path(root)
    splits = coco_splits(root)
    if split is None:
        if len(splits) != 1:
            raise DataError(f"pass a split; annotations/ holds {', '.join(splits) or 'no instances_<split>.json'}",
                            source=str(root))
        split = splits[0]
    path = root / "annotations" / f"{_PREFIX}{split}{_SUFFIX}"
    if split not in splits:
        raise DataError(f"COCO split {split!r} not found; expected one of {', '.join(splits) or 'none'}",
                        source=str(path))
    data = load_json(path, error=DataError, what="COCO instances file", max_bytes=COCO_MAX_BYTES)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DataError("expected an object with 'images' and 'annotations' lists", source=str(path))
    folder = root / split
    if not folder.is_dir():
        raise DataError("image folder is missing", source=str(folder))
    present = set(os.listdir(folder))
    images = {}
    for i, image in enumerate(data["images"]):
        try:
            image_id, name = image["id"], str(image["file_name"])
            size = (int(image["width"]), int(image["height"])) if "width" in image and "height" in image else None
        except (TypeError, KeyError, ValueError):
            raise DataError("expected {id, file_name, width, height}", source=str(path), key=f"images[{i}]") from None
        if name not in present:
            raise DataError(f"image {name} is missing", source=str(folder), key=f"images[{i}]")
        images[image_id] = (folder / name, size)
    sequences = [seq for i, ann in enumerate(data["annotations"])
                 if (seq := _object_sequence(ann, images, path, f"annotations[{i}]", split)) is not None]
    if not sequences:
        raise DataError("holds no usable object box (non-crowd, w and h > 0)", source=str(path))
    return sequences


def _object_sequence(ann: object, images: dict, path: Path, key: str, split: str) -> Sequence | None:
    """The pseudo-sequence of one annotation, or None for a crowd region or a box without area."""
    try:
        box = [float(v) for v in ann["bbox"]]  # type: ignore[index]
        frame, size = images[ann["image_id"]]  # type: ignore[index]
        crowd = bool(ann.get("iscrowd", 0))  # type: ignore[union-attr]
    except (TypeError, KeyError, ValueError, AttributeError):
        raise DataError("expected {image_id of a listed image, bbox: [x, y, w, h]}", source=str(path), key=key) from None
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise DataError(f"expected bbox [x, y, w, h] of 4 finite numbers, got {ann['bbox']!r}", source=str(path), key=key)
    if crowd or box[2] <= 0 or box[3] <= 0:
        return None
    return Sequence(f"{split}/{ann.get('id', key)}", [frame], np.array([box]), resolution=size, dataset="coco",
                    attrs={"category": ann.get("category_id")})
