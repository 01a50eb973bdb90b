"""Torch blocks for the DSL's ops, and `make_op`, the one place an `OpSpec` becomes a module.

The subnet builder, the cost table and (later) the supernet all call `make_op`, so a block counted
by the cost model is exactly the block that runs.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from nas.dsl.grammar import OpSpec, SEConfig

_ACT = {"relu": nn.ReLU, "swish": nn.SiLU, "hswish": nn.Hardswish}
_GATE = {"hard_sigmoid": nn.Hardsigmoid, "sigmoid": nn.Sigmoid}


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to a multiple of `divisor`, never more than 10% below `value` (EfficientNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SqueezeExcite(nn.Module):
    """Channel gating: avg-pool, 1x1 reduce (bias), act, 1x1 expand (bias), gate, multiply."""

    def __init__(self, channels: int, ratio: float, cfg: SEConfig):
        super().__init__()
        reduced = make_divisible(channels * ratio, cfg.divisor)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = _ACT[cfg.act](inplace=True)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = _GATE[cfg.gate]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class ConvBnAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, act: str):
        super().__init__(*_conv_bn(cin, cout, kernel, stride), _ACT[act](inplace=True))


class DepthwiseSeparable(nn.Module):
    """dw kxk, BN, act, SE, pw 1x1, BN; residual when the shape is unchanged."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, se: float, act: str, se_cfg: SEConfig,
                 noskip: bool = False):
        super().__init__()
        self.dw = nn.Sequential(*_conv_bn(cin, cin, kernel, stride, groups=cin), _ACT[act](inplace=True))
        self.se = SqueezeExcite(cin, se, se_cfg) if se else nn.Identity()
        self.pw = nn.Sequential(*_conv_bn(cin, cout, 1))
        self.residual = stride == 1 and cin == cout and not noskip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.se(self.dw(x)))
        return x + y if self.residual else y


class InvertedResidual(nn.Module):
    """MBConv: pw expand, BN, act, dw kxk, BN, act, SE (on the expanded width), pw linear, BN, residual."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: float, se: float, act: str,
                 se_cfg: SEConfig, noskip: bool = False):
        super().__init__()
        mid = make_divisible(cin * expand)
        self.expand = nn.Sequential(*_conv_bn(cin, mid, 1), _ACT[act](inplace=True))
        self.dw = nn.Sequential(*_conv_bn(mid, mid, kernel, stride, groups=mid), _ACT[act](inplace=True))
        self.se = SqueezeExcite(mid, se, se_cfg) if se else nn.Identity()
        self.project = nn.Sequential(*_conv_bn(mid, cout, 1))
        self.residual = stride == 1 and cin == cout and not noskip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y


class SeparableConv(nn.Sequential):
    """LightTrack head DSConv: dw kxk, pw 1x1, BN, ReLU (no BN between dw and pw, no biases)."""

    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__(nn.Conv2d(cin, cin, kernel, 1, kernel // 2, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def make_op(op: OpSpec, cin: int, cout: int, stride: int, act: str, se_cfg: SEConfig) -> nn.Module:
    """Build the module for `op`; `cout`/`stride` come from the enclosing stage unless the op fixes them."""
    cout = op.channels or cout
    stride = op.stride or stride
    act = op.act or act
    if op.type == "skip":
        if cin != cout or stride != 1:
            raise ValueError(f"skip cannot map {cin}->{cout} channels with stride {stride}")
        return nn.Identity()
    if op.type == "ir":
        return InvertedResidual(cin, cout, op.kernel, stride, op.expand, op.se, act, se_cfg, op.noskip)
    if op.type == "ds":
        return DepthwiseSeparable(cin, cout, op.kernel, stride, op.se, act, se_cfg, op.noskip)
    if op.type == "sep":
        return SeparableConv(cin, cout, op.kernel)
    if op.type == "conv":
        return ConvBnAct(cin, cout, op.kernel, stride, act)
    raise ValueError(f"unknown op type {op.type!r}")


class PixelwiseFusion(nn.Module):
    """Pixel-wise correlation (each template pixel is a 1x1 kernel, by matmul), channel attention, 1x1 adjust.

    The output has `Hz*Wz` correlation channels before the adjust conv, so the template feature size
    fixes this module's width (64 at stride 16, 256 at stride 8 for a 128 template).
    """

    def __init__(self, template_pixels: int, out_channels: int):
        super().__init__()
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(template_pixels, template_pixels, 1),
                                       nn.ReLU(inplace=True), nn.Conv2d(template_pixels, template_pixels, 1),
                                       nn.Sigmoid())
        self.adjust = nn.Conv2d(template_pixels, out_channels, 1)

    def forward(self, zf: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        b, c, hx, wx = xf.shape
        corr = torch.matmul(zf.flatten(2).transpose(1, 2), xf.flatten(2)).view(b, -1, hx, wx)
        return self.adjust(corr * self.attention(corr))


class Predictor(nn.Module):
    """Final 3x3 conv of a head, then optional ReLU and a fixed scale (cls x0.1, reg ReLU x16)."""

    def __init__(self, cin: int, outputs: int, activation: str, scale: float):
        super().__init__()
        self.conv = nn.Conv2d(cin, outputs, 3, padding=1)
        self.activation, self.scale = activation, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return (F.relu(y) if self.activation == "relu" else y) * self.scale


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of `model` with every BatchNorm that directly follows a conv folded into it.

    Eval-mode BN is an affine map per channel, so conv -> BN equals one conv with adjusted weights
    and bias; folding removes about a fifth of a LightTrack forward pass on CPU. The original model is
    left untouched (training and supernet extraction need the separate BN statistics).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, nn.Sequential):
            items = list(module._modules.items())
            for (conv_name, conv), (bn_name, bn) in zip(items, items[1:]):
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
                    module._modules[bn_name] = nn.Identity()
    return folded
