"""LightTrack phase 1: pretrain the space's backbone supernet as an image classifier.

Each step trains one uniformly sampled path (single-path one-shot, as Alg. 1 and SPOS; the same
`PathSampler`), on an ImageFolder set (`pretrain.root`): the path's backbone, up to the output
position the path picks, then global average pooling and a linear classifier. There is one linear
classifier per output stage, because tracking reads the backbone there: the features every output
position hands to the heads are trained to be discriminative. Cross-entropy with label smoothing,
SGD or AdamW, per-step cosine learning rate after an optional linear warm-up; `supernet.amp` and
`supernet.channels_last` apply as in supernet training (`nas.train.precision`).

Data parallel as the supernet trainer: every Ray Train worker draws the same path at each step,
takes its slice of the global batch and all-reduces the gradients (one GPU each on CUDA). Samples
are a pure function of (seed, epoch, index) and paths of (seed, step), so a run resumed from an
epoch checkpoint continues as the uninterrupted run would.

Outputs under `runs/<name>/pretrain/`: `last.pt` (model, optimizer, scaler, history; for `--resume`),
`backbone.pt` (the backbone's state dict, `stem.*` and `blocks.*`: what `supernet.backbone_checkpoint`
loads, shape-checked) and `history.json`, each replaced atomically after every epoch; TensorBoard
scalars under `runs/<name>/tb/pretrain/`.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from torch import nn

from nas.config import RunConfig
from nas.data.imagefolder import ImageFolder, open_image_folder
from nas.errors import ConfigError, TrackNASError
from nas.io import atomic_torch_save, atomic_write_json, torch_load
from nas.progress import Progress
from nas.space import Arch, SearchSpace, load_space
from nas.supernet import Supernet
from nas.tb import EventLog
from nas.train.lr import cosine_lr
from nas.train.paths import PathSampler
from nas.train.precision import Precision
from nas.train.supernet_trainer import (
    CHECKPOINT,
    HISTORY,
    all_reduce_mean,
    check_devices,
    make_optimizer,
    on_ray_worker,
    refuse_overwrite,
    run_loop,
    train_device,
)
from trackers.lighttrack.geometry import attachment, head_context

BACKBONE = "backbone.pt"


def pretrain_dir(cfg: RunConfig) -> Path:
    return Path(cfg.output) / "pretrain"


class BackboneClassifier(nn.Module):
    """The supernet's backbone with a linear classifier per output stage on its globally pooled features."""

    def __init__(self, space: SearchSpace, classes: int, weight_sharing: str = "none"):
        super().__init__()
        self.supernet = Supernet(space, weight_sharing)
        self.classifiers = nn.ModuleDict({at.stage: nn.Linear(at.channels, classes)
                                          for at in head_context(space).attachments})

    def forward(self, arch: Arch, images: torch.Tensor) -> torch.Tensor:
        features = self.supernet.view(arch).features(images)
        return self.classifiers[attachment(self.supernet.space, arch.output).stage](features.mean(dim=(2, 3)))


def check_pretrain(cfg: RunConfig) -> ImageFolder:
    """The up-front check of `pretrain-backbone`: a `pretrain:` section, the space, the ImageFolder and a
    batch that splits over the workers; one-line errors naming the config key."""
    if cfg.pretrain is None:
        raise ConfigError("missing section; pretrain-backbone needs pretrain: {root: IMAGEFOLDER, ...}",
                          source=cfg.source, key="pretrain")
    try:
        load_space(cfg.space)
    except TrackNASError as err:
        raise ConfigError(_detail(err), source=cfg.source, key="space") from None
    try:
        return open_image_folder(cfg.pretrain.root)
    except TrackNASError as err:
        raise ConfigError(_detail(err), source=cfg.source, key="pretrain.root") from None


def _detail(err: TrackNASError) -> str:
    return ": ".join(p for p in (err.source, err.key, err.detail) if p)


