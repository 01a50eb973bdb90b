"""Region overlap exactly as vot-toolkit 0.9.0 computes it (`vot.region.raster.calculate_overlap`).

Both regions are rounded (float32, half to even), rasterised into one pixel grid spanning their joint
bounds clipped to the image, and counted pixel by pixel: overlap = |A and B| / |A or B|. A box covers
pixels x .. x+w-1; a polygon is filled by the toolkit's scanline rule (every edge whose rows include
the scanline gives a node, truncated to an integer; sorted nodes are filled pairwise, a repeated node
skipped unless it is the last pair). Two empty regions overlap 1; a joint bound one pixel wide or
high also counts as "both empty" (1), and one clipped to a single row or column as 0, as the toolkit
does. Special codes are empty regions bounded at (0, 0).
"""
from __future__ import annotations

import numpy as np

from nas.data.regions import Region, is_special

Bounds = tuple[int, int, int, int]  # left, top, right, bottom (inclusive pixels)


def _region_bounds(region: Region) -> Bounds:
    if is_special(region):
        return 0, 0, 0, 0
    if region.size == 4:
        x, y, w, h = (int(v) for v in region)
        return x, y, x + w - 1, y + h - 1
    points = region.reshape(-1, 2)
    (left, top), (right, bottom) = points.min(axis=0), points.max(axis=0)
    return int(left), int(top), int(right), int(bottom)


def _raster_box(box: Region, bounds: Bounds) -> np.ndarray:
    left0, top0, right0, bottom0 = bounds
    mask = np.zeros((bottom0 - top0 + 1, right0 - left0 + 1), dtype=bool)
    x, y, w, h = (int(v) for v in box)
    if x > right0 or x + w - 1 < left0 or y > bottom0 or y + h - 1 < top0:
        return mask
    left, top = max(0, x - left0), max(0, y - top0)
    right, bottom = min(right0, x + w - 1 - left0), min(bottom0, y + h - 1 - top0)
    mask[top:bottom + 1, left:right + 1] = True
    return mask


def _raster_polygon(polygon: Region, bounds: Bounds) -> np.ndarray:
    """The toolkit's scanline fill, every row at once."""
    width, height = bounds[2] - bounds[0] + 1, bounds[3] - bounds[1] + 1
    points = polygon.reshape(-1, 2).astype(np.float64) - np.array([bounds[0], bounds[1]], dtype=np.float64)
    xi, yi = points[:, 0], points[:, 1]
    xj, yj = np.roll(xi, 1), np.roll(yi, 1)  # edge i runs from the previous point j to point i
    rows = np.arange(height, dtype=np.float64)[:, None]
    crosses = (np.minimum(yi, yj) <= rows) & (rows <= np.maximum(yi, yj))
    rise, run = yj - yi, xj - xi
    with np.errstate(divide="ignore", invalid="ignore"):
        node_x = np.where(rise != 0, xi + (rows - yi) / np.where(rise != 0, rise, 1) * run, xi)
    sentinel = 2 ** 62  # past any pixel: marks "no node"
    nodes = np.sort(np.where(crosses, np.trunc(node_x), sentinel), axis=1).astype(np.int64)
    count = crosses.sum(axis=1)
    n_edges = nodes.shape[1]
    padded = np.concatenate([nodes, np.full((height, 1), sentinel, dtype=np.int64)], axis=1)
    diff = np.zeros((height, width + 1), dtype=np.int16)
    index = np.zeros(height, dtype=np.int64)
    active = np.ones(height, dtype=bool)
    row_ids = np.arange(height)
    for _ in range(n_edges):
        active &= index < count - 1
        first = padded[row_ids, np.minimum(index, n_edges)]
        second = padded[row_ids, np.minimum(index + 1, n_edges)]
        active &= first < width
        repeated = active & (first == second) & (index < count - 2)
        fill = active & ~repeated & (second >= 0)
        start, end = np.maximum(first[fill], 0), np.minimum(second[fill], width - 1)
        diff[row_ids[fill], start] += 1  # one interval per row and step: no repeated index
        diff[row_ids[fill], end + 1] -= 1
        index += np.where(repeated, 1, 2)
    return np.cumsum(diff[:, :width], axis=1, dtype=np.int16) > 0


def _raster(region: Region, bounds: Bounds) -> np.ndarray:
    if is_special(region):
        return np.zeros((bounds[3] - bounds[1] + 1, bounds[2] - bounds[0] + 1), dtype=bool)
    return _raster_box(region, bounds) if region.size == 4 else _raster_polygon(region, bounds)


def region_overlap(first: Region, second: Region, size: tuple[int, int] | None = None) -> float:
    """Overlap of two regions as the toolkit's `calculate_overlap(first, second, bounds=size)`;
    `size` = (W, H) of the image clips both (None: no clip)."""
    first, second = np.round(first), np.round(second)
    a, b = _region_bounds(first), _region_bounds(second)
    union = min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])
    if union[0] >= union[2] or union[1] >= union[3]:
        return 1.0  # the toolkit: two empty regions are identical
    if size is not None:
        union = max(0, union[0]), max(0, union[1]), min(size[0] - 1, union[2]), min(size[1] - 1, union[3])
    if union[0] >= union[2] or union[1] >= union[3]:
        return 0.0  # outside the image
    mask_a, mask_b = _raster(first, union), _raster(second, union)
    joint = int(np.count_nonzero(mask_a | mask_b))
    return np.count_nonzero(mask_a & mask_b) / joint if joint else 0.0
