"""Result files and `tracknas score` end to end on trees built here and on the real OTB sample."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_datasets import FRAME_SIZE, make_got10k_val, make_lasot, small_got10k

from nas.cli import main
from nas.data.datasets import open_dataset
from nas.errors import DataError
from nas.fitness.results import has_result, read_sequence_result, write_sequence_result
from nas.fitness.scoring import score_results


# ---------------------------------------------------------------------------------------- result files
def test_result_round_trip_and_completeness(tmp_path: Path):
    boxes = np.array([[1.5, 2.25, 30.0, 40.125], [np.nan, np.nan, np.nan, np.nan]])
    write_sequence_result(tmp_path, "seq", boxes, np.array([0.5, 0.025]))
    assert (tmp_path / "seq.txt").read_text().splitlines()[0] == "1.5000,2.2500,30.0000,40.1250"
    read_boxes, times = read_sequence_result(tmp_path, "seq")
    np.testing.assert_array_equal(read_boxes, boxes)
    assert times.tolist() == [0.5, 0.025]
    assert has_result(tmp_path, "seq", 2) and not has_result(tmp_path, "seq", 3)
    assert not has_result(tmp_path, "other", 2)


@pytest.mark.parametrize("text", ["1\t2\t3\t4\r\n5\t6\t7\t8\r\n", "1 2 3 4\n5 6 7 8\n", "1,2,3,4\n\n5,6,7,8"])
def test_reader_accepts_tabs_spaces_and_integers(tmp_path: Path, text: str):
    (tmp_path / "seq.txt").write_text(text)
    boxes, times = read_sequence_result(tmp_path, "seq")
    assert boxes.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]] and times is None


def test_malformed_results_are_one_line_errors(tmp_path: Path):
    (tmp_path / "seq.txt").write_text("1,2,3,4\n1,2,3\n")
    with pytest.raises(DataError, match=r"seq\.txt: sequence seq: line 2: expected 4 values, got 3$"):
        read_sequence_result(tmp_path, "seq")
    (tmp_path / "seq.txt").write_text("1,2,3,4\n")
    (tmp_path / "seq_time.txt").write_text("0.1\n0.2\n")
    with pytest.raises(DataError, match="seq_time.txt: sequence seq: has 2 times but seq.txt has 1 boxes"):
        read_sequence_result(tmp_path, "seq")


# ---------------------------------------------------------------------------------------- GOT-10k
def toolkit_bounded_iou(pred: list[float], gt: list[float], width: float, height: float) -> float:
    """GOT-10k's per-frame IoU written out directly: clip x, y, then w, h; continuous union + eps."""
    if any(math.isnan(v) for v in pred):
        return 0.0  # tracknas scores a NaN box as a failure (got10k would make AO NaN)

    def clip(box: list[float]) -> tuple[float, float, float, float]:
        x, y = min(max(box[0], 0.0), width), min(max(box[1], 0.0), height)
        return x, y, min(max(box[2], 0.0), width - x), min(max(box[3], 0.0), height - y)

    (px, py, pw, ph), (gx, gy, gw, gh) = clip(pred), clip(gt)
    inter = max(0.0, min(px + pw, gx + gw) - max(px, gx)) * max(0.0, min(py + ph, gy + gh) - max(py, gy))
    return min(max(inter / (pw * ph + gw * gh - inter + 2.220446049250313e-16), 0.0), 1.0)


def build_scored_got10k(root: Path) -> tuple[Path, Path, list[float], list[float]]:
    """Two val sequences of different lengths plus results; returns the scored IoUs and all times."""
    rng = np.random.default_rng(7)
    width, height = FRAME_SIZE
    specs = {}
    for name, n in (("GOT-10k_Val_000001", 16), ("GOT-10k_Val_000002", 7)):
        gt = np.round(np.column_stack([rng.uniform(0, 30, n), rng.uniform(0, 18, n),
                                       rng.uniform(6, 18, n), rng.uniform(6, 14, n)]), 2)
        cover = rng.integers(0, 9, n)
        cover[1] = 0  # at least one excluded frame per sequence
        specs[name] = (gt, cover)
    make_got10k_val(root / "data", specs)
    expected_ious, all_times = [], []
    for name, (gt, cover) in specs.items():
        pred = np.round(gt + rng.uniform(-1.5, 1.5, gt.shape), 2)
        pred[2, 0] = -5.0  # left of the image: the toolkit's clip moves it without cutting
        pred[3, 2] = 200.0  # far past the right edge
        if name.endswith("2"):
            pred[-1] = np.nan  # a lost frame
        times = np.round(rng.uniform(0.01, 0.05, len(gt)), 4)
        times[0] = 0.0  # a zero time is dropped from the speed
        write_sequence_result(root / "results", name, pred, times)
        expected_ious += [toolkit_bounded_iou(pred[i].tolist(), gt[i].tolist(), width, height)
                          for i in range(1, len(gt)) if cover[i] > 0]
        all_times += [t for t in times.tolist() if t > 0]
    return root / "data", root / "results", expected_ious, all_times


