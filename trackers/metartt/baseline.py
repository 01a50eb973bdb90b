"""MetaRTT's section of `tracknas baselines --train-config`: meta-training, pruning-network training, specs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nas.data.sequence import Sequence
from trackers.metartt.model import MetaRTTConfig, RTMDNetConfig
from trackers.metartt.spec import MetaRTTSpec
from trackers.metartt.tracker import MetaRTTTrackerConfig
from trackers.metartt.training import train_metartt
from trackers.spec import BaselineTraining, Fail


@dataclass(frozen=True)
class MetaRTTBaseline(BaselineTraining):
    """`train_metartt` settings, the RT-MDNet widths and the tracker overrides of MetaRTT, with and
    without its one-shot pruning (one checkpoint serves both)."""

    key = "metartt"
    checkpoint_name = "metartt"
    tracker_names = ("metartt", "metartt-pruned")
    tracker_config = MetaRTTTrackerConfig
    positive = ("episodes", "episodes_per_step", "frames", "lr", "prune_lr", "lasso_weight")
    width_lists = {"channels": (3, 3), "fc_widths": (2, 2)}  # RT-MDNet's three convs and two hidden fc

    # meta-training, then the pruning network's training, on RT-MDNet of these widths
    episodes: int = 40
    episodes_per_step: int = 2
    frames: int = 4
    lr: float = 1e-4
    channels: list = field(default_factory=lambda: list(RTMDNetConfig().channels))
    fc_widths: list = field(default_factory=lambda: list(RTMDNetConfig().fc_widths))
    prune_steps: int = 10
    prune_lr: float = 1e-3
    lasso_weight: float = 1e-3  # the paper's lambda; larger prunes more after few steps

    def check(self, fail: Fail) -> None:
        super().check(fail)
        if self.frames < 3:
            raise fail("frames", "expected >= 3 (first, middle and last frame of an episode)")
        if self.episodes_per_step < 2:
            raise fail("episodes_per_step", "expected >= 2 (hard negatives come from other videos)")

    def net(self) -> MetaRTTConfig:
        return MetaRTTConfig(net=RTMDNetConfig(channels=tuple(self.channels), fc_widths=tuple(self.fc_widths)))

    def train(self, sequences: list[Sequence], path: Path, seed: int, progress: bool) -> None:
        """Train unless `path` exists (it must match these widths; delete it to retrain)."""
        if not path.is_file():
            train_metartt(sequences, path, self.episodes, seed, episodes_per_step=self.episodes_per_step,
                          n_frames=self.frames, prune_steps=self.prune_steps, lr=self.lr, prune_lr=self.prune_lr,
                          lasso_weight=self.lasso_weight, net=self.net(), progress=progress)

    def specs(self, checkpoint: str | None, seed: int) -> dict[str, MetaRTTSpec]:
        tracker, net = self.tracker_settings(), self.net()
        return {"metartt": MetaRTTSpec(checkpoint, tracker, net, seed=seed),
                "metartt-pruned": MetaRTTSpec(checkpoint, tracker, net, seed=seed, name="metartt-pruned", prune=True)}
