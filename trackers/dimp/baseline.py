"""DiMP's section of `tracknas baselines --train-config`: episodic training (resumable) and its spec."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nas.data.sequence import Sequence
from trackers.dimp.model import FEATURE_STRIDE, DiMPNetConfig
from trackers.dimp.spec import DiMPSpec
from trackers.dimp.tracker import DiMPTrackerConfig
from trackers.dimp.train import DiMPTrainConfig, train_dimp
from trackers.spec import BaselineTraining, Fail


@dataclass(frozen=True)
class DiMPBaseline(BaselineTraining):
    """`train_dimp` settings (a flat subset of `DiMPTrainConfig` and its network) and the tracker
    overrides of DiMP without IoU-Net."""

    key = "dimp"
    checkpoint_name = "dimp"
    tracker_names = ("dimp",)
    tracker_config = DiMPTrackerConfig
    positive = ("epochs", "episodes_per_epoch", "batch_size", "lr", "feature_dim", "image_sample_size")
    width_lists = {"widths": (5, None)}  # a stem and at least four stages

    epochs: int = 2
    episodes_per_epoch: int = 64
    batch_size: int = 8
    lr: float = 1e-3
    widths: list = field(default_factory=lambda: list(DiMPNetConfig().widths))
    feature_dim: int = DiMPNetConfig().feature_dim
    image_sample_size: int = DiMPNetConfig().image_sample_size

    def check(self, fail: Fail) -> None:
        super().check(fail)
        if self.image_sample_size % FEATURE_STRIDE:
            raise fail("image_sample_size", f"expected a multiple of {FEATURE_STRIDE}")

    def train_config(self) -> DiMPTrainConfig:
        net = DiMPNetConfig(widths=tuple(self.widths), feature_dim=self.feature_dim,
                            image_sample_size=self.image_sample_size)
        return DiMPTrainConfig(net=net, episodes_per_epoch=self.episodes_per_epoch, batch_size=self.batch_size,
                               lr=self.lr)

    def train(self, sequences: list[Sequence], path: Path, seed: int, progress: bool) -> None:
        """Train, resuming `path`'s per-epoch checkpoint (a finished one costs nothing)."""
        train_dimp(sequences, self.train_config(), path, seed, self.epochs, progress)

    def specs(self, checkpoint: str | None, seed: int) -> dict[str, DiMPSpec]:
        return {"dimp": DiMPSpec(checkpoint, self.tracker_settings(), self.train_config().net, seed=seed)}
