"""Run configuration files (YAML, safe loader): one file drives data, supernet, fitness and search.

Every section is validated up front with one-line errors naming the file and key.

```yaml
name: quickstart                 # run directory runs/<name>/ unless `output` is given
space: lighttrack-mobile         # built-in name or DSL path (relative to this file)
seed: 0
data:
  root: data/synth               # GOT-10k layout; relative to this file
  split: train
  synthesize: {sequences: 56, frames: 60, seed: 0}   # create the embedded default data when missing
# data: or a list of sources (a training mixture; the first also gives fitness.val_split's sequences):
#   - {path: /data/got10k, format: got10k, split: train, weight: 3}
#   - {path: /data/lasot, format: lasot, split: train, weight: 1, frames: [1, 3000]}  # optional frame range
#   - {path: /data/coco, format: coco, split: train2017, weight: 1}   # still images as one-frame videos
supernet:
  epochs: 4
  pairs_per_epoch: 512
  batch_size: 16
  shards: 1                      # BatchNorm sees batch_size / shards samples; >= workers (see trainer)
  optimizer: sgd                 # sgd (LightTrack, batch 256) | adamw (small batches; lr ~1e-3)
  lr: 0.03                       # warm-up from warmup_lr over warmup_epochs, log decay to end_lr
  warmup_epochs: 1
  warmup_lr: 0.01
  end_lr: 0.0001
  momentum: 0.9                  # sgd only
  weight_decay: 0.0001           # sgd: L2 penalty; adamw: decoupled decay
  freeze_backbone_epochs: 0      # backbone frozen (BN in eval) for the first N epochs
  backbone_lr_mult: 1.0          # backbone lr factor (LightTrack: 0.1 with a pretrained backbone)
  path_sampler: uniform          # uniform | fair | sandwich | anchored (every other step: the reference arch)
  weight_sharing: none           # none (LightTrack) | kernel: kernel-size variants share their 1x1 convs, BN, SE
  bounds: {flops: 600M, params: 2M}   # optional: train only paths inside this window
  data_workers: 0                # DataLoader processes building pairs ahead (0: in the training process)
  schedule: {schedule: uniform, max_gap: 100}   # or {schedule: sstrack, ...}
  backbone_checkpoint: null      # optional state dict of the supernet backbone (stem.*, blocks.*): pretrain-backbone's
  amp: off                       # off | bf16 (autocast; CPU and CUDA) | fp16 (autocast + GradScaler; CUDA only)
  channels_last: false           # NHWC memory format for the model and its inputs (faster convs on recent GPUs)
fitness:                         # how a candidate is scored (see nas/fitness/supernet_fitness.py)
  metric: ao_sr50                # (AO + SR0.5) / 2 as LightTrack; or ao, auc, eao (VOT supervised EAO)
  val_root: null                 # validation set elsewhere (eao: a VOT sequences/ folder); null: data.root
  val_format: null               # its layout (eao needs vot); null: detect
  eao_year: 2019                 # eao: the VOT year whose EAO interval is averaged (2018 | 2019)
  bn_batches: 200                # BN recalibration: batches of training pairs ...
  bn_batch_size: 32              # ... of this size
  max_sequences: null            # evaluate on the first N validation sequences (null: all)
  max_frames: null               # ... and their first M frames
  tracker_preset: default        # LightTrack tracker hyper-parameters (default | vot2019)
  runtime: torch                 # what runs the tracked subnet: torch | onnxruntime (extra 'onnx')
  final_top_k: null              # re-score this many of the best (null: search.top_k) ...
  final_bn_samples: 2            # ... on this many BN-recalibration samples ...
  final_subsets: 2               # ... x validation subsets (blocks of max_sequences); the pick is the mean
search:                          # see nas/search/state.py SearchSettings
  algorithm: evolution           # evolution | nsga2 | random
  population: 48
  top_k: 10
  mutations: 24
  crossovers: 24
  mutation_prob: 0.1
  generations: 20
  bounds: {preset: default}      # a constraint preset of the space, or {flops: 600M, params: 2M, latency_ms: 20}
  latency: {runtime: torch, threads: 2, device: cpu}   # optional: the latency table that predicts latency_ms
                                 # (bounds and objective; default this setting when latency_ms is bounded)
  objectives: [fitness, flops]   # NSGA-II objectives and the reported Pareto front (+ latency_ms)
  seed_reference: false          # put the space's reference architecture into generation 0
  gpus_per_worker: 0             # GPU fraction each fitness actor reserves (0.25: 4 actors share one GPU; 0 = CPU)
pretrain:                        # optional: `tracknas pretrain-backbone` (LightTrack phase 1), see nas/train/pretrain.py
  root: data/imagenet/train      # ImageFolder: one sub-folder of images per class; relative to this file
  epochs: 10
  batch_size: 64
  image_size: 224                # square training crops
  optimizer: sgd                 # sgd | adamw
  lr: 0.1                        # cosine decay per step from lr to end_lr, after warmup_epochs of linear warm-up
  end_lr: 0.0
  warmup_epochs: 0
  momentum: 0.9                  # sgd only
  weight_decay: 0.00004
  label_smoothing: 0.1
  images_per_epoch: null         # null: every image once per epoch
```
"""
from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nas.data.datasets import DATASET_FORMATS
from nas.data.mixture import SOURCE_FORMATS
from nas.data.synth import DEFAULT_FRAMES, DEFAULT_SEQUENCES, DEFAULT_SIZE, DEFAULT_VAL_FRACTION, check_args
from nas.errors import ConfigError
from nas.io import load_json, load_yaml
from nas.space.spec import Bounds, parse_quantity


