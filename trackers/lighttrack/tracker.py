"""The LightTrack tracking pipeline: crops, one forward pass per frame, decoding and smoothing.

Any model with the `build_subnet` API (`template(z, box) -> state`, `track(x, state) -> {"cls", "reg"}`,
`stride`, `cls_is_logit`) plugs in, so a found subnet, a supernet extraction and the Mobile baseline are tracked by
exactly the same post-processing. The steps follow LightTrack's/Ocean's tracker:

* template: SiamFC context square (`context_size`) resized to the space's template size, cached once;
* search: the square `s_x = s_z * instance / exemplar` around the last centre, resized to
  `instance_size` (256), or `big_instance_size` (288) for the whole sequence when the first box
  covers less than `small_target_ratio` of the image, so tiny targets get more context;
* decoding: each score-map cell predicts l, t, r, b distances from its crop-pixel centre;
  candidates are re-weighted by a scale/aspect-change penalty and a cosine window (a motion prior);
* size smoothing: the size update rate is `penalty * cls * lr` at the chosen cell and, as in Ocean
  (and LightTrack, which inherits its tracker), the update is applied twice, so the effective rate
  is its square. `smooth_twice=False` gives the textbook single update;
* clamping: the centre stays inside the image, the size within [min_size, image size];
* speed: inference runs on a copy of the model with BatchNorm folded into the preceding convs
  (`fold_batchnorm`), the same function to float precision and about a fifth faster on CPU; with
  `runtime="onnxruntime"` that copy runs as ONNX graphs in onnxruntime (`OnnxRuntimeSubnet`), the
  same outputs to 1e-4 in 0.51x (1 thread) / 0.57x (2 threads) of eager's forward time on a
  2-core CPU (`benchmarks/bench_onnx_runtime.py`);
* scores: tower cls heads give logits (a sigmoid makes them confidences); a DiMP cls head gives
  regression scores, clipped to [0, 1];
* gradnet template update (models with an update head), GradNet's online rule: the reliability
  threshold is half the mean confidence of the first five tracked frames; the search crops of the
  last five reliable frames are kept with their labels (the tracked box); on the first frame and
  every `interval` frames the template is updated from the kept crop with the highest confidence,
  and the hidden template is blended 0.4 old / 0.6 new as in GradNet's code.

Crops are exact sub-pixel warps (`crop_square`), not rounded to whole pixels, and the exemplar is
128 (LightTrack's `--even 1`; its VOT script uses 127, which gives the same 8x8 feature map).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from nas.data.crops import context_size, cosine_window, crop_square, grid_centers, normalize, score_size
from nas.data.pairs import make_labels
from nas.data.sequence import Sequence
from nas.errors import ConfigError
from nas.space import arch_from_json, from_lighttrack_string, load_arch, load_space
from nas.space.lighttrack_codec import LIGHTTRACK_MOBILE
from trackers.base import NetworkTracker, TrackResult, center_size, corner_box
from trackers.lighttrack.export import load_export
from trackers.lighttrack.model import SearchBranch, build_subnet
from trackers.lighttrack.onnx_network import inference_network
from trackers.runtime import DEFAULT_RUNTIME, RUNTIMES
from trackers.spec import FrameNetwork, NetworkCounter, TrackerSpec, load_weights

BASELINES = {"lighttrack-mobile": ("lighttrack-mobile", LIGHTTRACK_MOBILE)}
"""Built-in baseline name -> (search space, LightTrack path string)."""


@dataclass(frozen=True)
class TrackerConfig:
    """Hyper-parameters of the pipeline; defaults are Ocean's, which LightTrack's search used."""

    penalty_k: float = 0.062
    window_influence: float = 0.38
    lr: float = 0.765
    exemplar_size: int | None = None  # None: the model's space (LightTrack: 128)
    instance_size: int | None = None  # None: the model's space (LightTrack: 256)
    big_instance_size: int | None = None  # None: instance + 2 strides (LightTrack: 288)
    small_target_ratio: float = 0.004
    context_amount: float = 0.5
    min_size: float = 10.0
    smooth_twice: bool = True


PRESETS: dict[str, TrackerConfig] = {
    "default": TrackerConfig(),
    # the only benchmark config shipped with LightTrack (experiments/test/VOT/LightTrack.yaml)
    "vot2019": TrackerConfig(penalty_k=0.007, window_influence=0.225, lr=0.616),
}


def preset(name: str) -> TrackerConfig:
    """A named hyper-parameter set; a one-line ConfigError lists the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}",
                          key="preset") from None


