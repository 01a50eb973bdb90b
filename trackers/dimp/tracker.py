"""DiMP online tracking (trackers.md §1.6) over a `DiMPNet`, without IoU-Net.

Frame 1: augmented crops of the target give the initial training set; the filter is the
initializer's output refined by `net_opt_iter` Gauss-Newton iterations, and those samples open a
weighted sample memory. Every later frame: crop around the last position, score with the filter,
localise the peak with DiMP's flags (not_found / uncertain / hard_negative / normal), move, and
unless the flag is not_found or uncertain store the frame's features with the new box. The filter
is refined on the whole memory with its weights: 1 iteration on a hard negative, else
`net_opt_update_iter` every `train_skipping` frames.

Choices not fixed by the paper or the notes:
- Init augmentation keeps 11 of DiMP's 15 samples: identity, 4 relative shifts of
  (+-0.6, +-0.6) * sample_size / 2, a horizontal flip, 3 Gaussian blurs sigma (3, 1), (1, 3), (2, 2),
  and 2 channel-dropout (p = 0.2) copies of the identity features. The 4 rotations are left out: in
  a small crop their border fill is a large part of the image. As in DiMP, flip and blur samples get
  a random shift of (U - 0.5) * sample_size / 3; the augmentations are cut directly from the frame
  (exact sub-pixel crops) instead of from a 2x expanded patch, so no transform crops out the target.
  Random numbers come from `seed`, reset at every `initialize`, so a run is reproducible.
- Scale: DiMP refines the box with IoU-Net, which is out of scope. Instead the filter scores a
  3-scale pyramid (scale_step 1.04, SiamFC's idea): the best scale is the highest peak after a 0.97
  penalty on the non-unit scales; the size moves toward it at rate `scale_lr` = 0.5 (only when the
  target is found, also when uncertain, like DiMP's `update_scale_when_uncertain`), its factor
  relative to the first box clamped to [0.2, 5]. The aspect ratio stays that of the first box.
  The memory stores the features of the chosen scale's crop.
- Localisation (flags) works on the integer peak in score-map cells; the move then uses a sub-cell
  peak (a parabola per axis through the peak and its neighbours), standing in for part of IoU-Net's
  refinement. The previous position is the map centre (sample size a multiple of 16); the
  neighbourhood suppressed around the first peak is 2.2 x the target size, set to -inf (not 0), so
  a map with only negative scores outside it yields no second peak.
- Memory weight rule: when the init samples fall below `init_samples_minimum_weight` in total, they
  are rescaled to exactly that total and the other samples to the rest (relative weights kept in
  both groups), so the weights still sum to 1.
- Tracking runs under `torch.no_grad` rather than `inference_mode`, so the filter and the memory
  are ordinary tensors that cost counters and tracers can reuse outside the tracker.
- Crops are padded with the first frame's mean colour (DiMP replicates the border); the centre is
  clamped so that `inside_ratio` (20%) of the target stays inside the image, as in DiMP.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import torch

from nas.data.crops import crop_square, normalize
from nas.errors import ConfigError
from trackers.base import NetworkTracker, TrackResult, center_size, corner_box
from trackers.dimp.model import FEATURE_STRIDE, DiMPNet
from trackers.scales import ScaleSearchConfig


@dataclass(frozen=True)
class DiMPTrackerConfig(ScaleSearchConfig):
    """Online hyper-parameters; memory, optimisation and localisation defaults are DiMP-18's, the
    scale search (standing in for IoU-Net) SiamFC's."""

    sample_memory_size: int = 50
    learning_rate: float = 0.01
    hard_negative_learning_rate: float = 0.02
    init_samples_minimum_weight: float = 0.25
    train_skipping: int = 20
    net_opt_iter: int = 10
    net_opt_update_iter: int = 2
    net_opt_hn_iter: int = 1
    target_not_found_threshold: float = 0.25
    distractor_threshold: float = 0.8
    hard_negative_threshold: float = 0.5
    target_neighborhood_scale: float = 2.2
    displacement_scale: float = 0.8
    inside_ratio: float = 0.2
    augment_shift: float = 0.6
    random_shift_factor: float = 1.0 / 3.0
    blur_sigmas: tuple[tuple[float, float], ...] = ((3.0, 1.0), (1.0, 3.0), (2.0, 2.0))
    dropout_copies: int = 2
    dropout_probability: float = 0.2


