"""Rendering deterministic synthetic tracking sequences from images in the scikit-image wheel
(`nas.data.synth` writes them as a GOT-10k-layout dataset).

Why: the project has to train, search and evaluate end to end with no download. Benchmark videos
cannot ship, but CC0/public-domain photographs inside the scikit-image wheel can. Each sequence
pastes a patch of a real photograph (the target, optionally cut out by a shape mask) onto a real
background and animates the nuisances trackers are judged on: smooth motion, scale and aspect
change, rotation, motion blur, illumination change, partial and full occlusion, look-alike
distractors (other patches of the same photograph) and out-of-view stretches.

Determinism: every random draw comes from `np.random.default_rng([seed, ...])` streams keyed by
(seed, split, sequence index), frames are JPEG-encoded by OpenCV at a fixed quality and no file
holds a time stamp, so one seed always gives byte-identical files on the same machine.

Train/val objects are disjoint: each object photograph is cut into a 3x3 grid of regions and every
region belongs to one split; targets and distractors of a split are only cut from its own regions
(`object_id`, `object_region` and `distractor_ids` in each meta_info.ini make this checkable).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

REGION_GRID = 3
# target side sqrt(w*h) as a fraction of min(W, H): 24..80 px at 320x240
TARGET_FRACTION = (0.1, 1.0 / 3.0)
# below this visible ratio (or with no pixel above half coverage) a frame is labelled absent
ABSENT_RATIO = 0.03


@dataclass(frozen=True)
class ImageSource:
    """A real image inside the scikit-image wheel, loaded by `skimage.data.<name>()`."""

    name: str
    licence: str
    grey: bool = False  # grey textures get a random colour tint when drawn


OBJECT_SOURCES = (
    ImageSource("chelsea", "CC0 (photographer Stefan van der Walt)"),
    ImageSource("coffee", "CC0 (photographer Rachel Michetti)"),
    ImageSource("rocket", "public domain (SpaceX)"),
    ImageSource("astronaut", "public domain (NASA)"),
    ImageSource("camera", "CC0 (photographer Lav Varshney)"),
    ImageSource("coins", "no known copyright restrictions (Brooklyn Museum)"),
)
BACKGROUND_SOURCES = (
    ImageSource("grass", "CC0 (CC0 Textures)", grey=True),
    ImageSource("gravel", "CC0 (CC0 Textures)", grey=True),
    ImageSource("brick", "CC0 (CC0 Textures)", grey=True),
    ImageSource("hubble_deep_field", "public domain (NASA)"),
    ImageSource("retina", "CC0 1.0 (Mikael Haggstrom, Wikimedia Commons)"),
)
HORSE = ImageSource("horse", "CC0 (silhouette, used as a shape mask)")
SHAPES = ("rect", "ellipse", "diamond", "horse")
LICENCES = {s.name: s.licence for s in (*OBJECT_SOURCES, *BACKGROUND_SOURCES, HORSE)}


@functools.cache
def load_source(name: str) -> np.ndarray:
    """RGB uint8 copy of a scikit-image sample (grey images replicated to 3 channels)."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3].astype(np.uint8))


@functools.cache
def _horse_mask() -> np.ndarray:
    """The horse silhouette (True = horse) cropped to its bounding box, as float32 0/1."""
    import skimage.data

    horse = ~np.asarray(skimage.data.horse(), dtype=bool)  # the file stores the horse as False
    ys, xs = np.nonzero(horse)
    return horse[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)


@dataclass(frozen=True)
class ObjectRegion:
    """One cell of the REGION_GRID x REGION_GRID grid over an object photograph."""

    source: str
    index: int
    rect: tuple[int, int, int, int]  # x0, y0, x1, y1 in source pixels

    @property
    def id(self) -> str:
        return f"{self.source}/r{self.index}"


