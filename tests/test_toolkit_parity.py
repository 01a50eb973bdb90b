"""Parity with the got10k toolkit on trees with degenerate ground truth, and one scoring implementation.

The reference numbers were produced once with the got10k toolkit (PyPI `got10k==0.1.3`, numpy 1.26,
Python 3.11): `benchmarks/got10k_reference.py` writes the trees of `build_got10k` / `build_otb`
below, the same boxes as the toolkit's result files, and runs `ExperimentGOT10k(subset='val').report`
and `ExperimentOTB(version=2015).report` on them. The toolkit is not needed to run these tests.

Followed rules (got10k/utils/metrics.py `rect_iou`, experiments/otb.py, experiments/got10k.py):
a zero-area ground-truth box scores IoU 0 and its centre error is computed as for any box; a NaN
ground-truth row fails both the success and the precision test (NaN comparisons are False); the
OTB first prediction is replaced by the ground truth; GOT-10k drops frame 1 and frames with
cover == 0 (their NaN rows never reach the mean).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_datasets import make_got10k_val

from nas.cli import main
from nas.data.datasets import open_dataset
from nas.errors import DataWarning, SkippedSequence
from nas.fitness.harness import run_tracker
from nas.fitness.results import write_sequence_result
from nas.fitness.scoring import score_results
from nas.fitness.supernet_fitness import score_tracker
from trackers.base import Tracker, TrackResult
from trackers.identity import IdentityTracker

NAN = [np.nan] * 4
# name -> (ground truth, cover, predictions); frames are 48 x 32 (test_datasets.FRAME_SIZE)
GOT10K_CASE = {
    "GOT-10k_Val_000001": (
        [[4, 4, 10, 8], [5, 4, 0, 8], [6, 5, 10, 0], [7, 5, 9, 8], NAN, [40, 20, 12, 16], [8, 6, 9, 7]],
        [8, 7, 3, 4, 0, 6, 8],
        [[4, 4, 10, 8], [5, 4, 9, 8], [6, 5, 10, 3], [7.5, 5, 9, 8], [1, 1, 5, 5], [38, 18, 14, 16], [-3, 6, 12, 7]]),
    "GOT-10k_Val_000002": (
        [[10, 10, 6, 6], [11, 10, 6, 6], [12, 11, 0, 0], [13, 11, 6, 6], [14, 12, 6, 5]],
        [8, 0, 8, 2, 8],
        [[10, 10, 6, 6], [11.5, 10.5, 6, 6], [12, 11, 4, 4], [20, 20, 6, 6], [14, 12, 6, 5]]),
}
OTB_CASE = {  # real OTB-2015 names, so that the toolkit's OTB loader lists them
    "Basketball": (
        [[4, 4, 10, 8], [5, 4, 0, 8], [6, 5, 10, 8], NAN, [8, 6, 9, 0], [9, 6, 9, 7], [10, 7, 9, 7]],
        [[0, 0, 3, 3], [5, 4, 4, 8], [6.5, 5, 10, 8], [7, 5, 9, 8], [8, 6, 9, 4], [30, 6, 9, 7], [10, 7, 9, 7]]),
    "Biker": (
        [[10, 10, 6, 6], [11, 10, 6, 6], [12, 11, 6, 0], [13, 11, 6, 6], [14, 12, 6, 5]],
        [[10, 10, 6, 6], [12, 10, 6, 6], [12, 11, 6, 2], [13, 14, 6, 6], [14, 12, 6, 5]]),
}
# got10k 0.1.3 on these trees (benchmarks/got10k_reference.py): GOT-10k `ao`, `sr`; OTB
# `success_score`, `precision_score`, `success_rate` (overall = mean of the per-sequence curves)
GOT10K_REFERENCE = {"OVERALL": (0.35196815568332596, 0.375),
                    "GOT-10k_Val_000001": (0.3631490490933215, 0.4),
                    "GOT-10k_Val_000002": (0.3333333333333333, 0.3333333333333333)}
OTB_REFERENCE = {"OVERALL": (0.4959183673469389, 0.8571428571428572, 0.5142857142857142),
                 "Basketball": (0.4013605442176871, 0.7142857142857143, 0.42857142857142855),
                 "Biker": (0.5904761904761905, 1.0, 0.6)}


def _write(lines_path: Path, rows) -> None:
    lines_path.parent.mkdir(parents=True, exist_ok=True)
    lines_path.write_text("".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows))


def build_got10k(root: Path) -> tuple[Path, Path]:
    """A GOT-10k val tree with zero-area and NaN ground truth, and its result folder."""
    dataset = make_got10k_val(root / "data", {name: (np.array(gt, dtype=float), np.array(cover))
                                              for name, (gt, cover, _) in GOT10K_CASE.items()})
    for name, (gt, _, pred) in GOT10K_CASE.items():
        write_sequence_result(root / "results", name, np.array(pred, dtype=float), np.full(len(gt), 0.01))
    return dataset, root / "results"


def build_otb(root: Path) -> tuple[Path, Path]:
    """An OTB tree (empty frame files) with zero-area and NaN ground truth, and its result folder."""
    for name, (gt, pred) in OTB_CASE.items():
        (root / "data" / name / "img").mkdir(parents=True)
        for i in range(1, len(gt) + 1):
            (root / "data" / name / "img" / f"{i:04d}.jpg").touch()
        _write(root / "data" / name / "groundtruth_rect.txt", gt)
        write_sequence_result(root / "results", name, np.array(pred, dtype=float), np.full(len(gt), 0.01))
    return root / "data", root / "results"


def _score_json(capsys, dataset: Path, results: Path, protocol: str) -> tuple[dict, list[str]]:
    assert main(["score", "--dataset", str(dataset), "--results", str(results), "--protocol", protocol, "--json"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err.splitlines()


def test_got10k_tree_with_zero_area_boxes_matches_the_toolkit(tmp_path: Path, capsys):
    dataset, results = build_got10k(tmp_path)
    report, warnings = _score_json(capsys, dataset, results, "got10k")
    rows = {"OVERALL": report, **report["per_sequence"]}
    assert set(rows) == set(GOT10K_REFERENCE)
    for name, (ao, sr50) in GOT10K_REFERENCE.items():
        assert rows[name]["ao"] == pytest.approx(ao, abs=1e-6), name
        assert rows[name]["sr50"] == pytest.approx(sr50, abs=1e-6), name
    # one line per degenerate sequence, with counts
    assert len(warnings) == 2 and all(line.startswith("tracknas: warning: ") for line in warnings)
    assert "GOT-10k_Val_000001: 2 zero-area (w or h <= 0) boxes where the target is scored (IoU 0, " in warnings[0]
    assert warnings[0].endswith(", 1 NaN boxes where the target is absent (not scored as hits)")


def test_otb_tree_with_zero_area_and_nan_boxes_matches_the_toolkit(tmp_path: Path, capsys):
    dataset, results = build_otb(tmp_path)
    report, warnings = _score_json(capsys, dataset, results, "otb")
    rows = {"OVERALL": report, **report["per_sequence"]}
    for name, (auc, precision, success_rate) in OTB_REFERENCE.items():
        assert rows[name]["auc"] == pytest.approx(auc, abs=1e-6), name
        assert rows[name]["precision"] == pytest.approx(precision, abs=1e-6), name
        assert rows[name]["success_curve"][10] == pytest.approx(success_rate, abs=1e-6), name
    assert len(warnings) == 2 and "Basketball: 2 zero-area" in warnings[0] and "1 NaN boxes" in warnings[0]


def test_a_sequence_without_a_valid_first_box_is_one_error_line_and_the_rest_is_scored(tmp_path: Path, capsys):
    dataset, results = build_otb(tmp_path)
    (dataset / "Biker" / "groundtruth_rect.txt").write_text("10,10,0,6\n" + "11,10,6,6\n" * 4)
    report, lines = _score_json(capsys, dataset, results, "otb")
    assert report["num_sequences"] == 1 and list(report["per_sequence"]) == ["Basketball"]
    assert report["auc"] == pytest.approx(OTB_REFERENCE["Basketball"][0], abs=1e-6)
    errors = [line for line in lines if line.startswith("tracknas: error: ")]
    assert errors == ["tracknas: error: sequence Biker: the initial box (frame 1) must be finite with w, h > 0, "
                      "got [10.0, 10.0, 0.0, 6.0]; sequence skipped"]
    assert report["skipped"] == {"Biker": errors[0].removeprefix("tracknas: error: ")}


class ReplayTracker(Tracker):
    """Replays the boxes of a result folder: the fitness then scores exactly the boxes on disk."""

    reads_frames = False

    def __init__(self, results: Path, sequences: list) -> None:
        self._boxes = {seq.name: np.loadtxt(results / f"{seq.name}.txt", delimiter=",") for seq in sequences}
        self._order = iter(sequences)
        self._frames: list[np.ndarray] = []

    def initialize(self, frame: np.ndarray, box: np.ndarray) -> None:
        self._frames = list(self._boxes[next(self._order).name][1:])

    def track(self, frame: np.ndarray) -> TrackResult:
        return TrackResult(self._frames.pop(0), 1.0)


def test_fitness_auc_is_the_score_commands_auc_on_the_same_boxes(tmp_path: Path, capsys):
    dataset, results = build_got10k(tmp_path)  # frames with cover == 0 (absent) included
    with pytest.warns(DataWarning):
        sequences = open_dataset(dataset)
    fitness = score_tracker(ReplayTracker(results, sequences), sequences, metric="auc")
    report, _ = _score_json(capsys, dataset, results, "otb")
    got10k = score_results(sequences, results, "got10k")
    assert fitness["auc"] == report["auc"] and fitness["fitness"] == report["auc"]
    assert (fitness["ao"], fitness["sr50"]) == (got10k["ao"], got10k["sr50"])
    # the LaSOT rule (absent frames fail) gives another number on these boxes, so the test can tell
    assert score_results(sequences, results, "lasot")["auc"] < report["auc"]


def test_evaluate_tracks_degenerate_sequences_and_skips_one_without_a_first_box(tmp_path: Path):
    dataset, _ = build_got10k(tmp_path)
    gt = dataset / "val" / "GOT-10k_Val_000002" / "groundtruth.txt"
    gt.write_text("10,10,6,0\n" + "".join(gt.read_text().splitlines(keepends=True)[1:]))
    with pytest.warns(DataWarning):
        sequences = open_dataset(dataset)
    with pytest.warns(SkippedSequence, match="sequence GOT-10k_Val_000002: the initial box"):
        report = run_tracker(IdentityTracker, sequences, tmp_path / "eval", backend="serial", progress=False)
    assert report["num_sequences"] == 1 and list(report["per_sequence"]) == ["GOT-10k_Val_000001"]
    assert list(report["skipped"]) == ["GOT-10k_Val_000002"] and report["num_frames"] == 5
    assert not (tmp_path / "eval" / "GOT-10k_Val_000002.txt").exists()
