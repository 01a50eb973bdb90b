"""Initial filter f0: conv + exact precise-RoI pooling of the target box, averaged over images.

Precise RoI pooling (Jiang et al., 2018) integrates the bilinearly interpolated feature surface over
each bin and divides by the bin area. The bilinear surface is sum_ij F[i, j] h(y - i) h(x - j) with
the hat h(t) = max(0, 1 - |t|), so the integral over a bin separates into per-axis weights
int h(t - i) dt = H(hi - i) - H(lo - i), where H is the hat's antiderivative (a piecewise
quadratic). That makes the pooling exact, differentiable in the features and the box, and
a pair of small matrix products per box (no CUDA op, no torchvision).

Choices not fixed by the notes:
- Coordinates: feature sample (i, j) lies at scaled coordinate (y, x) = (i, j), i.e. box * scale
  with no half-cell shift; outside the map the surface is zero (zero padding).
- One RoI per feature map (rois (M, 4) pair with feat (M, C, H, W)), the only case DiMP needs.
- A bin of zero area pools to 0; a box with x1 < x0 (or y1 < y0) is treated as zero-width.
- With several images per sequence the pooled filters are averaged uniformly (sample weights are
  an optimizer concern).
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _hat_antiderivative(t: torch.Tensor) -> torch.Tensor:
    """H(t) = integral of max(0, 1 - |u|) from -inf to t."""
    t = t.clamp(-1.0, 1.0)
    return torch.where(t < 0, 0.5 * (t + 1) ** 2, 1 - 0.5 * (1 - t) ** 2)


def _axis_weights(lo: torch.Tensor, hi: torch.Tensor, bins: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-bin integrals of each sample's hat along one axis (M, bins, size) and the bin widths (M, bins)."""
    steps = torch.arange(bins + 1, dtype=lo.dtype, device=lo.device) / bins
    edges = lo[:, None] + (hi - lo)[:, None] * steps
    cum = _hat_antiderivative(edges[:, :, None] - torch.arange(size, dtype=lo.dtype, device=lo.device))
    return cum[:, 1:] - cum[:, :-1], edges[:, 1:] - edges[:, :-1]


def prroi_pool2d(feat: torch.Tensor, rois: torch.Tensor, output_size: int | tuple[int, int],
                 spatial_scale: float) -> torch.Tensor:
    """Exact PrRoI pooling of feat (M, C, H, W) over rois (M, 4) = x0, y0, x1, y1 (input coords)."""
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    x0, y0, x1, y1 = (rois.to(feat.dtype) * spatial_scale).unbind(-1)
    wy, hy = _axis_weights(y0, torch.maximum(y1, y0), out_h, feat.shape[-2])
    wx, hx = _axis_weights(x0, torch.maximum(x1, x0), out_w, feat.shape[-1])
    integral = torch.einsum("mbi,mcij,mdj->mcbd", wy, feat, wx)
    area = (hy[:, :, None] * hx[:, None, :])[:, None]
    return torch.where(area > 0, integral / torch.where(area > 0, area, torch.ones_like(area)),
                       torch.zeros_like(integral))


class FilterInitializerLinear(nn.Module):
    """f0 = mean over images of PrRoIPool_k(conv3x3(feat), target box) (DiMP's initializer)."""

    def __init__(self, filter_size: int = 4, feature_dim: int = 256, feature_stride: int = 16, conv_ksz: int = 3,
                 conv: nn.Conv2d | None = None):
        """`conv` reuses an existing D->D conv (a weight-sharing supernet hands every filter size the same one)."""
        super().__init__()
        self.filter_size, self.feature_stride = filter_size, feature_stride
        if conv is None:
            conv = nn.Conv2d(feature_dim, feature_dim, conv_ksz, padding=conv_ksz // 2)
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (conv_ksz * conv_ksz * feature_dim)))
            nn.init.zeros_(conv.bias)
        self.conv = conv

    def forward(self, feat: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
        """feat (B, N, D, H, W), bb (B, N, 4) x, y, w, h in image pixels -> filter (B, D, k, k)."""
        b, n = feat.shape[:2]
        mapped = self.conv(feat.reshape(b * n, *feat.shape[2:]))
        boxes = bb.reshape(b * n, 4)
        rois = torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], dim=1)
        pooled = prroi_pool2d(mapped, rois, self.filter_size, 1.0 / self.feature_stride)
        return pooled.reshape(b, n, *pooled.shape[1:]).mean(dim=1)


class FilterInitializerZero(nn.Module):
    """f0 = 0: the optimizer alone builds the filter. Same call as the linear initializer; D comes from feat."""

    def __init__(self, filter_size: int = 4):
        super().__init__()
        self.filter_size = filter_size

    def forward(self, feat: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
        return feat.new_zeros(feat.shape[0], feat.shape[2], self.filter_size, self.filter_size)
