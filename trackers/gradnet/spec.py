"""`GradNetSpec`: a picklable recipe that builds a GradNet tracker inside each harness worker."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from trackers.gradnet.model import GradNet, GradNetConfig
from trackers.gradnet.tracker import GradNetTracker, GradNetTrackerConfig
from trackers.lighttrack.tracker import load_weights


@dataclass(frozen=True)
class GradNetSpec:
    """GradNet on SiamFC: random weights seeded by `seed`, or a state dict from `checkpoint`.

    `net` must be the network configuration the checkpoint was trained with (its widths); a
    mismatch is a one-line ConfigError when the tracker is built.
    """

    checkpoint: str | None = None
    config: GradNetTrackerConfig = GradNetTrackerConfig()
    net: GradNetConfig = GradNetConfig()
    device: str | None = None
    seed: int = 0
    name: str = "siamfc-gradnet"

    def build_model(self) -> GradNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = GradNet(self.net)
        if self.checkpoint is not None:
            load_weights(model, self.checkpoint)
        return model.eval()

    def __call__(self) -> GradNetTracker:
        tracker = GradNetTracker(self.build_model(), self.config, self.device)
        tracker.name = self.name
        return tracker
