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
size, counted by fvcore (1 multiply-add = 1 FLOP) or the equal LightTrack cost table:

* LightTrack: the search branch at the space's search size (256; the 288 crops used for tiny first
  boxes are not counted), template features cached;
* GradNet: the frozen search branch on the 3-scale pyramid of 255 crops plus the SiamFC and GradNet
  correlations; the gradient template update (every 5 frames, and on early failures) is excluded;
* DiMP: backbone and classification features on the 3-scale pyramid of search crops plus the
  filter correlation; the filter refinement on the sample memory (every 20 frames, and on hard
  negatives) is excluded;
* MetaRTT: the candidate-scoring pass, conv1-3 on the scene crop covering the 256 candidates plus
  fc4-6 on their RoIs, measured after `initialize` on the first frame (so the pruned variant counts
  its sliced network); the second pass that collects memory samples on success frames and the
  periodic Meta-SGD updates are excluded.

Params: every parameter of the model the tracker loads (GradNet: both branches and U1; DiMP: backbone,
features, initializer and optimizer; LightTrack: the subnet), except for MetaRTT, where it is the
(pruned) RT-MDNet that runs per frame, without the meta-learned rates and the pruning network.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from nas.config import typed_section
from nas.cost.counting import count_flops, count_params
from nas.cost.table import cost_table
from nas.data.sequence import Sequence
from nas.errors import ConfigError, DataError
from nas.fitness.harness import TrackerFactory, run_tracker
from nas.fitness.plots import plot_success_precision
from nas.fitness.scoring import score_results
from nas.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from trackers.base import Tracker
from trackers.dimp.model import FEATURE_STRIDE, DiMPNetConfig
from trackers.dimp.tracker import DiMPSpec, DiMPTracker, DiMPTrackerConfig
from trackers.dimp.train import DiMPTrainConfig, train_dimp
from trackers.gradnet.model import ALEXNET_CHANNELS, GradNetConfig
from trackers.gradnet.spec import GradNetSpec
from trackers.gradnet.tracker import GradNetTracker, GradNetTrackerConfig
from trackers.gradnet.training import train_gradnet
from trackers.identity import IdentityTracker
from trackers.lighttrack.tracker import LightTrackSpec, LightTrackTracker
from trackers.metartt.meta import EpisodeConfig
from trackers.metartt.model import MetaRTTConfig, RTMDNetConfig, generate, scene_rois
from trackers.metartt.spec import MetaRTTSpec
from trackers.metartt.tracker import MetaRTTTracker, MetaRTTTrackerConfig
from trackers.metartt.training import train_metartt

BASELINE_NAMES = ("lighttrack-mobile", "siamfc-gradnet", "metartt", "metartt-pruned", "dimp")
SUBNET_NAME = "lighttrack-subnet"
IDENTITY_NAME = "identity"  # the do-nothing floor, first in every table
TABLE_JSON, TABLE_MD, SPEED_PLOT, CURVES_PLOT = ("baselines.json", "baselines.md", "speed_accuracy.png",
                                                 "success_precision.png")


@dataclass(frozen=True)
class GradNetTraining:
    """Template-generalization training (`train_gradnet`) and the GradNet network/tracker settings."""

    epochs: int = 2
    pairs_per_epoch: int = 64
    batch_size: int = 8
    lr: float = 1e-3
    channels: list = field(default_factory=lambda: list(ALEXNET_CHANNELS))
    tracker: dict = field(default_factory=dict)  # GradNetTrackerConfig overrides


@dataclass(frozen=True)
class MetaRTTTraining:
    """Meta-training and pruning-network training (`train_metartt`) and the MetaRTT settings."""

    episodes: int = 40
    episodes_per_step: int = 2
    frames: int = 4
    prune_steps: int = 10
    lr: float = 1e-4
    prune_lr: float = 1e-3
    lasso_weight: float = 1e-3  # the paper's lambda; larger prunes more after few steps
    channels: list = field(default_factory=lambda: list(RTMDNetConfig().channels))
    fc_widths: list = field(default_factory=lambda: list(RTMDNetConfig().fc_widths))
    tracker: dict = field(default_factory=dict)  # MetaRTTTrackerConfig overrides (scalar fields)


@dataclass(frozen=True)
class DiMPTraining:
    """Episodic DiMP training (`train_dimp`, resumable per epoch) and the DiMP network/tracker settings."""

    epochs: int = 2
    episodes_per_epoch: int = 64
    batch_size: int = 8
    lr: float = 1e-3
    widths: list = field(default_factory=lambda: list(DiMPNetConfig().widths))
    feature_dim: int = DiMPNetConfig().feature_dim
    image_sample_size: int = DiMPNetConfig().image_sample_size
    tracker: dict = field(default_factory=dict)  # DiMPTrackerConfig overrides (scalar fields)