def pretrain(cfg: RunConfig, *, rank: int = 0, world: int = 1, resume: bool = False, progress: bool = True,
             log: TextIO | None = None, events: Path | None = None) -> list[dict]:
    """Train the backbone classifier; returns the per-epoch history (loss, top-1 accuracy, lr)."""
    pc = cfg.pretrain
    folder = check_pretrain(cfg)
    if pc.batch_size % world:
        raise ConfigError(f"expected a batch size divisible by the {world} workers, got {pc.batch_size}",
                          source=cfg.source, key="pretrain.batch_size")
    space = load_space(cfg.space)
    torch.manual_seed(cfg.seed)
    model = BackboneClassifier(space, len(folder.classes), cfg.supernet.weight_sharing)
    precision = Precision(cfg.supernet.amp, train_device(), cfg.supernet.channels_last)
    precision.prepare(model)
    optimizer = make_optimizer(pc, [{"params": list(model.parameters())}])
    paths = PathSampler(space, "uniform", seed=cfg.seed)
    criterion = nn.CrossEntropyLoss(label_smoothing=pc.label_smoothing)
    out_dir = pretrain_dir(cfg)
    images = pc.images_per_epoch or len(folder)
    steps = max(images // pc.batch_size, 1)
    local = pc.batch_size // world
    history: list[dict] = []
    start_epoch = 0
    if resume and (out_dir / CHECKPOINT).is_file():
        state = torch_load(out_dir / CHECKPOINT, map_location=precision.device)
        if state.get("space_hash") != space.hash or state.get("classes") != list(folder.classes):
            raise TrackNASError("checkpoint is for another space or class list than the config's",
                                source=str(out_dir / CHECKPOINT))
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        precision.load_state_dict(state.get("scaler"))
        history, start_epoch = list(state["history"]), int(state["epoch"])
        if rank == 0:
            print(f"resuming backbone pretraining after epoch {start_epoch}", file=log or sys.stdout, flush=True)
    tb = EventLog(events if rank == 0 else None)
    for epoch in range(start_epoch, pc.epochs):
        started = time.monotonic()
        order = np.random.default_rng([cfg.seed, 5, epoch]).permutation(len(folder))
        order = np.resize(order, steps * pc.batch_size)  # images_per_epoch may exceed the set: wrap around
        model.train()
        bar = Progress(steps, f"pretrain epoch {epoch + 1}/{pc.epochs}", enabled=progress and rank == 0,
                       interval=5.0, stream=log)
        losses, correct = [], 0
        for step in range(steps):
            global_step = epoch * steps + step
            lr = cosine_lr(global_step, steps=pc.epochs * steps, base=pc.lr, end=pc.end_lr,
                           warmup_steps=pc.warmup_epochs * steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            arch = paths(global_step)
            mine = order[step * pc.batch_size + rank * local: step * pc.batch_size + (rank + 1) * local]
            samples = [folder.sample(int(i), size=pc.image_size, seed=cfg.seed, epoch=epoch) for i in mine]
            x = precision.input(torch.from_numpy(np.stack([s[0] for s in samples])))
            y = torch.tensor([s[1] for s in samples], device=precision.device)
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                logits = model(arch, x).float()
            loss = criterion(logits, y)
            precision.backward(loss)
            stats = torch.tensor([loss.item(), float((logits.argmax(1) == y).sum())], dtype=torch.float64)
            if world > 1:
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                all_reduce_mean(grads + [stats], world)
            precision.step(optimizer)
            losses.append(float(stats[0]))
            correct += float(stats[1]) * world
            tb.scalars(global_step, {"step/loss": losses[-1], "step/lr": lr})
            bar.update(note=f"loss {np.mean(losses):.4f}")
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "accuracy": correct / (steps * pc.batch_size),
                  "chance_loss": math.log(len(folder.classes)), "lr": lr, "steps": steps,
                  "seconds": round(time.monotonic() - started, 2), "workers": world}
        history.append(record)
        tb.scalars(epoch + 1, {f"epoch/{k}": record[k] for k in ("loss", "accuracy", "lr", "seconds")})
        if rank == 0:
            _save(out_dir, model, optimizer, precision, history, space, folder, cfg)
            print(f"epoch {epoch + 1}/{pc.epochs}: loss {record['loss']:.4f} (chance {record['chance_loss']:.4f}), "
                  f"top-1 {record['accuracy']:.3f}, lr {lr:.2e} {record['seconds']:.1f}s",
                  file=log or sys.stdout, flush=True)
    tb.close()
    return history


def _save(out_dir: Path, model: BackboneClassifier, optimizer: torch.optim.Optimizer, precision: Precision,
          history: list[dict], space: SearchSpace, folder: ImageFolder, cfg: RunConfig) -> None:
    """The epoch's checkpoints: the resumable state, the backbone `supernet.backbone_checkpoint` loads, the history."""
    atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "scaler": precision.state_dict(), "history": history, "epoch": history[-1]["epoch"],
                       "space": space.name, "space_hash": space.hash, "classes": list(folder.classes),
                       "config": cfg.to_dict()}, out_dir / CHECKPOINT)
    atomic_torch_save(model.supernet.backbone_state_dict(), out_dir / BACKBONE)
    atomic_write_json(out_dir / HISTORY, history)


def _pretrain_worker(config: dict) -> None:
    on_ray_worker(config, pretrain_dir, pretrain)


def launch_pretrain(cfg: RunConfig, *, workers: int = 0, address: str | None = None, resume: bool = False,
                    tb: bool = True) -> list[dict]:
    """Pretrain in-process (`workers == 0`) or on `workers` Ray Train workers; every check runs first."""
    check_pretrain(cfg)
    refuse_overwrite(cfg, pretrain_dir(cfg), resume)
    if workers and cfg.pretrain.batch_size % workers:
        raise ConfigError(f"expected a batch size divisible by --workers {workers}, got {cfg.pretrain.batch_size}",
                          source=cfg.source, key="pretrain.batch_size")
    check_devices(cfg, workers=workers, address=address)
    return run_loop(cfg, pretrain, _pretrain_worker, out_dir=pretrain_dir(cfg), part="pretrain", workers=workers,
                    address=address, resume=resume, tb=tb, what="backbone pretraining")
