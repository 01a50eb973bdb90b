"""The VOT short-term supervised (reset-based) protocol: runner, result files and analysis.

Everything mirrors vot-toolkit 0.9.0 (`vot/experiment/multirun.py`, `vot/analysis/supervised.py`):

* Runner (`SupervisedExperiment.execute`): initialise on frame 0 (code 1); track; a frame whose
  overlap with the ground truth is <= 0 is a failure (code 2), the next `SKIP_INITIALIZE` - 1 frames
  are skipped (code 0) and the tracker re-initialises `SKIP_INITIALIZE` frames after the failure (past
  the last frame: the run ends). Repetitions stop early once three runs are identical (the toolkit's
  `_can_stop`: regions overlapping >= 0.99999, any two special codes alike), so a deterministic
  tracker runs three times.
* Result files: `<root>/<tracker>/<experiment>/<seq>/<seq>_NNN.txt`, one region per line (text, as
  with `VOT_RESULTS_BINARY=false`). Every `<seq>_NNN.txt` present is a repetition.
* Analysis: per run, accuracy = mean overlap over frames that are neither skipped, a failure, nor in
  the `BURNIN` frames from each (re)initialisation; failures = count of code 2. Per sequence both are
  averaged over repetitions; over the dataset they are weighted by sequence length (`accuracy`,
  `robustness`), and `failures` is their plain sum. EAO: every run splits into segments from an
  initialisation to the next failure (failed: zero-padded to the longest segment) or to the end
  (not failed: counted only over its length); the curve at length L is the mean over segments of the
  segment's mean overlap on frames 1..L (frame 0, the initialisation, left out), and the score is the
  curve's mean over the year's interval (both ends included). The curve is computed in float64 with
  cumulative sums where the toolkit loops in float32: differences stay below 1e-6.
"""
from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.data.regions import FAILURE, INITIALIZATION, UNKNOWN, Region, format_region, is_special, read_regions, special
from nas.data.sequence import Sequence
from nas.errors import ConfigError, DataError, DataWarning
from nas.fitness.region_overlap import region_overlap
from nas.io import atomic_write_text
from trackers.base import Tracker

PROTOCOL = "vot"
EAO_INTERVALS = {2018: (100, 356), 2019: (46, 291)}  # the stacks' supervised_eao_score low/high
DEFAULT_YEAR = 2019
DEFAULT_EXPERIMENT = "baseline"
REPETITIONS = 15  # the stacks' baseline repetitions
SKIP_INITIALIZE = 5
BURNIN = 10
FAILURE_OVERLAP = 0.0
IDENTICAL_RUNS = 3  # the toolkit stops repeating after this many identical runs
EQUAL_OVERLAP = 0.99999

Trajectory = list[Region]


def eao_interval(year: int) -> tuple[int, int]:
    if year not in EAO_INTERVALS:
        raise ConfigError(f"unknown VOT year {year!r}; expected one of {', '.join(map(str, EAO_INTERVALS))}",
                          key="year")
    return EAO_INTERVALS[year]


# ------------------------------------------------------------------------------------------ analysis
def trajectory_overlaps(trajectory: Trajectory, sequence: Sequence) -> np.ndarray:
    """Per-frame overlap of a run with the ground truth, bounded by the image (the toolkit's default)."""
    size = sequence.image_size()
    return np.array([region_overlap(region, truth, size) for region, truth in zip(trajectory, sequence.regions)])


def run_accuracy(trajectory: Trajectory, overlaps: np.ndarray, burnin: int = BURNIN) -> float:
    """Mean overlap without skipped and failure frames and `burnin` frames from each initialisation."""
    counted = np.ones(len(trajectory), dtype=bool)
    for i, region in enumerate(trajectory):
        if is_special(region, INITIALIZATION):
            counted[i:i + burnin] = False
        elif is_special(region, UNKNOWN) or is_special(region, FAILURE):
            counted[i] = False
    return float(np.mean(overlaps[counted])) if counted.any() else 0.0


def run_failures(trajectory: Trajectory) -> int:
    return sum(is_special(region, FAILURE) for region in trajectory)


