"""Pluggable candidate evaluation: in-process, or a pool of Ray actors holding the fitness resident.

A *fitness factory* is a picklable callable returning an object with
`evaluate(genotype: list[int]) -> dict` whose dict holds `"fitness"` (a finite float) and any other
metrics (numbers). It is called once per worker, so expensive state (a supernet, a dataset) is built
once per worker and reused for every candidate. Only plain genotypes and plain dicts cross process
boundaries, never DEAP individuals.

An `Evaluator` takes a batch of genotypes and yields one `EvalOutcome` per genotype as evaluations
complete (in any order). An optional `trial` (a small dict of keyword arguments, e.g. `{"bn_sample": 1,
"subset": 1}`) is passed on to `evaluate(genotype, **trial)`: the re-evaluation of the final top-k
uses it to score the same candidates on another BN sample and validation subset. A failed attempt (an exception, or a worker process that died) is retried
with a freshly built fitness, up to `max_retries` times; a candidate that fails every attempt is
yielded as failed (fitness -inf, with the error text), never dropped.
"""
from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import nas.raytools  # noqa: F401  (must precede any ray import: makes Ray loopback-only)

Genotype = tuple[int, ...]
FitnessFactory = Callable[[], Any]


@dataclass(frozen=True)
class EvalOutcome:
    genotype: Genotype
    fitness: float  # -inf when every attempt failed
    metrics: dict[str, float] = field(default_factory=dict)
    attempts: int = 1
    error: str | None = None  # the last attempt's error, when it failed

    @property
    def failed(self) -> bool:
        return self.error is not None


class Evaluator(Protocol):
    def evaluate(self, genotypes: Sequence[Genotype], trial: dict | None = None) -> Iterator[EvalOutcome]: ...

    def close(self) -> None: ...


def score(fitness: Any, genotype: Genotype, trial: dict | None = None) -> tuple[float, dict[str, float]]:
    """Run one evaluation and validate its result, so a bad result counts as a failed attempt."""
    result = fitness.evaluate(list(genotype), **(trial or {}))
    if not isinstance(result, dict) or "fitness" not in result:
        raise ValueError(f"fitness.evaluate must return a dict with a 'fitness' key, got {result!r}")
    value = float(result["fitness"])
    if not math.isfinite(value):
        raise ValueError(f"fitness is not finite: {value}")
    return value, {k: v for k, v in result.items() if k != "fitness"}


def error_text(exc: BaseException) -> str:
    """One line for the record: the last line of a (possibly remote, multi-line) error message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:500]


class LocalEvaluator:
    """Evaluates in this process, one candidate at a time (`--workers 0`)."""

    def __init__(self, fitness_factory: FitnessFactory, max_retries: int = 2):
        self.factory, self.max_retries = fitness_factory, max_retries
        self._fitness: Any = None

    def evaluate(self, genotypes: Sequence[Genotype], trial: dict | None = None) -> Iterator[EvalOutcome]:
        for genotype in genotypes:
            genotype = tuple(genotype)
            for attempt in range(1, self.max_retries + 2):
                try:
                    if self._fitness is None:
                        self._fitness = self.factory()
                    value, metrics = score(self._fitness, genotype, trial)
                except Exception as exc:  # noqa: BLE001  (any failure is recorded, the search goes on)
                    self._fitness = None  # the next attempt starts from a fresh fitness
                    error = error_text(exc)
                    continue
                yield EvalOutcome(genotype, value, metrics, attempt)
                break
            else:
                yield EvalOutcome(genotype, -math.inf, {}, self.max_retries + 1, error)

    def close(self) -> None:
        self._fitness = None


class _FitnessActor:
    """Holds one fitness for the actor's lifetime (the expensive state is built once, on the first
    candidate, so a factory that raises fails that candidate's attempt like any other error)."""

    def __init__(self, factory: FitnessFactory):
        self.factory, self.fitness = factory, None

    def ready(self) -> None:
        """Answers once the actor runs: the pool sends candidates only to actors that have answered."""

    def evaluate(self, genotype: list[int], trial: dict | None = None) -> tuple[float, dict[str, float]]:
        if self.fitness is None:
            self.fitness = self.factory()
        return score(self.fitness, tuple(genotype), trial)


