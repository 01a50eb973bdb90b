"""`MetaRTTSpec`: a picklable recipe that builds a MetaRTT tracker inside each harness worker."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from trackers.lighttrack.tracker import load_weights
from trackers.metartt.model import MetaRTT, MetaRTTConfig
from trackers.metartt.tracker import MetaRTTTracker, MetaRTTTrackerConfig


@dataclass(frozen=True)
class MetaRTTSpec:
    """MetaRTT with random (seeded) or checkpointed meta-parameters; `prune` turns on the one-shot
    channel pruning at the first frame (the checkpoint then should hold a trained pruning network).

    `net` must be the configuration the checkpoint was trained with; `seed` also seeds the
    tracker's sampling, so every worker tracks a sequence identically.
    """

    checkpoint: str | None = None
    config: MetaRTTTrackerConfig = MetaRTTTrackerConfig()
    prune: bool = False
    net: MetaRTTConfig = MetaRTTConfig()
    device: str | None = None
    seed: int = 0
    name: str = "metartt"

    def build_learner(self) -> MetaRTT:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            learner = MetaRTT(self.net)
        if self.checkpoint is not None:
            load_weights(learner, self.checkpoint)
        return learner.eval()

    def __call__(self) -> MetaRTTTracker:
        config = replace(self.config, prune=self.prune, seed=self.seed)
        tracker = MetaRTTTracker(self.build_learner(), config, self.device)
        tracker.name = self.name
        return tracker
