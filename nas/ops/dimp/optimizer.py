"""DiMP's steepest-descent Gauss-Newton filter optimizer with its learned loss (trackers.md §1.3).

Per sequence the optimizer minimises L(f) = sum r^2 + lam |f|^2 with the residual
r = sw * (act(x * f, m) - y), where the label y, the mask m and the spatial weight v (sw = sqrt(w) v)
are learned piecewise-linear functions of the distance to the target centre (DistanceMap + 1x1
convs). Each iteration takes the closed-form gradient g = X^T(act'(s) sw r) + lam f (the paper's
eq. S5 up to its factor 2, i.e. the gradient of L/2; X^T is the transposed filtering op, computed
as a batched correlation of the features with the mapped residual, not with autograd) and the
Gauss-Newton step length alpha = |g|^2 / max(|sw act'(s) (x * g)|^2 + lam |g|^2, 1e-8), then
f <- f - exp(log_step_length) alpha g. The unroll is differentiable end to end.

Choices not fixed by the notes:
- Defaults are the values DiMP trains with (5 iterations, step 0.9, filter_reg 0.1, label sigma 0.9
  cells, 100 distance bins of 0.1 cells, mask factor 3), not the class's generic defaults.
- `num_iter` is a forward argument (a searchable dimension; the learned parameters do not depend
  on it); the constructor value is only the default.
- Sample weights are (B, N); without them every image weighs 1/N (so sw = sqrt(1/N) v).
- The loss of every iterate f0..fN, (sum r^2 + lam |f|^2) / B, is returned when `compute_losses`
  (it costs one extra filtering for the final iterate); otherwise `losses` is None.
- Not carried over: `detach_length` (the whole unroll is differentiated) and `alpha_eps`
  (DiMP uses 0); the 'bentpar' activation (DiMP uses LeakyReluPar).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def apply_filter(feat: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scores x * f per sequence: feat (B, N, D, H, W), weights (B, D, k, k) -> (B, N, H', W')."""
    b, n, d, h, w = feat.shape
    k = weights.shape[-1]
    scores = F.conv2d(feat.transpose(0, 1).reshape(n, b * d, h, w), weights, padding=k // 2, groups=b)
    return scores.transpose(0, 1)


def apply_feat_transpose(feat: torch.Tensor, activation: torch.Tensor, filter_size: int) -> torch.Tensor:
    """X^T: the filter gradient of sum(activation * (x * f)), summed over images -> (B, D, k, k).

    Correlating every feature channel with its image's activation map is a grouped conv with the
    channels as the batch and the (sequence, image) pairs as the groups.
    """
    b, n, d, h, w = feat.shape
    inputs = feat.reshape(b * n, d, h, w).transpose(0, 1)  # (D, B*N, H, W)
    kernels = activation.reshape(b * n, 1, *activation.shape[-2:])
    out = F.conv2d(inputs, kernels, padding=filter_size // 2, groups=b * n)  # (D, B*N, k, k)
    return out.reshape(d, b, n, filter_size, filter_size).sum(dim=2).transpose(0, 1)


def leaky_relu_par(s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """act(s, m) = (1-m)/2 |s| + (1+m)/2 s: s for s > 0, m s for s < 0 (L2 near the target, hinge far)."""
    return (1 - m) / 2 * s.abs() + (1 + m) / 2 * s


def leaky_relu_par_deriv(s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """d act / d s = (1-m)/2 sign(s) + (1+m)/2."""
    return (1 - m) / 2 * torch.sign(s) + (1 + m) / 2


class DistanceMap(nn.Module):
    """Hat-interpolated encoding of each output cell's distance to the target centre over `num_bins` knots."""

    def __init__(self, num_bins: int, bin_displacement: float):
        super().__init__()
        self.num_bins, self.bin_displacement = num_bins, bin_displacement

    def forward(self, center: torch.Tensor, output_sz: tuple[int, int]) -> torch.Tensor:
        """center (M, 2) as (y, x) in output cells -> (M, num_bins, H', W')."""
        ys = torch.arange(output_sz[0], dtype=center.dtype, device=center.device).view(1, -1, 1)
        xs = torch.arange(output_sz[1], dtype=center.dtype, device=center.device).view(1, 1, -1)
        dist = torch.sqrt((ys - center[:, 0, None, None]) ** 2 + (xs - center[:, 1, None, None]) ** 2)
        knots = torch.arange(self.num_bins, dtype=center.dtype, device=center.device).view(1, -1, 1, 1)
        offset = dist[:, None] / self.bin_displacement - knots
        inner = torch.relu(1 - offset[:, :-1].abs())
        last = (1 + offset[:, -1:]).clamp(0, 1)  # saturates: every far cell is the same "far" bin
        return torch.cat([inner, last], dim=1)


def _residual(feat: torch.Tensor, weights: torch.Tensor, label: torch.Tensor, mask: torch.Tensor,
              sample_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores s = x * f and the residual r = sw (act(s, m) - y)."""
    scores = apply_filter(feat, weights)
    return scores, sample_weight * (leaky_relu_par(scores, mask) - label)


def filter_gradient(feat: torch.Tensor, weights: torch.Tensor, label: torch.Tensor, mask: torch.Tensor,
                    sample_weight: torch.Tensor, reg: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form g = X^T(act'(s) sw r) + lam f; also the residual r and act'(s) sw (reused by the step)."""
    scores, residual = _residual(feat, weights, label, mask, sample_weight)
    jac = leaky_relu_par_deriv(scores, mask) * sample_weight
    grad = apply_feat_transpose(feat, jac * residual, weights.shape[-1]) + reg * weights
    return grad, residual, jac


def _objective(residual: torch.Tensor, weights: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    return (residual.pow(2).sum() + reg * weights.pow(2).sum()) / weights.shape[0]


class DiMPSteepestDescentGN(nn.Module):
    """Predicts the target filter from training features by unrolled steepest-descent Gauss-Newton."""

    def __init__(self, num_iter: int = 5, feat_stride: int = 16, init_step_length: float = 0.9,
                 init_filter_reg: float = 0.1, init_gauss_sigma: float = 0.9, num_dist_bins: int = 100,
                 bin_displacement: float = 0.1, mask_init_factor: float = 3.0, min_filter_reg: float = 1e-3):
        super().__init__()
        self.num_iter, self.feat_stride, self.min_filter_reg = num_iter, feat_stride, min_filter_reg
        self.log_step_length = nn.Parameter(torch.tensor(math.log(init_step_length)))
        self.filter_reg = nn.Parameter(torch.tensor(init_filter_reg))
        self.distance_map = DistanceMap(num_dist_bins, bin_displacement)
        self.label_map_predictor = nn.Conv2d(num_dist_bins, 1, 1, bias=False)
        self.target_mask_predictor = nn.Conv2d(num_dist_bins, 1, 1, bias=False)
        self.spatial_weight_predictor = nn.Conv2d(num_dist_bins, 1, 1, bias=False)
        knots = torch.arange(num_dist_bins, dtype=torch.float32) * bin_displacement
        gauss = torch.exp(-0.5 * (knots / init_gauss_sigma) ** 2)
        with torch.no_grad():
            self.label_map_predictor.weight.copy_((gauss - gauss.min()).view(1, -1, 1, 1))
            self.target_mask_predictor.weight.copy_((mask_init_factor * torch.tanh(2.0 - knots)).view(1, -1, 1, 1))
            self.spatial_weight_predictor.weight.fill_(1.0)

    def reg_weight(self) -> torch.Tensor:
        """lam = max(filter_reg^2, min_filter_reg^2)."""
        return (self.filter_reg * self.filter_reg).clamp(min=self.min_filter_reg ** 2)

    def loss_maps(self, bb: torch.Tensor, feat_sz: tuple[int, int], filter_size: int,
                  sample_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Label y, mask m and sw = sqrt(w) v, each (B, N, H', W'), for boxes bb (B, N, 4) xywh in pixels."""
        b, n = bb.shape[:2]
        out_sz = (feat_sz[0] + (filter_size + 1) % 2, feat_sz[1] + (filter_size + 1) % 2)
        center = ((bb[..., :2] + bb[..., 2:] / 2) / self.feat_stride).flip(-1) - (filter_size % 2) / 2
        dist = self.distance_map(center.reshape(b * n, 2), out_sz)
        label = self.label_map_predictor(dist).view(b, n, *out_sz)
        mask = torch.sigmoid(self.target_mask_predictor(dist)).view(b, n, *out_sz)
        if sample_weight is None:
            sample_weight = bb.new_full((b, n), 1.0 / n)
        sw = sample_weight.sqrt().view(b, n, 1, 1) * self.spatial_weight_predictor(dist).view(b, n, *out_sz)
        return label, mask, sw

    def forward(self, weights: torch.Tensor, feat: torch.Tensor, bb: torch.Tensor,
                sample_weight: torch.Tensor | None = None, num_iter: int | None = None,
                compute_losses: bool = True) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """Refine f0 `weights` (B, D, k, k) on feat (B, N, D, H, W) with boxes bb (B, N, 4).

        Returns the final filter, the iterates [f0, ..., fN] and the losses of those iterates (N+1,).
        """
        num_iter = self.num_iter if num_iter is None else num_iter
        label, mask, sw = self.loss_maps(bb, feat.shape[-2:], weights.shape[-1], sample_weight)
        reg, step = self.reg_weight(), torch.exp(self.log_step_length)
        iterates, losses = [weights], []
        for _ in range(num_iter):
            grad, residual, jac = filter_gradient(feat, weights, label, mask, sw, reg)
            if compute_losses:
                losses.append(_objective(residual, weights, reg))
            grad_sq = grad.pow(2).sum(dim=(1, 2, 3))
            curvature = (jac * apply_filter(feat, grad)).pow(2).sum(dim=(1, 2, 3)) + reg * grad_sq
            alpha = grad_sq / curvature.clamp(min=1e-8)
            weights = weights - step * alpha.view(-1, 1, 1, 1) * grad
            iterates.append(weights)
        if not compute_losses:
            return weights, iterates, None
        losses.append(_objective(_residual(feat, weights, label, mask, sw)[1], weights, reg))
        return weights, iterates, torch.stack(losses)
