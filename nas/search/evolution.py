"""The search driver: LightTrack's Alg. 2 (elitist top-k evolution), NSGA-II, and a random baseline.

One loop serves all three algorithms. Generation 0 is `population` constrained random samples; each
later generation plans `mutations + crossovers` new candidates (see `nas.search.operators`) from the
parents, evaluates them, then selects the next parents over old parents + the new batch:

- `evolution`: the top-k by fitness (`tools.selBest`), i.e. (mu + lambda) over the old top-k; equal
  fitness is broken by the other objectives (the cheaper architecture first);
- `nsga2`: `tools.selNSGA2` down to `population` over `settings.objectives` (failed candidates are
  never survivors); children come from survivors drawn uniformly, as in `evolution` from the top-k;
- `random`: batches of constrained random samples of the same sizes (the same evaluation budget).

Determinism: every random draw comes from a numpy Generator seeded by (seed, generation, purpose),
and results are applied in the planned order, so a fixed seed gives the same search whatever the
worker count, the completion order, or where a run was killed and resumed. DEAP individuals exist
only in this process (creator classes are created once, guarded); evaluators see plain genotypes.
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from deap import base, creator, tools

from nas.cost.lut import latency_table
from nas.cost.table import cost_table
from nas.errors import ConfigError
from nas.progress import Progress
from nas.search.evaluators import EvalOutcome, Evaluator
from nas.search.operators import Variation
from nas.search.state import Genotype, SearchSettings, SearchState
from nas.space import Arch, SearchSpace
from nas.tb import EventLog

_PURPOSES = {"init": 0, "mutation": 1, "crossover": 2, "fill": 3}
_LOG_FIELDS = ("gen", "evals", "failed", "best", "mean", "median", "best_so_far", "best_arch")


@dataclass(frozen=True)
class Candidate:
    """An evaluated architecture as the search's record holds it (see `SearchState.record`)."""

    arch: Arch
    fitness: float
    metrics: dict
    cost: dict[str, int]

    @property
    def arch_id(self) -> str:
        return self.arch.arch_id

    @property
    def genotype(self) -> Genotype:
        return self.arch.genotype

    @classmethod
    def of(cls, arch: Arch, record: dict) -> "Candidate":
        return cls(arch, record["fitness"], record["metrics"], record["cost"])


@dataclass(frozen=True)
class SearchResult:
    best: Candidate | None  # highest fitness (ties: smallest arch_id); None if every candidate failed
    pareto: list[Candidate]  # non-dominated over `settings.objectives`, failed candidates excluded
    logbook: list[dict]  # one record per generation (deterministic: no wall-clock fields)
    evaluated: dict[str, dict]  # arch_id -> {genotype, fitness, metrics, cost, attempts, error, generation}
    candidates: dict[str, Candidate]  # arch_id -> the same records as candidates (Arch built once)
    timings: list[dict]  # wall-clock seconds per generation
    state_path: Path


def rng_for(seed: int, generation: int, purpose: str) -> np.random.Generator:
    """The one source of randomness: independent streams per (seed, generation, purpose)."""
    return np.random.default_rng([seed, generation, _PURPOSES[purpose]])


def _individual_class(weights: tuple[float, ...]) -> type:
    """DEAP creator classes per objective signature, created once per process (guarded)."""
    tag = "_".join(("max" if w > 0 else "min") for w in weights)
    fitness_name, individual_name = f"TrackNASFitness_{tag}", f"TrackNASIndividual_{tag}"
    if not hasattr(creator, fitness_name):
        creator.create(fitness_name, base.Fitness, weights=weights)
    if not hasattr(creator, individual_name):
        creator.create(individual_name, list, fitness=getattr(creator, fitness_name), arch_id=str)
    return getattr(creator, individual_name)