def eao_segments(trajectory: Trajectory, overlaps: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    """(overlaps from an initialisation, tracked to the end) per segment of one run, as the toolkit pairs
    the i-th initialisation with the i-th failure."""
    failures = [i for i, r in enumerate(trajectory) if is_special(r, FAILURE)]
    inits = [i for i, r in enumerate(trajectory) if is_special(r, INITIALIZATION)]
    if not failures:
        return [(overlaps, True)]
    segments = [(overlaps[start:end], False) for start, end in zip(inits, failures)]
    if len(inits) > len(failures):
        segments.append((overlaps[inits[-1]:], True))
    return segments


def eao_curve(segments: list[tuple[np.ndarray, bool]]) -> np.ndarray:
    """Expected average overlap for every length 0 .. longest segment - 1 (the toolkit's `compute_eao_curve`)."""
    length = max(len(overlaps) for overlaps, _ in segments)
    values = np.zeros((len(segments), length))
    counted = np.zeros((len(segments), length))
    for row, (overlaps, tracked_to_end) in enumerate(segments):
        values[row, :len(overlaps)] = overlaps
        counted[row, :len(overlaps) if tracked_to_end else length] = 1
    running = values.copy()
    running[:, 1:] = np.cumsum(values[:, 1:], axis=1) / np.arange(1, length)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (running * counted).sum(axis=0) / counted.sum(axis=0)


def eao_score(curve: np.ndarray, interval: tuple[int, int]) -> float | None:
    """Mean of the curve over [low, high] (cut at the curve's end); None when the curve ends before low."""
    window = curve[interval[0]:interval[1] + 1]
    return float(np.mean(window)) if window.size else None


def analyse(sequences: list[Sequence], runs: dict[str, list[Trajectory]], year: int = DEFAULT_YEAR) -> dict:
    """The JSON-ready VOT report of `runs` ({sequence: repetitions}) on `sequences`."""
    interval = eao_interval(year)
    per_sequence, segments = {}, []
    for seq in sequences:
        trajectories = runs[seq.name]
        overlaps = [trajectory_overlaps(t, seq) for t in trajectories]
        per_sequence[seq.name] = {
            "accuracy": float(np.mean([run_accuracy(t, o) for t, o in zip(trajectories, overlaps)])),
            "failures": float(np.mean([run_failures(t) for t in trajectories])),
            "repetitions": len(trajectories), "num_frames": len(seq)}
        segments += [segment for t, o in zip(trajectories, overlaps) for segment in eao_segments(t, o)]
    weights = np.array([len(seq) for seq in sequences], dtype=np.float64)
    accuracy = np.array([per_sequence[seq.name]["accuracy"] for seq in sequences])
    failures = np.array([per_sequence[seq.name]["failures"] for seq in sequences])
    curve = eao_curve(segments)
    eao = eao_score(curve, interval)
    if eao is None:
        warnings.warn(f"EAO: the interval {list(interval)} of VOT{year} starts past the longest run "
                      f"({len(curve)} frames); eao is null", DataWarning, stacklevel=2)
    return {"protocol": PROTOCOL, "year": year, "eao_interval": list(interval), "num_sequences": len(sequences),
            "accuracy": float(weights @ accuracy / weights.sum()),
            "robustness": float(weights @ failures / weights.sum()),
            "failures": float(failures.sum()), "eao": eao, "eao_curve": curve.tolist(), "sequences": per_sequence}


# ------------------------------------------------------------------------------------------ result files
def sequence_results_dir(results_root: str | os.PathLike, tracker: str, experiment: str, seq_name: str) -> Path:
    return Path(results_root) / tracker / experiment / seq_name


def write_trajectory(folder: Path, seq_name: str, repetition: int, trajectory: Trajectory) -> Path:
    path = folder / f"{seq_name}_{repetition:03d}.txt"
    atomic_write_text(path, "".join(format_region(region) + "\n" for region in trajectory))
    return path


def read_trajectories(results_root: str | os.PathLike, tracker: str, experiment: str, seq: Sequence) -> list[Trajectory]:
    """Every repetition `<seq>_NNN.txt` of one sequence, in order; DataError when none or a wrong length."""
    folder = sequence_results_dir(results_root, tracker, experiment, seq.name)
    key = f"sequence {seq.name}"
    pattern = re.compile(re.escape(seq.name) + r"_(\d{3,})\.txt")
    files = sorted((int(m.group(1)), folder / m.group(0)) for m in
                   (pattern.fullmatch(name) for name in (os.listdir(folder) if folder.is_dir() else ())) if m)
    if not files:
        raise DataError(f"no result files {seq.name}_NNN.txt (expected <results>/<tracker>/<experiment>/<seq>/)",
                        source=str(folder), key=key)
    trajectories = []
    for _, path in files:
        trajectory = read_regions(path, key)
        if len(trajectory) != len(seq):
            raise DataError(f"has {len(trajectory)} lines but the sequence has {len(seq)} frames",
                            source=str(path), key=key)
        trajectories.append(trajectory)
    return trajectories


def check_vot_sequences(sequences: list[Sequence], source: str) -> None:
    if not sequences:
        raise DataError("no sequences to score", source=source)
    if any(seq.regions is None for seq in sequences):
        raise DataError(f"the VOT protocol needs a VOT-layout dataset (--format vot), got {sequences[0].dataset}",
                        source=source)


def score_vot_results(sequences: list[Sequence], results_root: str | os.PathLike, tracker: str,
                      experiment: str = DEFAULT_EXPERIMENT, year: int = DEFAULT_YEAR) -> dict:
    """`analyse` of the result files the toolkit (or `run_supervised_experiment`) wrote for `tracker`."""
    check_vot_sequences(sequences, str(results_root))
    eao_interval(year)
    if not (Path(results_root) / tracker).is_dir():
        raise DataError(f"no results for tracker {tracker!r} (expected the folder {Path(results_root) / tracker})",
                        source=str(results_root))
    runs = {seq.name: read_trajectories(results_root, tracker, experiment, seq) for seq in sequences}
    return {"tracker": tracker, "experiment": experiment, **analyse(sequences, runs, year)}


# ------------------------------------------------------------------------------------------ runner
def _identical(first: Trajectory, second: Trajectory, size: tuple[int, int]) -> bool:
    """The toolkit's `Trajectory.equals`: any two special codes alike, regions equal or overlapping
    >= 0.99999 (here inside the image, so a wild box cannot ask for a huge raster)."""
    return len(first) == len(second) and all(
        (is_special(a) and is_special(b)) or np.array_equal(a, b) or region_overlap(a, b, size) >= EQUAL_OVERLAP
        for a, b in zip(first, second))


def supervised_run(tracker: Tracker, seq: Sequence, skip: int = SKIP_INITIALIZE) -> tuple[Trajectory, float]:
    """One reset-based run: (trajectory, tracker seconds). A (re)initialisation on a frame whose ground
    truth is unknown moves to the next known one (the toolkit would hand the tracker a special code)."""
    n, size = len(seq), seq.image_size()
    trajectory: Trajectory = [special(UNKNOWN)] * n
    seconds, frame = 0.0, 0
    while frame < n:
        if is_special(seq.regions[frame]):
            frame += 1
            continue
        image = seq.frame(frame) if tracker.reads_frames else None
        started = time.perf_counter()
        tracker.initialize(image, seq.boxes[frame])
        seconds += time.perf_counter() - started
        trajectory[frame] = special(INITIALIZATION)
        frame += 1
        while frame < n:
            image = seq.frame(frame) if tracker.reads_frames else None
            started = time.perf_counter()
            region = np.asarray(tracker.track(image).box, dtype=np.float32)
            seconds += time.perf_counter() - started
            lost = not np.isfinite(region).all()  # a NaN or infinite box overlaps nothing
            if lost or region_overlap(region, seq.regions[frame], size) <= FAILURE_OVERLAP:
                trajectory[frame] = special(FAILURE)
                frame += skip
                break
            trajectory[frame] = region
            frame += 1
    return trajectory, seconds


def supervised_runs(tracker_factory: Callable[[], Tracker], seq: Sequence,
                    repetitions: int = REPETITIONS) -> list[Trajectory]:
    """Up to `repetitions` runs, each with a fresh tracker, stopping after three identical ones."""
    runs: list[Trajectory] = []
    for _ in range(repetitions):
        if len(runs) >= IDENTICAL_RUNS and all(_identical(runs[0], other, seq.image_size()) for other in runs[1:]):
            break
        runs.append(supervised_run(tracker_factory(), seq)[0])
    return runs


@dataclass(frozen=True)
class SupervisedExperiment:
    """Where a supervised experiment writes: `<results_root>/<tracker>/<experiment>/<seq>/`."""

    results_root: str
    tracker: str
    experiment: str = DEFAULT_EXPERIMENT
    repetitions: int = REPETITIONS

    def run(self, tracker_factory: Callable[[], Tracker], sequences: list[Sequence],
            progress: Callable[[str], None] | None = None) -> dict[str, list[Trajectory]]:
        """Run and write every sequence (result files replaced), returning {sequence: repetitions}."""
        if self.repetitions < 1:
            raise ConfigError(f"expected at least 1 repetition, got {self.repetitions}", key="repetitions")
        runs = {}
        for seq in sequences:
            runs[seq.name] = supervised_runs(tracker_factory, seq, self.repetitions)
            folder = sequence_results_dir(self.results_root, self.tracker, self.experiment, seq.name)
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob(f"{seq.name}_[0-9][0-9][0-9]*.txt"):
                stale.unlink()
            for repetition, trajectory in enumerate(runs[seq.name], start=1):
                write_trajectory(folder, seq.name, repetition, trajectory)
            if progress:
                progress(f"{seq.name} ({len(runs[seq.name])} runs, "
                         f"{np.mean([run_failures(t) for t in runs[seq.name]]):.1f} failures)")
        return runs
