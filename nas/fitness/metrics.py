"""Benchmark metrics (OTB, LaSOT, GOT-10k) in pure numpy, implemented from the toolkits' definitions.

Boxes are float ``x, y, w, h`` arrays of shape (N, 4). Where the reference toolkits disagree we
follow the got10k toolkit, so that scores compare with published got10k numbers:

* IoU uses continuous coordinates (right edge = x + w), ``inter / (union + 2.22e-16)`` clipped to
  [0, 1]. Zero-area ground truth therefore gives IoU 0 (got10k), not the -1 "invalid" marker of
  pysot/pytracking/LaSOT-MATLAB. Its centre error is computed normally (got10k has no validity mask).
* Centre = ``xy + (wh - 1) / 2`` (got10k; TrackingNet's devkit uses +1, which only shifts both
  centres equally and so never changes an error).
* Normalized centre error divides the centre offset by ``max(1, gt_wh)`` (got10k master).
* OTB one-pass (also used for LaSOT): the first prediction is replaced by the ground truth and
  counted; success = ``mean(iou > t)`` (strict) at ``linspace(0, 1, 21)``; AUC = mean of that curve
  (a perfect tracker scores 20/21); precision = ``mean(err <= t)`` at 0..50 px, reported at 20 px;
  normalized precision = ``mean(nerr <= t)`` at ``linspace(0, 0.5, 51)``, reported at 0.20 (pytracking,
  pysot, LaSOT-MATLAB rank by it) and as the mean of the curve (got10k master's single number).
  Overall curves are the mean of per-sequence curves (every sequence weighs the same).
* LaSOT absent frames (full occlusion or out of view): every toolkit that reads visibility
  (LaSOT-MATLAB, pytracking, pysot) keeps all frames in the denominator and never lets an absent
  frame succeed, so absent frames count as failures in all three curves. got10k itself ignores
  visibility and compares against the placeholder box; we do not follow it there because a
  prediction near the placeholder could then "pass" precision.
* GOT-10k: the first frame is excluded, frames with ``cover == 0`` are excluded (``absence`` is not
  read), IoU is bounded by the image (W, H) with got10k's clipping order (x, y clipped first, then w,
  h clipped against the clipped x, y: a box left of the image is moved, not cut). AO, SR0.5 and
  SR0.75 (strict ``>``) are frame-weighted over the concatenation of all sequences.
* Non-finite predictions (NaN/inf) are failures everywhere: IoU 0 and centre errors inf. got10k
  would propagate NaN into AO and pytracking raises; neither may hide or crash a search, so a NaN
  box scores exactly like a lost target. A non-finite ground-truth box likewise fails, as NaN
  comparisons do in got10k's OTB curves (in a GOT-10k frame with cover > 0 got10k would make AO NaN;
  we count IoU 0 there). Zero-area ground truth on a visible frame is scored, never refused (IoU 0,
  centre error as computed), exactly as got10k's `rect_iou` / `center_error` do.
* UAV123 (got10k's `ExperimentUAV123`, pytracking alike): frames with a NaN ground-truth row are left
  out of the one-pass curves (`Sequence.scored`), not counted as failures.
* Speed: per sequence ``mean(1 / t)`` over finite ``t > 0`` (init frame included); OTB/LaSOT overall
  = mean of the per-sequence speeds that exist, GOT-10k overall = ``mean(1 / t)`` over all frames.
"""
from __future__ import annotations

import numpy as np

EPS = np.finfo(np.float64).eps  # 2.22e-16, got10k's union guard
SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_PRECISION_THRESHOLDS = np.linspace(0.0, 0.5, 51)
REPORT_INDEX = 20  # precision at 20 px and normalized precision at 0.20 both sit at index 20


