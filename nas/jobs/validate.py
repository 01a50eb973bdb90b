"""The up-front check of a run: everything it will need, before any synthesis, training or Ray start."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.config import RunConfig
from nas.cost.lut import latency_table
from nas.cost.sampling import check_feasible
from nas.data import synth
from nas.data.datasets import open_dataset
from nas.errors import ConfigError, TrackNASError
from nas.jobs.search import search_settings
from nas.space import SearchSpace, load_space
from nas.train.sstrack import make_interval_strategy


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
    if space is not None and cfg.supernet.bounds:
        check(check_feasible, space, cfg.supernet.path_bounds(), prefix="supernet.bounds")
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


def _check_data(cfg: RunConfig, search: bool) -> None:
    root = Path(cfg.data.root)
    listed = all((root / split / "list.txt").is_file() for split in ("train", "val"))
    if cfg.data.synthesize is not None and not listed:
        synth.check_output_dir(root, overwrite=True)  # refuses anything synthesis did not create
        return
    if not root.is_dir():
        raise ConfigError(f"expected a dataset folder, got {'a file' if root.exists() else 'nothing'} at {root} "
                          "(data.synthesize creates the default data)", source=cfg.source, key="data.root")
    splits = {"data.split": cfg.data.split, **({"fitness.val_split": cfg.fitness.val_split} if search else {})}
    for key, split in splits.items():
        try:
            sequences = open_dataset(root, cfg.data.format, split)
            if not sequences:
                raise ConfigError(f"split {split!r} holds no sequences", source=str(root))
            sequences[0].frame(0)  # the first frame decodes
        except TrackNASError as err:
            detail = ": ".join(p for p in (err.source, err.key, err.detail) if p)
            raise ConfigError(f"{split!r} in {detail}", source=cfg.source, key=key) from None
