"""LightTrack's training loss, per sample (so schedules such as SSTrack can weight samples).

loss = balanced BCE (0.5 mean over positives + 0.5 mean over negatives) + 1.2 x IoU loss
-log((I + 1) / (U + 1)) over the positions inside the ground-truth box.

A DiMP cls head (outputs carry `cls.iterates`) replaces the BCE term with DiMP's own: LBHinge
against a Gaussian label (`gauss`, sigma a quarter of the target's sqrt area) on the scores of every
filter iterate, weighted 100 (initial) + 100 (final) + 400 shared by the intermediate ones, as in
DiMP's training settings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nas.data.crops import grid_centers
from nas.ops.dimp.loss import IterateWeightedLoss

REG_WEIGHT = 1.2
_DIMP_LOSS = IterateWeightedLoss()


def balanced_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,1,S,S) logits, (B,S,S) {0,1} labels -> (B,) loss; a sample with no positive uses negatives only."""
    logits = logits.flatten(1)
    labels = labels.flatten(1).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    pos, neg = labels, 1.0 - labels
    pos_term = (bce * pos).sum(1) / pos.sum(1).clamp(min=1.0)
    neg_term = (bce * neg).sum(1) / neg.sum(1).clamp(min=1.0)
    return 0.5 * pos_term + 0.5 * neg_term


def iou_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B,4,S,S) predicted and target l,t,r,b; (B,S,S) weight (1 inside the box) -> (B,) loss."""
    inside = (weight > 0).unsqueeze(1)
    target = torch.where(inside, target, torch.ones_like(target))  # cells outside the box carry no loss
    pl, pt, pr, pb = pred.unbind(1)
    tl, tt, tr, tb = target.unbind(1)
    pred_area = (pl + pr) * (pt + pb)
    target_area = (tl + tr) * (tt + tb)
    inter = (torch.minimum(pl, tl) + torch.minimum(pr, tr)) * (torch.minimum(pt, tt) + torch.minimum(pb, tb))
    union = pred_area + target_area - inter
    loss = -torch.log((inter + 1.0) / (union + 1.0))
    weight = weight.to(loss.dtype)
    return (loss * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp(min=1.0)


def tracking_loss(outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
                  sample_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Batch loss (mean of per-sample losses, optionally weighted) and its parts for logging."""
    if "cls.iterates" in outputs:
        iterates = outputs["cls.iterates"]
        cls = _DIMP_LOSS.combine(_DIMP_LOSS.hinge.per_sample(iterates, labels["gauss"].to(iterates.dtype)))
    else:
        cls = balanced_bce(outputs["cls"], labels["cls"])
    reg = iou_loss(outputs["reg"], labels["reg"], labels["reg_weight"])
    per_sample = cls + REG_WEIGHT * reg
    if sample_weights is not None:
        per_sample = per_sample * sample_weights.to(per_sample.dtype)
    return per_sample.mean(), {"cls": float(cls.detach().mean()), "reg": float(reg.detach().mean())}


def predicted_boxes(outputs: dict[str, torch.Tensor], search_size: int, stride: int) -> torch.Tensor:
    """(B,4) x1,y1,x2,y2 of the box at each sample's highest-scoring cell (raw, no tracking priors)."""
    cls, reg = outputs["cls"].detach(), outputs["reg"].detach()
    b, _, s, _ = cls.shape
    best = cls.flatten(1).argmax(1)
    rows, cols = best // s, best % s
    grid = torch.as_tensor(grid_centers(search_size, stride), dtype=reg.dtype, device=reg.device)
    ltrb = reg[torch.arange(b), :, rows, cols]
    cx, cy = grid[cols], grid[rows]
    return torch.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], dim=1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of matching rows of two (B,4) x1,y1,x2,y2 tensors."""
    inter_w = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    inter_h = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = inter_w * inter_h
    area = lambda t: (t[:, 2] - t[:, 0]).clamp(min=0) * (t[:, 3] - t[:, 1]).clamp(min=0)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-9)
