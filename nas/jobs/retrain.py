"""Retrain a found architecture as a standalone model (LightTrack's step 4), then evaluate it.

The subnet trains with the run config's data and `supernet` hyper-parameters through the same loop
as the supernet (a fixed path instead of a sampled one), from scratch or from the weights it
inherits from the run's supernet. With `tune_trials > 0` a Ray Tune sweep (ASHA on the training
loss) explores the learning rate and weight decay first, each trial a full training run on one
CPU; the best trial's model is kept. The result is evaluated on the validation split by the one
harness and written as an export directory (`tracknas evaluate` accepts it).

    <out>/export/     arch.json, space.yaml, model.pt
    <out>/results/    per-sequence result files, metrics.json, success_precision.png
    <out>/history.json, last.pt (or trials/<id>/... with a sweep), retrain.json (summary)
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from nas.config import RunConfig
from nas.data.datasets import open_dataset
from nas.errors import ConfigError
from nas.fitness.harness import run_tracker
from nas.io import atomic_write_json, torch_load
from nas.progress import Progress
from nas.space import Arch
from nas.supernet import Supernet
from nas.tb import TB_DIR
from nas.train.supernet_trainer import CHECKPOINT, TrainTarget, run_log_dir, supernet_dir, train
from trackers.lighttrack.export import write_export
from trackers.lighttrack.model import LightTrackSubnet, build_subnet
from trackers.lighttrack.tracker import LightTrackSpec

INITS = ("scratch", "supernet")


class FixedPath(nn.Module):
    """A standalone subnet behind the supernet's training interface (the path never changes)."""

    def __init__(self, subnet: LightTrackSubnet):
        super().__init__()
        self.subnet = subnet
        self.space = subnet.space

    @property
    def stem(self) -> nn.Module:
        return self.subnet.stem

    @property
    def blocks(self) -> nn.Module:
        return self.subnet.blocks

    def arch_stride(self, arch: Arch) -> int:
        return self.subnet.stride

    def path_parameters(self, arch: Arch) -> list[nn.Parameter]:
        return list(self.subnet.parameters())

    def forward(self, arch: Arch, z: torch.Tensor, x: torch.Tensor, z_box: torch.Tensor | None = None,
                cls_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return self.subnet(z, x, z_box, cls_labels)


def subnet_target(cfg: RunConfig, arch: Arch, init: str, out_dir: Path) -> TrainTarget:
    if init not in INITS:
        raise ConfigError(f"expected one of {', '.join(INITS)}, got {init!r}", key="--init")
    torch.manual_seed(cfg.seed)
    subnet = build_subnet(arch.space, arch)
    if init == "supernet":
        checkpoint = supernet_dir(cfg) / CHECKPOINT
        if not checkpoint.is_file():
            raise ConfigError("--init supernet needs the run's trained supernet (run train-supernet or search "
                              "first)", source=str(checkpoint))
        state = torch_load(checkpoint)
        supernet = Supernet(arch.space, state.get("weight_sharing", "none"))
        supernet.load_state_dict(state["model"])
        subnet.load_state_dict(supernet.extract(arch).state_dict())
    return TrainTarget(FixedPath(subnet), lambda step: arch, out_dir, "subnet")


def _trained_subnet(out_dir: Path, arch: Arch) -> LightTrackSubnet:
    subnet = build_subnet(arch.space, arch)
    state = torch_load(out_dir / CHECKPOINT)["model"]
    subnet.load_state_dict({k.removeprefix("subnet."): v for k, v in state.items()})
    return subnet.eval()


def _sweep(cfg: RunConfig, arch: Arch, init: str, out_dir: Path, trials: int, workers: int,
           address: str | None) -> tuple[Path, dict]:
    """ASHA over lr and weight decay; returns the best trial's directory and its parameters."""
    import nas.raytools
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    sc = cfg.supernet

    def trainable(params: dict) -> None:
        trial_dir = out_dir / "trials" / tune.get_context().get_trial_id()
        trial_cfg = replace(cfg, supernet=replace(sc, lr=params["lr"], weight_decay=params["weight_decay"]))
        train(trial_cfg, target=subnet_target(trial_cfg, arch, init, trial_dir), progress=False,
              events=trial_dir / TB_DIR, report=lambda record: tune.report({"loss": record["loss"], "epoch": record["epoch"],
                                                  "trial_dir": str(trial_dir)}))

    class TrialProgress(tune.Callback):
        """The sweep as one progress display on the driver (Tune's own reporter is off: `verbose=0`).
        The display is made in `setup`, not `__init__`: the Tuner pickles its callbacks, a stream cannot be."""

        def setup(self, stop=None, num_samples: int | None = None, total_num_samples: int | None = None,
                  **info) -> None:
            self.bar = Progress(total_num_samples or trials, "retrain sweep", interval=5.0)

        def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
            self.bar.update(note=f"trial {trial.trial_id} loss {trial.last_result.get('loss', float('nan')):.4f}")

        def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
            self.bar.update(note=f"trial {trial.trial_id} failed")

    space = {"lr": tune.loguniform(sc.lr / 10, sc.lr * 3), "weight_decay": tune.loguniform(1e-5, 1e-3)}
    log_dir = run_log_dir(cfg)
    started = nas.raytools.init_ray(address=address, num_cpus=None if address else max(workers, 1), log_dir=log_dir)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}), param_space=space,
            tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=trials,
                                        max_concurrent_trials=max(workers, 1),
                                        scheduler=ASHAScheduler(max_t=sc.epochs, grace_period=1, reduction_factor=2)),
            run_config=tune.RunConfig(name="sweep", storage_path=str((out_dir / "tune").resolve()), verbose=0,
                                      callbacks=[TrialProgress()]))
        try:
            best = tuner.fit().get_best_result(metric="loss", mode="min", scope="last")
        except (ray.exceptions.RayError, tune.TuneError) as exc:
            raise nas.raytools.ray_failure("the retraining sweep failed", exc) from None
    finally:
        if started:
            nas.raytools.shutdown_ray(log_dir)
    if best.error is not None or best.metrics is None:
        raise ConfigError(f"every tuning trial failed ({best.error})", source=str(out_dir / "tune"))
    return Path(best.metrics["trial_dir"]), {"lr": best.config["lr"], "weight_decay": best.config["weight_decay"],
                                             "loss": best.metrics["loss"], "epochs": best.metrics["epoch"]}


