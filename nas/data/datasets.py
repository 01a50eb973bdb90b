"""Readers for GOT-10k, LaSOT, OTB-100, TrackingNet, UAV123 and VOT (short-term) trees, each returning `list[Sequence]`.

Layouts follow the toolkits' own loaders (shared/notes/evaluation.md §2). Every structural problem
(missing file or frame, annotation/frame count mismatch, malformed number, bad label, invalid
ground-truth box where the target is scored) raises a one-line `DataError` naming the file and the
sequence, because a silently shortened or shifted sequence would give a wrong score. Frame files
are checked for existence here (one directory listing per sequence) and decoded lazily by
`Sequence.frame`, so opening thousands of videos stays cheap.

Degenerate ground truth (NaN, w or h <= 0) is never refused, because the reference toolkits score
it: it is reported as one `DataWarning` line per sequence with counts, and the metrics score it as
the got10k toolkit does (`nas.fitness.metrics`). A sequence whose first box is unusable is still
read; tracking and scoring skip it with one error line (`nas.data.sequence.split_trackable`).
Where the format marks the target absent (GOT-10k cover == 0, LaSOT full occlusion / out of view,
TrackingNet zero-size boxes, which pytracking reads as "target not visible") boxes are not scored.
"""
from __future__ import annotations

import ast
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nas.data.regions import UNKNOWN, bounding_box, is_special, read_regions, special
from nas.data.sequence import Sequence
from nas.data.uav123_ranges import UAV123_RANGES
from nas.errors import DataError, DataWarning
from nas.io import read_text

MAX_IMAGE_SIDE = 100_000  # pixels; a meta_info.ini resolution beyond this is a typo
_FIELD_SEPARATOR = re.compile(r"[,\s]+")
GOT10K_SPLITS = ("train", "val", "test")
# OTB-100 sequences whose annotated frames are not simply 1..len(groundtruth) (evaluation.md §2).
_OTB_FRAME_RANGES = {"David": (300, 770), "BlurCar1": (247, 988), "BlurCar3": (3, 359),
                     "BlurCar4": (18, 397), "Football1": (1, 74), "Freeman3": (1, 460),
                     "Freeman4": (1, 283), "Diving": (1, 215), "Tiger1": (6, 354)}
_OTB_INIT_OMIT = {"Tiger1": 5}  # ground-truth rows dropped with the omitted first frames
_OTB_NAME_DIGITS = {"Board": 5}


def _seq_key(name: str) -> str:
    return f"sequence {name}"