class Localization(NamedTuple):
    cell: np.ndarray  # (row, col) of the chosen peak in score cells
    flag: str  # normal, hard_negative, uncertain or not_found
    score: float


def localize(scores: np.ndarray, target_cells: np.ndarray, config: DiMPTrackerConfig) -> Localization:
    """DiMP's advanced localisation on one score map (H', W'); `target_cells` is the target (h, w) in cells.

    The previous position is the map centre: a distractor peak far from it is a hard negative, two
    strong peaks both near or both far make the frame uncertain.
    """
    shape = np.array(scores.shape)
    first = np.array(np.unravel_index(int(np.argmax(scores)), scores.shape))
    score1 = float(scores[tuple(first)])
    if score1 < config.target_not_found_threshold:
        return Localization(first, "not_found", score1)
    half = config.target_neighborhood_scale * np.asarray(target_cells, dtype=np.float64) / 2
    lo = np.maximum(np.round(first - half), 0).astype(int)
    hi = np.minimum(np.round(first + half + 1), shape).astype(int)
    masked = scores.astype(np.float64).copy()
    masked[lo[0]:hi[0], lo[1]:hi[1]] = -np.inf
    second = np.array(np.unravel_index(int(np.argmax(masked)), scores.shape))
    score2 = float(masked[tuple(second)])
    if score2 > config.distractor_threshold * score1:
        center = (shape - 1) / 2.0
        reach = config.displacement_scale * np.sqrt(np.prod(target_cells)) / 2
        far1, far2 = (np.linalg.norm(p - center) > reach for p in (first, second))
        if far2 and not far1:
            return Localization(first, "hard_negative", score1)
        if far1 and not far2:
            return Localization(second, "hard_negative", score2)
        return Localization(first, "uncertain", score1)
    if score2 > config.hard_negative_threshold * score1 and score2 > config.target_not_found_threshold:
        return Localization(first, "hard_negative", score1)
    return Localization(first, "normal", score1)