OPTIMIZERS = ("sgd", "adamw")
WEIGHT_SHARING = ("none", "kernel")  # as nas.supernet.supernet.WEIGHT_SHARING (the config does not import models)


@dataclass(frozen=True)
class DataConfig:
    """One dataset (`root`, `format`, `split`), or with `sources` (the list form of `data:`) a training
    mixture whose first source also gives the validation sequences and BN-recalibration pairs."""

    root: str
    format: str | None = None
    split: str | None = "train"
    synthesize: dict | None = None
    sources: list = field(default_factory=list)

    def training_sources(self) -> list[dict]:
        """The sources training pairs come from: `sources`, or the one dataset with weight 1."""
        return self.sources or [{"path": self.root, "format": self.format, "split": self.split, "weight": 1.0,
                                 "frames": None}]


@dataclass(frozen=True)
class SupernetConfig:
    epochs: int = 4
    pairs_per_epoch: int = 512
    batch_size: int = 16
    shards: int = 1
    optimizer: str = "sgd"
    lr: float = 0.03
    warmup_epochs: int = 1
    warmup_lr: float = 0.01
    end_lr: float | None = 1e-4
    momentum: float = 0.9
    weight_decay: float = 1e-4
    freeze_backbone_epochs: int = 0
    backbone_lr_mult: float = 1.0
    path_sampler: str = "uniform"
    weight_sharing: str = "none"
    bounds: dict = field(default_factory=dict)
    schedule: dict = field(default_factory=lambda: {"schedule": "uniform"})
    backbone_checkpoint: str | None = None
    amp: str = "off"
    channels_last: bool = False
    data_workers: int = 0

    def path_bounds(self) -> Bounds:
        return Bounds(flops=self.bounds.get("flops"), params=self.bounds.get("params"))


@dataclass(frozen=True)
class FitnessConfig:
    metric: str = "ao_sr50"
    bn_batches: int = 200
    bn_batch_size: int = 32
    max_sequences: int | None = None
    max_frames: int | None = None
    tracker_preset: str = "default"
    runtime: str = "torch"
    val_split: str = "val"
    final_top_k: int | None = None
    final_bn_samples: int = 2
    final_subsets: int = 2
    val_root: str | None = None
    val_format: str | None = None
    eao_year: int = 2019


def validation_source(data_root: str, data_format: str | None, val_split: str | None, val_root: str | None,
                      val_format: str | None) -> tuple[str, str | None, str | None]:
    """(root, format, split) of the fitness's validation set: `val_root` when given, else the data root's
    `val_split`. A VOT tree has no splits, so its split is None."""
    if val_root is None:
        return data_root, data_format, val_split
    return val_root, val_format, None if val_format == "vot" else val_split


