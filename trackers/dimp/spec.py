"""`DiMPSpec`: a picklable recipe that builds a DiMP tracker inside each harness worker."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from trackers.dimp.model import DiMPNet, DiMPNetConfig, load_dimp_net
from trackers.dimp.tracker import DiMPTracker, DiMPTrackerConfig
from trackers.spec import CheckpointSpec, FrameNetwork


class DiMPFrame(nn.Module):
    """DiMP's per-frame network: features of the scale pyramid scored by the current filter.

    The filter refinement on the sample memory (every 20 frames, and on hard negatives) is not part of it.
    """

    def __init__(self, tracker: DiMPTracker):
        super().__init__()
        self.net, self.filter = tracker.model, tracker.filter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.classify(self.filter, self.net.extract(x)[None])


@dataclass(frozen=True)
class DiMPSpec(CheckpointSpec):
    """DiMP without IoU-Net; `checkpoint` is a `train_dimp` checkpoint (it carries its own
    architecture, so `net` is ignored then), or None for a randomly initialised `net` drawn from
    `seed`; `seed` also drives the init augmentation.
    """

    torch_only: ClassVar[str] = "DiMP optimises its target filter online (steepest descent in PyTorch)"

    config: DiMPTrackerConfig = field(default_factory=DiMPTrackerConfig)
    net: DiMPNetConfig = field(default_factory=DiMPNetConfig)
    name: str = "dimp"

    def random_model(self) -> DiMPNet:
        return DiMPNet(self.net)

    def build_model(self) -> DiMPNet:
        """The checkpoint's network (architecture included), else the seeded random one of `net`."""
        if self.checkpoint is not None:
            return load_dimp_net(self.checkpoint).eval()
        return super().build_model()

    def build_tracker(self, model: DiMPNet) -> DiMPTracker:
        return DiMPTracker(model, self.config, self.device, self.seed)

    def frame_network(self, tracker: DiMPTracker, frame: np.ndarray) -> FrameNetwork:
        """The scale pyramid of search crops through `DiMPFrame`."""
        side = tracker.size
        return DiMPFrame(tracker), (torch.randn(tracker.config.num_scales, 3, side, side, device=tracker.device),)
