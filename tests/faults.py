"""Fault injection for the search tests: the faults the Ray pool must survive, caused for real.

`FaultyFactory` wraps any fitness factory: a worker process killed mid-evaluation (once, tracked by a
marker file) and an evaluation that raises. `TracedFactory` records every attempt (node, process)
from inside the actors and can hold a node's evaluations until the test removes that node. The
module is pickled by value, so Ray workers need not import it from the tests folder.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
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


@dataclass(frozen=True)
class TracedFactory:
    """Wraps a fitness factory so that every attempt is written down from inside the worker.

    Each worker process appends JSON lines to `<trace_dir>/attempts-<pid>.jsonl`: `start` when an
    attempt begins, `held` when it blocks, `end` when its result is about to be returned; each line
    has the attempt's id, the genotype, the node id and the pid. An attempt starting while the file
    `hold` names its node or its process (a node id, a pid, or `all`) blocks until the file names
    something else or goes: meanwhile the test removes the node, or waits for another actor to take over.
    """

    factory: Callable[[], object]
    trace_dir: str
    hold: str

    def __call__(self) -> "_Traced":
        return _Traced(self.factory(), self)


class _Traced:
    def __init__(self, inner, trace: TracedFactory):
        import ray

        self.inner, self.trace = inner, trace
        self.node = ray.get_runtime_context().get_node_id()
        self.log = os.open(os.path.join(trace.trace_dir, f"attempts-{os.getpid()}.jsonl"),
                           os.O_CREAT | os.O_APPEND | os.O_WRONLY)

    def _write(self, event: str, attempt: str, genotype: list[int]) -> None:
        line = {"event": event, "attempt": attempt, "genotype": list(genotype), "node": self.node,
                "pid": os.getpid(), "time": time.time()}
        os.write(self.log, (json.dumps(line) + "\n").encode())  # one unbuffered append: survives a SIGKILL

    def _held(self) -> bool:
        try:
            return Path(self.trace.hold).read_text() in (self.node, str(os.getpid()), "all")
        except FileNotFoundError:
            return False

    def evaluate(self, genotype: list[int]) -> dict:
        attempt = uuid.uuid4().hex
        self._write("start", attempt, genotype)
        if self._held():
            self._write("held", attempt, genotype)
            while self._held():
                time.sleep(0.05)
        result = self.inner.evaluate(genotype)
        self._write("end", attempt, genotype)
        return result


def read_attempts(trace_dir: str | os.PathLike) -> list[dict]:
    """Every line `TracedFactory` workers wrote, oldest first."""
    lines = [json.loads(line) for path in Path(trace_dir).glob("attempts-*.jsonl")
             for line in path.read_text().splitlines()]
    return sorted(lines, key=lambda line: line["time"])


@dataclass(frozen=True)
class UnloadableFactory:
    """A factory that cannot be unpickled outside the process that made it, as when the worker nodes lack
    a module the driver has: every actor dies while starting."""

    origin: int  # the pid of the process that made it

    def __reduce__(self):
        return (_load_factory, (self.origin,))


def _load_factory(origin: int) -> UnloadableFactory:
    if os.getpid() != origin:
        raise ModuleNotFoundError("injected: no module named 'fitness_plugin' on this node")
    return UnloadableFactory(origin)
