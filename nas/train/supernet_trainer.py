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

import functools
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

from nas.config import PretrainConfig, RunConfig, SupernetConfig
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
from nas.train.precision import Precision, check_amp
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


def train_device() -> torch.device:
    """The device of this process: its current CUDA device (Ray Train sets each worker's) or the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def _set_backbone_frozen(model: Supernet, frozen: bool) -> None:
    for module in (model.stem, model.blocks):
        for p in module.parameters():
            p.requires_grad_(not frozen)
        module.train(not frozen)


def all_reduce_mean(tensors: list[torch.Tensor], world: int) -> None:
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


def make_optimizer(sc: SupernetConfig | PretrainConfig, groups: list[dict]) -> torch.optim.Optimizer:
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


def load_backbone_checkpoint(model: Supernet, path: str | Path, *, source: str | None = None) -> None:
    """Load `supernet.backbone_checkpoint` (`pretrain-backbone`'s `backbone.pt`) into `model`, refusing in one
    line naming the file a state dict whose keys or shapes differ from its backbone; a model on the meta
    device is only checked (the up-front check of a run)."""
    state = torch_load(path)
    problem = model.check_backbone(state)
    if problem:
        raise ConfigError(f"{path} does not fit the space's backbone: {problem}", source=source,
                          key="supernet.backbone_checkpoint")
    if next(model.parameters()).device.type != "meta":
        model.load_backbone(state)


def supernet_target(cfg: RunConfig) -> TrainTarget:
    """LightTrack Alg. 1: the supernet of the config's space, one sampled path per step."""
    space = load_space(cfg.space)
    torch.manual_seed(cfg.seed)
    model = Supernet(space, cfg.supernet.weight_sharing)
    if cfg.supernet.backbone_checkpoint:
        load_backbone_checkpoint(model, cfg.supernet.backbone_checkpoint, source=cfg.source)
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
    device = train_device()
    precision = Precision(sc.amp, device, sc.channels_last)
    precision.prepare(model)
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
        precision.load_state_dict(state.get("scaler"))
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
                with precision.autocast():
                    outputs = precision.outputs(model(arch, precision.input(batch["template"]),
                                                      precision.input(batch["search"]),
                                                      batch["template_box"].to(device), labels["cls"]))
                weights = schedule.loss_weights(batch["bin"]).to(device) if schedule is not None else None
                loss, parts = tracking_loss(outputs, labels, weights)
                precision.backward(loss / len(my_shards))
                stats += torch.tensor([loss.item(), parts["cls"], parts["reg"]], dtype=torch.float64) / len(my_shards)
                if schedule is not None:
                    bins.extend(batch["bin"].tolist())
                    ious.extend(box_iou(predicted_boxes(outputs, space.spec.search_size, stride),
                                        batch["box"].to(device)).tolist())
            grads = [p.grad for p in model.path_parameters(arch) if p.grad is not None]
            if world > 1:
                all_reduce_mean(grads + [stats], world)
            precision.step(optimizer)
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
                               "scaler": precision.state_dict(),
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


WORKER_CPUS = 1
"""CPUs each Ray Train worker reserves; it runs that many torch intra-op threads whatever OMP_NUM_THREADS
says, so N workers never oversubscribe N CPUs and results do not depend on the environment."""


PROGRESS_LOG = "progress.log"
"""Rank 0's progress and epoch lines during a Ray run; the driver relays them to the terminal, once: Ray's
own worker and controller output stays in Ray's log files (`nas.raytools`)."""


def _rank_log(out_dir: Path, rank: int) -> TextIO:
    """Where a Ray Train worker writes progress: rank 0 appends to `out_dir/progress.log` (relayed by the
    driver), the other ranks to nowhere."""
    if rank:
        return open(os.devnull, "w")
    out_dir.mkdir(parents=True, exist_ok=True)
    return open(out_dir / PROGRESS_LOG, "a", encoding="utf-8")


def on_ray_worker(config: dict, out_dir: Callable[[RunConfig], Path], loop: Callable[..., Any]) -> None:
    """The body of a Ray Train worker started by `fit_on_ray`: `WORKER_CPUS` torch threads, the run config,
    rank 0's progress log in `out_dir(cfg)`, then `loop(cfg, rank=, world=, resume=, log=, events=)`."""
    import ray.train

    torch.set_num_threads(WORKER_CPUS)
    ctx = ray.train.get_context()
    cfg = RunConfig.from_dict(config["run"])
    rank = ctx.get_world_rank()
    with _rank_log(out_dir(cfg), rank) as log:
        loop(cfg, rank=rank, world=ctx.get_world_size(), resume=config["resume"], log=log,
             events=Path(config["events"]) if config["events"] else None)


def _ray_worker(config: dict) -> None:
    import ray.train

    on_ray_worker(config, supernet_dir, functools.partial(train, report=ray.train.report))


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


def check_devices(cfg: RunConfig, *, workers: int, address: str | None, search: bool = False) -> None:
    """Device settings a local run cannot honour, refused in one line before any work: fp16 without CUDA,
    more Ray Train workers than GPUs on a CUDA machine (one worker per GPU; Ray would wait forever) and,
    for a `search`, fitness actors asking for a GPU fraction on a machine without one."""
    if address:
        return  # the cluster's workers decide; `fit_on_ray` checks its GPU count once connected
    cuda = torch.cuda.is_available()
    check_amp(cfg.supernet.amp, cuda, source=cfg.source)
    if search and cfg.search.gpus_per_worker > 0 and not cuda:
        raise ConfigError(f"expected 0 on a machine without CUDA (fitness actors would wait for a GPU forever), "
                          f"got {cfg.search.gpus_per_worker:g}", source=cfg.source, key="search.gpus_per_worker")
    if cuda and workers > torch.cuda.device_count():
        raise ConfigError(f"expected at most {torch.cuda.device_count()} workers on this machine (one Ray Train "
                          f"worker per GPU), got {workers}", key="--workers")


def train_scaling(workers: int, gpus: bool):
    """Ray Train's resources: `workers` workers of one CPU each, and one GPU each when `gpus`."""
    from ray.train import ScalingConfig

    return ScalingConfig(num_workers=workers, use_gpu=gpus,
                         resources_per_worker={"CPU": WORKER_CPUS, **({"GPU": 1} if gpus else {})})


def launch(cfg: RunConfig, *, workers: int = 0, address: str | None = None, resume: bool = False,
           tb: bool = True) -> list[dict]:
    """Train in-process (`workers == 0`) or on `workers` Ray Train workers (local or at `address`); `tb`:
    TensorBoard event files under `runs/<name>/tb/supernet/` (rank 0 writes them, a worker on Ray)."""
    if workers < 0:
        raise ConfigError(f"expected --workers >= 0, got {workers}", key="--workers")
    refuse_overwrite(cfg, supernet_dir(cfg), resume)
    check_devices(cfg, workers=workers, address=address)
    ensure_data(cfg)
    return run_loop(cfg, train, _ray_worker, out_dir=supernet_dir(cfg), part="supernet", workers=workers,
                    address=address, resume=resume, tb=tb, what="supernet training")


def refuse_overwrite(cfg: RunConfig, out_dir: Path, resume: bool) -> None:
    """A finished or interrupted run's checkpoint is continued with --resume, never silently replaced."""
    if not resume and (out_dir / CHECKPOINT).is_file():
        raise ConfigError(f"{out_dir / CHECKPOINT} exists; pass --resume to continue that run or "
                          "choose another name/output", source=cfg.source, key="output")


def run_loop(cfg: RunConfig, loop: Callable[..., list[dict]], worker: Callable[[dict], None], *, out_dir: Path,
             part: str, workers: int, address: str | None, resume: bool, tb: bool, what: str) -> list[dict]:
    """`loop(cfg, resume=, events=)` in-process (`workers == 0`), or `worker` on Ray Train workers; returns the
    history (rank 0's `out_dir/history.json` on Ray). TensorBoard events go to `runs/<name>/tb/<part>/`."""
    events = tb_dir(cfg.output, part, tb)
    if workers == 0:
        return loop(cfg, resume=resume, events=events)
    fit_on_ray(cfg, worker, {"run": cfg.to_dict(), "resume": resume, "events": str(events.resolve()) if events else None},
               workers=workers, address=address, out_dir=out_dir, what=what)
    return json.loads((out_dir / HISTORY).read_text())


def fit_on_ray(cfg: RunConfig, worker: Callable[[dict], None], loop_config: dict, *, workers: int,
               address: str | None, out_dir: Path, what: str) -> None:
    """Run `worker(loop_config)` on `workers` Ray Train workers (one GPU each when the cluster has GPUs,
    NCCL then, else gloo), relaying rank 0's `out_dir/progress.log` to the terminal once."""
    import uuid

    from nas.raytools import init_ray, ray_failure, ray_log_dir, shutdown_ray
    import ray
    from ray.train import RunConfig as RayRunConfig, TrainingFailedError
    from ray.train.torch import TorchTrainer

    from nas.raytrain import torch_config

    log_dir = run_log_dir(cfg)
    started = init_ray(address=address, num_cpus=None if address else workers, log_dir=log_dir)
    relay = _Relay(out_dir / PROGRESS_LOG, sys.stderr)
    relay.start()
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus and workers > gpus:
            raise ConfigError(f"expected at most {gpus} workers (one Ray Train worker per GPU of the cluster), "
                              f"got {workers}", key="--workers")
        print(f"{what} on {workers} Ray workers{' (one GPU each)' if gpus else ''} (Ray's logs: {ray_log_dir()})",
              flush=True)
        trainer = TorchTrainer(
            worker, train_loop_config=loop_config, scaling_config=train_scaling(workers, gpus > 0),
            torch_config=torch_config("nccl" if gpus else "gloo", address),
            run_config=RayRunConfig(name=f"{out_dir.name}-{uuid.uuid4().hex[:8]}",
                                    storage_path=str((out_dir / "ray").resolve())))
        try:
            result = trainer.fit()
        except (TrainingFailedError, ray.exceptions.RayError) as exc:
            raise ray_failure(f"{what} failed on a Ray worker", exc) from None
        if result.error is not None:
            raise ray_failure(f"{what} failed on a Ray worker", result.error)
    finally:
        relay.stop()
        if started:
            shutdown_ray(log_dir)
