"""Fault injection for the search tests: the two faults the Ray pool must survive, caused for real.

`FaultyFactory` wraps any fitness factory: a worker process killed mid-evaluation (once, tracked by a
marker file) and an evaluation that raises. The module is pickled by value, so Ray workers need not
import it from the tests folder.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nas.raytools  # noqa: F401  (loopback-only Ray must be configured before ray is imported)
import ray.cloudpickle

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


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
