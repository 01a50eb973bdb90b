"""MetaRTT tracking: RT-MDNet's online loop with meta-learned initial weights and step sizes.

First frame: RT-MDNet's first-frame samples, K_init steps theta_k = theta_{k-1} - alpha_init_k * grad
(instead of 50 SGD iterations), then optionally the one-shot pruning: the masks predicted from the
first frame are folded into the weights and the channels are sliced once, so every later frame runs
a physically smaller network. Every frame: 256 gaussian candidates around the last box, one scene
crop, the positive logit of each candidate; the box is the mean of the top 5 and the frame a
success if their mean score > 0 (the next search widens from 0.6 to 1.4 after a failure). Sample
memory and updates follow RT-MDNet (pos 100 frames, neg 20 frames; a short-term update on failure,
a long-term one every 10 frames), each update being K_on steps with alpha_on from the current
parameters.

Choices not fixed by the paper or the notes:
- One scene crop per sample set (no 7 multi-scale/shifted crops nor the 100 extra jittered crops of
  RT-MDNet's first frame); the first frame's samples also seed the memory (the first `n_pos_update`
  positives and `n_neg_update` negatives).
- The bounding-box regressor is left out: MetaRTT's paper does not concern it and it is a separate
  ridge model; sizes change only through the top-5 mean.
- The meta-learned step sizes replace RT-MDNet's momentum SGD (no momentum, no weight decay, no
  gradient clipping during tracking).
- The memory keeps RoI features computed by the network of the moment (after pruning, by the
  pruned network; the first frame is re-extracted after slicing).
- The returned score is the mean top-5 positive logit.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np
import torch

from trackers.base import NetworkTracker, TrackResult
from trackers.metartt.geometry import INIT_NEG, INIT_POS, UPDATE_NEG, UPDATE_POS
from trackers.metartt.model import (
    MetaRTT, SampleSet, TrackingStepConfig, adapt, effective_masks, kept_channels, labelled_samples, locate,
    slice_parameters)


@dataclass(frozen=True)
class MetaRTTTrackerConfig(TrackingStepConfig):
    """Tracking hyper-parameters; the defaults are RT-MDNet's options with MetaRTT's K steps."""

    # first frame: training samples, then the optional one-shot pruning
    n_pos_init: int = 500
    n_neg_init: int = 5000
    prune: bool = False
    prune_threshold: float = 0.05
    # every frame: success test, wider search after a failure, memory and updates
    trans_failure: float = 1.4
    success_threshold: float = 0.0
    n_pos_update: int = 50
    n_neg_update: int = 200
    long_frames: int = 100
    short_frames: int = 20
    long_interval: int = 10
    seed: int = 0


class MetaRTTTracker(NetworkTracker):
    """`Tracker` over a (meta-trained) `MetaRTT` (`model`); `net` is the RT-MDNet it runs, pruned after
    `initialize` when the config says so. State is reset by every `initialize`."""

    name = "metartt"

    def __init__(self, learner: MetaRTT, config: MetaRTTTrackerConfig = MetaRTTTrackerConfig(),
                 device: torch.device | str | None = None):
        super().__init__(learner, config, device)

    def _features(self, samples: SampleSet) -> tuple[torch.Tensor, torch.Tensor]:
        feats = samples.features(self.net, self.config.scene)
        labels = torch.from_numpy(samples.labels == 1).to(self.device)
        return feats[labels], feats[~labels]

    @torch.no_grad()
    def initialize(self, frame: np.ndarray, box: np.ndarray) -> None:
        cfg = self.config
        self.rng = np.random.default_rng(cfg.seed)
        self.box = np.asarray(box, dtype=np.float64)
        self.image_wh = (frame.shape[1], frame.shape[0])
        self.net = self.model.net
        self.rates_on = [{k: v.detach() for k, v in r.items()} for r in self.model.alpha_on.rates()]
        rates_init = [{k: v.detach() for k, v in r.items()} for r in self.model.alpha_init.rates()]
        first = labelled_samples(frame, self.box, INIT_POS, INIT_NEG, cfg.n_pos_init, cfg.n_neg_init, self.rng)
        pos, neg = self._features(first)
        self.params = self._adapt(self.net.head_params(), rates_init, pos, neg)
        if cfg.prune:
            self._prune(first)
            pos, neg = self._features(first)
        self.pos_memory: deque[torch.Tensor] = deque([pos[:cfg.n_pos_update]], maxlen=cfg.long_frames)
        self.neg_memory: deque[torch.Tensor] = deque([neg[:cfg.n_neg_update]], maxlen=cfg.short_frames)
        self.trans = cfg.candidates.trans
        self.frame_index = 0

    def _adapt(self, params: dict[str, torch.Tensor], rates: list[dict[str, torch.Tensor]],
               pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        self.net.train()
        params = adapt(self.net, params, rates, pos, neg, self.rng, self.config.adapt)[-1]
        self.net.eval()
        return params

    def _prune(self, first: SampleSet) -> None:
        """Predict the masks from D_init with theta_init and slice the network once."""
        pruner = self.model.pruner.eval()
        pooled = self.model.pooled_features(first.frame, first.boxes, first.target_wh, self.params,
                                              self.config.scene)
        masks = effective_masks(pruner(pooled), self.config.prune_threshold)
        keep = kept_channels(masks)
        self.net = self.model.net.prune(masks).eval()
        self.params = slice_parameters(self.params, keep, masks)
        self.rates_on = [slice_parameters(r, keep) for r in self.rates_on]

    @torch.no_grad()
    def track(self, frame: np.ndarray) -> TrackResult:
        cfg = self.config
        frame_index = self.next_frame()
        rule = replace(cfg.candidates, trans=self.trans)
        self.box, score = locate(self.net, self.params, frame, self.box, rule, cfg.n_candidates, cfg.top_k,
                                 cfg.scene, self.rng)
        success = score > cfg.success_threshold
        self.trans = cfg.candidates.trans if success else cfg.trans_failure
        if success:
            pos, neg = self._features(labelled_samples(frame, self.box, UPDATE_POS, UPDATE_NEG,
                                                       cfg.n_pos_update, cfg.n_neg_update, self.rng))
            self.pos_memory.append(pos)
            self.neg_memory.append(neg)
            if frame_index % cfg.long_interval == 0:  # long-term update: all stored samples
                self.params = self._adapt(self.params, self.rates_on, torch.cat(list(self.pos_memory)),
                                          torch.cat(list(self.neg_memory)))
        else:  # short-term update: positives of the last `short_frames` frames, all negatives
            recent = list(self.pos_memory)[-cfg.short_frames:]
            self.params = self._adapt(self.params, self.rates_on, torch.cat(recent),
                                      torch.cat(list(self.neg_memory)))
        return TrackResult(self.box.copy(), score)