def split_regions(seed: int, val_fraction: float) -> dict[str, list[ObjectRegion]]:
    """Assign every region of every object photograph to exactly one split (train or val)."""
    rng = np.random.default_rng([seed, 1])
    cells = REGION_GRID * REGION_GRID
    n_val = 0 if val_fraction <= 0 else min(cells - 1, max(1, round(cells * val_fraction)))
    out: dict[str, list[ObjectRegion]] = {"train": [], "val": []}
    for src in OBJECT_SOURCES:
        h, w = load_source(src.name).shape[:2]
        xs = np.linspace(0, w, REGION_GRID + 1).astype(int)
        ys = np.linspace(0, h, REGION_GRID + 1).astype(int)
        val_cells = set(rng.permutation(cells)[:n_val].tolist())
        for k in range(cells):
            r, c = divmod(k, REGION_GRID)
            region = ObjectRegion(src.name, k, (int(xs[c]), int(ys[r]), int(xs[c + 1]), int(ys[r + 1])))
            out["val" if k in val_cells else "train"].append(region)
    return out


def _wave(rng: np.random.Generator, n: int, amplitude: float, periods: tuple[float, float]) -> np.ndarray:
    """Smooth zero-mean signal bounded by `amplitude`: two sinusoids with random periods/phases."""
    t = np.arange(n)
    out = np.zeros(n)
    for share in (0.7, 0.3):
        out += share * np.sin(2 * np.pi * t / rng.uniform(*periods) + rng.uniform(0, 2 * np.pi))
    return amplitude * out


def _shape_mask(shape: str, h: int, w: int) -> np.ndarray:
    """Float32 0/1 mask of `shape` filling an h x w patch (touching all four sides)."""
    if shape == "rect":
        return np.ones((h, w), np.float32)
    if shape == "horse":
        return cv2.resize(_horse_mask(), (w, h), interpolation=cv2.INTER_AREA)
    # normalised pixel-centre coordinates in [-1, 1]
    u = (np.arange(w) + 0.5) / w * 2 - 1
    v = (np.arange(h) + 0.5) / h * 2 - 1
    power = 2 if shape == "ellipse" else 1  # diamond: |u| + |v| <= 1
    return ((np.abs(u[None, :]) ** power + np.abs(v[:, None]) ** power) <= 1).astype(np.float32)


def _sprite(rng: np.random.Generator, region: ObjectRegion, shape: str) -> np.ndarray:
    """Premultiplied RGBA float32 patch cut from a random sub-rectangle of `region`."""
    x0, y0, x1, y1 = region.rect
    rw, rh = x1 - x0, y1 - y0
    aspect = 1.3 if shape == "horse" else np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    side = rng.uniform(0.55, 1.0) * min(rw, rh)
    w = int(min(rw, side * np.sqrt(aspect)))
    h = int(min(rh, side / np.sqrt(aspect)))
    px, py = x0 + int(rng.integers(rw - w + 1)), y0 + int(rng.integers(rh - h + 1))
    rgb = load_source(region.source)[py:py + h, px:px + w].astype(np.float32)
    alpha = _shape_mask(shape, h, w)
    return np.dstack([rgb * alpha[:, :, None], alpha])


@dataclass
class _Layer:
    """A drawn premultiplied RGBA sprite covering frame[y0:y0+h, x0:x0+w] (only its footprint is
    processed, which keeps generation fast)."""

    data: np.ndarray
    x0: int
    y0: int

    def _window(self) -> tuple[slice, slice]:
        h, w = self.data.shape[:2]
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    def over(self, frame: np.ndarray) -> None:
        """Composite onto `frame` (float32 HxWx3) in place."""
        roi = frame[self._window()]
        roi *= 1.0 - self.data[:, :, 3:]
        roi += self.data[:, :, :3]

    def alpha(self, size: tuple[int, int]) -> np.ndarray:
        """The layer's coverage as a full-frame float32 map."""
        out = np.zeros((size[1], size[0]), np.float32)
        out[self._window()] = self.data[:, :, 3]
        return out


