"""GradNet online tracking (trackers.md §2.4): SiamFC scale search + a gradient-updated template.

Two templates are scored: the fixed SiamFC template (frozen search-branch weights on the first
exemplar, all scales) and the GradNet template (middle scale only); their normalised, upsampled
responses are fused 0.85/0.15 and blended with a cosine window. Every `update_interval` frames the
hidden template is updated once from the most reliable stored search crop, and the hidden state is
blended 0.4/0.6 (0.3/0.7 in the early-failure branch).

Choices not fixed by the paper or the notes:
- Crops come from `nas.data.crops` (context square, exact affine crop padded with the first frame's
  mean colour, ImageNet normalisation); the window is the Hann outer product normalised to sum 1, so
  it is commensurate with the sum-normalised responses.
- The displacement is measured from the geometric centre (up - 1) / 2 of the upsampled map, not the
  official integer 136 (a quarter-pixel bias at 255).
- Upsampling is `F.interpolate(mode="bicubic", align_corners=False)`.
- F_max (reliability and the returned score) is the peak of the *raw* 17x17 SiamFC maps over all
  scales (bicubic overshoot would inflate it).
- The frame-0 sample is stored with the SiamFC peak on its own search crop as its score; until the
  threshold exists (frames 1-5) every frame counts as reliable.
- The stored samples keep only their middle-scale crop (the update uses only that scale) and
  their search features are computed when a sample is used.
- The zero-window frame (i - last reliable == 9) lasts one frame.
- Left out: the official "refind" heuristic (re-searching around the image centre when the target
  leaves on the right border); it is a benchmark-specific patch, not part of the method.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from nas.data.crops import context_size, cosine_window, crop_square, normalize
from trackers.base import NetworkTracker, TrackResult, center_size, corner_box
from trackers.gradnet.model import GradNet
from trackers.scales import ScaleSearchConfig


@dataclass(frozen=True)
class GradNetTrackerConfig(ScaleSearchConfig):
    """Tracking hyper-parameters; the defaults are the official track.py values."""

    exemplar_size: int = 127
    instance_size: int = 255
    context_amount: float = 0.5
    scale_lr: float = field(default=0.59, kw_only=True)  # official value (the scale search default: 0.5)
    response_up: int = 16
    window_influence: float = 0.25
    gradnet_weight: float = 0.15  # fusion weight of the GradNet response (0.85 SiamFC)
    update_interval: int = 5
    memory_size: int = 5
    threshold_frames: int = 5  # thr = mean F_max of frames 1..threshold_frames
    reliable_ratio: float = 0.5
    hidden_keep: float = 0.4  # h <- keep * h + (1 - keep) * h'
    early_frames: int = 10
    early_fail_ratio: float = 0.4
    early_hidden_keep: float = 0.3
    lost_frames: int = 9  # window off for one frame this long after the last reliable frame


def _normalised(response: torch.Tensor) -> torch.Tensor:
    """(x - min) / sum(x - min): each response becomes a distribution (guarded for flat maps)."""
    shifted = response - response.min()
    return shifted / shifted.sum().clamp(min=1e-12)


class GradNetTracker(NetworkTracker):
    """`Tracker` over a `GradNet`; state is reset by every `initialize`."""

    name = "gradnet"

    def __init__(self, model: GradNet, config: GradNetTrackerConfig = GradNetTrackerConfig(),
                 device: torch.device | str | None = None):
        super().__init__(model, config, device)
        self.scales = config.scales()
        self.penalties = np.where(np.arange(config.num_scales) == config.num_scales // 2, 1.0, config.scale_penalty)

    def _tensor(self, crops: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack([normalize(c) for c in crops])).to(self.device)

    def _search_crop(self, frame: np.ndarray, side: float) -> np.ndarray:
        return crop_square(frame, tuple(self.center), side, self.config.instance_size, self.pad)

    @torch.no_grad()
    def initialize(self, frame: np.ndarray, box: np.ndarray) -> None:
        cfg = self.config
        self.center, self.size = center_size(box)
        self.image_wh = np.array([frame.shape[1], frame.shape[0]], dtype=np.float64)
        self.pad = frame.reshape(-1, frame.shape[-1]).mean(axis=0)
        s_z = context_size(*self.size, cfg.context_amount)
        self.s_x = s_z * cfg.instance_size / cfg.exemplar_size
        self.s_x_range = (cfg.min_scale * self.s_x, cfg.max_scale * self.s_x)
        z = self._tensor([crop_square(frame, tuple(self.center), s_z, cfg.exemplar_size, self.pad)])
        self.template_sia = self.model.siamfc_template(z)
        self.hidden = self.model.hidden(z)
        crop = self._search_crop(frame, self.s_x)
        score = self.model.score(self.template_sia, self.model.search_features(self._tensor([crop])))
        up = cfg.response_up * score.shape[-1]
        self.window = torch.from_numpy(cosine_window(up) / cosine_window(up).sum()).float().to(self.device)
        self.memory: deque[tuple[np.ndarray, float]] = deque([(crop, float(score.max()))],
                                                              maxlen=cfg.memory_size)
        self.first_maxima: list[float] = []
        self.threshold: float | None = None
        self.frame_index = 0
        self.last_reliable = 0
        self._update(crop, cfg.hidden_keep)  # frame 0 is a multiple of the interval

    def _update(self, crop: np.ndarray, keep: float) -> None:
        """h' = h + U1(dL/dh) on `crop` (target centred), template = U2(h'), h <- keep h + (1-keep) h'."""
        feats = self.model.search_features(self._tensor([crop]))
        h_new, template = self.model.update_template(self.hidden, feats)
        self.template_gra = template.detach()
        self.hidden = keep * self.hidden + (1.0 - keep) * h_new.detach()

    def _upsample(self, score: torch.Tensor) -> torch.Tensor:
        up = self.config.response_up * score.shape[-1]
        return F.interpolate(score, size=(up, up), mode="bicubic", align_corners=False)[:, 0]

    @torch.no_grad()
    def track(self, frame: np.ndarray) -> TrackResult:
        cfg = self.config
        i, mid = self.next_frame(), cfg.num_scales // 2
        crops = [self._search_crop(frame, self.s_x * s) for s in self.scales]
        feats = self.model.search_features(self._tensor(crops))
        raw_sia = self.model.score(self.template_sia, feats)
        f_max = float(raw_sia.max())
        sia = self._upsample(raw_sia)
        peaks = sia.flatten(1).amax(dim=1).cpu().numpy() * self.penalties
        best = int(np.argmax(peaks))
        gra = self._upsample(self.model.score(self.template_gra, feats[mid:mid + 1]))[0]
        response = (1.0 - cfg.gradnet_weight) * _normalised(sia[best]) + cfg.gradnet_weight * _normalised(gra)
        influence = 0.0 if i - self.last_reliable == cfg.lost_frames else cfg.window_influence
        response = (1.0 - influence) * response + influence * self.window
        up = response.shape[-1]
        iy, ix = np.unravel_index(int(torch.argmax(response)), response.shape)
        stride = self.model.config.stride
        disp = (np.array([ix, iy], dtype=np.float64) - (up - 1) / 2.0) * stride / cfg.response_up
        self.center = np.clip(self.center + disp * self.s_x * self.scales[best] / cfg.instance_size,
                              0.0, self.image_wh)
        rate = cfg.scale_lr
        self.s_x = float(np.clip((1.0 - rate) * self.s_x + rate * self.s_x * self.scales[best], *self.s_x_range))
        self.size = (1.0 - rate) * self.size + rate * self.size * self.scales[best]
        self._remember(frame, f_max)
        return TrackResult(corner_box(self.center, self.size), f_max)

    def _remember(self, frame: np.ndarray, f_max: float) -> None:
        """Reliability test, sample memory, early-failure update and the periodic update."""
        cfg = self.config
        i = self.frame_index
        if i <= cfg.threshold_frames:
            self.first_maxima.append(f_max)
            if i == cfg.threshold_frames:
                self.threshold = float(np.mean(self.first_maxima))
        stored_mean = float(np.mean([score for _, score in self.memory]))
        reliable = self.threshold is None or f_max >= min(cfg.reliable_ratio * self.threshold, stored_mean)
        crop = self._search_crop(frame, self.s_x)  # re-extracted at the new position
        if reliable:
            self.memory.append((crop, f_max))
            self.last_reliable = i
        elif (i < cfg.early_frames and self.threshold is not None
              and f_max < cfg.early_fail_ratio * self.threshold):
            self._update(crop, cfg.early_hidden_keep)
        if i % cfg.update_interval == 0:
            self._update(max(self.memory, key=lambda item: item[1])[0], cfg.hidden_keep)
