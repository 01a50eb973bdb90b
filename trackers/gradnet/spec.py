"""`GradNetSpec`: a picklable recipe that builds a GradNet tracker inside each harness worker."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from trackers.gradnet.model import GradNet, GradNetConfig
from trackers.gradnet.tracker import GradNetTracker, GradNetTrackerConfig
from trackers.spec import CheckpointSpec, FrameNetwork


class GradNetFrame(nn.Module):
    """GradNet's per-frame network: search features of the scale pyramid and both correlations.

    The gradient template update (every 5 frames, and on early failures) is not part of it.
    """

    def __init__(self, tracker: GradNetTracker):
        super().__init__()
        self.model = tracker.model
        self.template_sia, self.template_gra = tracker.template_sia, tracker.template_gra
        self.mid = tracker.config.num_scales // 2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.model.search_features(x)
        return (self.model.score(self.template_sia, feats),
                self.model.score(self.template_gra, feats[self.mid:self.mid + 1]))


@dataclass(frozen=True)
class GradNetSpec(CheckpointSpec):
    """GradNet on SiamFC: random weights seeded by `seed`, or a state dict from `checkpoint`.

    `net` must be the network configuration the checkpoint was trained with (its widths); a
    mismatch is a one-line ConfigError when the tracker is built.
    """

    torch_only: ClassVar[str] = "GradNet updates its template by a gradient through the network while tracking"

    config: GradNetTrackerConfig = GradNetTrackerConfig()
    net: GradNetConfig = GradNetConfig()
    name: str = "siamfc-gradnet"

    def random_model(self) -> GradNet:
        return GradNet(self.net)

    def build_tracker(self, model: GradNet) -> GradNetTracker:
        return GradNetTracker(model, self.config, self.device)

    def frame_network(self, tracker: GradNetTracker, frame: np.ndarray) -> FrameNetwork:
        """The 3-scale pyramid of search crops through `GradNetFrame`."""
        side = tracker.config.instance_size
        return GradNetFrame(tracker), (torch.randn(tracker.config.num_scales, 3, side, side, device=tracker.device),)
