"""VOT regions: the per-frame values of a VOT `groundtruth.txt` and of a VOT result file.

A region is a 1-D float32 array, as the VOT toolkit stores it (float32, so its rounding applies):
one value is a special code (`0` unknown/skipped, `1` initialisation, `2` failure), four values are
an axis-aligned box `x, y, w, h`, an even number >= 6 a polygon `x1, y1, x2, y2, ...`. A NaN in a box
or polygon makes the region unknown (`0`), as the toolkit's `parse_region` reads it.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from nas.errors import DataError

UNKNOWN, INITIALIZATION, FAILURE = 0, 1, 2
Region = np.ndarray
_SEPARATOR = re.compile(r"[,\s]+")


def special(code: int) -> Region:
    return np.array([code], dtype=np.float32)


def is_special(region: Region, code: int | None = None) -> bool:
    return region.size == 1 and (code is None or int(region[0]) == code)


def parse_region(line: str) -> Region | None:
    """The region of one text line (commas or whitespace between numbers), or None when it is none."""
    try:
        values = [float(field) for field in _SEPARATOR.split(line.strip()) if field]
    except ValueError:
        return None
    if len(values) == 1 and math.isfinite(values[0]) and values[0] == int(values[0]):
        return special(int(values[0]))
    if len(values) == 4 or (len(values) >= 6 and len(values) % 2 == 0):
        return special(UNKNOWN) if any(math.isnan(v) for v in values) else np.array(values, dtype=np.float32)
    return None


def read_regions(path: Path, key: str) -> list[Region]:
    """One region per line of a VOT text file; a blank or unreadable line is a DataError naming it."""
    try:
        lines = Path(path).read_text(encoding="utf-8").rstrip().splitlines()
    except FileNotFoundError:
        raise DataError("file is missing", source=str(path), key=key) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the file as text ({err.__class__.__name__})", source=str(path), key=key) from None
    regions = []
    for line_no, line in enumerate(lines, start=1):
        region = parse_region(line)
        if region is None:
            raise DataError(f"line {line_no}: expected a code (0, 1, 2), x,y,w,h or a polygon x1,y1,x2,y2,x3,y3,..., "
                            f"got {line.strip()[:40]!r}", source=str(path), key=key)
        regions.append(region)
    if not regions:
        raise DataError("file is empty; expected one region per line", source=str(path), key=key)
    return regions


def bounding_box(region: Region) -> np.ndarray:
    """x, y, w, h of the region's axis-aligned bounds (NaN for a special code), as the toolkit's
    `Rectangle.convert` gives a box tracker its initial region."""
    if is_special(region):
        return np.full(4, np.nan)
    if region.size == 4:
        return region.astype(np.float64)
    points = region.reshape(-1, 2).astype(np.float64)
    left, top = points.min(axis=0)
    right, bottom = points.max(axis=0)
    return np.array([left, top, right - left, bottom - top])


def format_region(region: Region) -> str:
    """The text line the toolkit writes for a region (`VOT_RESULTS_BINARY=false`)."""
    if is_special(region):
        return str(int(region[0]))
    return ",".join(repr(float(v)) for v in region)  # float32 values written exactly, as the toolkit does
