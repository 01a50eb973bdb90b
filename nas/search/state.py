"""Search settings and the resumable search state (plain JSON, written atomically).

The state holds everything the search needs to continue exactly where it stopped: the settings,
the current generation, the parents (top-k, or NSGA-II survivors) and the planned batch of the
current generation as plain genotypes, every evaluated candidate keyed by `arch_id`, and the
logbook. It is rewritten (temp file + `os.replace`, see `nas.io`) after every evaluated candidate,
so a kill at any point loses at most the evaluations in flight. Wall-clock timings live in their own
list, apart from the logbook, because they are the only part a resumed run cannot reproduce.

A failed candidate is stored with `"fitness": null` (the JSON stays strict) and read back as -inf.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from nas.cost.lut import LatencySetting
from nas.errors import ConfigError
from nas.io import atomic_write_text, load_json
from nas.space import Bounds, SearchSpace

STATE_SCHEMA = "tracknas.search-state/v1"
ALGORITHMS = ("evolution", "nsga2", "random")
# objective -> DEAP weight: fitness is maximised, costs are minimised
OBJECTIVE_WEIGHTS = {"fitness": 1.0, "flops": -1.0, "params": -1.0, "latency_ms": -1.0}

Genotype = tuple[int, ...]


@dataclass(frozen=True)
class SearchSettings:
    """Defaults follow LightTrack's search: 48 candidates, top-10, 24 mutants + 24 crossover children
    per generation, per-gene mutation probability 0.1, 20 generations, 10 retries per child."""

    population: int = 48  # size of generation 0 (and of the NSGA-II survivor set)
    top_k: int = 10
    mutations: int = 24
    crossovers: int = 24
    mutation_prob: float = 0.1
    generations: int = 20  # evaluated batches, generation 0 included
    seed: int = 0
    bounds: Bounds = field(default_factory=Bounds)
    algorithm: str = "evolution"
    objectives: tuple[str, ...] = ("fitness", "flops")  # NSGA-II objectives; also the reported Pareto front
    max_retries: int = 10
    seeds: tuple[Genotype, ...] = ()  # known architectures placed in generation 0 (e.g. the space's reference)
    latency: LatencySetting | None = None  # the latency table (`nas.cost.lut`) that predicts `latency_ms`

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"unknown algorithm {self.algorithm!r}; expected one of {', '.join(ALGORITHMS)}",
                              key="search.algorithm")
        unknown = [o for o in self.objectives if o not in OBJECTIVE_WEIGHTS]
        if unknown or not self.objectives or self.objectives[0] != "fitness":
            raise ConfigError(f"objectives must start with 'fitness' and use only {', '.join(OBJECTIVE_WEIGHTS)}; "
                              f"got {list(self.objectives)}", key="search.objectives")
        for name in ("population", "top_k", "generations", "max_retries"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", key=f"search.{name}")
        if self.mutations < 0 or self.crossovers < 0 or self.mutations + self.crossovers < 1:
            raise ConfigError("mutations and crossovers must be >= 0 with at least one child per generation",
                              key="search.mutations")
        if not 0.0 < self.mutation_prob <= 1.0:
            raise ConfigError(f"must be in (0, 1], got {self.mutation_prob}", key="search.mutation_prob")
        if self.bounds.latency_ms is not None and self.latency is None:
            raise ConfigError("a latency bound needs a latency table: give search.latency {runtime, threads, device}",
                              key="search.bounds.latency_ms")

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(OBJECTIVE_WEIGHTS[o] for o in self.objectives)

    def to_json(self) -> dict:
        return {**asdict(self), "objectives": list(self.objectives), "seeds": [list(g) for g in self.seeds]}

    @classmethod
    def from_json(cls, obj: dict) -> "SearchSettings":
        known = {f.name for f in fields(cls)}
        unknown = set(obj) - known
        if unknown:
            raise ConfigError(f"unknown settings {sorted(unknown)}", key="search")
        return cls(**{**obj, "bounds": Bounds(**obj.get("bounds", {})),
                      "objectives": tuple(obj.get("objectives", cls.objectives)),
                      "seeds": tuple(tuple(int(v) for v in g) for g in obj.get("seeds", ())),
                      "latency": LatencySetting(**obj["latency"]) if obj.get("latency") else None})


_FIELD_TYPES = {"settings": dict, "space": str, "space_hash": str, "generation": int, "parents": list,
                "pending": list, "evaluated": dict, "logbook": list, "timings": list, "done": bool}


@dataclass
class SearchState:
    settings: SearchSettings
    space: str
    space_hash: str
    generation: int = 0
    parents: list[Genotype] = field(default_factory=list)
    pending: list[Genotype] = field(default_factory=list)  # the planned batch of `generation`
    evaluated: dict[str, dict] = field(default_factory=dict)  # arch_id -> the candidate's record (see `record`)
    logbook: list[dict] = field(default_factory=list)
    timings: list[dict] = field(default_factory=list)  # wall clock per generation, not reproducible
    done: bool = False
    _lines: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)  # see `dumps`

    @classmethod
    def fresh(cls, space: SearchSpace, settings: SearchSettings) -> "SearchState":
        return cls(settings, space.name, space.hash)

    @staticmethod
    def record(genotype: Genotype, fitness: float, metrics: dict, cost: dict[str, int], attempts: int,
               error: str | None, generation: int) -> dict:
        """The one record of an evaluated candidate: its cost is computed once, here, and every report,
        export and plot reads it from the record."""
        return {"genotype": list(genotype), "fitness": fitness, "metrics": metrics, "cost": cost,
                "attempts": attempts, "error": error, "generation": generation}

    def _head(self) -> dict:
        return {"schema": STATE_SCHEMA, "space": self.space, "space_hash": self.space_hash,
                "settings": self.settings.to_json(), "generation": self.generation, "done": self.done,
                "parents": [list(g) for g in self.parents], "pending": [list(g) for g in self.pending],
                "timings": self.timings, "logbook": self.logbook}

    @staticmethod
    def _plain(record: dict) -> dict:
        return {**record, "fitness": record["fitness"] if math.isfinite(record["fitness"]) else None}

    def to_json(self) -> dict:
        return {**self._head(), "evaluated": {aid: self._plain(r) for aid, r in self.evaluated.items()}}

    def dumps(self) -> str:
        """`to_json` as text with one logbook entry / evaluated candidate per line (readable, diffable).

        Records are write-once, so each one's line is encoded once and reused by every later save:
        rewriting the state after each evaluation stays cheap as the search grows."""
        head = self._head()
        logbook = head.pop("logbook")
        for aid, record in self.evaluated.items():
            if aid not in self._lines:
                self._lines[aid] = f"{json.dumps(aid)}: {json.dumps(self._plain(record))}"
        parts = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in head.items()]
        parts.append('"logbook": [' + ",".join(f"\n  {json.dumps(e)}" for e in logbook) + "\n ]")
        parts.append('"evaluated": {' + ",".join(f"\n  {self._lines[aid]}" for aid in self.evaluated) + "\n }")
        return "{\n " + ",\n ".join(parts) + "\n}\n"

    @classmethod
    def from_json(cls, obj: dict, *, source: str = "<state>") -> "SearchState":
        if obj.get("schema") != STATE_SCHEMA:
            raise ConfigError(f"not a search state (schema {obj.get('schema')!r}, expected {STATE_SCHEMA!r})",
                              source=source)
        for key, kind in _FIELD_TYPES.items():
            value = obj[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigError(f"not a valid search state: {key} has the wrong type (expected {kind.__name__}, "
                                  f"got {type(value).__name__})", source=source)
        evaluated = {aid: {**r, "fitness": -math.inf if r["fitness"] is None else float(r["fitness"])}
                     for aid, r in obj["evaluated"].items()}
        return cls(SearchSettings.from_json(obj["settings"]), obj["space"], obj["space_hash"], obj["generation"],
                   [tuple(g) for g in obj["parents"]], [tuple(g) for g in obj["pending"]], evaluated,
                   obj["logbook"], obj["timings"], obj["done"])

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.dumps())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SearchState":
        """A saved state; an unreadable, truncated or hand-edited file is one ConfigError line."""
        obj: Any = load_json(path, error=ConfigError, what="search state (JSON)")
        if not isinstance(obj, dict):
            raise ConfigError(f"expected a JSON object, got {type(obj).__name__}", source=str(path))
        try:
            return cls.from_json(obj, source=str(path))
        except KeyError as exc:
            raise ConfigError(f"not a complete search state: {exc.args[0]!r} is missing", source=str(path)) from None
        except (TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"not a valid search state: a field has the wrong type ({exc})",
                              source=str(path)) from None

    def check_resumable(self, space: SearchSpace, settings: SearchSettings, source: str) -> None:
        """Refuse to continue a state made for another space or other settings (generations may grow)."""
        if (self.space, self.space_hash) != (space.name, space.hash):
            raise ConfigError(f"state was made for space {self.space!r} ({self.space_hash}), not "
                              f"{space.name!r} ({space.hash})", source=source)
        if replace(self.settings, generations=settings.generations) != settings:
            raise ConfigError("state was made with different search settings; resume with the same settings "
                              "(only 'generations' may change)", source=source)
