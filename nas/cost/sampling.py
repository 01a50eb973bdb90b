"""Constrained sampling that cannot loop forever.

Feasibility is decided up front from the table's exact minima; then uniform rejection sampling
draws from the feasible set. Only when a bound admits a tiny fraction of the space does the sampler
fall back to repairing a uniform draw gene by gene towards the cheapest architecture, which is
feasible by the up-front check, so the loop always ends.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from nas.cost.lut import LatencyTable
from nas.cost.table import CostTable, cost_table
from nas.errors import TrackNASError
from nas.space.space import Arch, SearchSpace
from nas.space.spec import Bounds

REJECTION_TRIES = 2000


def cheapest_genotype(space: SearchSpace, table: CostTable, column: str) -> tuple[int, ...]:
    """The genotype minimising FLOPs or params (see `extreme_genotype`)."""
    return extreme_genotype(space, table, column, largest=False)


def extreme_genotype(space: SearchSpace, table: CostTable, column: str, *, largest: bool) -> tuple[int, ...]:
    """The genotype minimising (or maximising) FLOPs or params: per output position, each gene at
    its extreme option (cost is additive given the output position and the head widths)."""
    pick = np.argmax if largest else np.argmin
    best, best_cost = None, None
    measure = table.flops if column == "flops" else table.params
    for p in range(len(space.genes[space.output_gene].options)):
        genotype = [0] * len(space.genes)
        genotype[space.output_gene] = p
        # two coordinate passes: head layer costs depend on the head's width, which the first pass settles
        for _ in range(2):
            for i, gene in enumerate(space.genes):
                if i == space.output_gene:
                    continue
                costs = []
                for option in range(len(gene.options)):
                    genotype[i] = option
                    costs.append(measure(tuple(genotype)))
                genotype[i] = int(pick(costs))
        cost = measure(tuple(genotype))
        if best_cost is None or (cost > best_cost if largest else cost < best_cost):
            best, best_cost = tuple(genotype), cost
    return best


def bounded_cost(table: CostTable, latency: LatencyTable | None, genotype: tuple[int, ...]) -> dict:
    """What `Bounds.admits` reads: FLOPs and params, and the predicted latency when a table is given."""
    cost = {"flops": table.flops(genotype), "params": table.params(genotype)}
    if latency is not None:
        cost["latency_ms"] = latency.predict_ms(genotype)
    return cost


def check_feasible(space: SearchSpace, bounds: Bounds, latency: LatencyTable | None = None) -> tuple[int, ...]:
    """Return a feasible anchor genotype, or raise a one-line error saying which bound is impossible.
    A latency bound is checked against `latency` (predicted milliseconds), which it then requires."""
    if bounds.latency_ms is not None and latency is None:
        raise TrackNASError(f"a latency bound ({bounds.latency_ms} ms) needs a latency table to check it against "
                            "(search.latency in a config, --runtime/--threads on the command line)")
    return _feasible_anchor(space.hash, space, bounds, latency if bounds.latency_ms is not None else None)


@lru_cache(maxsize=64)
def _feasible_anchor(space_hash: str, space: SearchSpace, bounds: Bounds,
                     latency: LatencyTable | None) -> tuple[int, ...]:
    table = cost_table(space)
    extremes = table.extremes()
    for name, bound in (("flops", bounds.flops), ("params", bounds.params)):
        if bound is not None and extremes[name][0] > bound:
            raise TrackNASError(f"infeasible bound: {name} <= {bound:,} but the smallest architecture of space "
                                f"{space.name!r} has {extremes[name][0]:,} {name}")
    anchors = [cheapest_genotype(space, table, column) for column in ("flops", "params")]
    if latency is not None:
        fastest = latency.range_ms()[0]
        if fastest > bounds.latency_ms:
            raise TrackNASError(f"infeasible bound: latency_ms <= {bounds.latency_ms:g} but the fastest architecture "
                                f"of space {space.name!r} is predicted at {fastest:.2f} ms "
                                f"({latency.setting.describe()})")
        anchors.append(cheapest_genotype(space, latency.costs, "flops"))  # its column 0 holds microseconds
    for anchor in anchors:
        if bounds.admits(bounded_cost(table, latency, anchor)):
            return anchor
    raise TrackNASError(f"infeasible bounds: no architecture of space {space.name!r} meets flops <= "
                        f"{bounds.flops}, params <= {bounds.params} and latency_ms <= {bounds.latency_ms} together")


def sample_within(space: SearchSpace, rng: np.random.Generator, bounds: Bounds | None,
                  latency: LatencyTable | None = None) -> Arch:
    """Uniform over the architectures within `bounds` (over all of them without bounds); a latency bound
    is checked against the predicted latency of `latency`."""
    if bounds is None or (bounds.flops is None and bounds.params is None and bounds.latency_ms is None):
        return space.sample(rng)
    table = cost_table(space)
    anchor = check_feasible(space, bounds, latency)

    def admits(genotype: tuple[int, ...]) -> bool:
        return bounds.admits(bounded_cost(table, latency, genotype))

    for _ in range(REJECTION_TRIES):
        genotype = space.random_genotype(rng)
        if admits(genotype):
            return Arch(space, genotype)
    return Arch(space, repair_towards(space.random_genotype(rng), anchor, admits, rng))


def repair_towards(genotype: tuple[int, ...], anchor: tuple[int, ...], admits, rng: np.random.Generator) -> tuple[int, ...]:
    """Copy random genes from a feasible `anchor` until `admits` holds; ends, since the anchor is feasible."""
    genes = list(genotype)
    while not admits(tuple(genes)):
        differing = [i for i, (g, a) in enumerate(zip(genes, anchor)) if g != a]
        i = differing[int(rng.integers(len(differing)))]
        genes[i] = anchor[i]
    return tuple(genes)
