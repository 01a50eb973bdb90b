"""Constraint-aware, duplicate-free variation: the only way candidates enter a search.

Every planned candidate is feasible (checked exactly with the cost table) and new (its `arch_id`
is neither evaluated already nor earlier in the same batch), so the evaluator never spends time on
an architecture that breaks the budget (FLOPs, params, and predicted latency from a latency table)
or that it has seen. Children come from the space's own
operators (`SearchSpace.mutate`, `SearchSpace.crossover`); an infeasible or duplicate child is
redrawn up to `max_retries` times, then an infeasible one is repaired towards the feasible anchor of
`nas.cost.sampling.check_feasible`; slots still empty are filled with constrained random samples.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nas.cost.lut import LatencyTable
from nas.cost.sampling import bounded_cost, check_feasible, repair_towards, sample_within
from nas.cost.table import cost_table
from nas.space import Arch, Bounds, SearchSpace

Genotype = tuple[int, ...]


class Variation:
    """Plans batches of feasible, unseen genotypes for one space and one set of bounds."""

    def __init__(self, space: SearchSpace, bounds: Bounds, mutation_prob: float, max_retries: int,
                 latency: LatencyTable | None = None):
        self.space, self.bounds, self.latency = space, bounds, latency
        self.mutation_prob, self.max_retries = mutation_prob, max_retries
        self.table = cost_table(space)
        self.anchor = check_feasible(space, bounds, latency)  # raises a one-line error for impossible bounds

    def feasible(self, genotype: Genotype) -> bool:
        return self.bounds.admits(bounded_cost(self.table, self.latency, genotype))

    def repair(self, genotype: Genotype, rng: np.random.Generator) -> Genotype:
        """Move genes to the feasible anchor's until the bounds hold (see `repair_towards`)."""
        return repair_towards(genotype, self.anchor, self.feasible, rng)

    def random_batch(self, count: int, rng: np.random.Generator, seen: set[str]) -> list[Genotype]:
        """Up to `count` constrained uniform samples not in `seen` (fewer only if the space runs out)."""
        batch: list[Genotype] = []
        for _ in range(max(count, 1) * self.max_retries):
            if len(batch) == count:
                break
            arch = sample_within(self.space, rng, self.bounds, self.latency)
            if arch.arch_id not in seen:
                seen.add(arch.arch_id)
                batch.append(arch.genotype)
        return batch

    def offspring(self, parents: list[Genotype], mutations: int, crossovers: int,
                  rngs: dict[str, np.random.Generator], seen: set[str]) -> list[Genotype]:
        """`mutations` mutants of random parents, then `crossovers` children of random parent pairs,
        then constrained random samples for any slot the operators could not fill."""
        archs = [Arch(self.space, g) for g in parents]

        def mutant(rng: np.random.Generator) -> Arch:
            return self.space.mutate(archs[int(rng.integers(len(archs)))], rng, self.mutation_prob)

        def child(rng: np.random.Generator) -> Arch:
            a, b = rng.choice(len(archs), size=2, replace=len(archs) < 2)
            return self.space.crossover(archs[int(a)], archs[int(b)], rng)

        batch: list[Genotype] = []
        for draw, count, rng in ((mutant, mutations, rngs["mutation"]), (child, crossovers, rngs["crossover"])):
            for _ in range(count if archs else 0):
                genotype = self._new_child(draw, rng, seen)
                if genotype is not None:
                    batch.append(genotype)
        return batch + self.random_batch(mutations + crossovers - len(batch), rngs["fill"], seen)

    def _new_child(self, draw: Callable[[np.random.Generator], Arch], rng: np.random.Generator,
                   seen: set[str]) -> Genotype | None:
        infeasible = None
        for _ in range(self.max_retries):
            arch = draw(rng)
            if not self.feasible(arch.genotype):
                infeasible = arch.genotype
            elif arch.arch_id not in seen:
                return self._claim(arch, seen)
        if infeasible is not None:
            repaired = Arch(self.space, self.repair(infeasible, rng))
            if repaired.arch_id not in seen:
                return self._claim(repaired, seen)
        return None

    @staticmethod
    def _claim(arch: Arch, seen: set[str]) -> Genotype:
        seen.add(arch.arch_id)
        return arch.genotype