@dataclass(frozen=True)
class SearchConfig:
    algorithm: str = "evolution"
    population: int = 48
    top_k: int = 10
    mutations: int = 24
    crossovers: int = 24
    mutation_prob: float = 0.1
    generations: int = 20
    max_retries: int = 10
    bounds: dict = field(default_factory=lambda: {"preset": "default"})
    objectives: list = field(default_factory=lambda: ["fitness", "flops"])
    seed_reference: bool = False
    gpus_per_worker: float = 0.0
    latency: dict = field(default_factory=dict)  # {} = no table unless latency is bounded (then the defaults)


@dataclass(frozen=True)
class PretrainConfig:
    """LightTrack phase 1: the space's backbone supernet as a classifier on an ImageFolder set."""

    root: str = ""
    epochs: int = 10
    batch_size: int = 64
    image_size: int = 224
    optimizer: str = "sgd"
    lr: float = 0.1
    end_lr: float = 0.0
    warmup_epochs: int = 0
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    images_per_epoch: int | None = None


@dataclass(frozen=True)
class RunConfig:
    name: str
    space: str
    output: str
    data: DataConfig
    supernet: SupernetConfig
    fitness: FitnessConfig = field(default_factory=FitnessConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    seed: int = 0
    source: str = "<config>"
    pretrain: PretrainConfig | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict) -> "RunConfig":
        return cls(**{**obj, "data": DataConfig(**obj["data"]), "supernet": SupernetConfig(**obj["supernet"]),
                      "fitness": FitnessConfig(**obj.get("fitness", {})), "search": SearchConfig(**obj.get("search", {})),
                      "pretrain": PretrainConfig(**obj["pretrain"]) if obj.get("pretrain") else None})


