"""The up-front check of a run: everything it will need, before any synthesis, training or Ray start."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nas.config import RunConfig, validation_source
from nas.cost.lut import latency_table
from nas.cost.sampling import check_feasible
from nas.data import synth
from nas.data.datasets import open_dataset
from nas.data.mixture import open_source
from nas.errors import ConfigError, TrackNASError
from nas.heads import KINDS
from nas.jobs.search import search_settings
from nas.space import SearchSpace, load_space
from nas.supernet import Supernet
from nas.train.sstrack import make_interval_strategy
from nas.train.supernet_trainer import load_backbone_checkpoint
from trackers.runtime import check_runtime


def validate_run(cfg: RunConfig, *, search: bool) -> None:
    """Everything a run will need, checked before any synthesis, training or Ray start.

    Resolves the space, the supernet's schedule, the search settings and bounds (feasibility from the
    space's cost table, which training builds anyway, and from its latency table when latency is
    bounded or predicted), and the data: an existing dataset must open
    (layout, list.txt, first frame decodable) for the training split and, for `search`, the
    validation split; a dataset still to be synthesised must go into a directory synthesis may
    write. Independent problems are reported together, in one line.
    """
    problems: list[str] = []

    def check(fn, *args, prefix: str = "") -> Any:
        try:
            return fn(*args)
        except TrackNASError as err:
            key = f"{prefix}{err.key}" if prefix and err.key else (prefix.rstrip(".") or err.key)
            problems.append(": ".join(p for p in (err.source or cfg.source, key, err.detail) if p))
            return None

    space = check(_load_space, cfg)
    check(_check_schedule, cfg, prefix="supernet.schedule.")
    if space is not None and search:
        check(_check_search, cfg, space)
        check(_check_fitness_runtime, cfg, space)
    if space is not None and cfg.supernet.bounds:
        check(check_feasible, space, cfg.supernet.path_bounds(), prefix="supernet.bounds")
    if space is not None and cfg.supernet.backbone_checkpoint:
        check(_check_backbone, cfg, space)
    check(_check_data, cfg, search)
    if problems:
        raise ConfigError("; ".join(dict.fromkeys(problems)))


def _load_space(cfg: RunConfig) -> SearchSpace:
    try:
        return load_space(cfg.space)
    except TrackNASError as err:
        if err.source is None:  # an unknown built-in name: say where it was asked for
            raise ConfigError(err.detail, source=cfg.source, key="space") from None
        raise


def _check_backbone(cfg: RunConfig, space: SearchSpace) -> None:
    """The backbone checkpoint's keys and shapes against the supernet's (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = Supernet(space, cfg.supernet.weight_sharing)
    load_backbone_checkpoint(model, cfg.supernet.backbone_checkpoint, source=cfg.source)


def _check_schedule(cfg: RunConfig) -> None:
    make_interval_strategy(cfg.supernet.schedule, source=cfg.source)


def _check_search(cfg: RunConfig, space: SearchSpace) -> None:
    """Settings and bounds; with latency, the table itself (its runtime installed, made on this machine;
    built here when none is cached) and the latency bound against its fastest architecture."""
    settings = search_settings(cfg, space)
    latency = None
    if settings.latency is not None:
        try:
            latency = latency_table(space, settings.latency.check(key="search.latency"))
        except TrackNASError as err:
            raise ConfigError(": ".join(p for p in (err.source, err.detail) if p), source=cfg.source,
                              key="search.latency") from None
    try:
        check_feasible(space, settings.bounds, latency)
    except TrackNASError as err:
        raise ConfigError(err.detail, source=cfg.source, key="search.bounds") from None


def _check_fitness_runtime(cfg: RunConfig, space: SearchSpace) -> None:
    """The fitness runtime is installed and can run the space's subnets."""
    check_runtime(cfg.fitness.runtime, key="fitness.runtime")
    updates = [h.name for h in space.spec.heads if KINDS[h.type].role == "update"]
    if cfg.fitness.runtime != "torch" and updates:
        raise ConfigError(f"{cfg.fitness.runtime} cannot run this space: its {updates[0]!r} template update "
                          "differentiates through the network while tracking; use torch", key="fitness.runtime")


def _check_data(cfg: RunConfig, search: bool) -> None:
    root, fc = Path(cfg.data.root), cfg.fitness
    for i, src in enumerate(cfg.data.sources):  # the list form: every source opens and has a pair to draw
        _check_opens(cfg, f"data[{i}]", "",
                     lambda src=src: open_source(src["path"], src["format"], src["split"], src["frames"]))
    if cfg.data.sources and search and fc.val_root is None and cfg.data.sources[0]["format"] == "coco":
        raise ConfigError("the first source gives the validation videos (fitness.val_split); expected a video "
                          "dataset first, got coco", source=cfg.source, key="data[0].format")
    sets = {}
    if search and fc.val_root is not None:  # a validation set of its own: never synthesised, always checked
        sets["fitness.val_root"] = validation_source(str(root), cfg.data.format, fc.val_split, fc.val_root,
                                                     fc.val_format)
    listed = all((root / split / "list.txt").is_file() for split in ("train", "val"))
    if cfg.data.synthesize is not None and not listed:
        synth.check_output_dir(root, overwrite=True)  # refuses anything synthesis did not create
    elif not root.is_dir():
        raise ConfigError(f"expected a dataset folder, got {'a file' if root.exists() else 'nothing'} at {root} "
                          "(data.synthesize creates the default data)", source=cfg.source, key="data.root")
    else:
        if not cfg.data.sources:
            sets["data.split"] = (str(root), cfg.data.format, cfg.data.split)
        if search and fc.val_root is None:
            sets["fitness.val_split"] = (str(root), cfg.data.format, fc.val_split)
    for key, (set_root, set_format, split) in sets.items():
        _check_opens(cfg, key, f"{split!r} in " if split else "",
                     lambda set_root=set_root, set_format=set_format, split=split:
                     open_dataset(set_root, set_format, split))


def _check_opens(cfg: RunConfig, key: str, prefix: str, read) -> None:
    """`read()` gives at least one sequence whose first frame decodes; else one line: `key`, `prefix` and
    the reader's error (which names the dataset's file)."""
    try:
        sequences = read()
        if not sequences:
            raise ConfigError("holds no sequences")
        sequences[0].frame(0)
    except TrackNASError as err:
        detail = ": ".join(p for p in (err.source, err.key, err.detail) if p)
        raise ConfigError(f"{prefix}{detail}", source=cfg.source, key=key) from None