@dataclass(frozen=True)
class BaselineConfig:
    """The small training settings of every trained baseline (`--train-config` YAML, all keys optional).

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
    gradnet: GradNetTraining = GradNetTraining()
    metartt: MetaRTTTraining = MetaRTTTraining()
    dimp: DiMPTraining = DiMPTraining()

    def gradnet_net(self) -> GradNetConfig:
        return GradNetConfig(channels=tuple(self.gradnet.channels))

    def gradnet_tracker(self) -> GradNetTrackerConfig:
        return GradNetTrackerConfig(**self.gradnet.tracker)

    def metartt_net(self) -> MetaRTTConfig:
        m = self.metartt
        return MetaRTTConfig(net=RTMDNetConfig(channels=tuple(m.channels), fc_widths=tuple(m.fc_widths)))

    def metartt_tracker(self) -> MetaRTTTrackerConfig:
        return MetaRTTTrackerConfig(**self.metartt.tracker)

    def dimp_train(self) -> DiMPTrainConfig:
        d = self.dimp
        net = DiMPNetConfig(widths=tuple(d.widths), feature_dim=d.feature_dim, image_sample_size=d.image_sample_size)
        return DiMPTrainConfig(net=net, episodes_per_epoch=d.episodes_per_epoch, batch_size=d.batch_size, lr=d.lr)

    def dimp_tracker(self) -> DiMPTrackerConfig:
        return DiMPTrackerConfig(**self.dimp.tracker)


_POSITIVE = {"gradnet": ("epochs", "pairs_per_epoch", "batch_size"),
             "metartt": ("episodes", "episodes_per_step", "frames"),
             "dimp": ("epochs", "episodes_per_epoch", "batch_size", "feature_dim", "image_sample_size")}
# (section, key) -> (fewest, most) widths: AlexNet has 5 convs, RT-MDNet 3 convs + 2 fc, DiMP a stem + >= 4 stages
_WIDTHS = {("gradnet", "channels"): (5, 5), ("metartt", "channels"): (3, 3), ("metartt", "fc_widths"): (2, 2),
           ("dimp", "widths"): (5, None)}


def parse_baseline_config(data: Any, source: str) -> BaselineConfig:
    """A validated `BaselineConfig`; every problem is a one-line ConfigError naming the key."""
    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(message, source=source, key=key)

    data = {} if data is None else data
    if not isinstance(data, dict):
        raise fail("", "expected a mapping with seed, gradnet, metartt, dimp")
    unknown = sorted(set(data) - {"seed", "gradnet", "metartt", "dimp"})
    if unknown:
        raise fail(unknown[0], "unknown key; expected seed, gradnet, metartt or dimp")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise fail("seed", f"expected a non-negative integer, got {seed!r}")
    sections = {"gradnet": (GradNetTraining, GradNetTrackerConfig), "metartt": (MetaRTTTraining, MetaRTTTrackerConfig),
                "dimp": (DiMPTraining, DiMPTrackerConfig)}
    built = {}
    for name, (cls, tracker_cls) in sections.items():
        values = typed_section(data, name, cls, fail)
        typed_section(values, "tracker", tracker_cls, lambda key, msg: fail(f"{name}.{key}", msg))
        for key in _POSITIVE[name]:
            if key in values and values[key] < 1:
                raise fail(f"{name}.{key}", f"expected a positive integer, got {values[key]!r}")
        for key in ("lr", "prune_lr", "lasso_weight"):
            if key in values and values[key] <= 0:
                raise fail(f"{name}.{key}", f"expected a positive number, got {values[key]!r}")
        for (section, key), (fewest, most) in _WIDTHS.items():
            widths = values.get(key) if section == name else None
            if widths is not None and not (fewest <= len(widths) <= (most or len(widths)) and all(
                    isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths)):
                count = fewest if most == fewest else f"at least {fewest}"
                raise fail(f"{name}.{key}", f"expected {count} positive integers, got {widths!r}")
        built[name] = cls(**values)
    if any(w % 2 for w in built["gradnet"].channels):
        raise fail("gradnet.channels", "expected even widths (conv2/4/5 use 2 groups)")
    if built["metartt"].frames < 3:
        raise fail("metartt.frames", "expected >= 3 (first, middle and last frame of an episode)")
    if built["metartt"].episodes_per_step < 2:
        raise fail("metartt.episodes_per_step", "expected >= 2 (hard negatives come from other videos)")
    if built["dimp"].image_sample_size % FEATURE_STRIDE:
        raise fail("dimp.image_sample_size", f"expected a multiple of {FEATURE_STRIDE}")
    return BaselineConfig(seed=seed, **built)


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
    """Checkpoint per trained baseline in `out_dir`, resumable: an existing GradNet or MetaRTT
    checkpoint is kept (it must match the config's widths; delete it to retrain), and `train_dimp`
    resumes its own per-epoch checkpoint (a finished one costs nothing).
    """
    out = Path(out_dir)
    g, m, d = config.gradnet, config.metartt, config.dimp
    trainers = {
        "siamfc-gradnet": lambda path: train_gradnet(
            train_sequences, path, g.epochs, config.seed, pairs_per_epoch=g.pairs_per_epoch,
            batch_size=g.batch_size, lr=g.lr, net=config.gradnet_net(), progress=progress),
        "metartt": lambda path: train_metartt(
            train_sequences, path, m.episodes, config.seed, episodes_per_step=m.episodes_per_step,
            n_frames=m.frames, prune_steps=m.prune_steps, lr=m.lr, prune_lr=m.prune_lr,
            net=config.metartt_net(), config=EpisodeConfig(lasso_weight=m.lasso_weight), progress=progress),
        "dimp": lambda path: train_dimp(train_sequences, config.dimp_train(), path, config.seed, d.epochs, progress),
    }
    checkpoints = {}
    for name, train in trainers.items():
        path = out / f"{name}.pt"
        if name == "dimp" or not path.is_file():
            train(path)
        checkpoints[name] = path
    return checkpoints


def baseline_specs(config: BaselineConfig, checkpoints: dict[str, Path | None], subnet: str | None = None,
                   subnet_weights: str | None = None) -> tuple[dict[str, TrackerFactory], dict[str, str]]:
    """(name -> picklable tracker factory, name -> what its weights are) for every compared tracker.

    `checkpoints` maps each trained baseline (siamfc-gradnet, metartt, dimp) to its checkpoint, or to
    None for seeded random weights (latency measurements need no training).
    """
    gradnet, metartt, dimp = (None if checkpoints[name] is None else str(checkpoints[name])
                              for name in ("siamfc-gradnet", "metartt", "dimp"))
    trained = lambda path: "random init" if path is None else f"trained: {path}"  # noqa: E731
    specs: dict[str, TrackerFactory] = {
        IDENTITY_NAME: IdentityTracker,
        "lighttrack-mobile": LightTrackSpec("lighttrack-mobile", seed=config.seed),
        "siamfc-gradnet": GradNetSpec(gradnet, config.gradnet_tracker(), config.gradnet_net(), seed=config.seed),
        "metartt": MetaRTTSpec(metartt, config.metartt_tracker(), False, config.metartt_net(), seed=config.seed),
        "metartt-pruned": MetaRTTSpec(metartt, config.metartt_tracker(), True, config.metartt_net(),
                                      seed=config.seed, name="metartt-pruned"),
        "dimp": DiMPSpec(dimp, config.dimp_tracker(), config.dimp_train().net, seed=config.seed),
    }
    notes = {IDENTITY_NAME: "the first box on every frame (the do-nothing floor)",
             "lighttrack-mobile": "random init (no trained weights)" + ("" if subnet else "; stands in for the subnet"),
             "siamfc-gradnet": trained(gradnet), "metartt": trained(metartt), "metartt-pruned": trained(metartt),
             "dimp": trained(dimp)}
    if subnet:
        specs[SUBNET_NAME] = LightTrackSpec(subnet, weights=subnet_weights, seed=config.seed)
        exported = Path(subnet).is_dir()
        notes[SUBNET_NAME] = (f"{subnet}" + (f" + {subnet_weights}" if subnet_weights else
                                             " (export weights)" if exported else " (random init)"))
    return specs, notes


class _LightTrackFrame(nn.Module):
    """LightTrack's per-frame network: the search branch against the cached template state."""

    def __init__(self, tracker: LightTrackTracker):
        super().__init__()
        self.model = tracker.model
        side = tracker.exemplar_size
        with torch.no_grad():
            self.state = tracker.model.template(torch.randn(1, 3, side, side, device=tracker.device))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.track(x, self.state).values())


