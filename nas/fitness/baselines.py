"""Baselines in the one harness: train small baselines, track and score every tracker alike, one table.

Every tracker (LightTrack-Mobile, a found LightTrack subnet, GradNet on SiamFC, MetaRTT with and
without its one-shot pruning, DiMP without IoU-Net) runs through `nas.fitness.harness.run_tracker`
on the same sequences, so every number comes from the same result files and the same scoring code:

* AUC and precision (P@20): the OTB one-pass protocol (`score_results(..., "otb")`);
* AO and SR0.5: `score_results(..., "got10k")` on the same files: frames 2.. with IoU bounded by the
  image; frames with cover == 0 are excluded where the dataset has cover labels (GOT-10k layout,
  the synthetic data), and every frame counts where it has none (OTB), so on OTB data AO is the
  mean IoU over frames 2.. and SR0.5 the fraction of those frames with IoU > 0.5;
* FPS: the harness timings (tracker calls only, initialisation frame included), OTB-style mean of
  the per-sequence speeds.

Per-frame cost (`frame_cost`) is the network work of one `track()` call at the tracker's own input
size, as each tracker's spec defines it (`TrackerSpec.frame_network`: e.g. GradNet's 3-scale pyramid
and both correlations, MetaRTT's candidate scoring after `initialize`, so the pruned variant counts
its sliced network; online learning is excluded), counted by fvcore (1 multiply-add = 1 FLOP); the
LightTrack specs read the equal cost table instead. Params are those of that per-frame network.

Each trained baseline brings its `--train-config` section (`trackers.spec.BaselineTraining`): its
settings, training and specs. `TRAINED` registers them; this module only drives and compares.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from nas.config import typed_section
from nas.cost.counting import count_flops, count_params
from nas.data.sequence import Sequence, split_trackable
from nas.errors import ConfigError, DataError
from nas.fitness.harness import TrackerFactory, run_tracker
from nas.fitness.plots import plot_success_precision
from nas.fitness.scoring import score_results
from nas.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from trackers.dimp.baseline import DiMPBaseline
from trackers.gradnet.baseline import GradNetBaseline
from trackers.identity import IdentityTracker
from trackers.lighttrack.tracker import LightTrackSpec
from trackers.metartt.baseline import MetaRTTBaseline
from trackers.runtime import DEFAULT_RUNTIME, check_runtime
from trackers.spec import BaselineTraining

TRAINED: dict[str, type[BaselineTraining]] = {cls.key: cls for cls in (GradNetBaseline, MetaRTTBaseline, DiMPBaseline)}
"""The trained baselines, in table order: the registry a new one is added to."""
BASELINE_NAMES = ("lighttrack-mobile", *(name for cls in TRAINED.values() for name in cls.tracker_names))
CHECKPOINT_NAMES = tuple(cls.checkpoint_name for cls in TRAINED.values())
SUBNET_NAME = "lighttrack-subnet"
IDENTITY_NAME = "identity"  # the do-nothing floor, first in every table
TABLE_JSON, TABLE_MD, SPEED_PLOT, CURVES_PLOT = ("baselines.json", "baselines.md", "speed_accuracy.png",
                                                 "success_precision.png")


@dataclass(frozen=True)
class BaselineConfig:
    """The small training settings of every trained baseline (`--train-config` YAML, all keys optional).

    One section per `TRAINED` entry (its fields, plus `tracker` overrides), e.g.:

    ```yaml
    seed: 0
    gradnet: {epochs: 2, pairs_per_epoch: 64, batch_size: 8, lr: 0.001, channels: [96, 256, 384, 384, 256],
              tracker: {num_scales: 3}}
    metartt: {episodes: 40, episodes_per_step: 2, frames: 4, prune_steps: 10, lr: 0.0001, prune_lr: 0.001,
              lasso_weight: 0.001,
              channels: [96, 256, 512], fc_widths: [512, 512], tracker: {n_neg_init: 5000}}
    dimp: {epochs: 2, episodes_per_epoch: 64, batch_size: 8, lr: 0.001, widths: [16, 24, 32, 64, 64],
           feature_dim: 64, image_sample_size: 160, tracker: {train_skipping: 20}}
    ```
    """

    seed: int = 0
    sections: dict[str, BaselineTraining] = field(default_factory=lambda: {k: cls() for k, cls in TRAINED.items()})

    def __getitem__(self, key: str) -> BaselineTraining:
        return self.sections[key]


def parse_baseline_config(data: Any, source: str) -> BaselineConfig:
    """A validated `BaselineConfig`; every problem is a one-line ConfigError naming the key."""
    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(message, source=source, key=key)

    data = {} if data is None else data
    expected = ", ".join(["seed", *TRAINED])
    if not isinstance(data, dict):
        raise fail("", f"expected a mapping with {expected}")
    unknown = sorted(set(data) - {"seed", *TRAINED})
    if unknown:
        raise fail(unknown[0], f"unknown key; expected one of {expected}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise fail("seed", f"expected a non-negative integer, got {seed!r}")
    sections = {}
    for name, cls in TRAINED.items():
        in_section = lambda key, msg, name=name: fail(f"{name}.{key}", msg)  # noqa: E731
        values = typed_section(data, name, cls, fail)
        typed_section(values, "tracker", cls.tracker_config, in_section)
        sections[name] = cls(**values)
        sections[name].check(in_section)
    return BaselineConfig(seed=seed, sections=sections)


def load_baseline_config(path: str | os.PathLike) -> BaselineConfig:
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read config ({err.strerror})", source=source) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"not valid YAML ({getattr(err, 'problem', err)})", source=source) from None
    return parse_baseline_config(data, source)


def train_baselines(train_sequences: list[Sequence], out_dir: str | os.PathLike,
                    config: BaselineConfig = BaselineConfig(), progress: bool = True) -> dict[str, Path]:
    """Checkpoint name -> checkpoint in `out_dir` per trained baseline; resumable, as each section
    keeps or resumes an existing checkpoint (see its `train`)."""
    checkpoints = {section.checkpoint_name: Path(out_dir) / f"{section.checkpoint_name}.pt"
                   for section in config.sections.values()}
    for section in config.sections.values():
        section.train(train_sequences, checkpoints[section.checkpoint_name], config.seed, progress)
    return checkpoints


def baseline_specs(config: BaselineConfig, checkpoints: dict[str, Path | None], subnet: str | None = None,
                   subnet_weights: str | None = None,
                   runtime: str = DEFAULT_RUNTIME) -> tuple[dict[str, TrackerFactory], dict[str, str]]:
    """(name -> picklable tracker factory, name -> what its weights are) for every compared tracker.

    `checkpoints` maps each trained baseline's checkpoint name (`CHECKPOINT_NAMES`) to its
    checkpoint, or to None for seeded random weights (latency measurements need no training).
    `runtime` runs every tracker that has it there (the LightTrack ones for onnxruntime); the others
    keep PyTorch, and each row of the table says which runtime ran it.
    """
    check_runtime(runtime)
    specs: dict[str, TrackerFactory] = {
        IDENTITY_NAME: IdentityTracker, "lighttrack-mobile": LightTrackSpec("lighttrack-mobile", seed=config.seed)}
    notes = {IDENTITY_NAME: "the first box on every frame (the do-nothing floor)",
             "lighttrack-mobile": "random init (no trained weights)" + ("" if subnet else "; stands in for the subnet")}
    for section in config.sections.values():
        path = checkpoints[section.checkpoint_name]
        trained = section.specs(None if path is None else str(path), config.seed)
        specs.update(trained)
        notes.update(dict.fromkeys(trained, "random init" if path is None else f"trained: {path}"))
    if subnet:
        specs[SUBNET_NAME] = LightTrackSpec(subnet, weights=subnet_weights, seed=config.seed)
        exported = Path(subnet).is_dir()
        notes[SUBNET_NAME] = (f"{subnet}" + (f" + {subnet_weights}" if subnet_weights else
                                             " (export weights)" if exported else " (random init)"))
    return {name: spec.with_runtime(runtime) if runtime in getattr(spec, "runtimes", ()) else spec
            for name, spec in specs.items()}, notes


def runtime_of(factory: TrackerFactory) -> str:
    """The runtime a tracker factory's network runs on (PyTorch unless its spec says otherwise)."""
    return "none" if factory is IdentityTracker else getattr(factory, "runtime", DEFAULT_RUNTIME)