def read_numbers(path: Path, *, key: str, columns: int | None = None) -> np.ndarray:
    """Numbers of a text table split on commas/whitespace (CRLF ok): (rows, columns), or flat if None.

    Blank lines are skipped; a non-number, a row of the wrong width or an empty file is a DataError.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("file is missing", source=str(path), key=key) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the file as text ({err.__class__.__name__})",
                        source=str(path), key=key) from None
    rows: list[list[float]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = [field for field in _FIELD_SEPARATOR.split(line.strip()) if field]
        if not fields:
            continue
        try:
            values = [float(field) for field in fields]
        except ValueError:
            raise DataError(f"line {line_no}: expected numbers separated by commas or whitespace, got {line.strip()[:40]!r}",
                            source=str(path), key=key) from None
        if columns is not None and len(values) != columns:
            raise DataError(f"line {line_no}: expected {columns} values, got {len(values)}", source=str(path), key=key)
        rows.append(values)
    if not rows:
        raise DataError("file is empty; expected at least one line of numbers", source=str(path), key=key)
    if columns is None:
        return np.array([value for row in rows for value in row], dtype=np.float64)
    return np.array(rows, dtype=np.float64)


def _read_labels(path: Path, n_frames: int, max_value: int, key: str) -> np.ndarray:
    """Per-frame integer labels in 0..max_value (one per line or one comma line); length must match."""
    values = read_numbers(path, key=key)
    if len(values) != n_frames:
        raise DataError(f"has {len(values)} labels but the sequence has {n_frames} frames", source=str(path), key=key)
    bad = np.flatnonzero((values != np.round(values)) | (values < 0) | (values > max_value))
    if bad.size:
        raise DataError(f"label {bad[0] + 1}: expected an integer 0..{max_value}, got {values[bad[0]]:g}",
                        source=str(path), key=key)
    return values.astype(np.int64)


def _warn_degenerate_boxes(boxes: np.ndarray, path: Path, key: str, present: np.ndarray | None = None) -> None:
    """Warn once per sequence, with counts, about degenerate ground truth after the first frame.

    Nothing is refused: the got10k toolkit scores a zero-area box (IoU 0) and a NaN box (a failure)
    like any other frame, and so do we (`nas.fitness.metrics`). An unusable first box is reported
    when the sequence is tracked or scored (`nas.data.sequence.split_trackable`). `present` marks
    the frames where the format says the target is there (None = all).
    """
    rest = boxes[1:]
    must_be_valid = np.ones(len(rest), dtype=bool) if present is None else np.asarray(present[1:], dtype=bool)
    nan = ~np.isfinite(rest).all(axis=1)
    with np.errstate(invalid="ignore"):
        empty = ~nan & ~((rest[:, 2] > 0) & (rest[:, 3] > 0))
    scored_counts = {"zero-area (w or h <= 0) boxes where the target is scored": int((empty & must_be_valid).sum()),
                     "NaN boxes where the target is scored": int((nan & must_be_valid).sum())}
    absent_nan = int((nan & ~must_be_valid).sum())
    found = [f"{count} {what}" for what, count in scored_counts.items() if count]
    if found:
        found[-1] += " (IoU 0, as the got10k toolkit scores them)"
    if absent_nan:
        found.append(f"{absent_nan} NaN boxes where the target is absent (not scored as hits)")
    if found:
        warnings.warn(f"{path}: {key}: {', '.join(found)}", DataWarning, stacklevel=3)


def _image_names(folder: Path, key: str) -> set[str]:
    """Names of the .jpg files in `folder` (one listing; existence only, no decoding)."""
    if not folder.is_dir():
        raise DataError("image folder is missing", source=str(folder), key=key)
    return {name for name in os.listdir(folder) if name.lower().endswith(".jpg")}


def _frame_paths(folder: Path, names: list[str], present: set[str], key: str) -> list[Path]:
    """Paths of the expected frame files; a DataError naming the first missing one."""
    if not names:
        raise DataError("holds no frames", source=str(folder), key=key)
    missing = [name for name in names if name not in present]
    if missing:
        raise DataError(f"{len(missing)} of {len(names)} frames missing, first {missing[0]} "
                        f"(expected {names[0]}..{names[-1]})", source=str(folder), key=key)
    return [folder / name for name in names]


def _check_no_extra_frames(folder: Path, n_images: int, n_boxes: int, gt_path: Path, key: str) -> None:
    if n_images != n_boxes:
        raise DataError(f"{gt_path.name} has {n_boxes} boxes but the folder has {n_images} frames",
                        source=str(folder), key=key)


def _check_range_rows(boxes: np.ndarray, first: int, last: int, folder: str, path: Path, key: str) -> None:
    """An official frame range `first..last` of `folder` needs exactly one box per frame."""
    if len(boxes) != last - first + 1:
        raise DataError(f"has {len(boxes)} boxes but frames {first}..{last} of {folder} need {last - first + 1}",
                        source=str(path), key=key)


def _read_list(path: Path, key: str) -> list[str]:
    if not path.is_file():
        raise DataError("list.txt is missing", source=str(path), key=key)
    names = [line.strip() for line in read_text(path, error=DataError, what="list.txt").splitlines() if line.strip()]
    if not names:
        raise DataError("list.txt lists no sequences; expected one sequence folder name per line",
                        source=str(path), key=key)
    return names


def _read_resolution(path: Path, key: str) -> tuple[int, int]:
    """(W, H) from the `resolution: (W, H)` line of a GOT-10k meta_info.ini (the IoU clip bound)."""
    if not path.is_file():
        raise DataError("meta_info.ini is missing; expected a 'resolution: (W, H)' line", source=str(path), key=key)
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():  # free-text fields may be odd
        field, _, value = line.partition(":")
        if field.strip() != "resolution":
            continue
        try:
            width, height = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            break
        if all(isinstance(v, (int, float)) and 0 < v <= MAX_IMAGE_SIDE for v in (width, height)):
            return int(width), int(height)
        break
    raise DataError(f"expected a line 'resolution: (W, H)' with two numbers in (0, {MAX_IMAGE_SIDE}]",
                    source=str(path), key=key)


# ------------------------------------------------------------------------------------------ GOT-10k
def _got10k_split_dir(root: Path, split: str | None) -> Path:
    if split is not None:
        if split not in GOT10K_SPLITS:
            raise DataError(f"unknown GOT-10k split {split!r}; expected one of {', '.join(GOT10K_SPLITS)}",
                            source=str(root))
        return root / split
    if (root / "list.txt").is_file():  # root is already a split folder
        return root
    if (root / "val" / "list.txt").is_file():
        return root / "val"
    raise DataError("no list.txt in the root or in val/; pass a split (train, val or test)", source=str(root))


def read_got10k(root: Path, split: str | None = None) -> list[Sequence]:
    """GOT-10k `root/<split>/list.txt` (default split: val, or root itself if it holds list.txt)."""
    split_dir = _got10k_split_dir(Path(root), split)
    names = _read_list(split_dir / "list.txt", key=f"split {split_dir.name}")
    return [_read_got10k_sequence(split_dir / name, name, first_frame_only=split_dir.name == "test") for name in names]


def _read_got10k_sequence(folder: Path, name: str, first_frame_only: bool) -> Sequence:
    key = _seq_key(name)
    if not folder.is_dir():
        raise DataError("sequence folder listed in list.txt is missing", source=str(folder), key=key)
    present = _image_names(folder, key)
    gt_path = folder / "groundtruth.txt"
    boxes = read_numbers(gt_path, key=key, columns=4)
    if first_frame_only:  # the test split ships only the initial box; scoring happens on the server
        frames = _frame_paths(folder, [f"{i:08d}.jpg" for i in range(1, len(present) + 1)], present, key)
        meta = folder / "meta_info.ini"
        resolution = _read_resolution(meta, key) if meta.is_file() else None
        return Sequence(name, frames, boxes, resolution=resolution, dataset="got10k")
    n = len(boxes)
    frames = _frame_paths(folder, [f"{i:08d}.jpg" for i in range(1, n + 1)], present, key)
    _check_no_extra_frames(folder, len(present), n, gt_path, key)
    absence = _read_labels(folder / "absence.label", n, 1, key)
    cover = _read_labels(folder / "cover.label", n, 8, key)
    attrs = {}
    if (folder / "cut_by_image.label").is_file():
        attrs["cut_by_image"] = _read_labels(folder / "cut_by_image.label", n, 1, key).astype(bool)
    _warn_degenerate_boxes(boxes, gt_path, key, present=cover > 0)
    return Sequence(name, frames, boxes, visible=(absence == 0) & (cover > 0), cover=cover,
                    resolution=_read_resolution(folder / "meta_info.ini", key), dataset="got10k", attrs=attrs)


# ------------------------------------------------------------------------------------------ LaSOT
def _lasot_folders(root: Path) -> list[Path]:
    """`root/<category>/<category>-<N>` folders, ordered by category then N."""
    folders = [seq for cat in root.iterdir() if cat.is_dir()
               for seq in cat.iterdir() if seq.is_dir() and re.fullmatch(re.escape(cat.name) + r"-\d+", seq.name)]
    return sorted(folders, key=lambda f: (f.parent.name, int(f.name.rsplit("-", 1)[1])))


def read_lasot(root: Path, split: str | None = None) -> list[Sequence]:
    """LaSOT `root/<cat>/<cat>-<N>`; split test/train uses `root/testing_set.txt` (Protocol II)."""
    root = Path(root)
    folders = _lasot_folders(root)
    if split is not None:
        if split not in ("train", "test"):
            raise DataError(f"unknown LaSOT split {split!r}; expected train or test", source=str(root))
        test_names = set(_read_list(root / "testing_set.txt", key="split test"))
        folders = [f for f in folders if (f.name in test_names) == (split == "test")]
    if not folders:
        raise DataError("no LaSOT sequence folders <category>/<category>-<N>/ found", source=str(root),
                        key=split and f"split {split}")
    return [_read_lasot_sequence(folder) for folder in folders]


def _read_lasot_sequence(folder: Path) -> Sequence:
    key = _seq_key(folder.name)
    img = folder / "img"
    present = _image_names(img, key)
    gt_path = folder / "groundtruth.txt"
    boxes = read_numbers(gt_path, key=key, columns=4)
    n = len(boxes)
    frames = _frame_paths(img, [f"{i:08d}.jpg" for i in range(1, n + 1)], present, key)
    _check_no_extra_frames(img, len(present), n, gt_path, key)
    occluded = _read_labels(folder / "full_occlusion.txt", n, 1, key)
    out_of_view = _read_labels(folder / "out_of_view.txt", n, 1, key)
    visible = (occluded == 0) & (out_of_view == 0)
    _warn_degenerate_boxes(boxes, gt_path, key, present=visible)
    return Sequence(folder.name, frames, boxes, visible=visible, dataset="lasot",
                    attrs={"category": folder.parent.name})


# ------------------------------------------------------------------------------------------ OTB-100
def _otb_annotations(folder: Path) -> list[tuple[str, Path]]:
    """(sequence name, groundtruth file) pairs of an OTB folder.

    Two-target videos (Jogging, Skating2) have `groundtruth_rect.1/.2.txt` and become `<Seq>_1`,
    `<Seq>_2`; empty numbered files are dropped as got10k does, so Human4 (empty `.1`) is one
    sequence named `Human4` read from `.2`.
    """
    single = folder / "groundtruth_rect.txt"
    if single.is_file():
        return [(folder.name, single)]
    numbered = sorted(folder.glob("groundtruth_rect.*.txt"))
    non_empty = [path for path in numbered if path.read_text(encoding="utf-8", errors="replace").strip()]
    if len(non_empty) == 1:
        return [(folder.name, non_empty[0])]
    return [(f"{folder.name}_{path.name.split('.')[1]}", path) for path in non_empty]


def read_otb(root: Path, split: str | None = None) -> list[Sequence]:
    """OTB-100 `root/<Seq>/img/%04d.jpg` + groundtruth_rect*.txt, with the special frame ranges."""
    root = Path(root)
    if split is not None:
        raise DataError(f"OTB has no splits, got {split!r}; drop the split", source=str(root))
    sequences = [_read_otb_sequence(folder, name, gt_path)
                 for folder in sorted(p for p in root.iterdir() if p.is_dir())
                 for name, gt_path in _otb_annotations(folder)]
    if not sequences:
        raise DataError("no OTB sequence folders <Seq>/groundtruth_rect.txt found", source=str(root))
    return sequences


def _read_otb_sequence(folder: Path, name: str, gt_path: Path) -> Sequence:
    key = _seq_key(name)
    boxes = read_numbers(gt_path, key=key, columns=4)
    omit = _OTB_INIT_OMIT.get(folder.name, 0)
    first, last = _OTB_FRAME_RANGES.get(folder.name, (1, len(boxes)))
    _check_range_rows(boxes, first, last + omit, folder.name, gt_path, key)
    boxes = boxes[omit:]
    img = folder / "img"
    present = _image_names(img, key)
    digits = _OTB_NAME_DIGITS.get(folder.name, 4)
    frames = _frame_paths(img, [f"{i:0{digits}d}.jpg" for i in range(first, last + 1)], present, key)
    if folder.name not in _OTB_FRAME_RANGES:
        _check_no_extra_frames(img, len(present), len(boxes), gt_path, key)
    _warn_degenerate_boxes(boxes, gt_path, key)
    return Sequence(name, frames, boxes, dataset="otb")


# ------------------------------------------------------------------------------------------ TrackingNet
def _trackingnet_chunks(root: Path, split: str | None) -> list[Path]:
    chunks = sorted((d for d in root.iterdir() if (d / "anno").is_dir() and (d / "frames").is_dir()),
                    key=lambda d: (d.name.rstrip("0123456789"), int(re.sub(r"\D", "", d.name) or 0)))
    if split is None:
        selected = chunks
    elif split == "test":
        selected = [c for c in chunks if c.name == "TEST"]
    elif split == "train":
        selected = [c for c in chunks if c.name.startswith("TRAIN_")]
    else:
        selected = [c for c in chunks if c.name == split]
    if not selected:
        raise DataError("no TrackingNet chunk folders with anno/ and frames/ found", source=str(root),
                        key=split and f"split {split}")
    return selected


def read_trackingnet(root: Path, split: str | None = None) -> list[Sequence]:
    """TrackingNet `root/<chunk>/anno/<video>.txt` + `frames/<video>/<k>.jpg` (k from 0); split train/test/<chunk>."""
    sequences = []
    for chunk in _trackingnet_chunks(Path(root), split):
        annotations = sorted((chunk / "anno").glob("*.txt"))
        if not annotations:
            raise DataError("anno/ holds no <video>.txt files", source=str(chunk / "anno"))
        sequences += [_read_trackingnet_sequence(chunk, anno, first_frame_only=chunk.name == "TEST")
                      for anno in annotations]
    return sequences


def _read_trackingnet_sequence(chunk: Path, anno: Path, first_frame_only: bool) -> Sequence:
    name = anno.stem
    key = _seq_key(name)
    boxes = read_numbers(anno, key=key, columns=4)
    folder = chunk / "frames" / name
    present = _image_names(folder, key)
    n = len(present) if first_frame_only else len(boxes)
    frames = _frame_paths(folder, [f"{k}.jpg" for k in range(n)], present, key)
    if first_frame_only:
        return Sequence(name, frames, boxes, dataset="trackingnet")
    _check_no_extra_frames(folder, len(present), n, anno, key)
    with np.errstate(invalid="ignore"):
        visible = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    _warn_degenerate_boxes(boxes, anno, key, present=visible)
    return Sequence(name, frames, boxes, visible=visible, dataset="trackingnet", attrs={"chunk": chunk.name})


# ------------------------------------------------------------------------------------------ UAV123
def read_uav123(root: Path, split: str | None = None) -> list[Sequence]:
    """UAV123 `root/anno/UAV123/<name>.txt` over `root/data_seq/UAV123/<folder>/%06d.jpg`, each
    annotation on its official frame range (`UAV123_RANGES`; a name outside it: frames 1..rows)."""
    root = Path(root)
    if split is not None:
        raise DataError(f"UAV123 has no splits, got {split!r}; drop the split", source=str(root))
    annotations = sorted((root / "anno" / "UAV123").glob("*.txt"))
    if not annotations:
        raise DataError("no annotation files anno/UAV123/<name>.txt found", source=str(root))
    return [_read_uav123_sequence(root, anno) for anno in annotations]


def _read_uav123_sequence(root: Path, anno: Path) -> Sequence:
    """NaN rows mark frames without the target: absent, and not counted by the one-pass protocols."""
    name, key = anno.stem, _seq_key(anno.stem)
    boxes = read_numbers(anno, key=key, columns=4)
    folder_name, first, last = UAV123_RANGES.get(name, (name, 1, len(boxes)))
    _check_range_rows(boxes, first, last, folder_name, anno, key)
    folder = root / "data_seq" / "UAV123" / folder_name
    frames = _frame_paths(folder, [f"{i:06d}.jpg" for i in range(first, last + 1)], _image_names(folder, key), key)
    annotated = ~np.isnan(boxes).any(axis=1)
    _warn_degenerate_boxes(boxes, anno, key, present=annotated)
    return Sequence(name, frames, boxes, visible=annotated, scored=annotated, dataset="uav123",
                    attrs={"folder": folder_name})


# ------------------------------------------------------------------------------------------ VOT
VOT_FRAME_PATTERN = "%08d.jpg"


def read_vot(root: Path, split: str | None = None) -> list[Sequence]:
    """VOT `root/list.txt` (root = a workspace's `sequences/`), each sequence read as vot-toolkit 0.9.0
    reads it: frames from the `sequence` file's `channels.color` pattern, else `color/%08d.jpg`, else
    `%08d.jpg` in the folder; `groundtruth.txt` boxes or polygons (`nas.data.regions`); tags from
    `*.tag` / `*.label` files (a line "1" marks the frame)."""
    root = Path(root)
    if split is not None:
        raise DataError(f"VOT has no splits, got {split!r}; drop the split", source=str(root))
    return [_read_vot_sequence(root / name, name) for name in _read_list(root / "list.txt", key="VOT sequences")]


def _read_properties(path: Path) -> dict[str, str]:
    """key=value lines of a VOT `sequence` metadata file."""
    pairs = (line.partition("=") for line in read_text(path, error=DataError, what="sequence file").splitlines())
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


def _vot_frames(folder: Path, properties: dict[str, str], key: str) -> tuple[Path, str]:
    """(image folder, file pattern) of a VOT sequence's colour channel."""
    pattern = properties.get("channels.color")
    if pattern is None:
        pattern = f"color/{VOT_FRAME_PATTERN}" if (folder / "color").is_dir() else VOT_FRAME_PATTERN
    elif pattern.endswith(("/", "\\")) or "%" not in pattern:
        pattern = pattern.rstrip("/\\") + "/" + VOT_FRAME_PATTERN
    image_folder, _, file_pattern = pattern.replace("\\", "/").rpartition("/")
    try:
        file_pattern % 1
    except (TypeError, ValueError):
        raise DataError(f"channels.color: expected a pattern like color/%08d.jpg, got {pattern!r}",
                        source=str(folder / "sequence"), key=key) from None
    return folder / image_folder, file_pattern


def _read_tags(folder: Path, n: int) -> dict[str, np.ndarray]:
    tags = {}
    for path in sorted([*folder.glob("*.tag"), *folder.glob("*.label")]):
        marks = [line.strip() == "1" for line in read_text(path, error=DataError, what="tag file").splitlines()]
        tags[path.stem] = np.array((marks + [False] * n)[:n], dtype=bool)
    return tags


def _read_vot_sequence(folder: Path, name: str) -> Sequence:
    key = _seq_key(name)
    if not folder.is_dir():
        raise DataError("sequence folder listed in list.txt is missing", source=str(folder), key=key)
    properties = _read_properties(folder / "sequence") if (folder / "sequence").is_file() else {}
    image_folder, file_pattern = _vot_frames(folder, properties, key)
    present = _image_names(image_folder, key)
    gt_path = folder / properties.get("groundtruth", "groundtruth.txt")
    regions = read_regions(gt_path, key)
    length = properties.get("length", "")
    if length.isdigit():
        n = int(length)
    else:  # the toolkit scans frames 1, 2, ... until one is missing
        n = next(i for i in range(len(present) + 1) if file_pattern % (i + 1) not in present)
    frames = _frame_paths(image_folder, [file_pattern % i for i in range(1, n + 1)], present, key)
    if len(regions) > n:
        raise DataError(f"has {len(regions)} regions but the sequence has {n} frames", source=str(gt_path), key=key)
    unknown = sum(is_special(region) for region in regions[1:])
    missing = n - len(regions)
    if unknown or missing:
        found = [f"{count} {what}" for count, what in ((unknown, "NaN or special-code regions"),
                                                       (missing, "frames past the last line")) if count]
        warnings.warn(f"{gt_path}: {key}: {', '.join(found)} (unknown ground truth: overlap 0, as the VOT toolkit "
                      "scores it)", DataWarning, stacklevel=3)
    regions = regions + [special(UNKNOWN) for _ in range(missing)]
    width, height = properties.get("width", ""), properties.get("height", "")
    resolution = (int(width), int(height)) if width.isdigit() and height.isdigit() else None
    return Sequence(name, frames, np.stack([bounding_box(region) for region in regions]), resolution=resolution,
                    regions=regions, dataset="vot", attrs={"tags": _read_tags(folder, n)})


# ------------------------------------------------------------------------------------------ dispatch
def _children(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir()]


def _looks_like_got10k(root: Path) -> bool:
    return ((root / "list.txt").is_file() and not _looks_like_vot(root)) or \
        any((root / s / "list.txt").is_file() for s in GOT10K_SPLITS)


def _looks_like_vot(root: Path) -> bool:
    """list.txt whose first sequence has a VOT `sequence` file or `color/` folder, or lacks GOT-10k's
    absence.label and meta_info.ini."""
    try:
        lines = (root / "list.txt").read_text(encoding="utf-8").splitlines()
        first = next(line.strip() for line in lines if line.strip())
    except (OSError, UnicodeDecodeError, StopIteration):
        return False
    folder = root / first
    got10k_labels = (folder / "absence.label").is_file() or (folder / "meta_info.ini").is_file()
    return (folder / "groundtruth.txt").is_file() and ((folder / "sequence").is_file() or (folder / "color").is_dir()
                                                       or not got10k_labels)


def _looks_like_lasot(root: Path) -> bool:
    return any((seq / "img").is_dir() for cat in _children(root) for seq in _children(cat)
               if seq.name.startswith(cat.name + "-"))


def _looks_like_otb(root: Path) -> bool:
    return any(any(d.glob("groundtruth_rect*.txt")) for d in _children(root))


def _looks_like_trackingnet(root: Path) -> bool:
    return any((d / "anno").is_dir() and (d / "frames").is_dir() for d in _children(root))


def _looks_like_uav123(root: Path) -> bool:
    return (root / "anno" / "UAV123").is_dir() and (root / "data_seq" / "UAV123").is_dir()


_FORMATS: dict[str, tuple[Callable[[Path, str | None], list[Sequence]], Callable[[Path], bool]]] = {
    "got10k": (read_got10k, _looks_like_got10k),
    "lasot": (read_lasot, _looks_like_lasot),
    "otb": (read_otb, _looks_like_otb),
    "trackingnet": (read_trackingnet, _looks_like_trackingnet),
    "uav123": (read_uav123, _looks_like_uav123),
    "vot": (read_vot, _looks_like_vot),
}
DATASET_FORMATS = tuple(_FORMATS)


def detect_format(root: Path) -> str:
    """The one format whose layout `root` has; a DataError when none or several match."""
    matches = [fmt for fmt, (_, looks_like) in _FORMATS.items() if looks_like(root)]
    if len(matches) != 1:
        found = f"it looks like {' and '.join(matches)}" if matches else "no known layout matches"
        raise DataError(f"cannot tell the dataset format ({found}); pass the format explicitly "
                        f"({', '.join(DATASET_FORMATS)})", source=str(root))
    return matches[0]


def open_dataset(root: str | os.PathLike, fmt: str | None = None, split: str | None = None) -> list[Sequence]:
    """All sequences of the dataset at `root`; `fmt` auto-detected when None, `split` as the format defines."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("dataset root is not a directory", source=str(root))
    fmt = detect_format(root) if fmt is None else fmt.lower()
    if fmt not in _FORMATS:
        raise DataError(f"unknown dataset format {fmt!r}; expected one of {', '.join(DATASET_FORMATS)}",
                        source=str(root))
    return _FORMATS[fmt][0](root, split)
