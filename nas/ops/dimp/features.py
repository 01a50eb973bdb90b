"""Classification features for the DiMP filter: optional residual blocks, a 3x3 conv to D, L2 norm.

The normalisation fixes the feature energy so that the optimizer's step length and the learned
regulariser see the same scale for every D and k (trackers.md §1.2).

Choices not fixed by the notes: the input may have any leading dims (*, C, H, W) (they are
flattened for the convs and BatchNorm); `num_blocks` generalises DiMP-18 (1 block) and DiMP-50
(0 blocks); the residual block is the plain two-conv basic block (3x3 conv, BN, ReLU, 3x3 conv, BN,
identity add, ReLU) at constant width.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _init_conv(conv: nn.Conv2d) -> None:
    """normal(0, sqrt(2 / (k_h k_w out_ch))), bias 0: the block's initialisation in the notes."""
    k_h, k_w = conv.kernel_size
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (k_h * k_w * conv.out_channels)))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class InstanceL2Norm(nn.Module):
    """Per-sample x * scale * sqrt(C H W / (sum x^2 + eps)): the mean square becomes scale^2."""

    def __init__(self, scale: float, eps: float = 1e-5):
        super().__init__()
        self.scale, self.eps = scale, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = x.pow(2).sum(dim=(-3, -2, -1), keepdim=True)
        return x * (self.scale * torch.sqrt(x.shape[-3] * x.shape[-2] * x.shape[-1] / (energy + self.eps)))


class ResidualBlock(nn.Module):
    """Basic residual block at constant width (3x3 conv-BN-ReLU-3x3 conv-BN, add, ReLU)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)
        for conv in (self.conv1, self.conv2):
            _init_conv(conv)  # BatchNorm2d already starts at weight 1, bias 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(out)))


class ClassificationFeatures(nn.Module):
    """Backbone map (*, in_dim, H, W) -> filter features (*, out_dim, H, W) with mean square 1/(D k^2)."""

    def __init__(self, in_dim: int, out_dim: int, filter_size: int, num_blocks: int = 1):
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualBlock(in_dim) for _ in range(num_blocks)))
        self.conv = nn.Conv2d(in_dim, out_dim, 3, padding=1, bias=False)
        _init_conv(self.conv)
        self.norm = InstanceL2Norm(scale=math.sqrt(1.0 / (out_dim * filter_size * filter_size)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        out = self.norm(self.conv(self.blocks(x.reshape(-1, *x.shape[-3:]))))
        return out.reshape(*lead, *out.shape[-3:])