def _network_cost(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict[str, int]:
    """fvcore's FLOPs of one forward (1 multiply-add = 1 FLOP) and the parameter count."""
    return {"params": count_params(module), "flops": count_flops(module, inputs)}


def frame_cost(factory: TrackerFactory, seq: Sequence) -> dict[str, int]:
    """Params and per-frame FLOPs of a tracker (the module docstring says what each one counts):
    its spec's `frame_cost`, counted by fvcore on `seq`'s frames; the identity floor costs nothing."""
    if factory is IdentityTracker:
        return {"params": 0, "flops": 0}
    return factory.frame_cost(seq, _network_cost)


def compare(specs: dict[str, TrackerFactory], sequences: list[Sequence], out_dir: str | os.PathLike, *,
            workers: int = 1, backend: str = "process", resume: bool = True, progress: bool = True,
            notes: dict[str, str] | None = None) -> list[dict]:
    """Run every tracker through the harness into `out_dir/<name>/` and return one row per tracker.

    Also writes the success/precision curves of all trackers on one figure (`success_precision.png`).
    """
    if any(len(s.boxes) != len(s) for s in sequences):
        raise DataError("the comparison needs ground truth on every frame (not a test split)",
                        key=f"sequence {next(s.name for s in sequences if len(s.boxes) != len(s))}")
    sequences, _ = split_trackable(sequences)
    out = Path(out_dir)
    rows, curves = [], {}
    for name, spec in specs.items():
        results = out / name
        report = run_tracker(spec, sequences, results, workers=workers, backend=backend, resume=resume,
                             progress=progress, protocol="otb", label=name)
        overlap = score_results(sequences, results, "got10k")
        curves[name] = report
        rows.append({"name": name, "auc": report["auc"], "precision": report["precision"],
                     "ao": overlap["ao"], "sr50": overlap["sr50"], "fps": report["fps"], "runtime": runtime_of(spec),
                     **frame_cost(spec, sequences[0]), "weights": (notes or {}).get(name, ""),
                     "results": str(results)})
    plot_success_precision(curves, out / CURVES_PLOT, title=f"{len(sequences)} sequences, OTB one-pass")
    return rows


def _quantity(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.0f}"


def format_markdown(rows: list[dict]) -> str:
    """The comparison as a Markdown table (fractions as percentages), then what the columns mean."""
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    lines = ["| tracker | AUC | P@20 | AO | SR0.5 | FPS | runtime | params | FLOPs/frame | weights |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in rows:
        fps = "-" if r["fps"] is None else f"{r['fps']:.1f}"
        lines.append(f"| {r['name']} | {pct(r['auc'])} | {pct(r['precision'])} | {pct(r['ao'])} | {pct(r['sr50'])} "
                     f"| {fps} | {r['runtime']} | {_quantity(r['params'])} | {_quantity(r['flops'])} "
                     f"| {r['weights']} |")
    lines += ["", "AUC/P@20: OTB one-pass; AO/SR0.5: GOT-10k rules on the same result files (frames 2.., "
              "cover-0 frames excluded where labelled). FPS: harness tracker time, the network run by `runtime`. "
              "FLOPs: fvcore multiply-adds of one track() call's network (see nas/fitness/baselines.py)."]
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict], out_dir: str | os.PathLike, meta: dict | None = None) -> tuple[Path, Path]:
    """`baselines.json` ({meta, rows}) and `baselines.md`, written atomically."""
    out = Path(out_dir)
    return (atomic_write_json(out / TABLE_JSON, {**(meta or {}), "rows": rows}),
            atomic_write_text(out / TABLE_MD, format_markdown(rows)))


def plot_speed_accuracy(rows: list[dict], out_png: str | os.PathLike, metric: str = "auc") -> Path:
    """FPS (log axis) against `metric`, one labelled point per tracker; bare Agg figure, atomic write."""
    import io

    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.subplots()
    for r in rows:
        if r["name"] == IDENTITY_NAME:  # the floor: a line, it has no speed of its own
            ax.axhline(r[metric], color="k", linestyle="--", linewidth=1, label=f"identity floor {r[metric]:.3f}")
            ax.legend(loc="lower right", fontsize=8)
            continue
        fps = r["fps"] or float("nan")
        ax.scatter(fps, r[metric], s=30 + 120 * r["flops"] / max(max(row["flops"] for row in rows), 1))
        ax.annotate(r["name"], (fps, r[metric]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set(xscale="log", xlabel="speed (FPS, tracker time, log scale)", ylabel=metric.upper(),
           title=f"Speed vs {metric.upper()} (marker area ~ FLOPs/frame)", ylim=(0, 1))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(out_png, buf.getvalue())
