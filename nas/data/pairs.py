"""Template/search training pairs with LightTrack-style label maps, usable as a torch `Dataset`.

Why: the supernet learns from (template, search) crops of two frames of one video. Both crops are
SiamFC context crops (`nas.data.crops`) so the target has the same nominal size in both; the search
crop is shifted and rescaled so the target does not always sit at the centre, and the label maps
are laid on `grid_centers(search_size, stride)`, the same grid the tracker decodes, for every
output stride the supernet can pick.

Visibility: pairs are drawn among the frames where the target is visible (`Sequence.visible`, and
a finite box with positive size). The interval strategy sees a video made of its visible frames
only, so an absent stretch is skipped: it neither counts toward the gap nor yields a template or
search frame.

Determinism: pair `index` is drawn from `np.random.default_rng([seed, epoch, index])` and uses video
`index % len(videos)`, so an epoch of `len(videos)` pairs visits every video once and the same
(seed, epoch, index) always gives the same arrays, in whichever process it is built (DataLoader
workers, `nas.data.loader`).

Mixtures: given one list of videos per source and their `weights`, pair `index` takes its source from
u = frac(offset + index / golden ratio), a Weyl sequence whose offset is drawn from (seed, epoch):
each source's share of any run of pairs is its weight's share to within a few pairs (the shuffled
pick lists of pysot/LightTrack give the same), while each pair stays a pure function of (seed,
epoch, index). The video is drawn uniformly within the source from a generator of its own, so the
pair's crops use the same stream as a single source's.

Frames are decoded through a per-process LRU cache bounded in bytes (`FrameCache`): a still image
(a COCO pseudo-sequence) gives template and search, and small datasets repeat frames within an epoch.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence as SequenceABC
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from nas.data.crops import context_size, crop_square, grid_centers, normalize
from nas.data.intervals import IntervalStrategy, UniformInterval
from nas.data.sequence import Sequence
from nas.errors import ConfigError, DataError


FRAME_CACHE_BYTES = 64 * 2**20
"""Decoded frames each process keeps (about 23 frames of 1280x720): enough for a pair's two crops of one
image and the repeats of a small dataset; a GOT-10k-sized epoch rarely revisits a frame."""
MIXTURE_STREAM = 1  # appended to the seeds of a mixture's own draws (source offset, video)
_GOLDEN = (5 ** 0.5 - 1) / 2


class FrameCache:
    """Least-recently-used decoded frames keyed by path, holding at most `max_bytes` (0: no caching)."""

    def __init__(self, max_bytes: int = FRAME_CACHE_BYTES):
        self.max_bytes, self.bytes = int(max_bytes), 0
        self.hits = self.misses = 0
        self._frames: OrderedDict[Path, np.ndarray] = OrderedDict()

    def frame(self, seq: Sequence, t: int) -> np.ndarray:
        """Frame `t` of `seq` (read-only: every caller of a cached frame shares the array)."""
        key = seq.frames[t]
        image = self._frames.get(key)
        if image is not None:
            self.hits += 1
            self._frames.move_to_end(key)
            return image
        self.misses += 1
        image = seq.frame(t)
        if image.nbytes <= self.max_bytes:
            image.flags.writeable = False
            self._frames[key] = image
            self.bytes += image.nbytes
            while self.bytes > self.max_bytes:
                self.bytes -= self._frames.popitem(last=False)[1].nbytes
        return image


def visible_frames(seq: Sequence) -> np.ndarray:
    """Indices of the frames usable in a pair: visible target with a finite, non-empty box."""
    boxes = np.asarray(seq.boxes, dtype=np.float64).reshape(-1, 4)
    ok = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    if seq.visible is not None:
        ok &= np.asarray(seq.visible, dtype=bool)
    return np.flatnonzero(ok[:len(seq)])


def make_labels(box: np.ndarray, search_size: int, stride: int) -> dict[str, np.ndarray]:
    """Label maps for a target at `box` (x1, y1, x2, y2 in search-crop pixels) on the stride grid.

    cls: 1 where the L1 cell distance to the cell nearest the box centre is <= 16 / stride (one
    cell at stride 16, two at stride 8), else 0. reg: l, t, r, b from each cell centre to the box
    sides, so cell -/+ reg gives the box back. reg_weight: 1 at cells inside the box, where the
    regression loss applies. gauss: DiMP's label, a Gaussian of each cell centre's distance to the
    box centre with sigma a quarter of the box's sqrt area (DiMP: 1/4 of the target size).
    """
    grid = grid_centers(search_size, stride).astype(np.float32)
    size = len(grid)
    x1, y1, x2, y2 = (float(v) for v in box)
    col = np.floor(((x1 + x2) / 2 - search_size // 2) / stride + 0.5) + size // 2
    row = np.floor(((y1 + y2) / 2 - search_size // 2) / stride + 0.5) + size // 2
    idx = np.arange(size)
    dist = np.abs(idx[None, :] - col) + np.abs(idx[:, None] - row)
    gx, gy = np.broadcast_to(grid[None, :], (size, size)), np.broadcast_to(grid[:, None], (size, size))
    reg = np.stack([gx - x1, gy - y1, x2 - gx, y2 - gy]).astype(np.float32)
    sigma = 0.25 * np.sqrt(max((x2 - x1) * (y2 - y1), 1e-6))
    dist_sq = (gx - (x1 + x2) / 2) ** 2 + (gy - (y1 + y2) / 2) ** 2
    return {
        "cls": (dist <= 16.0 / stride).astype(np.float32),
        "reg": reg,
        "reg_weight": (reg.min(axis=0) >= 0).astype(np.float32),
        "gauss": np.exp(-0.5 * dist_sq / sigma ** 2).astype(np.float32),
    }


class PairSampler(Dataset):
    """Deterministic (template, search, labels) pairs over a list of `Sequence`s.

    Defaults follow LightTrack: template 128, search 256, search jitter +-64 px shift and +-18%
    scale, template +-4 px and +-5%, per-channel colour gain jitter +-5%, frame gap uniform within
    100 (`UniformInterval(100)`). Shifts are fractions of the output crop's side (LightTrack's 64 px
    of 256 is 0.25), so a space with smaller inputs keeps the target inside its search crop.

    `sequences` holds the videos of one source or, with `weights` (one per source), one list of videos
    per source (a mixture; see the module docstring).
    """

    def __init__(self, sequences: SequenceABC[Sequence] | SequenceABC[SequenceABC[Sequence]], *,
                 weights: SequenceABC[float] | None = None, template_size: int = 128, search_size: int = 256,
                 strides: SequenceABC[int] = (16,), interval: IntervalStrategy | None = None,
                 length: int | None = None, seed: int = 0, context_amount: float = 0.5,
                 search_shift: float = 0.25, search_scale: float = 0.18, template_shift: float = 1 / 32,
                 template_scale: float = 0.05, color_jitter: float = 0.05, frame_cache_bytes: int = FRAME_CACHE_BYTES):
        if not 0 < template_size <= search_size:
            raise ConfigError(f"need 0 < template_size <= search_size, got {template_size}, {search_size}",
                              key="template_size")
        if not strides or any(int(s) <= 0 for s in strides):
            raise ConfigError(f"strides must be positive integers, got {list(strides)}", key="strides")
        for key, value in (("search_scale", search_scale), ("template_scale", template_scale),
                           ("color_jitter", color_jitter)):
            if not 0 <= value < 1:
                raise ConfigError(f"must be in [0, 1), got {value}", key=key)
        groups = [sequences] if weights is None else list(sequences)
        if weights is not None and (len(weights) != len(groups) or not all(w > 0 for w in weights)):
            raise ConfigError(f"expected one positive weight per source ({len(groups)}), got {list(weights)}",
                              key="weights")
        sources = [[(seq, vis) for seq in group if len(vis := visible_frames(seq))] for group in groups]
        for i, videos in enumerate(sources):
            if not videos:
                raise DataError("no sequence has a frame with a visible target",
                                key="sequences" if weights is None else f"source {i + 1}")
        self.videos = [video for videos in sources for video in videos]
        self.first_video = np.cumsum([0] + [len(videos) for videos in sources])
        self.source_weights = None if len(sources) == 1 else np.cumsum(weights) / np.sum(weights)
        self.frames = FrameCache(frame_cache_bytes)
        self.template_size, self.search_size = int(template_size), int(search_size)
        self.strides = tuple(int(s) for s in strides)
        self.interval = interval if interval is not None else UniformInterval(100)
        self.length = len(self.videos) if length is None else int(length)
        self.seed, self.epoch = int(seed), 0
        self.context_amount = context_amount
        self.jitter = {"search": (search_shift, search_scale), "template": (template_shift, template_scale)}
        self.color_jitter = color_jitter

    def set_epoch(self, epoch: int) -> None:
        """Draw a fresh set of pairs for `epoch` (call before creating the DataLoader iterator)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return self.sample(index)

    def pick(self, index: int, epoch: int | None = None) -> tuple[int, int]:
        """(source, video) of pair `index`: video `index % len(videos)` for one source, else a weighted draw."""
        if self.source_weights is None:
            return 0, int(index) % len(self.videos)
        epoch = self.epoch if epoch is None else int(epoch)
        offset = np.random.default_rng([self.seed, epoch, MIXTURE_STREAM]).random()
        u = (offset + int(index) * _GOLDEN) % 1.0
        source = int(np.searchsorted(self.source_weights, u, side="right"))
        source = min(source, len(self.source_weights) - 1)  # guards the float sum's last step
        first, end = self.first_video[source], self.first_video[source + 1]
        video = np.random.default_rng([self.seed, epoch, int(index), MIXTURE_STREAM]).integers(end - first)
        return source, int(first + video)

    def sample(self, index: int, epoch: int | None = None) -> dict:
        """Pair `index` of `epoch` (default: the one `set_epoch` chose): normalised crops, both target
        boxes, per-stride labels, the interval bin, and where it came from (source, video, frames)."""
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, epoch, int(index)])
        source, k = self.pick(index, epoch)
        seq, vis = self.videos[k]
        i_z, i_x, bin_id = self.interval.sample(rng, len(vis))
        t_z, t_x = int(vis[i_z]), int(vis[i_x])
        template, template_box = self._crop(seq, t_z, self.template_size, "template", rng)
        search, box = self._crop(seq, t_x, self.search_size, "search", rng)
        return {
            "template": template,
            "template_box": template_box,
            "search": search,
            "box": box,
            "labels": {s: make_labels(box, self.search_size, s) for s in self.strides},
            "bin": int(bin_id),
            "frames": np.array([t_z, t_x], dtype=np.int64),
            "sequence": k,
            "source": source,
        }

    def _crop(self, seq: Sequence, t: int, out_size: int, kind: str,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Jittered context crop of frame `t`, normalised, and the target box (x1,y1,x2,y2) in it.

        Crop side = context_size(w, h) * out_size / template_size, so the target has the same
        nominal size in template and search crops; the jitter scales the side and moves the target
        off the crop centre by up to `shift * out_size` output pixels.
        """
        x, y, w, h = (float(v) for v in seq.boxes[t])
        shift, scale = self.jitter[kind]
        side = context_size(w, h, self.context_amount) * out_size / self.template_size
        side *= rng.uniform(1.0 - scale, 1.0 + scale)
        offset = rng.uniform(-shift, shift, 2) * out_size  # target centre minus crop centre, output pixels
        k = out_size / side
        cx, cy = x + w / 2 - offset[0] / k, y + h / 2 - offset[1] / k
        crop = crop_square(self.frames.frame(seq, t), (cx, cy), side, out_size).astype(np.float32)
        crop *= rng.uniform(1.0 - self.color_jitter, 1.0 + self.color_jitter, 3).astype(np.float32)
        box = np.array([x - cx, y - cy, x + w - cx, y + h - cy]) * k + out_size / 2
        return normalize(np.clip(crop, 0, 255)), box.astype(np.float32)


def _stack(items: list) -> torch.Tensor | dict:
    if isinstance(items[0], dict):
        return {key: _stack([item[key] for item in items]) for key in items[0]}
    return torch.as_tensor(np.stack([np.asarray(item) for item in items]))


def collate(batch: list[dict]) -> dict:
    """Stack `PairSampler` samples into batched torch tensors, keeping the nested label dicts
    (a DataLoader `collate_fn`; the default one would turn the int stride keys into lists)."""
    if not batch:
        raise ValueError("cannot collate an empty batch")
    return _stack(batch)
