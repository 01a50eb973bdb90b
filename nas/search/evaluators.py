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
    """Holds one fitness for the actor's lifetime (the expensive state is built here, once)."""

    def __init__(self, factory: FitnessFactory):
        self.fitness = factory()

    def evaluate(self, genotype: list[int], trial: dict | None = None) -> tuple[float, dict[str, float]]:
        return score(self.fitness, tuple(genotype), trial)


class RayPoolEvaluator:
    """A pool of `workers` Ray actors (1 CPU and `num_gpus` of a GPU each), each built once with `fitness_factory`.

    A fractional `num_gpus` (`search.gpus_per_worker`, e.g. 0.25) lets that many actors share one GPU; Ray
    schedules no more actors than the GPUs hold (the others wait) and sets each actor's
    CUDA_VISIBLE_DEVICES to its GPU, so the fitness runs on `cuda` (`FitnessSpec.device`).

    Starts a private loopback-only Ray (or joins `address`) through `nas.raytools.init_ray` unless
    one is running; its logs go to `log_dir` (a run's `logs/`) when given. A failed attempt replaces
    its actor with a fresh one and is retried first; a candidate's error names the log file to read.
    """

    def __init__(self, fitness_factory: FitnessFactory, workers: int, address: str | None = None,
                 max_retries: int = 2, *, num_cpus: int | None = None, temp_dir: str | None = None,
                 log_dir: str | os.PathLike | None = None, num_gpus: float = 0.0):
        import ray

        if workers < 1:
            raise ValueError("RayPoolEvaluator needs workers >= 1 (use LocalEvaluator for in-process)")
        self.log_dir = log_dir
        self.owns_ray = nas.raytools.init_ray(address=address, num_cpus=num_cpus, temp_dir=temp_dir, log_dir=log_dir)
        self.max_retries = max_retries
        self._actor_class = ray.remote(num_cpus=1, num_gpus=num_gpus, max_restarts=0, max_task_retries=0)(_FitnessActor)
        self._factory_ref = ray.put(fitness_factory)
        self.actors = [self._new_actor() for _ in range(workers)]
        self.restarts = 0

    def _new_actor(self):
        return self._actor_class.remote(self._factory_ref)

    def _replace(self, slot: int) -> None:
        import ray

        try:
            ray.kill(self.actors[slot], no_restart=True)
        except Exception:  # noqa: BLE001  (the actor may already be gone; we only make sure)
            pass
        self.actors[slot] = self._new_actor()
        self.restarts += 1

    def evaluate(self, genotypes: Sequence[Genotype], trial: dict | None = None) -> Iterator[EvalOutcome]:
        import ray

        queue: deque[tuple[Genotype, int]] = deque((tuple(g), 1) for g in genotypes)
        idle = list(range(len(self.actors)))
        in_flight: dict[Any, tuple[int, Genotype, int]] = {}
        while queue or in_flight:
            while queue and idle:
                slot = idle.pop(0)
                genotype, attempt = queue.popleft()
                in_flight[self.actors[slot].evaluate.remote(list(genotype), trial)] = (slot, genotype, attempt)
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            slot, genotype, attempt = in_flight.pop(ref)
            idle.append(slot)
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
            yield EvalOutcome(genotype, value, metrics, attempt)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self.owns_ray:
            nas.raytools.shutdown_ray(self.log_dir)