def _as_boxes(boxes: np.ndarray) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _unscorable(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Frames where either box has a NaN/inf coordinate: they can only fail."""
    return ~(np.isfinite(pred).all(axis=1) & np.isfinite(gt).all(axis=1))


def clip_to_image(boxes: np.ndarray, bound: tuple[float, float]) -> np.ndarray:
    """Clip boxes to a (W, H) image the way got10k does before a bounded IoU (see module docstring)."""
    boxes = _as_boxes(boxes).copy()
    width, height = bound
    boxes[:, 0] = np.clip(boxes[:, 0], 0, width)
    boxes[:, 1] = np.clip(boxes[:, 1], 0, height)
    boxes[:, 2] = np.clip(boxes[:, 2], 0, width - boxes[:, 0])
    boxes[:, 3] = np.clip(boxes[:, 3], 0, height - boxes[:, 1])
    return boxes


def rect_iou(pred: np.ndarray, gt: np.ndarray, bound: tuple[float, float] | None = None) -> np.ndarray:
    """Per-frame IoU in [0, 1]; non-finite boxes give 0; `bound` = (W, H) clips both first."""
    pred, gt = _as_boxes(pred), _as_boxes(gt)
    lost = _unscorable(pred, gt)
    if bound is not None:
        pred, gt = clip_to_image(pred, bound), clip_to_image(gt, bound)
    left = np.maximum(pred[:, 0], gt[:, 0])
    top = np.maximum(pred[:, 1], gt[:, 1])
    right = np.minimum(pred[:, 0] + pred[:, 2], gt[:, 0] + gt[:, 2])
    bottom = np.minimum(pred[:, 1] + pred[:, 3], gt[:, 1] + gt[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = pred[:, 2] * pred[:, 3] + gt[:, 2] * gt[:, 3] - inter
    with np.errstate(invalid="ignore"):
        iou = np.clip(inter / (union + EPS), 0.0, 1.0)
    iou[lost] = 0.0
    return iou


def box_centers(boxes: np.ndarray) -> np.ndarray:
    """Pixel centres ``xy + (wh - 1) / 2`` (got10k convention)."""
    boxes = _as_boxes(boxes)
    return boxes[:, :2] + (boxes[:, 2:] - 1) / 2


def center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean centre distance in pixels; inf for non-finite boxes."""
    pred, gt = _as_boxes(pred), _as_boxes(gt)
    errors = np.linalg.norm(box_centers(pred) - box_centers(gt), axis=1)
    errors[_unscorable(pred, gt)] = np.inf
    return errors


def normalized_center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Centre offset divided by ``max(1, gt w/h)`` per axis, then its length; inf when lost."""
    pred, gt = _as_boxes(pred), _as_boxes(gt)
    offset = (box_centers(pred) - box_centers(gt)) / np.maximum(1.0, gt[:, 2:])
    errors = np.linalg.norm(offset, axis=1)
    errors[_unscorable(pred, gt)] = np.inf
    return errors


def success_curve(ious: np.ndarray) -> np.ndarray:
    """Fraction of frames with IoU strictly above each of the 21 thresholds."""
    return (np.asarray(ious)[:, None] > SUCCESS_THRESHOLDS[None, :]).mean(axis=0)


def precision_curve(errors: np.ndarray) -> np.ndarray:
    """Fraction of frames with centre error <= each of 0..50 px."""
    return (np.asarray(errors)[:, None] <= PRECISION_THRESHOLDS[None, :]).mean(axis=0)


def norm_precision_curve(errors: np.ndarray) -> np.ndarray:
    """Fraction of frames with normalized centre error <= each of linspace(0, 0.5, 51)."""
    return (np.asarray(errors)[:, None] <= NORM_PRECISION_THRESHOLDS[None, :]).mean(axis=0)


def one_pass_curves(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """OTB/LaSOT curves of one sequence: `success`, `precision`, `norm_precision`.

    The first prediction is replaced by the ground truth; frames where `visible` is False fail.
    """
    pred, gt = _as_boxes(pred).copy(), _as_boxes(gt)
    pred[0] = gt[0]
    ious = rect_iou(pred, gt)
    errors = center_error(pred, gt)
    norm_errors = normalized_center_error(pred, gt)
    if visible is not None:
        absent = ~np.asarray(visible, dtype=bool)
        ious[absent] = 0.0
        errors[absent] = np.inf
        norm_errors[absent] = np.inf
    return {"success": success_curve(ious), "precision": precision_curve(errors),
            "norm_precision": norm_precision_curve(norm_errors)}


def summarize_curves(curves: dict[str, np.ndarray]) -> dict[str, float]:
    """The headline numbers of a set of one-pass curves (AUC, P@20, normalized P@0.20 and its area)."""
    return {"auc": float(curves["success"].mean()),
            "precision": float(curves["precision"][REPORT_INDEX]),
            "norm_precision": float(curves["norm_precision"][REPORT_INDEX]),
            "norm_precision_auc": float(curves["norm_precision"].mean())}


def mean_curves(per_sequence: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Average per-sequence curves so that every sequence weighs the same (OTB/LaSOT overall)."""
    return {key: np.mean([curves[key] for curves in per_sequence], axis=0) for key in per_sequence[0]}


def got10k_frame_ious(pred: np.ndarray, gt: np.ndarray, cover: np.ndarray | None,
                      bound: tuple[float, float]) -> np.ndarray:
    """The IoUs GOT-10k scores for one sequence: frames 1.. with cover > 0, bounded by the image."""
    ious = rect_iou(_as_boxes(pred)[1:], _as_boxes(gt)[1:], bound=bound)
    if cover is not None:
        ious = ious[np.asarray(cover)[1:] > 0]
    return ious


def overlap_summary(ious: np.ndarray) -> dict[str, float]:
    """AO, SR0.5 and SR0.75 (strict `>`) of a set of frame IoUs."""
    ious = np.asarray(ious, dtype=np.float64)
    return {"ao": float(ious.mean()), "sr50": float((ious > 0.5).mean()), "sr75": float((ious > 0.75).mean())}


def _valid_times(times: np.ndarray) -> np.ndarray:
    times = np.asarray(times, dtype=np.float64).ravel()
    return times[np.isfinite(times) & (times > 0)]


def frames_per_second(times: np.ndarray) -> float | None:
    """``mean(1 / t)`` over finite positive frame times; None when no time is usable."""
    valid = _valid_times(times)
    return float(np.mean(1.0 / valid)) if valid.size else None


def mean_sequence_fps(speeds: list[float | None]) -> float | None:
    """OTB/LaSOT overall speed: mean of the per-sequence speeds that exist."""
    known = [speed for speed in speeds if speed is not None]
    return float(np.mean(known)) if known else None