class RayPoolEvaluator:
    """A pool of `workers` Ray actors (1 CPU and `num_gpus` of a GPU each, spread over the cluster's nodes),
    each building its fitness once with `fitness_factory`.

    A fractional `num_gpus` (`search.gpus_per_worker`, e.g. 0.25) lets that many actors share one GPU; Ray
    schedules no more actors than the GPUs hold (the others wait) and sets each actor's
    CUDA_VISIBLE_DEVICES to its GPU, so the fitness runs on `cuda` (`FitnessSpec.device`).

    Starts a private loopback-only Ray (or joins `address`) through `nas.raytools.init_ray` unless
    one is running; its logs go to `log_dir` (a run's `logs/`) when given. A failed attempt replaces
    its actor with a fresh one and is retried first; a candidate's error names the log file to read.

    Losing a node: its actors' in-flight candidates fail with the actor and are retried on the actors
    that remain (the lost attempt counts as one of `max_retries`; its result never reached the search,
    so nothing is recorded twice). A replacement actor gets candidates only once it has started, so
    when the remaining nodes have no room for it the pool carries on with fewer actors, and the
    replacement joins if room appears (a node joins). Only when no actor at all has started for
    `start_timeout` seconds, or actors keep dying while starting, does the pool give up with a
    `RayFailure`; the search state keeps every finished candidate for `--resume`.
    """

    def __init__(self, fitness_factory: FitnessFactory, workers: int, address: str | None = None,
                 max_retries: int = 2, *, num_cpus: int | None = None, temp_dir: str | None = None,
                 log_dir: str | os.PathLike | None = None, start_timeout: float = 600.0, num_gpus: float = 0.0):
        import ray

        if workers < 1:
            raise ValueError("RayPoolEvaluator needs workers >= 1 (use LocalEvaluator for in-process)")
        self.log_dir = log_dir
        self.owns_ray = nas.raytools.init_ray(address=address, num_cpus=num_cpus, temp_dir=temp_dir, log_dir=log_dir)
        self.max_retries, self.start_timeout = max_retries, start_timeout
        self._actor_class = ray.remote(num_cpus=1, num_gpus=num_gpus, max_restarts=0, max_task_retries=0,
                                       scheduling_strategy="SPREAD")(_FitnessActor)
        self._factory_ref = ray.put(fitness_factory)
        self.actors: list[Any] = [None] * workers
        self._starting: dict[Any, int] = {}  # the `ready()` call of each actor not yet started -> its slot
        self._start_deaths = 0  # actors that died before starting, since one last started
        for slot in range(workers):
            self._start(slot)
        self.restarts = 0

    def _start(self, slot: int) -> None:
        self.actors[slot] = self._actor_class.remote(self._factory_ref)
        self._starting[self.actors[slot].ready.remote()] = slot

    def _replace(self, slot: int) -> None:
        import ray

        try:
            ray.kill(self.actors[slot], no_restart=True)
        except Exception:  # noqa: BLE001  (the actor may already be gone; we only make sure)
            pass
        self._start(slot)
        self.restarts += 1

    def _started(self, ref: Any) -> int | None:
        """The slot whose actor answered `ref` (its `ready()` call), or None if it died starting (replaced)."""
        import ray

        slot = self._starting.pop(ref)
        try:
            ray.get(ref)
        except ray.exceptions.RayError as exc:
            self._start_deaths += 1
            if self._start_deaths > len(self.actors) * (self.max_retries + 1):
                raise nas.raytools.ray_failure("fitness actors keep dying while starting", exc) from None
            self._replace(slot)
            return None
        self._start_deaths = 0
        return slot

    def evaluate(self, genotypes: Sequence[Genotype], trial: dict | None = None) -> Iterator[EvalOutcome]:
        import ray

        queue: deque[tuple[Genotype, int]] = deque((tuple(g), 1) for g in genotypes)
        idle = [slot for slot in range(len(self.actors)) if slot not in self._starting.values()]
        in_flight: dict[Any, tuple[int, Genotype, int]] = {}
        while queue or in_flight:
            while queue and idle:
                slot = idle.pop(0)
                genotype, attempt = queue.popleft()
                in_flight[self.actors[slot].evaluate.remote(list(genotype), trial)] = (slot, genotype, attempt)
            timeout = None if in_flight else self.start_timeout  # nothing runs: every actor is still starting
            done, _ = ray.wait([*in_flight, *self._starting], num_returns=1, timeout=timeout)
            if not done:
                raise nas.raytools.RayFailure(
                    f"no fitness actor could start within {self.start_timeout:.0f} s: no node of the cluster has the "
                    "free resources one needs; add a node, then continue with --resume "
                    f"(see {nas.raytools.ray_log_dir()})")
            ref = done[0]
            if ref in self._starting:
                started = self._started(ref)
                if started is not None:
                    idle.append(started)
                continue
            slot, genotype, attempt = in_flight.pop(ref)
            try:
                value, metrics = ray.get(ref)
            except ray.exceptions.RayError as exc:
                self._replace(slot)
                if attempt <= self.max_retries:
                    queue.appendleft((genotype, attempt + 1))
                else:
                    error = f"{error_text(exc)} (see {nas.raytools.failure_log(exc)})"
                    yield EvalOutcome(genotype, -math.inf, {}, attempt, error)
                continue
            idle.append(slot)
            yield EvalOutcome(genotype, value, metrics, attempt)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001  (an actor on a lost node is already gone)
                pass
        self.actors, self._starting = [], {}
        if self.owns_ray:
            nas.raytools.shutdown_ray(self.log_dir)