def retrain(cfg: RunConfig, arch: Arch, arch_json: dict, *, init: str = "scratch", tune_trials: int = 0,
            workers: int = 0, address: str | None = None, out_dir: Path | None = None) -> dict:
    out_dir = Path(out_dir or Path(cfg.output) / "retrain" / arch.arch_id)
    if tune_trials < 0:
        raise ConfigError(f"expected --tune >= 0, got {tune_trials}", key="--tune")
    if tune_trials:
        trained_dir, tuned = _sweep(cfg, arch, init, out_dir, tune_trials, workers, address)
    else:
        train(cfg, target=subnet_target(cfg, arch, init, out_dir), events=out_dir / TB_DIR)
        trained_dir, tuned = out_dir, None
    export = write_export(out_dir / "export", arch_json, _trained_subnet(trained_dir, arch))
    sequences = open_dataset(cfg.data.root, cfg.data.format, cfg.fitness.val_split)
    metrics = run_tracker(LightTrackSpec(str(export)), sequences, out_dir / "results", workers=max(workers, 1),
                          backend="process" if workers > 1 else "serial", label=f"retrained {arch.arch_id}")
    history = json.loads((trained_dir / "history.json").read_text())
    summary = {"arch_id": arch.arch_id, "init": init, "epochs": len(history), "final_loss": history[-1]["loss"],
               "tuned": tuned, "export": str(export), "metrics": {k: v for k, v in metrics.items()
                                                                  if isinstance(v, (int, float, str)) or v is None}}
    atomic_write_json(out_dir / "retrain.json", summary)
    return summary
