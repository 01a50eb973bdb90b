"""Supernet training (LightTrack Alg. 1): one sampled path per step, only that path's weights update.

The same `train` loop runs in-process (`world == 1`) and inside every Ray Train worker. Workers draw
the same path at each step without talking (paths are a pure function of seed and step), split
the step's global batch by rank, and average the path's gradients with one all-reduce (what DDP
would do, without DDP's per-step search for unused parameters in a single-path supernet).

A step's batch is cut into `shards` equal parts, each run forward/backward on its own (BatchNorm
sees one shard) and the gradients averaged. Ranks take disjoint shards, so a run with
`shards = N` gives the same numbers in-process and on N workers, up to float summation order.
BatchNorm running statistics are the exception: each rank tracks its own and rank 0's are saved;
they are re-estimated by BN recalibration before any evaluation, as LightTrack does. Pairs are
a pure function of (seed, epoch, index) and the path of (seed, step), so a run resumed from its
last epoch checkpoint continues exactly as the uninterrupted run would.

Outputs under `<output>/supernet/`: `last.pt` (model, optimizer, schedule and history; replaced
atomically after every epoch) and `history.json` (one record per epoch: losses, lr, sampled-path
FLOPs, schedule log).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn

from nas.config import RunConfig, SupernetConfig
from nas.cost.table import cost_table
from nas.data.loader import pair_batches
from nas.data.mixture import open_sources
from nas.data.pairs import PairSampler
from nas.data.synth import generate_dataset
from nas.errors import ConfigError, TrackNASError
from nas.io import atomic_torch_save, atomic_write_json, torch_load
from nas.progress import Progress
from nas.space import Arch, load_space
from nas.supernet import Supernet
from nas.tb import EventLog, tb_dir
from nas.train.lr import epoch_lr
from nas.train.paths import PathSampler
from nas.train.sstrack import SSTrackSchedule, make_interval_strategy
from trackers.lighttrack.geometry import output_strides
from trackers.lighttrack.losses import box_iou, predicted_boxes, tracking_loss

CHECKPOINT = "last.pt"
HISTORY = "history.json"


def supernet_dir(cfg: RunConfig) -> Path:
    return Path(cfg.output) / "supernet"


def run_log_dir(cfg: RunConfig) -> Path:
    """`runs/<name>/logs/`: Ray's logs for every stage of the run (see `nas.raytools`)."""
    return Path(cfg.output) / "logs"


def data_ready(cfg: RunConfig) -> bool:
    """The config's data is there: a non-empty folder, or a complete synthesis (each split's list.txt is
    written last)."""
    root = Path(cfg.data.root)
    if cfg.data.synthesize is None:
        return root.is_dir() and any(root.iterdir())
    return all((root / split / "list.txt").is_file() for split in ("train", "val"))


def ensure_data(cfg: RunConfig) -> None:
    """Create the embedded default data when the config asks for it and it is not there yet."""
    if data_ready(cfg):
        return
    root = Path(cfg.data.root)
    if cfg.data.synthesize is None:
        raise ConfigError(f"dataset not found at {root}; give data.synthesize to create the default data",
                          source=cfg.source, key="data.root")
    print(f"synthesising the default data into {root} ...", flush=True)
    generate_dataset(root, **{"overwrite": True, **cfg.data.synthesize})  # finishes an interrupted synthesis


def _device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def _set_backbone_frozen(model: Supernet, frozen: bool) -> None:
    for module in (model.stem, model.blocks):
        for p in module.parameters():
            p.requires_grad_(not frozen)
        module.train(not frozen)


def _all_reduce_mean(tensors: list[torch.Tensor], world: int) -> None:
    import torch.distributed as dist

    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for t in tensors:
        t.copy_(flat[offset: offset + t.numel()].view_as(t))
        offset += t.numel()


def _gather(values: list, world: int) -> list:
    if world == 1:
        return values
    import torch.distributed as dist

    out: list = [None] * world
    dist.all_gather_object(out, values)
    return [v for part in out for v in part]


def make_optimizer(sc: SupernetConfig, groups: list[dict]) -> torch.optim.Optimizer:
    """SGD with momentum (LightTrack's choice at batch 256) or AdamW, which copes with the few, small,
    noisy steps of a CPU-sized run; both start at `sc.lr` and follow the epoch schedule."""
    if sc.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=sc.lr, weight_decay=sc.weight_decay)
    return torch.optim.SGD(groups, lr=sc.lr, momentum=sc.momentum, weight_decay=sc.weight_decay)