class _GradNetFrame(nn.Module):
    """GradNet's per-frame network: search features of the scale pyramid and both correlations."""

    def __init__(self, tracker: GradNetTracker):
        super().__init__()
        self.model = tracker.model
        self.template_sia, self.template_gra = tracker.template_sia, tracker.template_gra
        self.mid = tracker.config.num_scales // 2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.model.search_features(x)
        return (self.model.score(self.template_sia, feats),
                self.model.score(self.template_gra, feats[self.mid:self.mid + 1]))


class _DiMPFrame(nn.Module):
    """DiMP's per-frame network: features of the scale pyramid scored by the current filter."""

    def __init__(self, tracker: DiMPTracker):
        super().__init__()
        self.net, self.filter = tracker.net, tracker.filter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.classify(self.filter, self.net.extract(x)[None])


def _pyramid(tracker: GradNetTracker | DiMPTracker, side: int) -> tuple[torch.Tensor]:
    return (torch.randn(tracker.config.num_scales, 3, side, side, device=tracker.device),)


def _metartt_inputs(tracker: MetaRTTTracker, frame: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The scene crop covering the candidates around the current box, and their RoIs."""
    cfg = tracker.config
    candidates = generate(cfg.candidates, tracker.box, cfg.n_candidates, (frame.shape[1], frame.shape[0]),
                          np.random.default_rng(cfg.seed))
    image, rois = scene_rois(frame, candidates, tracker.box[2:], cfg.scene)
    return image.to(tracker.device), torch.from_numpy(rois).float().to(tracker.device)


def frame_network(tracker: Tracker, frame: np.ndarray) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """(per-frame network, its inputs) of an initialised tracker on `frame` (module docstring:
    what each tracker's network covers); its parameters are the tracker's counted params."""
    if isinstance(tracker, LightTrackTracker):
        side = tracker.instance_size
        return _LightTrackFrame(tracker), (torch.randn(1, 3, side, side, device=tracker.device),)
    if isinstance(tracker, GradNetTracker):
        return _GradNetFrame(tracker), _pyramid(tracker, tracker.config.instance_size)
    if isinstance(tracker, DiMPTracker):
        return _DiMPFrame(tracker), _pyramid(tracker, tracker.size)
    if isinstance(tracker, MetaRTTTracker):
        return tracker.net, _metartt_inputs(tracker, frame)
    raise ConfigError(f"no per-frame network known for {type(tracker).__name__}", key="tracker")


def frame_cost(factory: TrackerFactory, seq: Sequence) -> dict[str, int]:
    """Params and per-frame FLOPs of a tracker (see the module docstring for what each counts).

    LightTrack reads the cost table (equal to fvcore on the subnet). The others are initialised on
    `seq`'s first frame, since their per-frame network can depend on it (MetaRTT's pruning), and
    counted by fvcore on its second.
    """
    if factory is IdentityTracker:
        return {"params": 0, "flops": 0}
    if isinstance(factory, LightTrackSpec):
        if isinstance(factory.target, str) and Path(factory.target).is_dir():
            from trackers.lighttrack.export import load_export

            arch = load_export(factory.target)[0]
        else:
            arch = factory.arch()
        cost = cost_table(arch.space).cost(arch)
        return {"params": cost["params"], "flops": cost["flops"]}
    tracker = factory()
    tracker.initialize(seq.frame(0), seq.boxes[0])
    module, inputs = frame_network(tracker, seq.frame(min(1, len(seq) - 1)))
    return {"params": count_params(module), "flops": count_flops(module, inputs)}


def compare(specs: dict[str, TrackerFactory], sequences: list[Sequence], out_dir: str | os.PathLike, *,
            workers: int = 1, backend: str = "process", resume: bool = True, progress: bool = True,
            notes: dict[str, str] | None = None) -> list[dict]:
    """Run every tracker through the harness into `out_dir/<name>/` and return one row per tracker.

    Also writes the success/precision curves of all trackers on one figure (`success_precision.png`).
    """
    if any(len(s.boxes) != len(s) for s in sequences):
        raise DataError("the comparison needs ground truth on every frame (not a test split)",
                        key=f"sequence {next(s.name for s in sequences if len(s.boxes) != len(s))}")
    out = Path(out_dir)
    rows, curves = [], {}
    for name, spec in specs.items():
        results = out / name
        report = run_tracker(spec, sequences, results, workers=workers, backend=backend, resume=resume,
                             progress=progress, protocol="otb", label=name)
        overlap = score_results(sequences, results, "got10k")
        curves[name] = report
        rows.append({"name": name, "auc": report["auc"], "precision": report["precision"],
                     "ao": overlap["ao"], "sr50": overlap["sr50"], "fps": report["fps"],
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
    lines = ["| tracker | AUC | P@20 | AO | SR0.5 | FPS | params | FLOPs/frame | weights |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        fps = "-" if r["fps"] is None else f"{r['fps']:.1f}"
        lines.append(f"| {r['name']} | {pct(r['auc'])} | {pct(r['precision'])} | {pct(r['ao'])} | {pct(r['sr50'])} "
                     f"| {fps} | {_quantity(r['params'])} | {_quantity(r['flops'])} | {r['weights']} |")
    lines += ["", "AUC/P@20: OTB one-pass; AO/SR0.5: GOT-10k rules on the same result files (frames 2.., "
              "cover-0 frames excluded where labelled). FPS: harness tracker time. FLOPs: fvcore multiply-adds "
              "of one track() call's network (see nas/fitness/baselines.py)."]
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