def test_score_got10k_matches_toolkit_definition(tmp_path: Path, capsys):
    dataset, results, ious, times = build_scored_got10k(tmp_path)
    assert main(["score", "--dataset", str(dataset), "--results", str(results), "--protocol", "got10k", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["protocol"] == "got10k" and report["num_sequences"] == 2
    assert report["num_frames"] == len(ious)
    assert report["ao"] == pytest.approx(sum(ious) / len(ious))
    assert report["sr50"] == pytest.approx(sum(iou > 0.5 for iou in ious) / len(ious))
    assert report["sr75"] == pytest.approx(sum(iou > 0.75 for iou in ious) / len(ious))
    assert report["fps"] == pytest.approx(sum(1 / t for t in times) / len(times))
    assert 0.0 < report["sr75"] < report["sr50"] < 1.0  # neither trivially perfect nor empty
    assert set(report["per_sequence"]) == {"GOT-10k_Val_000001", "GOT-10k_Val_000002"}


def test_score_table_lists_sequences_and_overall(tmp_path: Path, capsys):
    dataset, results, ious, _ = build_scored_got10k(tmp_path)
    assert main(["score", "--dataset", str(dataset), "--results", str(results), "--protocol", "got10k"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["sequence", "AO", "SR0.5", "SR0.75", "FPS"]
    assert lines[-1].split()[:2] == ["OVERALL", f"{100 * sum(ious) / len(ious):.1f}"]
    assert len(lines) == 4


def test_cli_bad_dataset_is_exit_2_with_one_line(tmp_path: Path, capsys):
    root = small_got10k(tmp_path)
    (root / "val" / "GOT-10k_Val_000001" / "00000004.jpg").unlink()
    code = main(["score", "--dataset", str(root), "--results", str(tmp_path), "--protocol", "got10k"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("tracknas: error: ")
    assert "GOT-10k_Val_000001" in err and "00000004.jpg" in err


def test_cli_missing_result_names_the_sequence(tmp_path: Path, capsys):
    root = small_got10k(tmp_path)
    (tmp_path / "empty").mkdir()
    code = main(["score", "--dataset", str(root), "--results", str(tmp_path / "empty"), "--protocol", "otb"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "GOT-10k_Val_000001.txt" in err and "no result file" in err


def test_cli_missing_results_folder_is_named_as_such(tmp_path: Path, capsys):
    root = small_got10k(tmp_path)
    code = main(["score", "--dataset", str(root), "--results", str(tmp_path / "none"), "--protocol", "otb"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "expected an existing folder, got nothing" in err


def test_short_prediction_file_is_an_error_and_long_one_is_truncated(tmp_path: Path):
    sequences = open_dataset(small_got10k(tmp_path / "data"))
    gt = sequences[0].boxes
    write_sequence_result(tmp_path / "short", sequences[0].name, gt[:3], np.full(3, 0.1))
    with pytest.raises(DataError, match="has 3 boxes but the sequence has 5 frames"):
        score_results(sequences, tmp_path / "short", "got10k")
    write_sequence_result(tmp_path / "long", sequences[0].name, np.vstack([gt, gt]), np.full(10, 0.1))
    with pytest.warns(UserWarning, match="10 predicted boxes for 5 frames"):
        assert score_results(sequences, tmp_path / "long", "got10k")["ao"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------- OTB / LaSOT
def test_cli_otb_real_crossing_perfect_tracker(otb_root: Path, tmp_path: Path, capsys):
    [seq] = open_dataset(otb_root)
    write_sequence_result(tmp_path, seq.name, seq.boxes, np.full(len(seq), 0.02))
    argv = ["score", "--dataset", str(otb_root), "--results", str(tmp_path), "--protocol", "otb", "--format", "otb"]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert round(report["auc"], 6) == 0.952381
    assert report["precision"] == 1.0 and report["norm_precision"] == 1.0
    assert report["fps"] == pytest.approx(50.0)
    assert len(report["success_curve"]) == 21 and len(report["precision_curve"]) == 51
    assert report["per_sequence"]["Crossing"]["auc"] == report["auc"]


def test_lasot_protocol_fails_absent_frames_but_otb_protocol_ignores_them(tmp_path: Path):
    sequences = open_dataset(make_lasot(tmp_path / "data", [0, 0, 1, 0], [0, 0, 0, 0]))
    write_sequence_result(tmp_path / "res", "cat-1", sequences[0].boxes, np.full(4, 0.1))
    assert score_results(sequences, tmp_path / "res", "lasot")["auc"] == pytest.approx(20 / 21 * 3 / 4)
    assert score_results(sequences, tmp_path / "res", "otb")["auc"] == pytest.approx(20 / 21)


def test_got10k_test_split_cannot_be_scored_locally(tmp_path: Path):
    split = tmp_path / "test"
    folder = split / "GOT-10k_Test_000001"
    folder.mkdir(parents=True)
    for i in (1, 2):
        (folder / f"{i:08d}.jpg").touch()
    (folder / "groundtruth.txt").write_text("1,2,3,4\n")
    (split / "list.txt").write_text("GOT-10k_Test_000001\n")
    sequences = open_dataset(tmp_path, "got10k", "test")
    write_sequence_result(tmp_path / "res", "GOT-10k_Test_000001", np.ones((2, 4)), np.ones(2))
    with pytest.raises(DataError, match="GOT-10k_Test_000001: ground truth covers 1 of 2 frames"):
        score_results(sequences, tmp_path / "res", "got10k")