@dataclass
class TrainTarget:
    """What a run optimises: a model that runs one architecture per step (`forward(arch, z, x, z_box,
    cls_labels)`: the template box feeds DiMP heads, the labels a gradnet update's inner loss),
    `arch_stride`, `path_parameters`, `stem`/`blocks` for the backbone), the architecture of each
    step, and where its checkpoint and history go."""

    model: nn.Module
    paths: Callable[[int], Arch]
    out_dir: Path
    label: str


def supernet_target(cfg: RunConfig) -> TrainTarget:
    """LightTrack Alg. 1: the supernet of the config's space, one sampled path per step."""
    space = load_space(cfg.space)
    torch.manual_seed(cfg.seed)
    model = Supernet(space, cfg.supernet.weight_sharing)
    if cfg.supernet.backbone_checkpoint:
        model.load_backbone(torch_load(cfg.supernet.backbone_checkpoint))
    paths = PathSampler(space, cfg.supernet.path_sampler, cfg.supernet.path_bounds(), seed=cfg.seed)
    return TrainTarget(model, paths, supernet_dir(cfg), "supernet")


def train(cfg: RunConfig, *, target: TrainTarget | None = None, rank: int = 0, world: int = 1,
          resume: bool = False, report: Callable[[dict], Any] | None = None, progress: bool = True,
          log: TextIO | None = None, events: Path | None = None) -> list[dict]:
    """Train `target` (default: the config's supernet) with the config's `supernet` hyper-parameters;
    returns the per-epoch history (identical on every rank). Rank 0 writes progress and epoch lines to
    `log` (default: the terminal) and, given `events`, TensorBoard scalars there (`nas.tb`)."""
    sc = cfg.supernet
    shards = max(sc.shards, world)
    if shards % world or sc.batch_size % shards:
        raise ConfigError(f"batch_size {sc.batch_size} must split into {shards} shards spread evenly over "
                          f"{world} workers", source=cfg.source, key="supernet.shards")
    target = target or supernet_target(cfg)
    model, paths, label = target.model, target.paths, target.label
    space = model.space
    device = _device()
    model.to(device)
    sources = cfg.data.training_sources()
    videos = open_sources(sources)
    interval = make_interval_strategy(sc.schedule, source=cfg.source)
    schedule = interval if isinstance(interval, SSTrackSchedule) else None
    pairs = PairSampler(videos, template_size=space.spec.template_size, search_size=space.spec.search_size,
                        strides=output_strides(space), interval=interval, length=sc.pairs_per_epoch, seed=cfg.seed,
                        weights=[s["weight"] for s in sources])
    backbone = {id(p) for m in (model.stem, model.blocks) for p in m.parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) in backbone], "name": "backbone"},
              {"params": [p for p in model.parameters() if id(p) not in backbone], "name": "heads"}]
    optimizer = make_optimizer(sc, groups)
    history: list[dict] = []
    out_dir = target.out_dir
    start_epoch = 0
    if resume and (out_dir / CHECKPOINT).is_file():
        state = torch_load(out_dir / CHECKPOINT, map_location=device)
        if state["space_hash"] != space.hash:
            raise TrackNASError(f"checkpoint is for space hash {state['space_hash']}, config has {space.hash}",
                                source=str(out_dir / CHECKPOINT))
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(state["schedule"])
        history, start_epoch = list(state["history"]), int(state["epoch"])
        if rank == 0:
            print(f"resuming {label} training after epoch {start_epoch}", file=log or sys.stdout, flush=True)

    table = cost_table(space)
    steps = sc.pairs_per_epoch // sc.batch_size
    shard_size = sc.batch_size // shards
    my_shards = range(rank * shards // world, (rank + 1) * shards // world)
    tb = EventLog(events if rank == 0 else None)
    for epoch in range(start_epoch, sc.epochs):
        started = time.monotonic()
        pairs.set_epoch(epoch)
        lr = epoch_lr(epoch, epochs=sc.epochs, base=sc.lr, warmup_epochs=sc.warmup_epochs,
                      warmup_start=sc.warmup_lr, end=sc.end_lr)
        frozen = epoch < sc.freeze_backbone_epochs
        model.train()
        _set_backbone_frozen(model, frozen)
        optimizer.param_groups[0]["lr"] = lr * sc.backbone_lr_mult
        optimizer.param_groups[1]["lr"] = lr
        bar = Progress(steps, f"{label} epoch {epoch + 1}/{sc.epochs}", enabled=progress and rank == 0, interval=5.0,
                       stream=log)
        losses, cls_parts, reg_parts, flops, bins, ious = [], [], [], [], [], []
        starts = [step * sc.batch_size + shard * shard_size for step in range(steps) for shard in my_shards]
        batches = pair_batches(pairs, [range(first, first + shard_size) for first in starts],
                               workers=sc.data_workers, pin_memory=device.type == "cuda", seed=cfg.seed)
        for step in range(steps):
            arch = paths(epoch * steps + step)
            stride = model.arch_stride(arch)
            optimizer.zero_grad(set_to_none=True)
            stats = torch.zeros(3, dtype=torch.float64)
            for shard in my_shards:
                batch = next(batches)
                labels = {k: v.to(device) for k, v in batch["labels"][stride].items()}
                outputs = model(arch, batch["template"].to(device), batch["search"].to(device),
                                batch["template_box"].to(device), labels["cls"])
                weights = schedule.loss_weights(batch["bin"]).to(device) if schedule is not None else None
                loss, parts = tracking_loss(outputs, labels, weights)
                (loss / len(my_shards)).backward()
                stats += torch.tensor([loss.item(), parts["cls"], parts["reg"]], dtype=torch.float64) / len(my_shards)
                if schedule is not None:
                    bins.extend(batch["bin"].tolist())
                    ious.extend(box_iou(predicted_boxes(outputs, space.spec.search_size, stride),
                                        batch["box"].to(device)).tolist())
            grads = [p.grad for p in model.path_parameters(arch) if p.grad is not None]
            if world > 1:
                _all_reduce_mean(grads + [stats], world)
            optimizer.step()
            losses.append(float(stats[0]))
            cls_parts.append(float(stats[1]))
            reg_parts.append(float(stats[2]))
            flops.append(table.flops(arch))
            tb.scalars(epoch * steps + step, {"step/loss": losses[-1], "step/cls": cls_parts[-1],
                                              "step/reg": reg_parts[-1], "step/lr": lr})
            bar.update(note=f"loss {np.mean(losses):.4f}")
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "cls": float(np.mean(cls_parts)),
                  "reg": float(np.mean(reg_parts)), "lr": lr, "backbone_frozen": frozen, "steps": steps,
                  "path_flops": {"mean": float(np.mean(flops)), "min": int(min(flops)), "max": int(max(flops))},
                  "seconds": round(time.monotonic() - started, 2), "workers": world, "shards": shards}
        if schedule is not None:
            record["schedule"] = schedule.update_epoch(_gather(bins, world), _gather(ious, world))
        history.append(record)
        _log_epoch(tb, record)
        if rank == 0:
            atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "schedule": schedule.state_dict() if schedule is not None else None,
                               "history": history, "epoch": epoch + 1, "space": space.name,
                               "weight_sharing": getattr(model, "weight_sharing", "none"),
                               "space_hash": space.hash, "config": cfg.to_dict()}, out_dir / CHECKPOINT)
            atomic_write_json(out_dir / HISTORY, history)
            print(f"epoch {epoch + 1}/{sc.epochs}: loss {record['loss']:.4f} (cls {record['cls']:.4f}, "
                  f"reg {record['reg']:.4f}) lr {lr:.2e} {record['seconds']:.1f}s", file=log or sys.stdout, flush=True)
        if report is not None:
            report({k: v for k, v in record.items() if not isinstance(v, dict)})
    tb.close()
    return history


