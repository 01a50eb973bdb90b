"""Hand-checked metric cases: every expected number below is worked out by hand in the comment beside it."""
from __future__ import annotations

import numpy as np
import pytest

from nas.fitness import metrics


def shifted(gt: np.ndarray, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    return gt + np.array([dx, dy, 0.0, 0.0])


def test_iou_of_half_overlapping_squares():
    # inter 5*5 = 25, union 100 + 100 - 25 = 175
    iou = metrics.rect_iou([[0, 0, 10, 10]], [[5, 5, 10, 10]])
    assert iou[0] == pytest.approx(25 / 175)


def test_identical_boxes_score_20_of_21_auc_and_full_precision():
    gt = np.array([[10, 20, 30, 40], [12, 22, 30, 40], [15, 25, 28, 38]], dtype=float)
    summary = metrics.summarize_curves(metrics.one_pass_curves(gt.copy(), gt))
    assert summary["auc"] == pytest.approx(20 / 21)
    assert round(summary["auc"], 6) == 0.952381
    assert summary["precision"] == 1.0
    assert summary["norm_precision"] == 1.0
    assert summary["norm_precision_auc"] == 1.0


def test_first_prediction_is_replaced_by_ground_truth():
    gt = np.array([[10, 10, 20, 20], [10, 10, 20, 20]], dtype=float)
    pred = np.array([[500, 500, 5, 5], [10, 10, 20, 20]], dtype=float)
    assert metrics.summarize_curves(metrics.one_pass_curves(pred, gt))["auc"] == pytest.approx(20 / 21)


def test_nan_predictions_are_failures_not_crashes():
    gt = np.tile([50.0, 50.0, 20.0, 20.0], (4, 1))
    pred = gt.copy()
    pred[1:] = np.nan  # lost after the init frame: only the (replaced) first frame succeeds
    assert metrics.rect_iou(pred[1:], gt[1:]).tolist() == [0.0, 0.0, 0.0]
    assert np.isinf(metrics.center_error(pred[1:], gt[1:])).all()
    # a NaN ground-truth box (allowed only in absent frames) cannot be hit either
    assert metrics.rect_iou(gt[:1], [[np.nan] * 4])[0] == 0.0
    assert np.isinf(metrics.normalized_center_error(gt[:1], [[np.nan] * 4])[0])
    summary = metrics.summarize_curves(metrics.one_pass_curves(pred, gt))
    assert summary["auc"] == pytest.approx(20 / 21 / 4)
    assert summary["precision"] == pytest.approx(1 / 4)
    assert summary["norm_precision"] == pytest.approx(1 / 4)
    # GOT-10k: the NaN frames count as IoU 0, so AO is 0 (not NaN) over frames 1..3
    ious = metrics.got10k_frame_ious(pred, gt, cover=None, bound=(200, 200))
    assert metrics.overlap_summary(ious) == {"ao": 0.0, "sr50": 0.0, "sr75": 0.0}


def test_zero_area_ground_truth_fails_success_but_centre_error_is_measured():
    # got10k has no validity mask: IoU with an empty box is 0; both centres are (4.5, 4.5) -> error 0
    pred, gt = [[0, 0, 10, 10]], [[5, 5, 0, 0]]
    assert metrics.rect_iou(pred, gt)[0] == 0.0
    assert metrics.center_error(pred, gt)[0] == 0.0


def test_precision_and_normalized_precision_on_hand_made_offsets():
    gt = np.tile([100.0, 100.0, 100.0, 50.0], (5, 1))
    pred = np.stack([gt[0], shifted(gt[1], dx=14.5), shifted(gt[2], dx=25.5),
                     shifted(gt[3], dy=8.2), shifted(gt[4], dy=12.1)])
    # pixel errors 0, 14.5, 25.5, 8.2, 12.1 -> four of five are <= 20 px
    # normalized errors 0, 0.145, 0.255, 0.164, 0.242 -> three of five are <= 0.20
    # thresholds k/100 at or above each error: 51, 36, 25, 34, 26 of 51
    summary = metrics.summarize_curves(metrics.one_pass_curves(pred, gt))
    assert summary["precision"] == pytest.approx(4 / 5)
    assert summary["norm_precision"] == pytest.approx(3 / 5)
    assert summary["norm_precision_auc"] == pytest.approx((51 + 36 + 25 + 34 + 26) / (51 * 5))


def test_precision_threshold_is_inclusive_and_success_threshold_strict():
    gt = np.tile([0.0, 0.0, 40.0, 40.0], (2, 1))
    pred = np.stack([gt[0], shifted(gt[1], dx=20.0)])  # exactly 20 px away
    curves = metrics.one_pass_curves(pred, gt)
    assert curves["precision"][20] == 1.0 and curves["precision"][19] == 0.5
    assert metrics.success_curve(np.array([0.5]))[10] == 0.0  # IoU 0.5 is not > 0.5
    assert metrics.success_curve(np.array([0.5]))[9] == 1.0


def test_lasot_absent_frames_count_as_failures():
    gt = np.tile([10.0, 10.0, 30.0, 30.0], (4, 1))
    visible = np.array([True, True, False, True])
    summary = metrics.summarize_curves(metrics.one_pass_curves(gt.copy(), gt, visible))
    assert summary["auc"] == pytest.approx(20 / 21 * 3 / 4)
    assert summary["precision"] == pytest.approx(3 / 4)
    assert summary["norm_precision"] == pytest.approx(3 / 4)


def test_got10k_bound_clips_with_the_toolkit_quirk():
    # Right-edge overflow: pred (90, 10, 40, 20) is cut to (90, 10, 10, 20) == gt -> IoU 1 (unbounded: 200/800)
    assert metrics.rect_iou([[90, 10, 40, 20]], [[90, 10, 10, 20]], bound=(100, 100))[0] == pytest.approx(1.0)
    assert metrics.rect_iou([[90, 10, 40, 20]], [[90, 10, 10, 20]])[0] == pytest.approx(0.25)
    # Left overflow: x=-30 moves to 0 but w stays 40 -> (0, 10, 40, 20): inter 200, union 800 -> 0.25,
    # not the 1.0 a true intersection with the image would give
    assert metrics.clip_to_image([[-30, 10, 40, 20]], (100, 100)).tolist() == [[0, 10, 40, 20]]
    assert metrics.rect_iou([[-30, 10, 40, 20]], [[0, 10, 10, 20]], bound=(100, 100))[0] == pytest.approx(0.25)


def test_got10k_excludes_first_frame_and_cover_zero_frames():
    gt = np.tile([10.0, 10.0, 20.0, 20.0], (5, 1))
    pred = np.stack([gt[0] + 100, gt[1], gt[2] + 100, shifted(gt[3], dx=10), gt[4]])
    cover = np.array([8, 8, 0, 5, 1])
    ious = metrics.got10k_frame_ious(pred, gt, cover, bound=(640, 480))
    # frame 0 (bad) excluded, frame 2 (bad, cover 0) excluded; frame 3: inter 10*20=200, union 600 -> 1/3
    assert ious == pytest.approx([1.0, 1 / 3, 1.0])
    summary = metrics.overlap_summary(ious)
    assert summary["ao"] == pytest.approx((2 + 1 / 3) / 3)
    assert summary["sr50"] == pytest.approx(2 / 3) and summary["sr75"] == pytest.approx(2 / 3)


def test_sequences_weigh_equally_in_one_pass_average():
    short = {"success": np.ones(21), "precision": np.ones(51), "norm_precision": np.ones(51)}
    long = {"success": np.zeros(21), "precision": np.zeros(51), "norm_precision": np.zeros(51)}
    assert metrics.summarize_curves(metrics.mean_curves([short, long]))["precision"] == 0.5


def test_fps_drops_non_positive_and_nan_times():
    assert metrics.frames_per_second(np.array([0.1, 0.2, 0.0, np.nan, -1.0])) == pytest.approx((10 + 5) / 2)
    assert metrics.frames_per_second(np.array([0.0, np.nan])) is None
    assert metrics.mean_sequence_fps([10.0, None, 20.0]) == pytest.approx(15.0)