RUN_CONFIG = "config.json"


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The resolved config a run wrote into its directory (`runs/<name>/config.json`): the one way the
    commands that look at a run (export, status, report) find it, with one-line errors for a wrong path."""
    saved = Path(run_dir) / RUN_CONFIG
    if not saved.is_file():
        raise ConfigError(f"not a run directory ({RUN_CONFIG} is missing)", source=str(run_dir))
    try:
        return RunConfig.from_dict(load_json(saved, error=ConfigError, what="run config"))
    except (TypeError, KeyError, AttributeError) as err:
        raise ConfigError(f"expected the run config tracknas wrote, got one it cannot use ({err})",
                          source=str(saved)) from None


_TOP = {"name", "space", "seed", "output", "data", "supernet", "fitness", "search", "pretrain"}


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    data = load_yaml(path, error=ConfigError, what="config file")
    return parse_config(data, source=str(path), base=path.parent)


def _resolve(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def parse_config(data: Any, *, source: str, base: Path) -> RunConfig:
    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(message, source=source, key=key)

    if not isinstance(data, dict):
        raise fail("", "expected a mapping at the top level")
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise fail(unknown[0], f"unknown key; expected one of {', '.join(sorted(_TOP))}")
    for key in ("name", "space", "data"):
        if key not in data:
            raise fail(key, "missing required key")
    name = data["name"]
    if not isinstance(name, str) or not name or "/" in name:
        raise fail("name", f"expected a run name without '/', got {name!r}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise fail("seed", f"expected a non-negative integer, got {seed!r}")
    space = str(data["space"])
    if space.endswith((".yaml", ".yml")):
        space = _resolve(base, space)
    output = _resolve(base, str(data.get("output", Path("runs") / name))) if "output" in data else \
        str((Path.cwd() / "runs" / name).resolve())

    d = data["data"]
    if isinstance(d, list):
        sources = [_parse_source(entry, f"data[{i}]", base, fail) for i, entry in enumerate(d)]
        if not sources:
            raise fail("data", "expected at least one source")
        first = sources[0]
        d = {"root": first["path"], "format": first["format"], "split": first["split"]}
    else:
        sources = []
    if not isinstance(d, dict):
        raise fail("data", "expected a mapping with root, split, format, synthesize, or a list of sources")
    bad = sorted(set(d) - {"root", "split", "format", "synthesize"})
    if bad:
        raise fail(f"data.{bad[0]}", "unknown key; expected root, split, format or synthesize")
    if "root" not in d:
        raise fail("data.root", "missing required key")
    synth = d.get("synthesize")
    if synth is not None:
        _check_synthesize(synth, fail)
    data_cfg = DataConfig(root=_resolve(base, str(d["root"])), format=d.get("format"), split=d.get("split", "train"),
                          synthesize=synth, sources=sources)

    s = data.get("supernet", {}) or {}
    if not isinstance(s, dict):
        raise fail("supernet", "expected a mapping")
    fields = SupernetConfig.__dataclass_fields__
    bad = sorted(set(s) - set(fields))
    if bad:
        raise fail(f"supernet.{bad[0]}", f"unknown key; expected one of {', '.join(sorted(fields))}")
    values = dict(s)
    for key, (low, high) in SUPERNET_COUNTS.items():
        if key in values:
            _check_int(values[key], low, high, fail, f"supernet.{key}")
    for key, (low, high, open_low) in SUPERNET_NUMBERS.items():
        if key in values and values[key] is not None:
            values[key] = _check_float(values[key], low, high, open_low, fail, f"supernet.{key}")
    if values.get("path_sampler", "uniform") not in PATH_SAMPLERS:
        raise fail("supernet.path_sampler", f"expected one of {', '.join(PATH_SAMPLERS)}, got "
                   f"{values['path_sampler']!r}")
    bounds = values.get("bounds", {}) or {}
    if not isinstance(bounds, dict) or set(bounds) - {"flops", "params"}:
        raise fail("supernet.bounds", "expected {flops: 600M, params: 2M} (either key optional)")
    values["bounds"] = {k: parse_quantity(v, source=source, key=f"supernet.bounds.{k}") for k, v in bounds.items()}
    if "schedule" in values and not isinstance(values["schedule"], dict):
        raise fail("supernet.schedule", "expected a mapping like {schedule: uniform}")
    if values.get("backbone_checkpoint"):
        values["backbone_checkpoint"] = _resolve(base, str(values["backbone_checkpoint"]))
        if not Path(values["backbone_checkpoint"]).is_file():
            raise fail("supernet.backbone_checkpoint", f"expected a checkpoint file, got {values['backbone_checkpoint']}"
                       f" ({'a directory' if Path(values['backbone_checkpoint']).is_dir() else 'not found'})")
    if values.get("weight_sharing", "none") not in WEIGHT_SHARING:
        raise fail("supernet.weight_sharing", f"expected one of {', '.join(WEIGHT_SHARING)}, "
                   f"got {values['weight_sharing']!r}")
    if values.get("optimizer", "sgd") not in OPTIMIZERS:
        raise fail("supernet.optimizer", f"expected one of {', '.join(OPTIMIZERS)}, got {values['optimizer']!r}")
    if values.get("amp", "off") is False:  # YAML 1.1 reads a bare `off` as false
        values["amp"] = "off"
    if values.get("amp", "off") not in AMP_MODES:
        raise fail("supernet.amp", f"expected one of {', '.join(AMP_MODES)}, got {values['amp']!r}")
    if not isinstance(values.get("channels_last", False), bool):
        raise fail("supernet.channels_last", f"expected true or false, got {values['channels_last']!r}")
    supernet = SupernetConfig(**values)
    if supernet.batch_size > supernet.pairs_per_epoch:
        raise fail("supernet.batch_size", f"expected <= pairs_per_epoch ({supernet.pairs_per_epoch})")
    fitness_values = typed_section(data, "fitness", FitnessConfig, fail)
    if fitness_values.get("val_root") is not None:
        fitness_values["val_root"] = _resolve(base, str(fitness_values["val_root"]))
    fitness = FitnessConfig(**fitness_values)
    _check_choices(fitness, "fitness", FITNESS_CHOICES, fail)
    _check_eao(fitness, fail)
    for key, (low, high) in FITNESS_COUNTS.items():
        if getattr(fitness, key) is not None:
            _check_int(getattr(fitness, key), low, high, fail, f"fitness.{key}")
    search_values = typed_section(data, "search", SearchConfig, fail)
    for key, (low, high) in SEARCH_COUNTS.items():
        if key in search_values:
            _check_int(search_values[key], low, high, fail, f"search.{key}")
    if "mutation_prob" in search_values:
        _check_float(search_values["mutation_prob"], 0.0, 1.0, False, fail, "search.mutation_prob")
    if "gpus_per_worker" in search_values:
        search_values["gpus_per_worker"] = _check_float(search_values["gpus_per_worker"], 0.0, 1.0, False, fail,
                                                        "search.gpus_per_worker")
    bounds = search_values.get("bounds", {"preset": "default"})
    if not isinstance(bounds, dict) or set(bounds) - {"preset", "flops", "params", "latency_ms"}:
        raise fail("search.bounds", "expected {preset: NAME} and/or {flops: 600M, params: 2M, latency_ms: 20}")
    search_values["bounds"] = {k: (str(v) if k == "preset" else
                                   _check_float(v, 0.0, 1e6, True, fail, f"search.bounds.{k}") if k == "latency_ms" else
                                   parse_quantity(v, source=source, key=f"search.bounds.{k}"))
                               for k, v in bounds.items()}
    if "latency" in search_values:
        search_values["latency"] = _check_latency(search_values["latency"], fail)
    if "objectives" in search_values and (not isinstance(search_values["objectives"], list)
                                          or not all(isinstance(o, str) for o in search_values["objectives"])):
        raise fail("search.objectives", "expected a list like [fitness, flops]")
    search = SearchConfig(**search_values)
    _check_choices(search, "search", SEARCH_CHOICES, fail)
    if search.top_k > search.population:
        raise fail("search.top_k", f"expected <= search.population ({search.population}), got {search.top_k}")
    pretrain = _parse_pretrain(data["pretrain"], base, fail) if data.get("pretrain") is not None else None
    return RunConfig(name=name, space=space, output=output, data=data_cfg, supernet=supernet, fitness=fitness,
                     search=search, seed=seed, source=source, pretrain=pretrain)


def _parse_pretrain(section: Any, base: Path, fail) -> PretrainConfig:
    """The `pretrain:` section: types, ranges, choices; `root` resolved against the config's folder."""
    values = typed_section({"pretrain": section}, "pretrain", PretrainConfig, fail)
    if not values.get("root"):
        raise fail("pretrain.root", "missing required key (an ImageFolder: one sub-folder of images per class)")
    values["root"] = _resolve(base, values["root"])
    for key, (low, high) in PRETRAIN_COUNTS.items():
        if values.get(key) is not None:
            _check_int(values[key], low, high, fail, f"pretrain.{key}")
    for key, (low, high, open_low) in PRETRAIN_NUMBERS.items():
        if key in values:
            values[key] = _check_float(values[key], low, high, open_low, fail, f"pretrain.{key}")
    pretrain = PretrainConfig(**values)
    _check_choices(pretrain, "pretrain", {"optimizer": OPTIMIZERS}, fail)
    if pretrain.end_lr > pretrain.lr:
        raise fail("pretrain.end_lr", f"expected <= pretrain.lr ({pretrain.lr:g}), got {pretrain.end_lr:g}")
    return pretrain


