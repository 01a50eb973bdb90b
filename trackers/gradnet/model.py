"""GradNet (Li et al., ICCV 2019): a SiamFC whose template is updated from the loss gradient.

Names follow shared/notes/trackers.md §2 (the paper swaps U1/U2): the frozen AlexNet-SiamFC search
branch gives 22x22x256 features at 255; a separate trainable template branch gives the hidden
template h2 (12x12x256 after pool2) and, through its tail conv3-5 (= U2), the 6x6x256 template;
U1 maps the 10^4-scaled gradient g = dL/dh2 through a 3x3 conv, a normalisation and tanh, and its
output is added to h2. The score is a plain cross-correlation (17x17 at 255, stride 8).

Choices not fixed by the paper or the notes:
- U1 normalisation: a BatchNorm *without centring and without bias* (`UncentredBatchNorm`: per
  channel x * gamma / sqrt(E[x^2] + eps), batch E[x^2] in training, running E[x^2] at test). The
  conv has no bias either, so U1(0) = tanh(0) = 0 exactly in both modes: a zero gradient (no
  evidence) leaves the template unchanged whatever the trained statistics, which a centred BN with a
  learnt beta cannot guarantee.
- `u1_width`: with the paper's value (= h2 channels) U1 is the single k x k conv; a different width
  inserts a k x k conv to `u1_width` channels followed by a bias-free 1x1 conv back to the h2
  channels (still zero at zero), so the width can become a searchable option.
- `channels` scales the AlexNet widths (96, 256, 384, 384, 256); groups=2 on conv2/4/5 as in SiamFC,
  so every width must be even. Inputs are normalised by `nas.data.crops.normalize` (RGB/255,
  ImageNet mean/std), the repository's one input convention, not SiamFC's raw pixels.
- BN momentum 3e-4 (PyTorch's convention for TF's moving-average decay 0.9997), eps 1e-3.
- The logistic loss is weighted per cell (0.5/#pos, 0.5/#neg) and averaged over all B x H x W
  cells, as in the notes; this makes g tiny, which the 10^4 input scale of U1 compensates.
- Weight decay 5e-4 * sum(w^2)/2 (TF's l2_regularizer) on the trainable conv weights only.
- A template of batch 1 is correlated with every search image (template generalization); a template
  batch equal to the search batch is correlated pairwise.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ALEXNET_CHANNELS = (96, 256, 384, 384, 256)
BN_EPS = 1e-3
BN_MOMENTUM = 3e-4
GRADIENT_SCALE = 1e4


@dataclass(frozen=True)
class GradNetConfig:
    """Network hyper-parameters; the defaults are the paper's."""

    channels: tuple[int, int, int, int, int] = ALEXNET_CHANNELS
    u1_kernel: int = 3
    u1_width: int | None = None  # None: the h2 channel count (one conv, as in the paper)
    gradient_scale: float = GRADIENT_SCALE
    label_radius: float = 2.0  # cells: lossRPos / stride = 16 / 8
    stride: int = 8


def _init_conv(conv: nn.Conv2d) -> None:
    """Truncated normal std 0.01 (cut at 2 std), bias 0.1: the official initialisation."""
    nn.init.trunc_normal_(conv.weight, std=0.01, a=-0.02, b=0.02)
    if conv.bias is not None:
        nn.init.constant_(conv.bias, 0.1)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class AlexNetBranch(nn.Module):
    """SiamFC AlexNet with VALID convs: `stem` (conv1-2 + pools) -> h2, `tail` (conv3-5) -> features."""

    def __init__(self, channels: tuple[int, ...] = ALEXNET_CHANNELS):
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, c1, 11, stride=2), _bn(c1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(c1, c2, 5, groups=2), _bn(c2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.tail = nn.Sequential(
            nn.Conv2d(c2, c3, 3), _bn(c3), nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3, groups=2), _bn(c4), nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3, groups=2))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                _init_conv(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.stem(x))


