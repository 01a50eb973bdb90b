"""`MetaRTTSpec`: a picklable recipe that builds a MetaRTT tracker inside each harness worker."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch

from trackers.metartt.geometry import generate, scene_rois
from trackers.metartt.model import MetaRTT, MetaRTTConfig
from trackers.metartt.tracker import MetaRTTTracker, MetaRTTTrackerConfig
from trackers.spec import CheckpointSpec, FrameNetwork


@dataclass(frozen=True)
class MetaRTTSpec(CheckpointSpec):
    """MetaRTT with random (seeded) or checkpointed meta-parameters; `prune` turns on the one-shot
    channel pruning at the first frame (the checkpoint then should hold a trained pruning network).

    `net` must be the configuration the checkpoint was trained with; `seed` also seeds the
    tracker's sampling, so every worker tracks a sequence identically.
    """

    torch_only: ClassVar[str] = "MetaRTT adapts its weights online by gradient steps"

    config: MetaRTTTrackerConfig = MetaRTTTrackerConfig()
    net: MetaRTTConfig = MetaRTTConfig()
    name: str = "metartt"
    prune: bool = False

    def random_model(self) -> MetaRTT:
        """The whole learner: RT-MDNet, the meta-learned rates and the pruning network."""
        return MetaRTT(self.net)

    def build_tracker(self, model: MetaRTT) -> MetaRTTTracker:
        return MetaRTTTracker(model, replace(self.config, prune=self.prune, seed=self.seed), self.device)

    def frame_network(self, tracker: MetaRTTTracker, frame: np.ndarray) -> FrameNetwork:
        """The candidate-scoring pass: conv1-3 on the scene crop covering the candidates around the
        current box plus fc4-6 on their RoIs, through the tracker's current (after `initialize`
        possibly pruned) RT-MDNet; memory sampling and the Meta-SGD updates are not part of it."""
        cfg = tracker.config
        candidates = generate(cfg.candidates, tracker.box, cfg.n_candidates, (frame.shape[1], frame.shape[0]),
                              np.random.default_rng(cfg.seed))
        image, rois = scene_rois(frame, candidates, tracker.box[2:], cfg.scene)
        return tracker.net, (image.to(tracker.device), torch.from_numpy(rois).float().to(tracker.device))
