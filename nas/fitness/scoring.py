"""Score a directory of result files against a dataset under one benchmark protocol.

Protocols: `otb` (one-pass, visibility ignored as in OTB), `lasot` (one-pass, absent frames fail)
and `got10k` (bounded IoU, first frame and cover == 0 excluded, frame-weighted). Metric details and
the choices made where toolkits disagree are in `nas.fitness.metrics`. Predictions longer than the
ground truth are truncated with a warning (every toolkit does this, e.g. LaSOT monkey-17); shorter
ones are a DataError, since padding them would invent a score.

`score_predictions` is the one implementation: `score_results` (`tracknas score`, `evaluate`,
`baselines`) feeds it boxes read from result files, the fitness (`score_tracker`) feeds it the boxes
it just tracked, so the same boxes give the same numbers everywhere. Sequences without a valid first
box are skipped with one error line each (`split_trackable`) and listed under `skipped`.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import numpy as np

from nas.data.sequence import Sequence, split_trackable
from nas.errors import ConfigError, DataError, DataWarning
from nas.fitness import metrics
from nas.fitness.results import read_sequence_result, result_paths

PROTOCOLS = ("otb", "lasot", "got10k")
Predictions = Mapping[str, tuple[np.ndarray, np.ndarray | None]]  # name -> (boxes (N, 4), seconds (N,) or None)


def _aligned_predictions(seq: Sequence, results_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """The sequence's predictions and times cut to its ground-truth length."""
    boxes, times = read_sequence_result(results_dir, seq.name)
    n_gt = len(seq.boxes)
    if n_gt != len(seq):
        raise DataError(f"ground truth covers {n_gt} of {len(seq)} frames (e.g. the GOT-10k test split); "
                        "it cannot be scored locally", key=f"sequence {seq.name}")
    if len(boxes) < n_gt:
        raise DataError(f"has {len(boxes)} boxes but the sequence has {n_gt} frames",
                        source=str(result_paths(results_dir, seq.name)[0]), key=f"sequence {seq.name}")
    if len(boxes) > n_gt:
        warnings.warn(f"sequence {seq.name}: {len(boxes)} predicted boxes for {n_gt} frames; extra boxes ignored",
                      DataWarning, stacklevel=3)
        boxes = boxes[:n_gt]
        times = None if times is None else times[:n_gt]
    return boxes, times


def _score_one_pass(sequences: list[Sequence], predictions: Predictions, use_visibility: bool) -> dict:
    per_sequence, all_curves, speeds = {}, [], []
    for seq in sequences:
        boxes, times = predictions[seq.name]
        gt, visible = seq.boxes, seq.visible if use_visibility else None
        if seq.scored is not None:  # frame 0 is always kept: trackable sequences have a valid first box
            boxes, gt, visible = boxes[seq.scored], gt[seq.scored], None if visible is None else visible[seq.scored]
        curves = metrics.one_pass_curves(boxes, gt, visible)
        speed = None if times is None else metrics.frames_per_second(times)
        per_sequence[seq.name] = _one_pass_report(curves, speed)
        all_curves.append(curves)
        speeds.append(speed)
    report = _one_pass_report(metrics.mean_curves(all_curves), metrics.mean_sequence_fps(speeds))
    return {**report, "per_sequence": per_sequence}


def _one_pass_report(curves: dict[str, np.ndarray], fps: float | None) -> dict:
    return {**metrics.summarize_curves(curves), "success_curve": curves["success"].tolist(),
            "precision_curve": curves["precision"].tolist(), "fps": fps}


def _score_got10k(sequences: list[Sequence], predictions: Predictions) -> dict:
    per_sequence, all_ious, all_times = {}, [], []
    for seq in sequences:
        boxes, times = predictions[seq.name]
        ious = metrics.got10k_frame_ious(boxes, seq.boxes, seq.cover, bound=seq.image_size())
        summary = metrics.overlap_summary(ious) if ious.size else dict.fromkeys(("ao", "sr50", "sr75"))
        speed = None if times is None else metrics.frames_per_second(times)
        per_sequence[seq.name] = {**summary, "fps": speed, "num_frames": int(ious.size)}
        all_ious.append(ious)
        if times is not None:
            all_times.append(times)
    ious = np.concatenate(all_ious)
    if not ious.size:
        raise DataError("no frame can be scored (every frame after the first has cover == 0)",
                        key=f"sequences {', '.join(seq.name for seq in sequences)[:200]}")
    fps = metrics.frames_per_second(np.concatenate(all_times)) if all_times else None
    return {**metrics.overlap_summary(ious), "fps": fps, "num_frames": int(ious.size), "per_sequence": per_sequence}


def score_predictions(sequences: list[Sequence], predictions: Predictions, protocol: str) -> dict:
    """The JSON-ready score of `predictions` (one entry per sequence, as long as its ground truth)
    on `sequences`, whose first boxes are valid (fractions in [0, 1], fps in frames/s)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    if protocol == "got10k":
        report = _score_got10k(sequences, predictions)
    else:
        report = _score_one_pass(sequences, predictions, use_visibility=protocol == "lasot")
    return {"protocol": protocol, "num_sequences": len(sequences), **report}


def score_results(sequences: list[Sequence], results_dir: str | os.PathLike, protocol: str) -> dict:
    """`score_predictions` of the result files in `results_dir`, plus `skipped`: {name: reason}."""
    if not sequences:
        raise DataError("no sequences to score", source=str(results_dir))
    sequences, skipped = split_trackable(sequences)
    predictions = {seq.name: _aligned_predictions(seq, results_dir) for seq in sequences}
    return {**score_predictions(sequences, predictions, protocol), "skipped": skipped}
