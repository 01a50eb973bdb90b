"""The one evaluation harness: run a tracker over sequences, write results, score and plot them.

Every tracker (a found subnet, a baseline, a supernet path) is scored by this same loop, so numbers
are comparable. Sequences run in parallel, one per worker:

* `process`: a `concurrent.futures` process pool with the 'spawn' context (no forked torch or
  OpenCV thread state), one torch/OpenCV thread per worker so N workers use N cores;
* `ray`: one Ray task per sequence (`num_cpus=1`) on a local, loopback-only Ray instance
  (`nas.raytools.init_ray`), started here unless the caller already initialised Ray;
* `serial`: in this process (debugging, or when the caller already parallelises).

The tracker travels as a picklable factory (e.g. `LightTrackSpec`): each worker builds its own.
Each finished sequence writes `<seq>.txt` and `<seq>_time.txt` atomically, so an interrupted run
resumes where it stopped: sequences whose box file is complete are not run again.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.data.sequence import Sequence, split_trackable
from nas.errors import ConfigError, DataError
from nas.fitness.plots import plot_success_precision
from nas.fitness.results import has_result, write_sequence_result
from nas.fitness.scoring import PROTOCOLS, score_results
from nas.io import atomic_write_json
from nas.procs import die_with_parent
from nas.progress import Progress
from nas.raytools import init_ray  # imported before ray anywhere: makes Ray loopback-only
from trackers.base import Tracker

BACKENDS = ("process", "ray", "serial")
METRICS_FILE = "metrics.json"
PLOT_FILE = "success_precision.png"
# dataset format -> default protocol (TrackingNet is one-pass like OTB; its test split scores online)
DEFAULT_PROTOCOLS = {"got10k": "got10k", "lasot": "lasot", "otb": "otb", "trackingnet": "otb", "uav123": "otb"}

TrackerFactory = Callable[[], Tracker]


@dataclass(frozen=True)
class SequenceRun:
    """What a worker reports for one finished sequence."""

    name: str
    frames: int
    seconds: float  # tracker time only (initialize + track calls), not frame decoding


def run_sequence(tracker: Tracker, seq: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) and tracker seconds per frame (N,) of one sequence; frame 0 initialises.

    The first box is the init box, as got10k/pytracking write it; times cover only the tracker
    calls (initialize on frame 0, track after), not frame decoding.
    """
    n = len(seq)
    boxes = np.empty((n, 4), dtype=np.float64)
    times = np.empty(n, dtype=np.float64)
    for i in range(n):
        frame = seq.frame(i) if tracker.reads_frames else None
        start = time.perf_counter()
        if i == 0:
            tracker.initialize(frame, seq.boxes[0])
            boxes[0] = seq.boxes[0]
        else:
            boxes[i] = tracker.track(frame).box
        times[i] = time.perf_counter() - start
    return boxes, times


def track_sequence(factory: TrackerFactory, seq: Sequence, results_dir: str | os.PathLike) -> SequenceRun:
    """Build a tracker, run one sequence and write its result files (what each worker does)."""
    boxes, times = run_sequence(factory(), seq)
    write_sequence_result(results_dir, seq.name, boxes, times)
    return SequenceRun(seq.name, len(seq), float(times.sum()))


def _single_thread() -> None:
    """One intra-op thread per worker: N workers on N cores instead of N x cores threads; the worker
    exits when the driver dies."""
    import cv2
    import torch

    die_with_parent()

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _track_in_worker(factory: TrackerFactory, seq: Sequence, results_dir: str) -> SequenceRun:
    _single_thread()
    return track_sequence(factory, seq, results_dir)


def _run_serial(factory: TrackerFactory, todo: list[Sequence], results_dir: Path,
                workers: int) -> Iterable[SequenceRun]:
    for seq in todo:
        yield track_sequence(factory, seq, results_dir)


def _run_processes(factory: TrackerFactory, todo: list[Sequence], results_dir: Path,
                   workers: int) -> Iterable[SequenceRun]:
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_single_thread) as pool:
        futures = [pool.submit(track_sequence, factory, seq, results_dir) for seq in todo]
        try:
            for future in cf.as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _run_ray(factory: TrackerFactory, todo: list[Sequence], results_dir: Path,
             workers: int) -> Iterable[SequenceRun]:
    import ray

    owned = init_ray(num_cpus=workers)  # reuses the caller's Ray if already initialised
    try:
        task = ray.remote(num_cpus=1)(_track_in_worker)
        pending = [task.remote(factory, seq, str(results_dir)) for seq in todo]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if owned:
            ray.shutdown()


_BACKEND_RUNNERS = {"serial": _run_serial, "process": _run_processes, "ray": _run_ray}


def default_protocol(sequences: list[Sequence]) -> str:
    """The protocol of the sequences' dataset (got10k, lasot, otb; OTB-style one-pass otherwise)."""
    return DEFAULT_PROTOCOLS.get(sequences[0].dataset, "otb")


def run_tracker(tracker_factory: TrackerFactory, sequences: list[Sequence], results_dir: str | os.PathLike,
                *, workers: int = 1, backend: str = "process", resume: bool = True, progress: bool = True,
                protocol: str | None = None, label: str | None = None) -> dict[str, Any]:
    """Track every sequence, write per-sequence results, then `metrics.json` and the plot PNG.

    Returns the score report of `nas.fitness.scoring.score_results` (protocol defaults to the
    dataset's) plus `scored` and a `run` entry: which sequences were run now and which were resumed
    from disk; `skipped` lists ({name: reason}) the sequences without a valid first box, not run.
    Splits whose ground truth is only the first box (GOT-10k test, TrackingNet TEST) are tracked but
    not scored (`scored: false`, no plot): their result files go to the benchmark server.
    `label` names the tracker in the plot legend (default: the results folder's name).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}", key="backend")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", key="workers")
    if not sequences:
        raise DataError("no sequences to evaluate", source=str(results_dir))
    protocol = protocol or default_protocol(sequences)
    sequences, skipped = split_trackable(sequences)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}", key="protocol")
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    finished = [s.name for s in sequences if resume and has_result(results_dir, s.name, len(s))]
    todo = [s for s in sequences if s.name not in finished]
    workers = min(workers, max(len(todo), 1))
    bar = Progress(len(todo), f"evaluate {results_dir.name}", interval=0.0, enabled=progress)
    start = time.monotonic()
    for run in (_BACKEND_RUNNERS[backend](tracker_factory, todo, results_dir, workers) if todo else ()):
        fps = run.frames / run.seconds if run.seconds > 0 else float("inf")
        bar.update(note=f"{run.name} ({run.frames} frames, {fps:.1f} fps)")
    run_info = {"backend": backend, "workers": workers, "evaluated": [s.name for s in todo],
                "resumed": finished, "wall_seconds": time.monotonic() - start}
    if any(len(s.boxes) != len(s) for s in sequences):
        report = {"protocol": protocol, "num_sequences": len(sequences), "skipped": skipped, "scored": False,
                  "run": run_info}
        atomic_write_json(results_dir / METRICS_FILE, report)
        return report
    report = {**score_results(sequences, results_dir, protocol), "skipped": skipped, "scored": True, "run": run_info}
    atomic_write_json(results_dir / METRICS_FILE, report)
    title = f"{len(sequences)} sequences, protocol {protocol}"
    curves = report
    if "success_curve" not in report:  # GOT-10k reports carry no curves: plot the one-pass ones
        curves = score_results(sequences, results_dir, "otb")
        title += " (curves: OTB one-pass)"
    plot_success_precision({label or results_dir.name: curves}, results_dir / PLOT_FILE, title=title)
    return report
