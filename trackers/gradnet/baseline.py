"""GradNet's section of `tracknas baselines --train-config`: template-generalization training and its spec."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nas.data.sequence import Sequence
from trackers.gradnet.model import ALEXNET_CHANNELS, GradNetConfig
from trackers.gradnet.spec import GradNetSpec
from trackers.gradnet.tracker import GradNetTrackerConfig
from trackers.gradnet.training import train_gradnet
from trackers.spec import BaselineTraining, Fail


@dataclass(frozen=True)
class GradNetBaseline(BaselineTraining):
    """`train_gradnet` settings, the AlexNet widths and the tracker overrides of SiamFC-GradNet."""

    key = "gradnet"
    checkpoint_name = "siamfc-gradnet"
    tracker_names = ("siamfc-gradnet",)
    tracker_config = GradNetTrackerConfig
    positive = ("epochs", "pairs_per_epoch", "batch_size", "lr")
    width_lists = {"channels": (5, 5)}  # AlexNet's five convs

    epochs: int = 2
    pairs_per_epoch: int = 64
    batch_size: int = 8
    lr: float = 1e-3
    channels: list = field(default_factory=lambda: list(ALEXNET_CHANNELS))

    def check(self, fail: Fail) -> None:
        super().check(fail)
        if any(w % 2 for w in self.channels):
            raise fail("channels", "expected even widths (conv2/4/5 use 2 groups)")

    def net(self) -> GradNetConfig:
        return GradNetConfig(channels=tuple(self.channels))

    def train(self, sequences: list[Sequence], path: Path, seed: int, progress: bool) -> None:
        """Train unless `path` exists (it must match these widths; delete it to retrain)."""
        if not path.is_file():
            train_gradnet(sequences, path, self.epochs, seed, pairs_per_epoch=self.pairs_per_epoch,
                          batch_size=self.batch_size, lr=self.lr, net=self.net(), progress=progress)

    def specs(self, checkpoint: str | None, seed: int) -> dict[str, GradNetSpec]:
        return {"siamfc-gradnet": GradNetSpec(checkpoint, self.tracker_settings(), self.net(), seed=seed)}