def refine_peak(scores: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Sub-cell peak (row, col): a parabola through the peak and its two neighbours on each axis.

    A stride-16 cell spans 16 crop pixels; without IoU-Net the integer peak alone would move the
    target in steps that large. At the border or without a maximum the axis keeps the integer cell.
    """
    refined = np.asarray(cell, dtype=np.float64).copy()
    for axis in (0, 1):
        if 0 < cell[axis] < scores.shape[axis] - 1:
            before, after = cell.copy(), cell.copy()
            before[axis] -= 1
            after[axis] += 1
            left, mid, right = (float(scores[tuple(c)]) for c in (before, cell, after))
            curvature = left - 2 * mid + right
            if curvature < 0:
                refined[axis] += float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    return refined


def update_sample_weights(weights: np.ndarray, num_stored: int, num_init: int, previous: int | None,
                          learning_rate: float, init_min_weight: float) -> int:
    """DiMP's memory weight rule, in place; returns the slot for the new sample.

    Empty slots fill first, then the lowest-weight non-init sample is replaced. The first new
    sample gets `learning_rate` after the others are scaled by 1/(1 - lr); each later one gets the
    previous new sample's weight / (1 - lr), so recent frames count exponentially more. After
    normalising, the init samples keep at least `init_min_weight` in total.
    """
    slot = num_stored if num_stored < len(weights) else num_init + int(np.argmin(weights[num_init:]))
    if previous is None:
        weights /= 1.0 - learning_rate
        weights[slot] = learning_rate
    else:
        weights[slot] = weights[previous] / (1.0 - learning_rate)
    weights /= weights.sum()
    init_total = weights[:num_init].sum()
    if init_total < init_min_weight:
        weights[:num_init] *= init_min_weight / init_total
        weights[num_init:] *= (1.0 - init_min_weight) / weights[num_init:].sum()
    return slot


class SampleMemory:
    """Fixed-capacity training set of features (D, h, w) and crop boxes with DiMP's weights."""

    def __init__(self, capacity: int, init_feat: torch.Tensor, init_boxes: torch.Tensor):
        num_init = init_feat.shape[0]
        if capacity <= num_init:
            raise ConfigError(f"sample memory of {capacity} cannot hold the {num_init} init samples and a "
                              "tracked one", key="sample_memory_size")
        self.feat = init_feat.new_zeros(capacity, *init_feat.shape[1:])
        self.boxes = init_boxes.new_zeros(capacity, 4)
        self.feat[:num_init], self.boxes[:num_init] = init_feat, init_boxes
        self.weights = np.zeros(capacity)
        self.weights[:num_init] = 1.0 / num_init
        self.num_init = self.num_stored = num_init
        self.previous: int | None = None

    def add(self, feat: torch.Tensor, box: torch.Tensor, learning_rate: float, init_min_weight: float) -> int:
        slot = update_sample_weights(self.weights, self.num_stored, self.num_init, self.previous,
                                     learning_rate, init_min_weight)
        self.feat[slot], self.boxes[slot] = feat, box
        self.num_stored = min(self.num_stored + 1, len(self.weights))
        self.previous = slot
        return slot

    def training_set(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stored features (1, n, D, h, w), boxes (1, n, 4) and weights (1, n) for the optimizer."""
        n = self.num_stored
        weights = torch.as_tensor(self.weights[:n], dtype=self.feat.dtype, device=self.feat.device)
        return self.feat[None, :n], self.boxes[None, :n], weights[None]


class DiMPTracker(NetworkTracker):
    """`Tracker` over a `DiMPNet`; state is reset by every `initialize`."""

    name = "dimp"

    def __init__(self, net: DiMPNet, config: DiMPTrackerConfig = DiMPTrackerConfig(),
                 device: torch.device | str | None = None, seed: int = 0):
        super().__init__(net, config, device)
        self.seed = seed
        self.size = net.config.image_sample_size
        self.scales = config.scales()
        self.penalties = np.where(np.isclose(self.scales, 1.0), 1.0, config.scale_penalty)

    def _sample_scale(self) -> float:
        """Image pixels per crop pixel at the current target size."""
        return self.model.config.search_area_scale * float(np.sqrt(np.prod(self.target_sz))) / self.size

    def _crop(self, frame: np.ndarray, center: np.ndarray, sample_scale: float) -> np.ndarray:
        return crop_square(frame, (float(center[0]), float(center[1])), sample_scale * self.size, self.size, self.pad)

    def _box_in_crop(self, crop_center: np.ndarray, sample_scale: float) -> np.ndarray:
        """The current target box in the crop centred at `crop_center` (x, y, w, h, crop pixels)."""
        corner = (self.pos - self.target_sz / 2 - crop_center) / sample_scale + self.size / 2
        return np.concatenate([corner, self.target_sz / sample_scale])

    def _features(self, crops: list[np.ndarray]) -> torch.Tensor:
        images = torch.from_numpy(np.stack([normalize(c) for c in crops])).to(self.device)
        return self.model.extract(images)

    def _augmented(self, frame: np.ndarray, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
        """Init crops and their target boxes: identity, relative shifts, flip, blurs."""
        cfg, scale = self.config, self._sample_scale()
        a = cfg.augment_shift * self.size / 2
        shifts = [np.zeros(2)] + [np.array([sx, sy]) * a for sx in (1, -1) for sy in (1, -1)]
        crops, boxes = [], []
        for shift in shifts:  # the target moves by `shift` crop pixels
            center = self.pos - shift * scale
            crops.append(self._crop(frame, center, scale))
            boxes.append(self._box_in_crop(center, scale))
        for kind in ["flip", *cfg.blur_sigmas]:
            center = self.pos - (rng.random(2) - 0.5) * self.size * cfg.random_shift_factor * scale
            crop, box = self._crop(frame, center, scale), self._box_in_crop(center, scale)
            if kind == "flip":
                crop, box = np.ascontiguousarray(crop[:, ::-1]), np.array([self.size - box[0] - box[2], *box[1:]])
            else:
                crop = cv2.GaussianBlur(crop, (0, 0), sigmaX=kind[0], sigmaY=kind[1])
            crops.append(crop)
            boxes.append(box)
        return crops, np.stack(boxes)

    @torch.no_grad()
    def initialize(self, frame: np.ndarray, box: np.ndarray) -> None:
        cfg = self.config
        self.pos, self.target_sz = center_size(box)
        self.base_sz, self.scale = self.target_sz.copy(), 1.0
        self.image_wh = np.array([frame.shape[1], frame.shape[0]], dtype=np.float64)
        self.pad = frame.reshape(-1, frame.shape[-1]).mean(axis=0)
        self.frame_index, self.flag = 0, "normal"  # flag: the last frame's localisation, for diagnostics
        rng = np.random.default_rng(self.seed)
        crops, boxes = self._augmented(frame, rng)
        feat = self._features(crops)
        gen = torch.Generator().manual_seed(self.seed)
        keep = 1.0 - cfg.dropout_probability
        masks = (torch.rand(cfg.dropout_copies, feat.shape[1], 1, 1, generator=gen) < keep).to(feat) / keep
        feat = torch.cat([feat, feat[:1] * masks])
        boxes = np.concatenate([boxes, np.repeat(boxes[:1], cfg.dropout_copies, axis=0)])
        bb = torch.as_tensor(boxes, dtype=feat.dtype, device=self.device)
        self.memory = SampleMemory(cfg.sample_memory_size, feat, bb)
        self.filter, _, _ = self.model.learn_filter(*self.memory.training_set(), num_iter=cfg.net_opt_iter)

    def _move(self, scores: np.ndarray, loc: Localization, sample_scale: float, scale_factor: float) -> None:
        """New centre from the peak (kept partly inside the image) and size from the chosen scale."""
        cfg = self.config
        center_cell = (self.model.config.output_size - 1) / 2.0
        shift = (refine_peak(scores, loc.cell)[::-1] - center_cell) * FEATURE_STRIDE * sample_scale
        margin = (cfg.inside_ratio - 0.5) * self.target_sz
        self.pos = np.clip(self.pos + shift, margin, self.image_wh - margin)
        rate = cfg.scale_lr
        self.scale = float(np.clip(self.scale * (1 - rate + rate * scale_factor), cfg.min_scale, cfg.max_scale))
        self.target_sz = self.base_sz * self.scale

    @torch.no_grad()
    def track(self, frame: np.ndarray) -> TrackResult:
        cfg = self.config
        self.next_frame()
        crop_center, base_scale = self.pos.copy(), self._sample_scale()
        feat = self._features([self._crop(frame, crop_center, base_scale * f) for f in self.scales])
        scores = self.model.classify(self.filter, feat[None])[0].float().cpu().numpy()
        best = int(np.argmax(scores.reshape(len(scores), -1).max(axis=1) * self.penalties))
        sample_scale = base_scale * self.scales[best]
        target_cells = self.target_sz[::-1] / (sample_scale * FEATURE_STRIDE)
        loc = localize(scores[best], target_cells, cfg)
        self.flag = loc.flag
        if loc.flag != "not_found":
            self._move(scores[best], loc, sample_scale, float(self.scales[best]))
        if loc.flag in ("normal", "hard_negative"):
            self._learn(feat[best], self._box_in_crop(crop_center, sample_scale), loc.flag == "hard_negative")
        return TrackResult(corner_box(self.pos, self.target_sz), loc.score)

    def _learn(self, feat: torch.Tensor, box: np.ndarray, hard_negative: bool) -> None:
        """Store the sample and run the scheduled Gauss-Newton iterations on the weighted memory."""
        cfg = self.config
        rate = cfg.hard_negative_learning_rate if hard_negative else cfg.learning_rate
        self.memory.add(feat, torch.as_tensor(box, dtype=feat.dtype, device=self.device), rate,
                        cfg.init_samples_minimum_weight)
        if hard_negative:
            iterations = cfg.net_opt_hn_iter
        else:
            iterations = cfg.net_opt_update_iter if self.frame_index % cfg.train_skipping == 0 else 0
        if iterations:
            feats, boxes, weights = self.memory.training_set()
            self.filter, _, _ = self.model.optimizer(self.filter, feats, boxes, sample_weight=weights,
                                                   num_iter=iterations, compute_losses=False)