def _log_epoch(tb: EventLog, record: dict) -> None:
    """An epoch's mean losses and lr, and SSTrack's per-bin q, Gamma, p and its tau, d (when scheduled)."""
    epoch = record["epoch"]
    tb.scalars(epoch, {f"epoch/{key}": record[key] for key in ("loss", "cls", "reg", "lr", "seconds")})
    schedule = record.get("schedule")
    if schedule is not None:
        tb.scalars(epoch, {"sstrack/tau": schedule["tau"], "sstrack/d": schedule["d"]})
        for key in ("q", "gamma", "p"):
            tb.scalars(epoch, {f"sstrack/{key}/bin{i}": value for i, value in enumerate(schedule[key])})


_WORKER_CPUS = 1
"""CPUs each Ray Train worker reserves; it runs that many torch intra-op threads whatever OMP_NUM_THREADS
says, so N workers never oversubscribe N CPUs and results do not depend on the environment."""


PROGRESS_LOG = "progress.log"
"""Rank 0's progress and epoch lines during a Ray run; the driver relays them to the terminal, once: Ray's
own worker and controller output stays in Ray's log files (`nas.raytools`)."""


def _ray_worker(config: dict) -> None:
    import ray.train

    torch.set_num_threads(_WORKER_CPUS)
    ctx = ray.train.get_context()
    cfg = RunConfig.from_dict(config["run"])
    rank = ctx.get_world_rank()
    path = supernet_dir(cfg) / PROGRESS_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") if rank == 0 else open(os.devnull, "w") as log:
        train(cfg, rank=rank, world=ctx.get_world_size(), resume=config["resume"], report=ray.train.report, log=log,
              events=Path(config["events"]) if config["events"] else None)