# Documented ranges (README "Run configuration"): ints are (low, high); floats (low, high, low excluded).
MAX_COUNT = 10**7
SUPERNET_COUNTS = {"epochs": (1, 100_000), "pairs_per_epoch": (1, MAX_COUNT), "batch_size": (1, 65_536),
                   "shards": (1, 4096), "warmup_epochs": (0, 100_000), "freeze_backbone_epochs": (0, 100_000),
                   "data_workers": (0, 256)}
SUPERNET_NUMBERS = {"lr": (0.0, 10.0, True), "warmup_lr": (0.0, 10.0, True), "end_lr": (0.0, 10.0, True),
                    "momentum": (0.0, 1.0, False), "weight_decay": (0.0, 1.0, False),
                    "backbone_lr_mult": (0.0, 100.0, False)}
FITNESS_COUNTS = {"bn_batches": (1, MAX_COUNT), "bn_batch_size": (1, 65_536), "max_sequences": (1, MAX_COUNT),
                  "max_frames": (1, MAX_COUNT), "final_top_k": (1, 100_000), "final_bn_samples": (1, 100),
                  "final_subsets": (1, 100)}
SEARCH_COUNTS = {"population": (1, 100_000), "top_k": (1, 100_000), "mutations": (0, 100_000),
                 "crossovers": (0, 100_000), "generations": (1, 100_000), "max_retries": (0, 1000)}