class _Search:
    def __init__(self, space: SearchSpace, settings: SearchSettings, evaluator: Evaluator, state: SearchState,
                 state_path: Path, progress: bool, events: Path | None = None):
        self.space, self.settings, self.evaluator = space, settings, evaluator
        self.state, self.state_path, self.progress = state, state_path, progress
        self.tb = EventLog(events)
        self.table = cost_table(space)
        self.latency = latency_table(space, settings.latency) if settings.latency else None
        self._archs: dict[Genotype, Arch] = {}
        self.variation = Variation(space, settings.bounds, settings.mutation_prob, settings.max_retries, self.latency)
        self.individual = _individual_class(settings.weights)
        self.logbook = tools.Logbook()
        self.logbook.header = _LOG_FIELDS
        for entry in state.logbook:
            self.logbook.record(**entry)
        for record in state.evaluated.values():  # a state written before records carried their cost
            record.setdefault("cost", self.cost(self.arch(record["genotype"])))

    # -- individuals ----------------------------------------------------------------------------
    def arch(self, genotype: Genotype) -> Arch:
        """The candidate's `Arch`, built once per genotype and reused by every later step."""
        genotype = tuple(genotype)
        arch = self._archs.get(genotype)
        if arch is None:
            arch = self._archs[genotype] = Arch(self.space, genotype)
        return arch

    def arch_id(self, genotype: Genotype) -> str:
        return self.arch(genotype).arch_id

    def candidate(self, arch_id: str) -> Candidate:
        record = self.state.evaluated[arch_id]
        return Candidate.of(self.arch(record["genotype"]), record)

    def objective_values(self, record: dict) -> tuple[float, ...]:
        worst = {1.0: -math.inf, -1.0: math.inf}
        if not math.isfinite(record["fitness"]):
            return tuple(worst[w] for w in self.settings.weights)
        return tuple(record["fitness"] if o == "fitness" else float(record["metrics"][o])
                     for o in self.settings.objectives)

    def individuals(self, arch_ids: list[str]) -> list:
        result = []
        for aid in arch_ids:
            record = self.state.evaluated[aid]
            ind = self.individual(record["genotype"])
            ind.arch_id = aid
            ind.fitness.values = self.objective_values(record)
            result.append(ind)
        return result

    # -- one generation -------------------------------------------------------------------------
    def plan(self) -> list[Genotype]:
        gen, settings = self.state.generation, self.settings
        seen = set(self.state.evaluated)
        if gen == 0:
            seeds = [g for g in dict.fromkeys(settings.seeds) if self.arch_id(g) not in seen
                     and self.variation.feasible(tuple(g))][: settings.population]
            seen |= {self.arch_id(g) for g in seeds}
            return seeds + self.variation.random_batch(settings.population - len(seeds),
                                                       rng_for(settings.seed, 0, "init"), seen)
        count = settings.mutations + settings.crossovers
        if settings.algorithm == "random":
            return self.variation.random_batch(count, rng_for(settings.seed, gen, "fill"), seen)
        rngs = {p: rng_for(settings.seed, gen, p) for p in ("mutation", "crossover", "fill")}
        return self.variation.offspring(self.state.parents, settings.mutations, settings.crossovers, rngs, seen)

    def cost(self, arch: Arch) -> dict:
        """FLOPs, params, template FLOPs, and with a latency table the predicted `latency_ms`."""
        cost = self.table.cost(arch)
        return self.latency.annotate(cost, arch) if self.latency is not None else cost

    def store(self, outcome: EvalOutcome) -> str:
        """Record one outcome with its cost (FLOPs, params and any predicted latency also as metrics) and
        checkpoint the whole state."""
        arch = self.arch(outcome.genotype)
        cost = self.cost(arch)
        metrics = {**outcome.metrics, **{k: cost[k] for k in ("flops", "params", "latency_ms") if k in cost}}
        missing = [o for o in self.settings.objectives[1:] if o not in metrics]
        if not outcome.failed and missing:  # a set-up mistake, not a bad candidate: stop before wasting a search
            raise ConfigError(f"the evaluator returns no {', '.join(missing)}, which is a search objective; "
                              f"it returned {sorted(outcome.metrics)}", key="search.objectives")
        aid = arch.arch_id
        self.state.evaluated[aid] = SearchState.record(outcome.genotype, outcome.fitness, metrics, cost,
                                                       outcome.attempts, outcome.error, self.state.generation)
        self.state.save(self.state_path)
        self.tb.scalars(len(self.state.evaluated) - 1, {"candidate/fitness": outcome.fitness,
                                                        "candidate/mflops": cost["flops"] / 1e6})
        return aid

    def evaluate_pending(self) -> None:
        todo = [g for g in self.state.pending if self.arch_id(g) not in self.state.evaluated]
        bar = Progress(len(todo), f"search gen {self.state.generation}/{self.settings.generations}",
                       enabled=self.progress and bool(todo))
        for outcome in self.evaluator.evaluate(todo):
            aid = self.store(outcome)
            note = f"failed after {outcome.attempts} attempts" if outcome.failed else f"fitness {outcome.fitness:.4f}"
            bar.update(note=f"{aid} {note}")

    def close_generation(self, seconds: float) -> None:
        """Select the next parents (batch applied in planned order) and log the generation."""
        state, settings = self.state, self.settings
        batch = [self.arch_id(g) for g in state.pending]
        old = [self.arch_id(g) for g in state.parents]
        pool = self.individuals(old + batch)  # disjoint: planned candidates are always new
        if settings.algorithm == "nsga2":  # failed candidates carry infinities that crowding distance cannot use
            ok = [ind for ind in pool if math.isfinite(ind.fitness.values[0])]
            parents = tools.selNSGA2(ok, min(settings.population, len(ok)))
        else:
            parents = tools.selBest(pool, min(settings.top_k, len(pool)))
        state.parents = [tuple(ind) for ind in parents]
        scores = [state.evaluated[aid]["fitness"] for aid in batch]
        finite = [f for f in scores if math.isfinite(f)]
        best = self.best()
        entry = {"gen": state.generation, "evals": len(batch), "failed": len(scores) - len(finite),
                 "best": max(finite, default=None), "mean": statistics.fmean(finite) if finite else None,
                 "median": statistics.median(finite) if finite else None,
                 "best_so_far": best.fitness if best else None, "best_arch": best.arch_id if best else None}
        self.logbook.record(**entry)
        state.logbook.append(entry)
        self.tb.scalars(state.generation, {f"generation/{key}": entry[key]
                                           for key in ("best", "mean", "median", "best_so_far", "failed")})
        genes = [gene.name for gene in self.space.genes]
        self.tb.table("generation/candidates", state.generation, ["arch_id", *genes, "fitness"],
                      [[aid, *self.arch(state.evaluated[aid]["genotype"]).choices.values(), f"{score:.4f}"]
                       for aid, score in zip(batch, scores)])
        state.timings.append({"gen": state.generation, "seconds": round(seconds, 3)})
        state.generation += 1
        state.pending = []
        if self.progress:
            print(self.logbook.stream, file=sys.stderr, flush=True)

    # -- results --------------------------------------------------------------------------------
    def best(self) -> Candidate | None:
        finite = [(aid, r) for aid, r in self.state.evaluated.items() if math.isfinite(r["fitness"])]
        if not finite:
            return None
        aid, _ = min(finite, key=lambda item: (-item[1]["fitness"], item[0]))
        return self.candidate(aid)

    def pareto(self) -> list[Candidate]:
        ok = sorted(aid for aid, r in self.state.evaluated.items() if math.isfinite(r["fitness"]))
        if not ok:
            return []
        front = tools.sortNondominated(self.individuals(ok), len(ok), first_front_only=True)[0]
        return sorted((self.candidate(ind.arch_id) for ind in front), key=lambda c: (-c.fitness, c.arch_id))

    def run(self) -> SearchResult:
        state = self.state
        try:
            while state.generation < self.settings.generations:
                started = time.monotonic()
                if not state.pending:
                    state.pending = self.plan()
                    state.save(self.state_path)
                self.evaluate_pending()
                self.close_generation(time.monotonic() - started)
                state.save(self.state_path)
        finally:
            self.tb.close()
        if not state.done:
            state.done = True
            state.save(self.state_path)
        return SearchResult(self.best(), self.pareto(), list(state.logbook), state.evaluated,
                            {aid: self.candidate(aid) for aid in state.evaluated}, state.timings, self.state_path)


def run_search(space: SearchSpace, settings: SearchSettings, evaluator: Evaluator, state_path: str | Path, *,
               resume: bool = False, progress: bool = True, events: Path | None = None) -> SearchResult:
    """Run (or with `resume=True` continue) a search whose state lives at `state_path`; given `events`,
    TensorBoard scalars per candidate (step = evaluation index) and per generation go there (`nas.tb`).

    A new search refuses to overwrite an existing state file; resuming a finished search evaluates
    nothing and returns its result. The evaluator is not closed here (the caller owns it).
    """
    state_path = Path(state_path)
    if resume and state_path.is_file():
        state = SearchState.load(state_path)
        state.check_resumable(space, settings, str(state_path))
        state.settings, state.done = settings, state.done and state.generation >= settings.generations
    elif state_path.exists() and not resume:
        raise ConfigError("a search state already exists here; pass resume=True to continue it or choose "
                          "another path", source=str(state_path))
    else:
        state = SearchState.fresh(space, settings)
    return _Search(space, settings, evaluator, state, state_path, progress, events).run()