class _Relay(threading.Thread):
    """Copies lines appended to `path` (rank 0's progress log) to `stream` until stopped."""

    def __init__(self, path: Path, stream: TextIO):
        super().__init__(daemon=True)
        self.path, self.stream, self.done = path, stream, threading.Event()
        self.offset = path.stat().st_size if path.is_file() else 0

    def pump(self) -> None:
        if self.path.is_file():
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                fh.seek(self.offset)
                text = fh.read()
            cut = text.rfind("\n") + 1  # only whole lines
            if cut:
                self.stream.write(text[:cut])
                self.stream.flush()
                self.offset += len(text[:cut].encode("utf-8"))

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.pump()

    def stop(self) -> None:
        self.done.set()
        self.join()
        self.pump()


def launch(cfg: RunConfig, *, workers: int = 0, address: str | None = None, resume: bool = False,
           tb: bool = True) -> list[dict]:
    """Train in-process (`workers == 0`) or on `workers` Ray Train workers (local or at `address`); `tb`:
    TensorBoard event files under `runs/<name>/tb/supernet/` (rank 0 writes them, a worker on Ray)."""
    if workers < 0:
        raise ConfigError(f"expected --workers >= 0, got {workers}", key="--workers")
    if not resume and (supernet_dir(cfg) / CHECKPOINT).is_file():
        raise ConfigError(f"{supernet_dir(cfg) / CHECKPOINT} exists; pass --resume to continue that run or "
                          "choose another name/output", source=cfg.source, key="output")
    ensure_data(cfg)
    events = tb_dir(cfg.output, "supernet", tb)
    if workers == 0:
        return train(cfg, resume=resume, events=events)
    import uuid

    from nas.raytools import init_ray, ray_failure, ray_log_dir, shutdown_ray
    import ray
    from ray.train import RunConfig as RayRunConfig, ScalingConfig, TrainingFailedError
    from ray.train.torch import TorchTrainer

    from nas.raytrain import torch_config

    cuda = torch.cuda.is_available()
    log_dir = run_log_dir(cfg)
    started = init_ray(address=address, num_cpus=None if address else workers, log_dir=log_dir)
    relay = _Relay(supernet_dir(cfg) / PROGRESS_LOG, sys.stderr)
    relay.start()
    print(f"training on {workers} Ray workers (Ray's logs: {ray_log_dir()})", flush=True)
    try:
        trainer = TorchTrainer(
            _ray_worker, train_loop_config={"run": cfg.to_dict(), "resume": resume,
                                                "events": str(events.resolve()) if events else None},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=cuda, resources_per_worker={"CPU": _WORKER_CPUS}),
            torch_config=torch_config("nccl" if cuda else "gloo", address),
            run_config=RayRunConfig(name=f"train-supernet-{uuid.uuid4().hex[:8]}",
                                    storage_path=str((supernet_dir(cfg) / "ray").resolve())))
        try:
            result = trainer.fit()
        except (TrainingFailedError, ray.exceptions.RayError) as exc:
            raise ray_failure("supernet training failed on a Ray worker", exc) from None
        if result.error is not None:
            raise ray_failure("supernet training failed on a Ray worker", result.error)
    finally:
        relay.stop()
        if started:
            shutdown_ray(log_dir)
    return json.loads((supernet_dir(cfg) / HISTORY).read_text())
