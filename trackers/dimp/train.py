"""Episodic offline training of `DiMPNet` (trackers.md §1.4), deterministic and resumable.

An episode is one video: `num_train_frames` train frames and `num_test_frames` later test frames
(DiMP's causal mode) within `max_gap` frames. Every frame is cropped at `search_area_scale` x the
jittered target size (size * exp(N(0,1) * scale_jitter), centre + sqrt(wh) * centre_jitter * (U - 0.5))
and resized to `image_sample_size`. The net learns a filter on the train crops and scores the test
crops with every iterate; `IterateWeightedLoss(LBHinge)` compares those scores with a Gaussian label
of sigma 1/4 of the target size. Adam with a step decay; a checkpoint is written atomically after
every epoch and a later call with the same arguments resumes from it.

Choices not fixed by the paper or the notes:
- Data: only frames with a visible, non-empty target are used (`nas.data.pairs.visible_frames`),
  and the gap counts visible frames. The base (last train) frame is uniform over the frames with
  `num_train_frames - 1` frames before and one after it; the other train frames are drawn from the
  `max_gap` frames before it and the test frames from the `max_gap` frames after it, with
  replacement only when a video is too short (instead of DiMP's widening of the window).
- Episode `i` of epoch `e` uses video `i % len(videos)` and `np.random.default_rng([seed, e, i])`, so
  an epoch visits the videos in turn and the same (seed, epoch, index) always gives the same crops;
  the network's initial weights come from `torch.manual_seed(seed)`. Training draws no other random
  numbers, so a resumed run continues exactly as an uninterrupted one.
- Crops come from `nas.data.crops.crop_square` (padded with the image mean, not DiMP's replicated
  border). Colour: one brightness factor U(1 - 0.2, 1 + 0.2) and grayscale with p = 0.05 per
  episode (DiMP's transforms), then ImageNet normalisation.
- The backbone is trained from scratch (no ImageNet weights), so it, the classification features
  and the initializer share one learning rate `lr` (1e-3) rather than DiMP's 2e-4 / 5e-5 / 5e-5 for a
  pretrained ResNet; the optimizer's learned-loss parameters get `lr_optimizer` (5e-4, DiMP's
  value). The step decay (x0.2 every 15 epochs) is DiMP's.
- The label centre uses the optimizer's convention (`DiMPSteepestDescentGN.loss_maps`): output cell
  i sits at crop pixel stride * (i + (k % 2) / 2).
- BatchNorm runs in training mode on the 6 x batch crops; no weight decay, no gradient clipping.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence as SequenceABC
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from nas.data.crops import crop_square, normalize
from nas.data.pairs import visible_frames
from nas.data.sequence import Sequence
from nas.errors import ConfigError, DataError
from nas.io import atomic_torch_save, torch_load
from nas.ops.dimp.loss import IterateWeightedLoss
from nas.progress import Progress
from trackers.dimp.model import FEATURE_STRIDE, DiMPNet, DiMPNetConfig


@dataclass(frozen=True)
class DiMPTrainConfig:
    """Training hyper-parameters; sampling, jitter and loss weights are DiMP-18's."""

    net: DiMPNetConfig = field(default_factory=DiMPNetConfig)
    num_train_frames: int = 3
    num_test_frames: int = 3
    max_gap: int = 30
    train_center_jitter: float = 3.0
    train_scale_jitter: float = 0.25
    test_center_jitter: float = 4.5
    test_scale_jitter: float = 0.5
    brightness_jitter: float = 0.2
    grayscale_probability: float = 0.05
    episodes_per_epoch: int = 256
    batch_size: int = 8
    lr: float = 1e-3
    lr_optimizer: float = 5e-4
    lr_step_epochs: int = 15
    lr_gamma: float = 0.2
    weight_final: float = 100.0
    weight_init: float = 100.0
    weight_iter: float = 400.0
    hinge_threshold: float = 0.05

    def to_dict(self) -> dict:
        return {**asdict(self), "net": self.net.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "DiMPTrainConfig":
        return cls(**{**data, "net": DiMPNetConfig.from_dict(data["net"])})


def gaussian_label(boxes: torch.Tensor, net: DiMPNetConfig) -> torch.Tensor:
    """Gaussian labels (*, H', W') of sigma `net.label_sigma` cells for crop boxes (*, 4) x, y, w, h."""
    k, size = net.filter_size, net.output_size
    center = (boxes[..., :2] + boxes[..., 2:] / 2) / FEATURE_STRIDE - (k % 2) / 2  # (x, y) in cells
    grid = torch.arange(size, dtype=boxes.dtype, device=boxes.device)
    dx = grid.view(1, -1) - center[..., 0, None, None]
    dy = grid.view(-1, 1) - center[..., 1, None, None]
    return torch.exp(-0.5 * (dx ** 2 + dy ** 2) / net.label_sigma ** 2)


class EpisodeSampler:
    """Deterministic DiMP episodes (train + test crops and their target boxes) over `Sequence`s."""

    def __init__(self, sequences: SequenceABC[Sequence], config: DiMPTrainConfig, seed: int = 0):
        self.videos = [(seq, vis) for seq in sequences if len(vis := visible_frames(seq)) >= 2]
        if not self.videos:
            raise DataError("no sequence has two frames with a visible target", key="sequences")
        self.config, self.seed = config, int(seed)

    def _frame_ids(self, rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Causal sampling: train frames at or before a base frame, test frames after it, within max_gap."""
        cfg = self.config
        base = int(rng.integers(min(cfg.num_train_frames - 1, length - 2), length - 1))
        before = np.arange(max(0, base - cfg.max_gap), base)
        after = np.arange(base + 1, min(length, base + 1 + cfg.max_gap))
        extra = rng.choice(before, cfg.num_train_frames - 1, replace=len(before) < cfg.num_train_frames - 1) \
            if len(before) else np.full(cfg.num_train_frames - 1, base)
        test = rng.choice(after, cfg.num_test_frames, replace=len(after) < cfg.num_test_frames)
        return np.sort(np.concatenate([[base], extra]).astype(np.int64)), np.sort(test)

    def _crop(self, frame: np.ndarray, box: np.ndarray, center_jitter: float, scale_jitter: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Crop around the jittered box; returns the uint8 crop and the true box in crop pixels."""
        net = self.config.net
        size = box[2:] * np.exp(rng.standard_normal(2) * scale_jitter)
        center = box[:2] + box[2:] / 2 + np.sqrt(size.prod()) * center_jitter * (rng.random(2) - 0.5)
        side = net.search_area_scale * np.sqrt(size.prod())
        crop = crop_square(frame, (float(center[0]), float(center[1])), side, net.image_sample_size)
        scale = net.image_sample_size / side
        corner = center - side / 2
        return crop, np.concatenate([(box[:2] - corner) * scale, box[2:] * scale])

    def sample(self, epoch: int, index: int) -> dict[str, np.ndarray]:
        """Episode `index` of `epoch`: normalised crops (N, 3, S, S) and boxes (N, 4) for train and test."""
        cfg = self.config
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        seq, vis = self.videos[int(index) % len(self.videos)]
        train_ids, test_ids = self._frame_ids(rng, len(vis))
        brightness = rng.uniform(1 - cfg.brightness_jitter, 1 + cfg.brightness_jitter)
        gray = rng.random() < cfg.grayscale_probability
        out: dict[str, list] = {"train_images": [], "train_boxes": [], "test_images": [], "test_boxes": []}
        for kind, ids, cj, sj in (("train", train_ids, cfg.train_center_jitter, cfg.train_scale_jitter),
                                  ("test", test_ids, cfg.test_center_jitter, cfg.test_scale_jitter)):
            for t in vis[ids]:
                crop, box = self._crop(seq.frame(int(t)), np.asarray(seq.boxes[t], dtype=np.float64), cj, sj, rng)
                if gray:
                    crop = np.repeat(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
                crop = np.clip(crop.astype(np.float32) * brightness, 0, 255).astype(np.uint8)
                out[f"{kind}_images"].append(normalize(crop))
                out[f"{kind}_boxes"].append(box.astype(np.float32))
        return {key: np.stack(value) for key, value in out.items()}

    def batch(self, epoch: int, indices: SequenceABC[int]) -> dict[str, torch.Tensor]:
        """Episodes stacked into tensors (B, N, ...)."""
        episodes = [self.sample(epoch, i) for i in indices]
        return {key: torch.from_numpy(np.stack([e[key] for e in episodes])) for key in episodes[0]}


def episode_loss(net: DiMPNet, batch: dict[str, torch.Tensor], loss_fn: IterateWeightedLoss
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted total, per-iterate LBHinge losses) of one batch of episodes."""
    scores = net(batch["train_images"], batch["test_images"], batch["train_boxes"])
    return loss_fn(scores, gaussian_label(batch["test_boxes"], net.config))


def build_net(config: DiMPTrainConfig, seed: int) -> DiMPNet:
    """The untrained network, its weights drawn from `seed` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DiMPNet(config.net)


def make_loss(config: DiMPTrainConfig) -> IterateWeightedLoss:
    return IterateWeightedLoss(config.weight_final, config.weight_init, config.weight_iter, config.hinge_threshold)


def _optimizer(net: DiMPNet, config: DiMPTrainConfig) -> torch.optim.Adam:
    learned_loss = list(net.optimizer.parameters())
    ids = {id(p) for p in learned_loss}
    rest = [p for p in net.parameters() if id(p) not in ids]
    return torch.optim.Adam([{"params": rest, "base_lr": config.lr},
                             {"params": learned_loss, "base_lr": config.lr_optimizer}])


def _resume(path: Path, config: DiMPTrainConfig, seed: int, net: DiMPNet,
            adam: torch.optim.Adam) -> tuple[int, list[dict]]:
    """Load a checkpoint of the same run into `net` and `adam`: (epochs done, history)."""
    state = torch_load(path)
    if state.get("config") != config.to_dict() or state.get("seed") != seed:
        raise ConfigError("checkpoint was written by a run with another config or seed; "
                          "use a new output path", source=str(path))
    net.load_state_dict(state["model"])
    adam.load_state_dict(state["adam"])
    return int(state["epoch"]), list(state["history"])


def train_dimp(sequences: SequenceABC[Sequence], config: DiMPTrainConfig, out_path: str | os.PathLike,
               seed: int = 0, epochs: int = 50, progress: bool = True) -> list[dict]:
    """Train for `epochs` epochs in total, resuming from `out_path` if it holds this run; returns the history.

    History rows: epoch, mean weighted loss, mean LBHinge of the initial and final filter, lr, seconds.
    """
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}", key="epochs")
    sampler = EpisodeSampler(sequences, config, seed)
    net = build_net(config, seed)
    adam = _optimizer(net, config)
    out_path = Path(out_path)
    done, history = _resume(out_path, config, seed, net, adam) if out_path.is_file() else (0, [])
    loss_fn = make_loss(config)
    steps = -(-config.episodes_per_epoch // config.batch_size)
    bar = Progress(max(epochs - done, 0) * steps, "train dimp", enabled=progress)
    net.train()
    for epoch in range(done, epochs):
        factor = config.lr_gamma ** (epoch // config.lr_step_epochs)
        for group in adam.param_groups:
            group["lr"] = group["base_lr"] * factor
        start, totals = time.monotonic(), np.zeros(3)
        for step in range(steps):
            indices = range(step * config.batch_size, min((step + 1) * config.batch_size, config.episodes_per_epoch))
            total, per_iterate = episode_loss(net, sampler.batch(epoch, indices), loss_fn)
            adam.zero_grad()
            total.backward()
            adam.step()
            totals += np.array([total.item(), per_iterate[0].item(), per_iterate[-1].item()]) * len(indices)
            bar.update(note=f"epoch {epoch + 1} loss {total.item():.4f}")
        mean = totals / config.episodes_per_epoch
        history.append({"epoch": epoch + 1, "loss": float(mean[0]), "loss_init": float(mean[1]),
                        "loss_final": float(mean[2]),
                        "lr": config.lr * factor, "seconds": time.monotonic() - start})
        atomic_torch_save({"model": net.state_dict(), "adam": adam.state_dict(), "epoch": epoch + 1,
                           "config": config.to_dict(), "net": config.net.to_dict(), "seed": seed,
                           "history": history}, out_path)
    return history
