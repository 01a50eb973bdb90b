"""A cheap fitness with a known optimum, for tests, benchmarks and examples of the search engine.

`ToyFitness` scores how many genes of an architecture match a hidden target architecture (weighted
per gene) plus an interaction bonus for adjacent genes matching together, so single-gene hill
climbing is not the whole story. Only the genes that change the subnet count (inactive genes are
masked), so two genotypes sharing an `arch_id` always score the same, as a real fitness would. The
optimum is the target, with fitness exactly 1.0.

`FaultyFactory` wraps any fitness factory to inject the two faults the Ray pool must survive: a
worker process killed mid-evaluation (once, tracked by a marker file) and an evaluation that raises.
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.space import Arch, Bounds, SearchSpace, load_space

INTERACTION_WEIGHT = 0.2


class ToyFitness:
    """Deterministic fitness in [0, 1]; 1.0 exactly at `self.target` (a feasible sample under `bounds`)."""

    def __init__(self, space: SearchSpace | str | os.PathLike, seed: int = 0, bounds: Bounds | None = None,
                 delay: float = 0.0):
        self.space = space if isinstance(space, SearchSpace) else load_space(space)
        rng = np.random.default_rng([seed, 0x70F])
        self.target = self.space.sample(rng, bounds)
        self.weights = rng.uniform(0.5, 1.5, len(self.space.genes))
        self._target = self._masked(self.target)
        self.delay = delay

    @staticmethod
    def _masked(arch: Arch) -> np.ndarray:
        active = np.zeros(len(arch.genotype), dtype=bool)
        active[list(arch.active_genes)] = True
        return np.where(active, np.asarray(arch.genotype), -1)

    def evaluate(self, genotype: list[int]) -> dict:
        match = self._masked(Arch(self.space, tuple(genotype))) == self._target
        single = float(np.sum(self.weights * match)) / float(np.sum(self.weights))  # exactly 1.0 at the target
        pairs = float(np.mean(match[:-1] & match[1:]))
        if self.delay:
            time.sleep(self.delay)  # stands in for the cost of a real evaluation (benchmarks, kill tests)
        return {"fitness": (1 - INTERACTION_WEIGHT) * single + INTERACTION_WEIGHT * pairs,
                "matched_genes": int(match.sum())}


@dataclass(frozen=True)
class ToyFactory:
    """Picklable factory for `ToyFitness` (a space name or path travels, not the space object)."""

    space: str
    seed: int = 0
    bounds: Bounds | None = None
    delay: float = 0.0

    def __call__(self) -> ToyFitness:
        return ToyFitness(self.space, self.seed, self.bounds, self.delay)


@dataclass(frozen=True)
class FaultyFactory:
    """Wraps a fitness factory with injected faults, to test recovery with real processes.

    `kill_marker`: the first evaluation of `kill_on` (of any genotype when None) that finds no file
    there creates it (holding its genotype as JSON) and SIGKILLs its own process, so exactly one
    evaluation in the whole pool dies, once. `fail_on`: evaluating this genotype always raises.
    """

    factory: Callable[[], object]
    kill_marker: str | None = None
    kill_on: tuple[int, ...] | None = None
    fail_on: tuple[int, ...] | None = None

    def __call__(self) -> "_Faulty":
        return _Faulty(self.factory(), self)


class _Faulty:
    def __init__(self, inner, faults: FaultyFactory):
        self.inner, self.faults = inner, faults

    def evaluate(self, genotype: list[int]) -> dict:
        faults = self.faults
        if faults.fail_on is not None and tuple(genotype) == faults.fail_on:
            raise RuntimeError(f"injected failure on {list(genotype)}")
        if faults.kill_marker is not None and faults.kill_on in (None, tuple(genotype)):
            try:
                fd = os.open(faults.kill_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(json.dumps(list(genotype)))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.evaluate(genotype)


def read_marker(path: str | os.PathLike) -> tuple[int, ...]:
    """The genotype whose evaluation was killed by a `FaultyFactory` marker."""
    return tuple(json.loads(Path(path).read_text()))