def _change(r: np.ndarray) -> np.ndarray:
    return np.maximum(r, 1.0 / r)


def decode(cls_scores: np.ndarray, reg: np.ndarray, *, center: np.ndarray, size: np.ndarray,
           scale_z: float, instance_size: int, stride: int, config: TrackerConfig,
           window: np.ndarray | None = None, cls_is_logit: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Pick the best cell of one score map and update the target: (centre, size, confidence).

    `cls_scores` is (S, S) logits (or, with `cls_is_logit=False`, scores clipped to [0, 1]), `reg`
    is (4, S, S) l, t, r, b in search-crop pixels; `center`/`size` are the current state in image
    pixels and `scale_z` is crop px per image px. The returned confidence is the raw score of the
    chosen cell (the penalties only rank candidates).
    """
    grid = grid_centers(instance_size, stride).astype(np.float64)
    scores = cls_scores.astype(np.float64)
    cls = 1.0 / (1.0 + np.exp(-scores)) if cls_is_logit else np.clip(scores, 0.0, 1.0)
    left, top, right, bottom = reg.astype(np.float64)
    x1, x2 = grid[None, :] - left, grid[None, :] + right
    y1, y2 = grid[:, None] - top, grid[:, None] + bottom
    w_pred, h_pred = x2 - x1, y2 - y1

    w_crop, h_crop = size * scale_z
    w_safe, h_safe = np.maximum(w_pred, 1e-6), np.maximum(h_pred, 1e-6)
    s_c = _change(np.vectorize(context_size)(w_safe, h_safe, config.context_amount)
                  / context_size(w_crop, h_crop, config.context_amount))
    r_c = _change((w_crop / h_crop) / (w_safe / h_safe))
    penalty = np.exp(-(r_c * s_c - 1.0) * config.penalty_k)
    pscore = penalty * cls
    if window is None:
        window = cosine_window(cls.shape[0])
    pscore = pscore * (1.0 - config.window_influence) + window * config.window_influence
    iy, ix = np.unravel_index(int(np.argmax(pscore)), pscore.shape)

    offset = np.array([(x1[iy, ix] + x2[iy, ix]) / 2.0, (y1[iy, ix] + y2[iy, ix]) / 2.0])
    new_center = center + (offset - instance_size / 2.0) / scale_z
    pred_size = np.array([w_pred[iy, ix], h_pred[iy, ix]]) / scale_z
    rate = penalty[iy, ix] * cls[iy, ix] * config.lr
    new_size = (1.0 - rate) * size + rate * pred_size
    if config.smooth_twice:
        new_size = (1.0 - rate) * size + rate * new_size
    return new_center, new_size, float(cls[iy, ix])


def clamp_state(center: np.ndarray, size: np.ndarray, image_wh: tuple[int, int],
                min_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the centre inside the image and each side within [min_size, image side]."""
    limit = np.asarray(image_wh, dtype=np.float64)
    return np.clip(center, 0.0, limit), np.clip(size, min_size, np.maximum(limit, min_size))



class LightTrackTracker(NetworkTracker):
    """`Tracker` over any LightTrack-API model; state is reset by every `initialize`."""

    name = "lighttrack"

    def __init__(self, model: torch.nn.Module, config: TrackerConfig = TrackerConfig(),
                 device: torch.device | str | None = None, runtime: str = DEFAULT_RUNTIME):
        super().__init__(inference_network(model, runtime), config, device)
        self.stride = int(model.stride)
        spec = getattr(getattr(model, "space", None), "spec", None)
        self.exemplar_size = config.exemplar_size or (spec.template_size if spec else 128)
        self.normal_instance = config.instance_size or (spec.search_size if spec else 256)
        self.big_instance = config.big_instance_size or self.normal_instance + 2 * self.stride
        self.instance_size = self.normal_instance
        self.cls_is_logit = bool(getattr(model, "cls_is_logit", True))
        self.update = getattr(self.model, "update", None)

    def _features(self, crop: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(normalize(crop))[None].to(self.device)

    @torch.inference_mode()
    def initialize(self, frame: np.ndarray, box: np.ndarray) -> None:
        cfg = self.config
        self.center, self.size = center_size(box)
        w, h = self.size
        self.image_wh = (frame.shape[1], frame.shape[0])
        small = w * h / float(frame.shape[0] * frame.shape[1]) < cfg.small_target_ratio
        self.instance_size = self.big_instance if small else self.normal_instance
        self.window = cosine_window(score_size(self.instance_size, self.stride))
        # the first frame's mean pads every later crop, as in SiamFC/Ocean
        self.pad = frame.reshape(-1, frame.shape[-1]).mean(axis=0)
        s_z = context_size(w, h, cfg.context_amount)
        z = crop_square(frame, tuple(self.center), s_z, self.exemplar_size, self.pad)
        z_box = self._box_in_crop(self.exemplar_size / s_z, self.exemplar_size)
        self._state = self.model.template(self._features(z), torch.from_numpy(z_box)[None].float().to(self.device))
        self.frame_index = 0
        if self.update is not None:
            self._confidences, self._memory = [], []
            crop, scale_z = self._search_crop(frame)
            self._memory.append((1.0, crop, self._box_in_crop(scale_z, self.instance_size)))
            self._update_template()

    def _box_in_crop(self, scale: float, side: int) -> np.ndarray:
        """The current target box (x1, y1, x2, y2) in a `side` crop centred on it at `scale` crop px per image px."""
        half, mid = self.size * scale / 2.0, side / 2.0
        return np.array([mid - half[0], mid - half[1], mid + half[0], mid + half[1]])

    def _search_crop(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """The search crop around the current state and its scale (crop px per image px)."""
        s_z = context_size(*self.size, self.config.context_amount)
        s_x = s_z * self.instance_size / self.exemplar_size
        return crop_square(frame, tuple(self.center), s_x, self.instance_size, self.pad), self.exemplar_size / s_z

    def _update_template(self) -> None:
        """GradNet's update from the kept crop with the highest confidence (outside inference mode:
        the update differentiates the cls loss with respect to the hidden template)."""
        _, crop, crop_box = max(self._memory, key=lambda item: item[0])
        labels = make_labels(crop_box, self.instance_size, self.stride)["cls"]
        with torch.inference_mode(False), torch.no_grad():
            state = {key: value.clone() for key, value in self._state.items()}
            updated = self.model.update_template(state, self._features(crop),
                                                 torch.from_numpy(labels)[None].to(self.device))
            updated["hidden"] = 0.4 * state["hidden"] + 0.6 * updated["hidden"]
        self._state = updated

    def _after_frame(self, frame: np.ndarray, confidence: float) -> None:
        """Keep reliable frames and update the template every `interval` frames (gradnet heads)."""
        if len(self._confidences) < 5:
            self._confidences.append(confidence)
        if confidence >= 0.5 * float(np.mean(self._confidences)):
            crop, scale_z = self._search_crop(frame)
            self._memory = [*self._memory[-4:], (confidence, crop, self._box_in_crop(scale_z, self.instance_size))]
        if self.frame_index % self.update.interval == 0:
            self._update_template()

    @torch.inference_mode()
    def track(self, frame: np.ndarray) -> TrackResult:
        cfg = self.config
        self.next_frame()
        x, scale_z = self._search_crop(frame)
        out = self.model.track(self._features(x), self._state)
        center, size, score = decode(
            out["cls"][0, 0].float().cpu().numpy(), out["reg"][0].float().cpu().numpy(),
            center=self.center, size=self.size, scale_z=scale_z,
            instance_size=self.instance_size, stride=self.stride, config=cfg, window=self.window,
            cls_is_logit=self.cls_is_logit)
        self.center, self.size = clamp_state(center, size, self.image_wh, cfg.min_size)
        if self.update is not None:
            self._after_frame(frame, score)
        return TrackResult(corner_box(self.center, self.size), score)


class LightTrackFrame(torch.nn.Module):
    """LightTrack's per-frame network: the search branch against a cached template state (from a
    random template crop: the cost does not depend on the target)."""

    def __init__(self, tracker: LightTrackTracker):
        super().__init__()
        self.model = tracker.model
        side = tracker.exemplar_size
        with torch.no_grad():
            self.state = tracker.model.template(torch.randn(1, 3, side, side, device=tracker.device))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.track(x, self.state).values())


@dataclass(frozen=True)
class LightTrackSpec(TrackerSpec):
    """Picklable recipe for a LightTrack tracker, so each worker process builds its own copy.

    `target` is a `BASELINES` name, an arch JSON path, an arch JSON object or an export directory
    (`tracknas export`: architecture, space copy and trained weights); `weights` an optional
    state-dict file (random initial weights otherwise, seeded by `seed` so every worker builds the
    same model); `runtime` what runs the network (`trackers.runtime.RUNTIMES`).
    """

    target: str | dict
    config: TrackerConfig = TrackerConfig()
    weights: str | None = None
    device: str | None = None
    seed: int = 0
    runtime: str = DEFAULT_RUNTIME

    runtimes: ClassVar[tuple[str, ...]] = RUNTIMES

    def arch(self) -> Any:
        """The `Arch` to build; a one-line TrackNASError when the target is not usable."""
        if isinstance(self.target, dict):
            return arch_from_json(self.target, load_space)
        if self.target in BASELINES:
            space_name, path_string = BASELINES[self.target]
            return from_lighttrack_string(load_space(space_name), path_string)
        if not Path(self.target).is_file():
            raise ConfigError(f"not an architecture file nor a baseline (baselines: {sorted(BASELINES)})",
                              source=self.target)
        return load_arch(self.target)

    def build_model(self) -> torch.nn.Module:
        if isinstance(self.target, str) and Path(self.target).is_dir():  # a `tracknas export` directory
            model = load_export(self.target)[1]
            if self.weights is not None:
                load_weights(model, self.weights)
            return model
        arch = self.arch()
        return self.seeded_model(lambda: build_subnet(arch.space, arch), self.weights)

    @property
    def name(self) -> str:
        if isinstance(self.target, dict):
            return str(self.target.get("arch_id", "arch"))
        return self.target if self.target in BASELINES else Path(self.target).stem

    def build_tracker(self, model: torch.nn.Module) -> LightTrackTracker:
        return LightTrackTracker(model, self.config, self.device, self.runtime)

    def frame_network(self, tracker: LightTrackTracker, frame: np.ndarray) -> FrameNetwork:
        """The search branch at the tracker's search size on its BatchNorm-folded network, template
        features cached (the cost table in `frame_cost` counts the space's search size instead)."""
        side = tracker.instance_size
        return LightTrackFrame(tracker), (torch.randn(1, 3, side, side, device=tracker.device),)

    def frame_cost(self, seq: Sequence, count: NetworkCounter) -> dict[str, int]:
        """The subnet's params and per-frame FLOPs: `count` on its unfolded search branch at the space's
        search size, template state precomputed (what the space's cost table reproduces to the integer);
        no tracking run needed."""
        model = self.build_model().eval()
        spec = model.space.spec
        with torch.no_grad():
            state = model.template(torch.randn(1, 3, spec.template_size, spec.template_size))
        return count(SearchBranch(model, state), (torch.randn(1, 3, spec.search_size, spec.search_size),
                                                  *state.values()))
