"""RT-MDNet's sample geometry: IoU, the sample generators and their rules, the scene crop and its RoIs.

Pure box and image arithmetic (numpy, OpenCV), shared by tracking and meta-training; the network
enters only through its stride and receptive field, which fix where RoIs sit on the conv3 map. The
choices (generator, scene crop) are described in `trackers.metartt.model`'s docstring.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

STRIDE = 8
RECEPTIVE_FIELD = 75


def iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) x, y, w, h boxes with one box."""
    x1 = np.maximum(boxes[:, 0], box[0])
    y1 = np.maximum(boxes[:, 1], box[1])
    x2 = np.minimum(boxes[:, 0] + boxes[:, 2], box[0] + box[2])
    y2 = np.minimum(boxes[:, 1] + boxes[:, 3], box[1] + box[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / (boxes[:, 2] * boxes[:, 3] + box[2] * box[3] - inter)


@dataclass(frozen=True)
class SampleRule:
    """One RT-MDNet sample generator plus its IoU window."""

    kind: str  # "gaussian" or "uniform"
    trans: float
    scale: float
    iou_range: tuple[float, float] = (0.0, 1.0)
    aspect: float = 1.0
    valid: bool = False


def generate(rule: SampleRule, box: np.ndarray, n: int, image_wh: Sequence[float],
             rng: np.random.Generator) -> np.ndarray:
    """n boxes around `box` by RT-MDNet's generator (no IoU filter)."""
    x, y, w, h = np.asarray(box, dtype=np.float64)
    if rule.kind == "gaussian":
        noise = np.clip(0.5 * rng.standard_normal((n, 4)), -1.0, 1.0)
    else:
        noise = rng.uniform(-1.0, 1.0, (n, 4))
    centre = np.array([x + w / 2.0, y + h / 2.0]) + rule.trans * (w + h) / 2.0 * noise[:, :2]
    wh = np.array([w, h]) * rule.scale ** noise[:, 2:3]
    ratio = rule.aspect ** noise[:, 3]
    wh = wh * np.stack([ratio, 1.0 / ratio], axis=1)
    limit = np.asarray(image_wh, dtype=np.float64)
    wh = np.clip(wh, 5.0, np.maximum(limit - 5.0, 5.0))
    if rule.valid:
        centre = np.clip(centre, wh / 2.0, np.maximum(limit - wh / 2.0 - 1.0, wh / 2.0))
    return np.concatenate([centre - wh / 2.0, wh], axis=1)


def sample(rule: SampleRule, box: np.ndarray, n: int, image_wh: Sequence[float],
           rng: np.random.Generator) -> np.ndarray:
    """Up to n boxes whose IoU with `box` lies in the rule's window (draw 2x, doubling to 16x)."""
    lo, hi = rule.iou_range
    factor, found = 2, np.zeros((0, 4))
    while factor <= 16:
        boxes = generate(rule, box, n * factor, image_wh, rng)
        overlap = iou(boxes, box)
        found = boxes[(overlap >= lo) & (overlap <= hi)]
        if len(found) >= n:
            break
        factor *= 2
    return found[rng.permutation(len(found))[:n]]


@dataclass(frozen=True)
class SceneConfig:
    """Scene-crop geometry (RT-MDNet: target ~107 px, samples padded by 1.2)."""

    img_size: float = 107.0
    padding: float = 1.2
    max_scene_size: int = 1024


def _padded(boxes: np.ndarray, padding: float) -> np.ndarray:
    """x1, y1, x2, y2 of the boxes enlarged by (padding - 1)/2 of their size on each side."""
    grow = (padding - 1.0) / 2.0 * boxes[:, 2:]
    return np.concatenate([boxes[:, :2] - grow, boxes[:, :2] + boxes[:, 2:] + grow], axis=1)


def crop_region(image: np.ndarray, lo: np.ndarray, hi: np.ndarray, out_wh: tuple[int, int]) -> np.ndarray:
    """The image region [lo, hi) (x, y) resized to `out_wh`, each axis scaled on its own.

    Same pixel convention and mean-colour padding as `nas.data.crops.crop_square`, which only
    offers square, isotropic crops.
    """
    scale = np.asarray(out_wh, dtype=np.float64) / np.maximum(hi - lo, 1e-6)
    shift = -lo * scale + 0.5 * scale - 0.5
    matrix = np.array([[scale[0], 0.0, shift[0]], [0.0, scale[1], shift[1]]])
    border = tuple(float(v) for v in image.reshape(-1, image.shape[-1]).mean(axis=0))
    return cv2.warpAffine(image, matrix, tuple(int(v) for v in out_wh), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def scene_rois(frame: np.ndarray, boxes: np.ndarray, target_wh: Sequence[float],
               config: SceneConfig = SceneConfig()) -> tuple[torch.Tensor, np.ndarray]:
    """One crop covering all boxes -> (input (1, 3, H, W) RGB - 128, RoIs (N, 4) in conv3 cells)."""
    padded = _padded(np.asarray(boxes, dtype=np.float64), config.padding)
    lo, hi = padded[:, :2].min(axis=0), padded[:, 2:].max(axis=0)
    scale = config.img_size / np.maximum(np.asarray(target_wh, dtype=np.float64), 1.0)
    out_wh = np.clip(np.ceil((hi - lo) * scale), RECEPTIVE_FIELD + STRIDE, config.max_scene_size).astype(int)
    crop = crop_region(frame, lo, hi, (int(out_wh[0]), int(out_wh[1])))
    rois = (padded - np.tile(lo, 2)) * np.tile(out_wh / (hi - lo), 2)
    rois[:, 2:] = np.maximum(rois[:, :2] + 1.0, rois[:, 2:] - RECEPTIVE_FIELD)
    image = torch.from_numpy(crop.astype(np.float32) - 128.0).permute(2, 0, 1)[None]
    return image, rois / STRIDE


INIT_POS = SampleRule("gaussian", 0.1, 1.2, (0.7, 1.0))
INIT_NEG = SampleRule("uniform", 1.0, 2.0, (0.0, 0.5), aspect=1.1)
UPDATE_POS = SampleRule("gaussian", 0.1, 1.2, (0.7, 1.0))
UPDATE_NEG = SampleRule("uniform", 1.5, 1.2, (0.0, 0.3))
CANDIDATES = SampleRule("gaussian", 0.6, 1.05, valid=True)
