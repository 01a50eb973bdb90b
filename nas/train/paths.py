"""Path samplers for single-path supernet training: which architecture runs at each step.

- `uniform` (LightTrack Alg. 1, SPOS): every gene uniform; optionally only inside a FLOPs/params
  window (rejection against the cost table, see `nas.cost.sampling`).
- `fair` (FairNAS-style strict fairness): each gene walks through a shuffled permutation of its
  options, so every option of every gene is trained equally often; bounds are not supported
  (fairness and a cost window conflict).
- `sandwich` (BigNAS-style): steps cycle largest, smallest, uniform, uniform, where largest and
  smallest are the architectures of maximum and minimum FLOPs (exact without a window; inside a
  window, the smallest is exact and the largest is the heaviest of 512 feasible draws).
- `anchored` (a prioritized path, as Cream's board or BigNAS's anchor): every other step trains the
  space's reference architecture (the DSL `reference`; the largest one when the space names none),
  the others are uniform. The anchor path trains at half the rate of a standalone model and lifts the
  weights every path shares with it, which is what lets a minutes-long run produce a supernet
  whose paths track; the search is seeded with the same architecture so it is never lost.

Every sampler is a pure function of (seed, step): all data-parallel workers draw the same path
without communicating, and a resumed run draws exactly the paths the uninterrupted run would.
"""
from __future__ import annotations

import numpy as np

from nas.cost.sampling import check_feasible, extreme_genotype, sample_within
from nas.cost.table import cost_table
from nas.errors import ConfigError
from nas.space.arch import reference_arch
from nas.space.space import Arch, SearchSpace
from nas.space.spec import Bounds

SAMPLERS = ("uniform", "fair", "sandwich", "anchored")


class PathSampler:
    def __init__(self, space: SearchSpace, kind: str = "uniform", bounds: Bounds | None = None, seed: int = 0):
        if kind not in SAMPLERS:
            raise ConfigError(f"expected one of {', '.join(SAMPLERS)}, got {kind!r}", key="train.path_sampler")
        bounded = bounds is not None and (bounds.flops is not None or bounds.params is not None)
        if kind == "fair" and bounded:
            raise ConfigError("fair sampling cannot honour a FLOPs/params window; use uniform or sandwich",
                              key="train.path_sampler")
        self.space, self.kind, self.seed = space, kind, int(seed)
        self.bounds = bounds if bounded else None
        if kind == "sandwich":
            self._extremes = self._largest_and_smallest()
        if kind == "anchored":
            reference = reference_arch(space)
            self._anchor = reference[1] if reference else self._largest_and_smallest()[0]

    def __call__(self, step: int) -> Arch:
        rng = np.random.default_rng([self.seed, 7, int(step)])
        if self.kind == "fair":
            return self._fair(step)
        if self.kind == "sandwich" and step % 4 < 2:
            return self._extremes[step % 4]
        if self.kind == "anchored" and step % 2 == 0:
            return self._anchor
        return sample_within(self.space, rng, self.bounds)

    def _fair(self, step: int) -> Arch:
        genotype = []
        for g, card in enumerate(self.space.cardinalities):
            cycle, position = divmod(int(step), int(card))
            order = np.random.default_rng([self.seed, 11, g, cycle]).permutation(int(card))
            genotype.append(int(order[position]))
        return Arch(self.space, tuple(genotype))

    def _largest_and_smallest(self) -> tuple[Arch, Arch]:
        table = cost_table(self.space)
        if self.bounds is None:
            return (Arch(self.space, extreme_genotype(self.space, table, "flops", largest=True)),
                    Arch(self.space, extreme_genotype(self.space, table, "flops", largest=False)))
        rng = np.random.default_rng([self.seed, 13])
        candidates = [sample_within(self.space, rng, self.bounds).genotype for _ in range(512)]
        return Arch(self.space, max(candidates, key=table.flops)), Arch(self.space, check_feasible(self.space, self.bounds))
