"""Short MetaRTT training runs for the baselines: meta-training, then the pruning network.

Episodes are cut from real annotated sequences (e.g. the synthetic train split), not from the
photograph pseudo-videos of `make_synthetic_episodes`: each is `n_frames` frames of one video,
evenly spaced over a random window of its visible frames, so the episode shows real motion,
appearance change and distractors. Each step draws a fresh batch of episodes from distinct videos
(hard negatives of the triplet term come from the other videos).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from nas.data.pairs import visible_frames
from nas.data.sequence import Sequence
from nas.errors import DataError
from nas.io import atomic_torch_save
from nas.progress import Progress
from trackers.metartt.meta import Episode, EpisodeConfig, meta_step, pruning_step
from trackers.metartt.model import MetaRTT, MetaRTTConfig


def sequence_episodes(sequences: list[Sequence], n: int, n_frames: int, rng: np.random.Generator,
                      max_gap: int = 5) -> list[Episode]:
    """`n` episodes from `n` distinct videos with at least `n_frames` visible frames."""
    usable = [(seq, vis) for seq in sequences if len(vis := visible_frames(seq)) >= n_frames]
    if len(usable) < n:
        raise DataError(f"need {n} sequences with {n_frames} visible frames for an episode batch, "
                        f"found {len(usable)}", key="sequences")
    episodes = []
    for k in rng.choice(len(usable), n, replace=False):
        seq, vis = usable[int(k)]
        gap = int(rng.integers(1, min(max_gap, (len(vis) - 1) // max(n_frames - 1, 1)) + 1))
        start = int(rng.integers(0, len(vis) - gap * (n_frames - 1)))
        idx = vis[start + gap * np.arange(n_frames)]
        episodes.append(Episode([seq.frame(int(i)) for i in idx], np.asarray(seq.boxes[idx], dtype=np.float64)))
    return episodes


def train_metartt(sequences: list[Sequence], out_path: str | os.PathLike, episodes: int = 40, seed: int = 0, *,
                  episodes_per_step: int = 2, n_frames: int = 4, prune_steps: int = 0, lr: float = 1e-4,
                  prune_lr: float = 1e-3, lasso_weight: float = 1e-3, net: MetaRTTConfig = MetaRTTConfig(),
                  config: EpisodeConfig = EpisodeConfig(), progress: bool = False) -> Path:
    """Meta-train on `episodes` episodes (`episodes_per_step` per Adam step), then `prune_steps`
    pruning-network steps (Adam at `prune_lr`, lambda = `lasso_weight`); write the whole learner's
    state dict atomically and return its path."""
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        learner = MetaRTT(net)
        steps = max(1, episodes // episodes_per_step)
        bar = Progress(steps + prune_steps, "train metartt", enabled=progress)
        meta_opt = torch.optim.Adam(learner.meta_parameters(), lr=lr)
        for _ in range(steps):
            loss = meta_step(learner, sequence_episodes(sequences, episodes_per_step, n_frames, rng),
                             meta_opt, config, rng)
            bar.update(note=f"meta-loss {loss:.4f}")
        prune_opt = torch.optim.Adam(learner.pruner.parameters(), lr=prune_lr)
        for _ in range(prune_steps):
            loss = pruning_step(learner, sequence_episodes(sequences, episodes_per_step, n_frames, rng),
                                prune_opt, config, rng, lasso_weight)
            bar.update(note=f"prune-loss {loss:.4f}")
    return atomic_torch_save(learner.state_dict(), out_path)