PRETRAIN_COUNTS = {"epochs": (1, 100_000), "batch_size": (1, 65_536), "image_size": (16, 1024),
                   "warmup_epochs": (0, 100_000), "images_per_epoch": (1, 10**9)}
PRETRAIN_NUMBERS = {"lr": (0.0, 10.0, True), "end_lr": (0.0, 10.0, False), "momentum": (0.0, 1.0, False),
                    "weight_decay": (0.0, 1.0, False), "label_smoothing": (0.0, 1.0, False)}
AMP_MODES = ("off", "bf16", "fp16")
PATH_SAMPLERS = ("uniform", "fair", "sandwich", "anchored")
RUNTIMES = ("torch", "onnxruntime")  # what can run a tracker's network (`trackers.runtime` checks the packages)
DEVICES = ("cpu", "cuda")  # where a latency table is timed (`nas.cost.lut`)
MAX_THREADS = 1024  # intra-op threads a latency table may be timed with
FITNESS_CHOICES = {"metric": ("ao_sr50", "ao", "auc", "eao"), "tracker_preset": ("default", "vot2019"),
                   "val_format": (None, *DATASET_FORMATS), "eao_year": (2018, 2019), "runtime": RUNTIMES}
EAO_LOW = {2018: 100, 2019: 46}  # first length of each year's EAO interval (nas.fitness.vot.EAO_INTERVALS)
SEARCH_CHOICES = {"algorithm": ("evolution", "nsga2", "random")}
LATENCY_CHOICES = {"runtime": RUNTIMES, "device": DEVICES}
LATENCY_DEFAULTS = {"runtime": "torch", "threads": 2, "device": "cpu"}  # `search.latency` and `LatencySetting`
SYNTHESIZE_KEYS = {"sequences": int, "frames": int, "seed": int, "val_fraction": float, "size": list}


SOURCE_KEYS = ("path", "format", "split", "weight", "frames")


def _parse_source(entry: Any, key: str, base: Path, fail) -> dict:
    """One source of the list form of `data:`: {path, format, split, weight, frames: [first, last]}."""
    if not isinstance(entry, dict):
        raise fail(key, f"expected a mapping with {', '.join(SOURCE_KEYS)}")
    bad = sorted(set(entry) - set(SOURCE_KEYS))
    if bad:
        raise fail(f"{key}.{bad[0]}", f"unknown key; expected one of {', '.join(SOURCE_KEYS)}")
    if not isinstance(entry.get("path"), str) or not entry["path"]:
        raise fail(f"{key}.path", "expected the dataset's folder")
    fmt = entry.get("format")
    if fmt is not None and fmt not in SOURCE_FORMATS:
        raise fail(f"{key}.format", f"expected one of {', '.join(SOURCE_FORMATS)}, got {fmt!r}")
    split = entry.get("split", "train")
    if split is not None and not isinstance(split, str):
        raise fail(f"{key}.split", f"expected a split name or null, got {split!r}")
    weight = _check_float(entry.get("weight", 1.0), 0.0, 1e6, True, fail, f"{key}.weight")
    frames = entry.get("frames")
    if frames is not None and not (isinstance(frames, list) and len(frames) == 2
                                   and all(type(v) is int for v in frames) and 1 <= frames[0] <= frames[1]):
        raise fail(f"{key}.frames", f"expected [first, last] frame numbers with 1 <= first <= last, got {frames!r}")
    return {"path": _resolve(base, entry["path"]), "format": fmt, "split": split, "weight": weight, "frames": frames}


