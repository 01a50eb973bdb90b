"""Short GradNet training runs for the baselines: template-generalization steps on real pairs.

Pairs come from `nas.data.pairs.PairSampler` with the tracker's crop geometry (exemplar 127,
search 255, same context square) and no shift jitter, because `template_generalization_step`
expects every target centred in its search crop; consecutive pair indices visit different videos,
so one batch mixes videos as the step requires. Only the template branch and U1 learn: the SiamFC
search branch stays frozen at its (seeded) initial weights, since no pretrained SiamFC is shipped.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from nas.data.pairs import PairSampler, collate
from nas.data.sequence import Sequence
from nas.io import atomic_torch_save
from nas.progress import Progress
from trackers.gradnet.model import GradNet, GradNetConfig, template_generalization_step, trainable_parameters
from trackers.gradnet.tracker import GradNetTrackerConfig


def train_gradnet(sequences: list[Sequence], out_path: str | os.PathLike, epochs: int = 1, seed: int = 0, *,
                  pairs_per_epoch: int | None = None, batch_size: int = 8, lr: float = 1e-3,
                  net: GradNetConfig = GradNetConfig(), progress: bool = False) -> Path:
    """Train `epochs` x ceil(pairs / batch) steps with Adam, write the state dict atomically, return its path."""
    geometry = GradNetTrackerConfig()
    pairs = PairSampler(sequences, template_size=geometry.exemplar_size, search_size=geometry.instance_size,
                        strides=(net.stride,), length=pairs_per_epoch, seed=seed,
                        context_amount=geometry.context_amount, search_shift=0.0, template_shift=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GradNet(net)
    optimizer = torch.optim.Adam(trainable_parameters(model), lr=lr)
    starts = range(0, len(pairs), batch_size)
    bar = Progress(epochs * len(starts), "train siamfc-gradnet", enabled=progress)
    for epoch in range(epochs):
        pairs.set_epoch(epoch)
        for start in starts:
            batch = collate([pairs[i] for i in range(start, min(start + batch_size, len(pairs)))])
            loss = template_generalization_step(model, batch["template"], batch["search"], optimizer)
            bar.update(note=f"loss {loss:.4f}")
    return atomic_torch_save(model.state_dict(), out_path)
