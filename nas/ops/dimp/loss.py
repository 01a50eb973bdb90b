"""DiMP's offline classification loss: LBHinge on the test scores of every filter iterate.

LBHinge regresses the label where it marks the target and only penalises positive scores in the
background, so the filter need not calibrate easy negatives (paper eq. 8). The iterate weighting
supervises the initializer, the intermediate iterates and the final filter (trackers.md §1.4), so
any number of optimizer iterations gives usable filters.

Choices not fixed by the notes: with a single iterate (num_iter = 0) it is both the initial and the
final filter and gets both weights; with two there are no intermediate iterates and the
intermediate weight is unused.
"""
from __future__ import annotations

import torch
from torch import nn


class LBHinge(nn.Module):
    """MSE to the label where label >= threshold, MSE of relu(score) to 0 elsewhere."""

    def __init__(self, threshold: float = 0.05):
        super().__init__()
        self.threshold = threshold

    def squared_errors(self, scores: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        background = label < self.threshold
        pred = torch.where(background, torch.relu(scores), scores)
        target = torch.where(background, torch.zeros_like(label), label)
        return (pred - target).pow(2)

    def per_sample(self, scores: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The loss of each score map: the mean over the last two (spatial) dims."""
        return self.squared_errors(scores, label).mean(dim=(-2, -1))

    def forward(self, scores: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.squared_errors(scores, label).mean()


class IterateWeightedLoss(nn.Module):
    """w_final L(f_N) + w_init L(f_0) + w_iter * mean over 0 < i < N of L(f_i)."""

    def __init__(self, weight_final: float = 100.0, weight_init: float = 100.0, weight_iter: float = 400.0,
                 threshold: float = 0.05):
        super().__init__()
        self.weight_final, self.weight_init, self.weight_iter = weight_final, weight_init, weight_iter
        self.hinge = LBHinge(threshold)

    def combine(self, per_iterate: torch.Tensor) -> torch.Tensor:
        """Weighted total over the first dim (iterates f0..fN) of per-iterate losses of any trailing shape."""
        total = self.weight_final * per_iterate[-1] + self.weight_init * per_iterate[0]
        if len(per_iterate) > 2:
            total = total + self.weight_iter * per_iterate[1:-1].mean(dim=0)
        return total

    def forward(self, iterate_scores: list[torch.Tensor], label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of each iterate on the test frames (same shape as `label`) -> (total, per-iterate losses)."""
        per_iterate = torch.stack([self.hinge(scores, label) for scores in iterate_scores])
        return self.combine(per_iterate), per_iterate