def _check_int(value: Any, low: int, high: int, fail, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise fail(key, f"expected an integer in {low}..{high}, got {value!r}")


def _check_float(value: Any, low: float, high: float, open_low: bool, fail, key: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (low < value if open_low else low <= value) and value <= high
    if not ok:
        raise fail(key, f"expected a finite number in {'(' if open_low else '['}{low:g}, {high:g}], got {value!r}")
    return float(value)


def _check_choices(section: Any, name: str, choices: dict[str, tuple[str, ...]], fail) -> None:
    for key, allowed in choices.items():
        if getattr(section, key) not in allowed:
            raise fail(f"{name}.{key}", f"expected one of {', '.join(map(str, allowed))}, got {getattr(section, key)!r}")


def _check_eao(fitness: FitnessConfig, fail) -> None:
    """A val_format belongs to a val_root; eao scores VOT's supervised protocol: it needs a VOT-layout
    validation set and runs long enough to reach the year's EAO interval."""
    if fitness.val_format is not None and fitness.val_root is None:
        raise fail("fitness.val_format", "applies to fitness.val_root, which is not set; drop it or set val_root")
    if fitness.metric != "eao":
        return
    if fitness.val_root is None or fitness.val_format != "vot":
        raise fail("fitness.metric", "eao needs a VOT-layout validation set: set fitness.val_root (a VOT "
                   "sequences/ folder) and fitness.val_format: vot")
    low = EAO_LOW[fitness.eao_year]
    if fitness.max_frames is not None and fitness.max_frames <= low:
        raise fail("fitness.max_frames", f"eao averages VOT{fitness.eao_year}'s interval from length {low}: "
                   f"expected more than {low} frames or null, got {fitness.max_frames}")


def _check_latency(latency: Any, fail) -> dict:
    """`search.latency`: which latency table (runtime, threads, device); missing keys take their defaults."""
    if not isinstance(latency, dict) or set(latency) - {"runtime", "threads", "device"}:
        raise fail("search.latency", "expected a mapping like {runtime: torch, threads: 2, device: cpu}")
    for key, allowed in LATENCY_CHOICES.items():
        if key in latency and latency[key] not in allowed:
            raise fail(f"search.latency.{key}", f"expected one of {', '.join(allowed)}, got {latency[key]!r}")
    if "threads" in latency:
        _check_int(latency["threads"], 1, MAX_THREADS, fail, "search.latency.threads")
    return {**LATENCY_DEFAULTS, **latency}


def _check_synthesize(synth: Any, fail) -> None:
    """Keys and types of `data.synthesize`, then the generator's own ranges (nas.data.synth)."""
    if not isinstance(synth, dict):
        raise fail("data.synthesize", "expected a mapping like {sequences: 56, frames: 60, seed: 0}")
    for key, value in synth.items():
        kind = SYNTHESIZE_KEYS.get(key)
        if kind is None:
            raise fail(f"data.synthesize.{key}", f"unknown key; expected one of {', '.join(SYNTHESIZE_KEYS)}")
        ok = isinstance(value, (int, float)) and math.isfinite(value) if kind is float else \
            isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value) if kind is list else \
            type(value) is int
        if not ok:
            what = {int: "an integer", float: "a finite number", list: "[W, H] integers"}[kind]
            raise fail(f"data.synthesize.{key}", f"expected {what}, got {value!r}")
    try:
        check_args(synth.get("seed", 0), synth.get("sequences", DEFAULT_SEQUENCES), synth.get("frames", DEFAULT_FRAMES),
                    synth.get("val_fraction", DEFAULT_VAL_FRACTION), tuple(synth.get("size", DEFAULT_SIZE)))
    except ConfigError as err:
        raise fail(f"data.synthesize.{err.key}", err.detail) from None


def typed_section(data: dict, key: str, cls: type, fail) -> dict:
    """A section's values, checked against the types of the dataclass defaults (None allowed for Optional)."""
    section = data.get(key, {}) or {}
    if not isinstance(section, dict):
        raise fail(key, "expected a mapping")
    defaults = {f.name: (f.default if f.default is not MISSING else f.default_factory()) for f in fields(cls)}
    bad = sorted(set(section) - set(defaults))
    if bad:
        raise fail(f"{key}.{bad[0]}", f"unknown key; expected one of {', '.join(sorted(defaults))}")
    for name, value in section.items():
        default, optional = defaults[name], "None" in str(cls.__dataclass_fields__[name].type)
        if value is None and optional:
            continue
        expected = type(default) if default is not None else \
            str if "str" in str(cls.__dataclass_fields__[name].type) else int
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) if expected is float else \
            isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if not ok:
            raise fail(f"{key}.{name}", f"expected {expected.__name__}{' or null' if optional else ''}, got {value!r}")
    return dict(section)