class UncentredBatchNorm(nn.Module):
    """Per-channel x * gamma / sqrt(E[x^2] + eps): a BN that maps 0 to exactly 0 in both modes."""

    def __init__(self, channels: int, eps: float = BN_EPS, momentum: float = BN_MOMENTUM):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.register_buffer("running_sq", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            sq = x.pow(2).mean(dim=(0, 2, 3))
            with torch.no_grad():
                self.running_sq.lerp_(sq.detach(), self.momentum)
        else:
            sq = self.running_sq
        return x * (self.weight / torch.sqrt(sq + self.eps))[None, :, None, None]


class GradientEncoder(nn.Module):
    """U1: tanh(BN(conv(scale * g))), bias-free so that U1(0) == 0 exactly."""

    def __init__(self, channels: int, kernel: int = 3, width: int | None = None,
                 scale: float = GRADIENT_SCALE):
        super().__init__()
        width = channels if width is None else width
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(channels, width, kernel, padding=kernel // 2, bias=False)]
        if width != channels:
            layers.append(nn.Conv2d(width, channels, 1, bias=False))
        self.convs = nn.Sequential(*layers)
        for conv in self.convs:
            _init_conv(conv)
        self.norm = UncentredBatchNorm(channels)

    def forward(self, grad: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.norm(self.convs(grad * self.scale)))


def logistic_label(size: int, radius: float, device: torch.device | None = None) -> torch.Tensor:
    """(size, size) map of +1 within `radius` cells of the centre, -1 elsewhere."""
    r = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2.0
    dist = torch.sqrt(r[:, None] ** 2 + r[None, :] ** 2)
    return torch.where(dist <= radius, 1.0, -1.0)


def logistic_loss(score: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Balanced logistic loss softplus(-y s), weights 0.5/#pos and 0.5/#neg, mean over B x H x W."""
    pos = label > 0
    n_pos = pos.sum().clamp(min=1)
    n_neg = (~pos).sum().clamp(min=1)
    weight = torch.where(pos, 0.5 / n_pos, 0.5 / n_neg)
    return (weight * F.softplus(-label * score)).expand_as(score).mean()


def xcorr(template: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
    """Cross-correlation (B_t, C, k, k) * (B, C, H, W) -> (B, 1, H', W'); B_t is 1 or B."""
    if template.shape[0] == 1:
        return F.conv2d(search, template)
    b, c, h, w = search.shape
    out = F.conv2d(search.reshape(1, b * c, h, w), template, groups=b)
    return out.reshape(b, 1, out.shape[-2], out.shape[-1])


class GradNet(nn.Module):
    """Frozen SiamFC search branch + trainable template branch (stem -> h2, tail = U2) + U1."""

    def __init__(self, config: GradNetConfig = GradNetConfig()):
        super().__init__()
        self.config = config
        self.search = AlexNetBranch(config.channels)
        self.search.requires_grad_(False)
        self.template_branch = AlexNetBranch(config.channels)
        self.u1 = GradientEncoder(config.channels[1], config.u1_kernel, config.u1_width,
                                  config.gradient_scale)

    def train(self, mode: bool = True) -> GradNet:
        """The search branch is frozen: it always uses its moving statistics."""
        super().train(mode)
        self.search.eval()
        return self

    def search_features(self, x: torch.Tensor) -> torch.Tensor:
        """Search crops (B, 3, 255, 255) -> (B, C, 22, 22)."""
        return self.search(x)

    def siamfc_template(self, z: torch.Tensor) -> torch.Tensor:
        """The plain SiamFC template (frozen weights) of exemplar crops (B, 3, 127, 127) -> (B, C, 6, 6)."""
        return self.search(z)

    def hidden(self, z: torch.Tensor) -> torch.Tensor:
        """Hidden template h2 (B, C2, 12, 12) of exemplar crops."""
        return self.template_branch.stem(z)

    def template(self, h: torch.Tensor) -> torch.Tensor:
        """U2: hidden template -> (B, C, 6, 6) template."""
        return self.template_branch.tail(h)

    def score(self, template: torch.Tensor, search_feats: torch.Tensor) -> torch.Tensor:
        return xcorr(template, search_feats)

    def label(self, score_size: int, device: torch.device | None = None) -> torch.Tensor:
        return logistic_label(score_size, self.config.label_radius, device)

    def update_template(self, h: torch.Tensor, search_feats: torch.Tensor,
                        label: torch.Tensor | None = None, create_graph: bool = False
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """One gradient-guided step: g = dL(U2(h))/dh, h' = h + U1(g); returns (h', U2(h')).

        `create_graph=True` (training) keeps the graph of g so the final loss trains U1 with the
        second-order term; at tracking time h is a detached leaf and only g itself is needed.
        """
        with torch.enable_grad():
            if not h.requires_grad:
                h = h.detach().requires_grad_(True)
            score = self.score(self.template(h), search_feats)
            if label is None:
                label = self.label(score.shape[-1], score.device)
            grad, = torch.autograd.grad(logistic_loss(score, label), h, create_graph=create_graph)
            h_new = h + self.u1(grad)
            return h_new, self.template(h_new)


def weight_decay(module: nn.Module, factor: float = 5e-4) -> torch.Tensor:
    """factor * sum(w^2) / 2 over the trainable conv weights (not biases, not BN)."""
    terms = [m.weight.pow(2).sum() for m in module.modules()
             if isinstance(m, nn.Conv2d) and m.weight.requires_grad]
    return factor * 0.5 * torch.stack(terms).sum()


def template_generalization_step(model: GradNet, z: torch.Tensor, x: torch.Tensor,
                                 optimizer: torch.optim.Optimizer, decay: float = 5e-4) -> float:
    """One training step: the template of pair 0 must localise the targets of *all* search images.

    z (B, 3, 127, 127) and x (B, 3, S, S) come from B different videos, every target centred in
    its search crop. Only element 0's hidden template is used, so the initial template is misaligned
    for the other videos and the update must rely on the (aligned) gradient. The optimizer should
    hold only the trainable parameters (template branch and U1). Returns the final loss (no decay).
    """
    model.train()
    with torch.no_grad():
        feats = model.search_features(x)
    h = model.hidden(z[:1])
    _, template = model.update_template(h, feats, create_graph=True)
    score = model.score(template, feats)
    loss = logistic_loss(score, model.label(score.shape[-1], score.device))
    optimizer.zero_grad(set_to_none=True)
    (loss + weight_decay(model, decay)).backward()
    optimizer.step()
    return float(loss.detach())


def trainable_parameters(model: GradNet) -> list[nn.Parameter]:
    """The `_z` variables of the official code: template branch and U1 (never the search branch)."""
    return [p for p in model.parameters() if p.requires_grad]