def _render(rgba: np.ndarray, center: tuple[float, float], wh: tuple[float, float], angle: float,
            size: tuple[int, int], margin: int = 0) -> _Layer | None:
    """Draw a premultiplied RGBA patch at `center` with size w x h and rotation `angle` (deg);
    None when it lies wholly outside the frame. `margin` px are kept around it (for blur).

    The patch is first area-resized to about its drawn size so downscaling does not alias, then
    warped with the residual scale and the rotation (edge coordinates: pixel i spans [i, i+1)).
    """
    w, h = wh
    rw, rh = max(1, round(w)), max(1, round(h))
    a = np.deg2rad(angle)
    cos, sin = np.cos(a), np.sin(a)
    ex, ey = 0.5 * (abs(cos) * w + abs(sin) * h), 0.5 * (abs(sin) * w + abs(cos) * h)
    x0, y0 = max(0, int(center[0] - ex) - 2 - margin), max(0, int(center[1] - ey) - 2 - margin)
    x1 = min(size[0], int(np.ceil(center[0] + ex)) + 2 + margin)
    y1 = min(size[1], int(np.ceil(center[1] + ey)) + 2 + margin)
    if x1 <= x0 or y1 <= y0:
        return None
    small = cv2.resize(rgba, (rw, rh), interpolation=cv2.INTER_AREA if rw < rgba.shape[1] else cv2.INTER_LINEAR)
    lin = np.array([[cos, -sin], [sin, cos]]) @ np.diag([w / rw, h / rh])
    shift = lin @ (0.5 - np.array([rw / 2, rh / 2])) + np.asarray(center) - 0.5 - [x0, y0]
    data = cv2.warpAffine(small, np.hstack([lin, shift[:, None]]), (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return _Layer(data, x0, y0)


def _motion_blur(layer: np.ndarray, length: float, direction: float) -> np.ndarray:
    """Blur a layer along `direction` (radians) over `length` px, as a moving object smears."""
    k = int(np.ceil(length)) | 1
    kernel = np.zeros((k, k), np.float32)
    c, d = (k - 1) / 2, (length - 1) / 2
    p1 = (round(c - d * np.cos(direction)), round(c - d * np.sin(direction)))
    p2 = (round(c + d * np.cos(direction)), round(c + d * np.sin(direction)))
    cv2.line(kernel, p1, p2, 1.0, 1, cv2.LINE_AA)
    return cv2.filter2D(layer, -1, kernel / kernel.sum(), borderType=cv2.BORDER_CONSTANT)


def cover_bin(ratio: float) -> int:
    """GOT-10k cover label: 0 for 0%, 1..7 for (0,15], (15,30], ..., (90,100), 8 for 100%."""
    if ratio <= 0:
        return 0
    if ratio >= 1:
        return 8
    return min(7, int(np.ceil(ratio / 0.15 - 1e-9)))


@dataclass
class _Track:
    """Per-frame pose of one sprite: centre, drawn size and rotation."""

    cx: np.ndarray
    cy: np.ndarray
    w: np.ndarray
    h: np.ndarray
    angle: np.ndarray


def _inside_path(rng: np.random.Generator, n: int, size: tuple[int, int], reach: float,
                 fast: bool) -> tuple[np.ndarray, np.ndarray]:
    """A smooth centre path that keeps a sprite of half-diagonal `reach` inside the frame."""
    periods = (max(20.0, 0.5 * n), max(30.0, 1.5 * n)) if fast else (max(30.0, 1.2 * n), max(40.0, 3.0 * n))
    coords = []
    for extent in size:
        lo, hi = reach, extent - reach
        if hi <= lo:
            coords.append(np.full(n, extent / 2.0))
            continue
        mid = rng.uniform(lo, hi)
        coords.append(mid + _wave(rng, n, min(mid - lo, hi - mid), periods))
    return coords[0], coords[1]


def _half_diagonal(w: np.ndarray, h: np.ndarray) -> float:
    """Largest distance (plus 1 px) from a sprite's centre to its corners over all frames."""
    return float(0.5 * np.sqrt(w ** 2 + h ** 2).max()) + 1.0


def _target_track(rng: np.random.Generator, n: int, size: tuple[int, int], base_aspect: float,
                  attrs: list[str]) -> _Track:
    """Target pose over time; appends the nuisance attributes it drew to `attrs`."""
    lo, hi = (f * min(size) for f in TARGET_FRACTION)
    side0 = np.exp(rng.uniform(np.log(lo * 1.2), np.log(hi / 1.2)))
    scale_amp = rng.uniform(0.1, 0.35) if rng.random() < 0.7 else 0.0
    aspect_amp = rng.uniform(0.1, 0.25) if rng.random() < 0.5 else 0.0
    rot_amp = rng.uniform(10.0, 40.0) if rng.random() < 0.4 else 0.0
    slow = (max(30.0, n), max(40.0, 2.5 * n))
    side = np.clip(side0 * np.exp(_wave(rng, n, scale_amp, slow)), lo, hi)
    aspect = base_aspect * np.exp(_wave(rng, n, aspect_amp, slow))
    w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
    angle = _wave(rng, n, rot_amp, slow)
    attrs += [a for a, amp in (("scale", scale_amp), ("aspect", aspect_amp), ("rotation", rot_amp)) if amp]
    fast = bool(rng.random() < 0.35)
    cx, cy = _inside_path(rng, n, size, _half_diagonal(w, h), fast)
    attrs.append("fast" if fast else "slow")
    if n >= 20 and rng.random() < 0.3:
        _add_excursion(rng, cx, cy, size, _half_diagonal(w, h))
        attrs.append("out_of_view")
    return _Track(cx, cy, w, h, angle)


def _add_excursion(rng: np.random.Generator, cx: np.ndarray, cy: np.ndarray, size: tuple[int, int],
                   reach: float) -> None:
    """Push the path smoothly out through the nearest border and back (in place)."""
    n = len(cx)
    t0 = int(rng.integers(n // 4, n // 2))
    t1 = min(n - 1, t0 + max(8, int(n * rng.uniform(0.25, 0.4))))
    tm = (t0 + t1) // 2
    gaps = [(cx[tm], cx, -1.0), (size[0] - cx[tm], cx, 1.0), (cy[tm], cy, -1.0), (size[1] - cy[tm], cy, 1.0)]
    gap, coord, sign = min(gaps, key=lambda g: g[0])
    profile = np.zeros(n)
    profile[t0:t1 + 1] = np.sin(np.pi * (np.arange(t0, t1 + 1) - t0) / (t1 - t0))
    coord += sign * 1.4 * (gap + reach) * profile


def _background(rng: np.random.Generator, n: int,
                size: tuple[int, int]) -> tuple[ImageSource, float, list[np.ndarray]]:
    """A background source, its pan amplitude (0 = static camera) and per-frame 2x3 affine maps
    (zoom + smooth pan) from the source into the frame."""
    src = BACKGROUND_SOURCES[int(rng.integers(len(BACKGROUND_SOURCES)))]
    img = load_source(src.name)
    h, w = img.shape[:2]
    zoom = rng.uniform(0.6, 1.4) * max(size[0] / w, size[1] / h) * 1.6
    ox, oy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    pan = rng.uniform(0.03, 0.12) * size[0] if rng.random() < 0.5 else 0.0
    periods = (max(30.0, n), max(40.0, 3.0 * n))
    px, py = _wave(rng, n, pan, periods), _wave(rng, n, pan, periods)
    maps = [np.array([[zoom, 0, size[0] / 2 - zoom * ox + px[t]], [0, zoom, size[1] / 2 - zoom * oy + py[t]]])
            for t in range(n)]
    return src, pan, maps


def _tinted(rng: np.random.Generator, src: ImageSource) -> np.ndarray:
    """The source image; grey textures get a random colour tint so they differ between sequences."""
    img = load_source(src.name)
    if not src.grey:
        return img
    return np.clip(img.astype(np.float32) * rng.uniform(0.35, 1.0, 3), 0, 255).astype(np.uint8)


@dataclass
class _Occluder:
    """An opaque textured patch drawn over the target while `active` (never on frame 0)."""

    source: str
    rgba: np.ndarray
    track: _Track
    active: np.ndarray


def _occluder(rng: np.random.Generator, target: _Track, n: int, full: bool) -> _Occluder:
    """An occluder that sweeps across the target around a random time `tc`: larger than the target
    and passing over its centre when `full`, smaller and off-centre otherwise. It moves relative
    to the target and starts and ends its sweep clear of it, so occlusion builds up and fades."""
    src = BACKGROUND_SOURCES[int(rng.integers(len(BACKGROUND_SOURCES)))]
    img = _tinted(rng, src)
    half = max(3, n // 6)
    tc = int(rng.integers(half + 1, n - half))
    window = slice(tc - half, tc + half + 1)
    extent = float(np.hypot(target.w[window], target.h[window]).max())
    relative = rng.uniform(1.8, 2.4) if full else rng.uniform(0.45, 0.8)
    ow, oh = extent * relative * np.exp(rng.uniform(-0.2, 0.2, 2))
    side = rng.uniform(0, 2 * np.pi)
    offset = np.zeros(2) if full else 0.45 * extent * np.array([np.cos(side), np.sin(side)])
    speed, heading = (0.5 * (np.hypot(ow, oh) + extent) + 2) / half, rng.uniform(0, 2 * np.pi)
    t = np.arange(n) - tc
    cx = target.cx + offset[0] + speed * np.cos(heading) * t
    cy = target.cy + offset[1] + speed * np.sin(heading) * t
    ph, pw = min(img.shape[0], int(oh) + 1), min(img.shape[1], int(ow) + 1)
    y, x = int(rng.integers(img.shape[0] - ph + 1)), int(rng.integers(img.shape[1] - pw + 1))
    rgba = np.dstack([img[y:y + ph, x:x + pw].astype(np.float32), np.ones((ph, pw), np.float32)])
    track = _Track(cx, cy, np.full(n, ow), np.full(n, oh), np.zeros(n))
    return _Occluder(src.name, rgba, track, np.abs(t) <= half)


def _visibility(alpha: np.ndarray, occ_alpha: np.ndarray | None, area: float
                ) -> tuple[float, float, tuple[float, float, float, float] | None]:
    """(visible ratio, in-image fraction, visible-extent x,y,w,h box or None) of a target whose
    unclipped area is `area` px, from its in-frame coverage and the occluder's.

    Sums within 2% of `area` count as wholly inside (resampling is not exactly area-preserving),
    and occlusion below 0.5% is ignored, so an unhindered target is exactly 100% (cover 8).
    """
    inside = float(alpha.sum())
    in_frac = 1.0 if inside >= 0.98 * area else inside / area
    occ_frac = float((alpha * occ_alpha).sum()) / inside if inside > 0 and occ_alpha is not None else 0.0
    ratio = in_frac * (1.0 - (occ_frac if occ_frac >= 0.005 else 0.0))
    ys, xs = np.nonzero(alpha > 0.5)
    if xs.size == 0:
        return ratio, in_frac, None
    x0, y0 = float(xs.min()), float(ys.min())
    return ratio, in_frac, (x0, y0, float(xs.max() + 1) - x0, float(ys.max() + 1) - y0)


@dataclass
class SyntheticSequence:
    """One rendered sequence: RGB frames, GOT-10k annotations and meta_info fields."""

    frames: list[np.ndarray]
    boxes: np.ndarray
    absent: np.ndarray
    cover: np.ndarray
    cut: np.ndarray
    meta: dict[str, str]


def render_sequence(rng: np.random.Generator, pool: list[ObjectRegion], n: int, size: tuple[int, int],
                    target_region: ObjectRegion) -> SyntheticSequence:
    """Render `n` frames of one target cut from `target_region`, distractors from `pool`."""
    W, H = size
    attrs: list[str] = []
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    target_rgba = _sprite(rng, target_region, shape)
    base_aspect = target_rgba.shape[1] / target_rgba.shape[0]
    target = _target_track(rng, n, size, base_aspect, attrs)
    target_area_fraction = float(target_rgba[:, :, 3].mean())

    bg_src, pan, bg_maps = _background(rng, n, size)
    bg_img = _tinted(rng, bg_src)
    if pan:
        attrs.append("camera_pan")

    same_image = [r for r in pool if r.source == target_region.source]
    distractors = []
    for _ in range(int(rng.choice([0, 1, 1, 2]))):
        region = same_image[int(rng.integers(len(same_image)))]
        rgba = _sprite(rng, region, shape)
        k = rng.uniform(0.8, 1.2)
        dw, dh = target.w * k, target.h * k
        dx, dy = _inside_path(rng, n, size, _half_diagonal(dw, dh), bool(rng.random() < 0.5))
        distractors.append((region, rgba, _Track(dx, dy, dw, dh, _wave(rng, n, 20.0, (40.0, 120.0)))))
    if distractors:
        attrs.append("distractors")

    occluder = None
    if rng.random() < 0.5:
        full = bool(rng.random() < 0.5)
        occluder = _occluder(rng, target, n, full)
        attrs.append("full_occlusion" if full else "partial_occlusion")

    blur_gain = rng.uniform(0.6, 1.2) if rng.random() < 0.5 else 0.0
    light_amp = rng.uniform(0.15, 0.35) if rng.random() < 0.5 else 0.0
    gain = 1.0 + _wave(rng, n, light_amp, (max(20.0, 0.5 * n), max(30.0, 2.0 * n)))
    slope = _wave(rng, n, light_amp, (max(20.0, 0.5 * n), max(30.0, 2.0 * n)))
    if light_amp:
        attrs.append("illumination")
    ramp = (np.arange(W, dtype=np.float32) / W - 0.5)[None, :, None]

    frames, boxes, absent, cover, cut = [], [], [], [], []
    last_box, blurred = None, False
    for t in range(n):
        frame = cv2.warpAffine(bg_img, bg_maps[t], size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        for _, rgba, tr in distractors:
            if layer := _render(rgba, (tr.cx[t], tr.cy[t]), (tr.w[t], tr.h[t]), tr.angle[t], size):
                layer.over(frame)
        step = np.array([target.cx[t] - target.cx[t - 1], target.cy[t] - target.cy[t - 1]]) if t else np.zeros(2)
        blur = blur_gain * float(np.hypot(*step))
        blur = blur if blur >= 2.0 else 0.0
        layer = _render(target_rgba, (target.cx[t], target.cy[t]), (target.w[t], target.h[t]), target.angle[t],
                        size, margin=int(np.ceil(blur)))
        alpha = layer.alpha(size) if layer else np.zeros((H, W), np.float32)
        if layer:
            if blur:
                layer.data = _motion_blur(layer.data, blur, float(np.arctan2(step[1], step[0])))
                blurred = True
            layer.over(frame)
        occ_alpha = None
        if occluder is not None and occluder.active[t]:
            tr = occluder.track
            if occ := _render(occluder.rgba, (tr.cx[t], tr.cy[t]), (tr.w[t], tr.h[t]), 0.0, size):
                occ.over(frame)
                occ_alpha = occ.alpha(size)
        frame *= gain[t] * (1.0 + slope[t] * ramp)
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))

        ratio, in_frac, box = _visibility(alpha, occ_alpha, target_area_fraction * target.w[t] * target.h[t])
        visible = ratio >= ABSENT_RATIO and box is not None
        last_box = box if visible else last_box
        boxes.append(last_box)
        absent.append(int(not visible))
        cover.append(cover_bin(ratio) if visible else 0)
        cut.append(int(in_frac < 1.0))

    if blurred:
        attrs.append("motion_blur")
    meta = {
        "object_class": target_region.source,
        "motion_class": "rotating" if "rotation" in attrs else "moving",
        "major_class": "synthetic",
        "root_class": "synthetic",
        "motion_adverb": "quickly" if "fast" in attrs else "slowly",
        "resolution": f"({W}, {H})",
        "object_id": target_region.id,
        "object_source": target_region.source,
        "object_licence": LICENCES[target_region.source],
        "object_region": "({}, {}, {}, {})".format(*target_region.rect),
        "object_shape": shape if shape != "horse" else f"horse (mask {LICENCES['horse']})",
        "distractor_ids": ",".join(d[0].id for d in distractors) or "none",
        "background_source": bg_src.name,
        "background_licence": bg_src.licence,
        "occluder_source": occluder.source if occluder else "none",
        "attributes": ",".join(attrs),
    }
    return SyntheticSequence(frames, np.array(boxes, dtype=np.float64), np.array(absent), np.array(cover),
                             np.array(cut), meta)
