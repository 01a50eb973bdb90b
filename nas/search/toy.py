"""A cheap fitness with a known optimum, for tests, benchmarks and examples of the search engine.

`ToyFitness` scores how many genes of an architecture match a hidden target architecture (weighted
per gene) plus an interaction bonus for adjacent genes matching together, so single-gene hill
climbing is not the whole story. Only the genes that change the subnet count (inactive genes are
masked), so two genotypes sharing an `arch_id` always score the same, as a real fitness would. The
optimum is the target, with fitness exactly 1.0. Used by the search benchmark, the runnable example
(`nas.search.toy_run`) and the search tests.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from nas.cost.sampling import sample_within
from nas.space import Arch, Bounds, SearchSpace, load_space

INTERACTION_WEIGHT = 0.2


class ToyFitness:
    """Deterministic fitness in [0, 1]; 1.0 exactly at `self.target` (a feasible sample under `bounds`)."""

    def __init__(self, space: SearchSpace | str | os.PathLike, seed: int = 0, bounds: Bounds | None = None,
                 delay: float = 0.0):
        self.space = space if isinstance(space, SearchSpace) else load_space(space)
        rng = np.random.default_rng([seed, 0x70F])
        self.target = sample_within(self.space, rng, bounds)
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
