"""RT-MDNet network, its RoI features, Meta-SGD adaptation and one-shot channel pruning (MetaRTT).

The sample geometry (generators, scene crop, RoIs) lives in `trackers.metartt.geometry`.

The network (trackers.md §3.1): conv1 7x7/2 96 + ReLU + LRN + maxpool 3/2, conv2 5x5/2 256 + ReLU +
LRN, conv3 3x3 dilation 3 512 + ReLU (VALID, stride 8, receptive field 75), an adaptive RoIAlign to
7x7 then maxpool 3/2 -> 3x3x512, and the head fc4 4608->512, fc5 512->512, fc6 512->2 (dropout 0.5
before fc5 and fc6). The head runs through `torch.func.functional_call` on an explicit parameter
dict so the K_init / K_on adaptation steps theta_k = theta_{k-1} - alpha_k * grad can be unrolled
and differentiated (MetaRTT, Meta-SGD style per-parameter, per-iteration learning rates).

Choices not fixed by the papers or the notes:
- RoIAlign is plain PyTorch `grid_sample` (bilinear, `align_corners=True`, i.e. feature cell k sits
  at coordinate k; `padding_mode="border"`, i.e. samples outside the map take the clamped border
  value). Each bin averages n_y x n_x points with n = max(1, round(bin size)) per RoI and axis
  (RT-MDNet's adaptive sampling); the max comes from the following 3x3/2 max pool.
- Scene crop: one crop of the union of the 1.2-padded sample boxes (mean-colour padding), each axis
  resized so that the reference target becomes `img_size` x `img_size` = 107 x 107 px (MDNet's
  107 px sample warp; an isotropic scale would make thin targets, e.g. 17 x 50 px, narrower than
  the 75 px receptive field and their RoIs degenerate), each side clamped to
  [receptive field + stride, `max_scene_size`]. `crop_region` is the anisotropic sibling of
  `nas.data.crops.crop_square`. Input = RGB - 128 (RT-MDNet's convention, not ImageNet's).
- Sampling follows RT-MDNet's generator (gaussian/uniform translation, scale, optional aspect
  jitter, clamping, IoU filtering with a doubling draw up to 16x); aspect jitter is off unless given.
- Every adaptation step uses RT-MDNet's minibatch rule on the dataset: `batch_pos` random positives
  and the `batch_neg` highest-scoring of `neg_candidates` random negatives (all of them when the
  dataset is smaller); the loss is the mean softmax cross-entropy. Only fc4-fc6 are adapted.
- Initial weights (before meta-training; no VGG-M here): Kaiming-normal convs with conv1 divided by
  128 (the input spans +-128, not unit variance), Kaiming-normal fc4/fc5, fc6 normal(0, 0.01), zero
  biases. This keeps the RoI features O(1), so that the learning-rate vectors' start value
  `alpha_init_value` = 1e-3 (fc6 x10, RT-MDNet's lr multiplier) gives stable first steps.
- Pruning: masks on the outputs of conv1, conv2, conv3, fc4 and fc5, applied after the ReLU and
  before the LRN (beta * relu(Wx+b) = relu(beta W x + beta b) for beta >= 0, so `prune` folds the
  kept masks into the weights and the pruned network equals the masked one exactly). One MLP per
  layer: Linear(c, max(8, c//4)) - LeakyReLU(0.1) - Dropout(0.5) - Linear(., c) - ReLU, the last bias
  initialised to 1 so every channel starts open. Inputs: the global average of the first frame's
  scene-crop conv maps (conv layers) and each D_init sample's activation (fc layers; the MLP
  outputs are averaged over the samples, as in the paper). At test time a channel is kept if its
  mask exceeds `prune_threshold`; at least one channel per layer is always kept. The learning-rate
  vectors of pruned fc parameters are sliced, not rescaled.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from trackers.metartt.geometry import CANDIDATES, SampleRule, SceneConfig, generate, sample, scene_rois


PRUNABLE = ("conv1", "conv2", "conv3", "fc4", "fc5")
_INPUT_OF = {"conv2": "conv1", "conv3": "conv2", "fc4": "conv3", "fc5": "fc4", "fc6": "fc5"}
POOLED = 3  # 7x7 RoIAlign -> maxpool 3/2 -> 3x3


@dataclass(frozen=True)
class RTMDNetConfig:
    """Layer widths (all prunable) and the head's dropout; defaults are RT-MDNet's."""

    channels: tuple[int, int, int] = (96, 256, 512)
    fc_widths: tuple[int, int] = (512, 512)
    roi_size: int = 7
    dropout: float = 0.5

    def widths(self) -> dict[str, int]:
        return dict(zip(PRUNABLE, (*self.channels, *self.fc_widths)))


def lrn(x: torch.Tensor) -> torch.Tensor:
    """RT-MDNet's local response normalisation with local_size 1: x / (2 + 1e-4 x^2)^0.75."""
    return x / (2.0 + 1e-4 * x.pow(2)).pow(0.75)


def _masked(x: torch.Tensor, masks: dict[str, torch.Tensor] | None, layer: str) -> torch.Tensor:
    if masks is None or layer not in masks:
        return x
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return x * masks[layer].view(shape)


class Head(nn.Module):
    """fc4-fc6; `all_layers` returns the fc4, fc5 and fc6 outputs (the pruning targets)."""

    def __init__(self, in_features: int, widths: tuple[int, int], dropout: float):
        super().__init__()
        self.fc4 = nn.Linear(in_features, widths[0])
        self.fc5 = nn.Linear(widths[0], widths[1])
        self.fc6 = nn.Linear(widths[1], 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, masks: dict[str, torch.Tensor] | None = None,
                all_layers: bool = False) -> torch.Tensor | list[torch.Tensor]:
        a4 = _masked(torch.relu(self.fc4(x)), masks, "fc4")
        a5 = _masked(torch.relu(self.fc5(self.dropout(a4))), masks, "fc5")
        logits = self.fc6(self.dropout(a5))
        return [a4, a5, logits] if all_layers else logits


class RTMDNet(nn.Module):
    """Shared conv trunk on one scene crop, RoI pooling, and the fc head (see the module docstring)."""

    def __init__(self, config: RTMDNetConfig = RTMDNetConfig()):
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels
        self.conv1 = nn.Conv2d(3, c1, 7, stride=2)
        self.conv2 = nn.Conv2d(c1, c2, 5, stride=2)
        self.conv3 = nn.Conv2d(c2, c3, 3, dilation=3)
        self.head = Head(c3 * POOLED * POOLED, config.fc_widths, config.dropout)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        with torch.no_grad():  # the input spans +-128, not unit variance
            self.conv1.weight /= 128.0
        nn.init.normal_(self.head.fc6.weight, std=0.01)

    def features(self, image: torch.Tensor, masks: dict[str, torch.Tensor] | None = None,
                 all_layers: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """Scene crop (1, 3, H, W), RGB - 128 -> conv3 map (or [conv1, conv2, conv3] maps)."""
        f1 = F.max_pool2d(lrn(_masked(torch.relu(self.conv1(image)), masks, "conv1")), 3, 2)
        f2 = lrn(_masked(torch.relu(self.conv2(f1)), masks, "conv2"))
        f3 = _masked(torch.relu(self.conv3(f2)), masks, "conv3")
        return [f1, f2, f3] if all_layers else f3

    def forward(self, image: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """One frame: scene crop (1, 3, H, W) and RoIs (R, 4) in conv3 cells -> logits (R, 2)."""
        return self.head(roi_pool(self.features(image), rois, self.config.roi_size))

    def head_params(self) -> dict[str, torch.Tensor]:
        """The adapted parameters (fc4-fc6) by their head-relative names."""
        return dict(self.head.named_parameters())

    def classify(self, feats: torch.Tensor, params: dict[str, torch.Tensor] | None = None,
                 masks: dict[str, torch.Tensor] | None = None, all_layers: bool = False
                 ) -> torch.Tensor | list[torch.Tensor]:
        """Head on RoI features with explicit (possibly adapted) parameters."""
        params = self.head_params() if params is None else params
        return functional_call(self.head, params, (feats,), {"masks": masks, "all_layers": all_layers})

    def prune(self, masks: dict[str, torch.Tensor], threshold: float = 0.0) -> RTMDNet:
        """A physically smaller network equal to this one with the kept masks applied."""
        keep = kept_channels(masks, threshold)
        widths = {layer: len(idx) for layer, idx in keep.items()}
        config = replace(self.config, channels=tuple(widths[k] for k in PRUNABLE[:3]),
                         fc_widths=(widths["fc4"], widths["fc5"]))
        small = RTMDNet(config).to(self.conv1.weight.device)
        small.load_state_dict(slice_parameters(self.state_dict(), keep, masks))
        return small


def kept_channels(masks: dict[str, torch.Tensor], threshold: float = 0.0) -> dict[str, torch.Tensor]:
    """Indices of the channels whose mask exceeds `threshold` (the largest one if none does)."""
    keep = {}
    for layer, mask in masks.items():
        idx = torch.nonzero(mask > threshold).flatten()
        keep[layer] = idx if idx.numel() else mask.argmax().reshape(1)
    return keep


def effective_masks(masks: dict[str, torch.Tensor], threshold: float = 0.0) -> dict[str, torch.Tensor]:
    """The masks as the pruned network applies them: zero outside `kept_channels`."""
    keep = kept_channels(masks, threshold)
    out = {}
    for layer, mask in masks.items():
        dropped = torch.ones_like(mask, dtype=torch.bool)
        dropped[keep[layer]] = False
        out[layer] = mask.masked_fill(dropped, 0.0)
    return out


def slice_parameters(tensors: dict[str, torch.Tensor], keep: dict[str, torch.Tensor],
                     masks: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Slice conv/fc tensors (state dict, head params or learning rates) to the kept channels.

    Output rows/filters are sliced by the layer's own kept set (and scaled by its mask when `masks`
    is given, which folds beta into the weights); weight inputs by the previous layer's kept set
    (fc4 inputs: each conv3 channel owns its 3x3 block of the flattened RoI feature).
    """
    out = {}
    for name, tensor in tensors.items():
        layer, kind = name.split(".")[-2:]
        if layer in keep:
            idx = keep[layer].to(tensor.device)
            tensor = tensor[idx]
            if masks is not None:
                tensor = tensor * masks[layer].to(tensor.device)[idx].view((-1,) + (1,) * (tensor.dim() - 1))
        source = _INPUT_OF.get(layer)
        if kind == "weight" and source is not None and source in keep:
            idx = keep[source].to(tensor.device)
            if layer == "fc4":
                cells = POOLED * POOLED
                idx = (idx[:, None] * cells + torch.arange(cells, device=idx.device)).flatten()
            tensor = tensor[:, idx]
        out[name] = tensor.detach().clone()
    return out


# ---------------------------------------------------------------- RoIAlign in plain PyTorch
def roi_align(fmap: torch.Tensor, rois: torch.Tensor, size: int = 7) -> torch.Tensor:
    """Adaptive RoIAlign: fmap (1, C, H, W), rois (R, 4) x1, y1, x2, y2 in cells -> (R, C, size, size).

    Bin (i, j) of a RoI averages an n_y x n_x grid of bilinear samples at y1 + (i + (a + .5)/n_y) bh,
    with n = max(1, round(bin size)); coordinates are clamped to the map (border value).
    """
    _, c, h, w = fmap.shape
    bins = (rois[:, 2:] - rois[:, :2]).clamp(min=0.0) / size  # (R, 2) bin w, h
    counts = torch.clamp(torch.round(bins), min=1).long().cpu()
    out = fmap.new_empty(rois.shape[0], c, size, size)
    for nx, ny in torch.unique(counts, dim=0).tolist():
        sel = torch.nonzero((counts[:, 0] == nx) & (counts[:, 1] == ny)).flatten().to(rois.device)
        r = rois[sel]
        steps_x = (torch.arange(size * nx, device=r.device, dtype=r.dtype) + 0.5) / nx  # bin units
        steps_y = (torch.arange(size * ny, device=r.device, dtype=r.dtype) + 0.5) / ny
        xs = r[:, 0:1] + steps_x[None] * bins[sel, 0:1]  # (R', size*nx)
        ys = r[:, 1:2] + steps_y[None] * bins[sel, 1:2]
        gx = 2.0 * xs / max(w - 1, 1) - 1.0
        gy = 2.0 * ys / max(h - 1, 1) - 1.0
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
        grid = grid.reshape(1, -1, size * nx, 2)  # RoIs stacked along the output height
        sampled = F.grid_sample(fmap, grid, mode="bilinear", padding_mode="border", align_corners=True)
        sampled = sampled.view(c, len(sel), size, ny, size, nx).mean(dim=(3, 5))
        out[sel] = sampled.permute(1, 0, 2, 3)
    return out


def roi_pool(fmap: torch.Tensor, rois: torch.Tensor, size: int = 7) -> torch.Tensor:
    """RoIAlign to size x size, max pool 3/2, flatten: (R, C * 3 * 3)."""
    return F.max_pool2d(roi_align(fmap, rois, size), 3, 2).flatten(1)


def roi_features(net: RTMDNet, frame: np.ndarray, boxes: np.ndarray, target_wh: Sequence[float],
                 scene: SceneConfig = SceneConfig(), masks: dict[str, torch.Tensor] | None = None
                 ) -> torch.Tensor:
    """(N, C3 * 9) RoI features of `boxes` in `frame` (grad flows into the conv weights)."""
    device = net.conv1.weight.device
    image, rois = scene_rois(frame, boxes, target_wh, scene)
    fmap = net.features(image.to(device), masks)
    return roi_pool(fmap, torch.from_numpy(rois).float().to(device), net.config.roi_size)


@dataclass
class SampleSet:
    """Sample boxes of one frame with labels (1 = target, 0 = background)."""

    frame: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    target_wh: tuple[float, float]

    def features(self, net: RTMDNet, scene: SceneConfig, masks=None) -> torch.Tensor:
        return roi_features(net, self.frame, self.boxes, self.target_wh, scene, masks)


def labelled_samples(frame: np.ndarray, box: np.ndarray, pos_rule: SampleRule, neg_rule: SampleRule,
                     n_pos: int, n_neg: int, rng: np.random.Generator) -> SampleSet:
    """Positives and negatives around `box` (ground truth or an estimate) by RT-MDNet's rules."""
    wh = (frame.shape[1], frame.shape[0])
    pos = sample(pos_rule, box, n_pos, wh, rng)
    neg = sample(neg_rule, box, n_neg, wh, rng)
    labels = np.concatenate([np.ones(len(pos), dtype=np.int64), np.zeros(len(neg), dtype=np.int64)])
    return SampleSet(frame, np.concatenate([pos, neg]), labels, (float(box[2]), float(box[3])))


def locate(net: RTMDNet, params: dict[str, torch.Tensor], frame: np.ndarray, box: np.ndarray,
           rule: SampleRule, n_candidates: int, top_k: int, scene: SceneConfig,
           rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One tracking step: mean of the top-k candidates by positive logit; (box, mean top-k score)."""
    cands = generate(rule, box, n_candidates, (frame.shape[1], frame.shape[0]), rng)
    was_training = net.training
    net.eval()
    with torch.no_grad():
        feats = roi_features(net, frame, cands, (box[2], box[3]), scene)
        scores = net.classify(feats, {k: v.detach() for k, v in params.items()})[:, 1]
    net.train(was_training)
    top = torch.topk(scores, min(top_k, len(scores))).indices
    return cands[top.cpu().numpy()].mean(axis=0), float(scores[top].mean())


# ---------------------------------------------------------------- Meta-SGD adaptation
@dataclass(frozen=True)
class AdaptConfig:
    """Minibatch rule of each adaptation step (RT-MDNet: 32 pos, hardest 96 of 1024 neg)."""

    batch_pos: int = 32
    batch_neg: int = 96
    neg_candidates: int = 1024


@dataclass(frozen=True, kw_only=True)
class TrackingStepConfig:
    """One tracking step's settings, the same in tracking and in meta-training's simulated tracking:
    `locate` scores `n_candidates` boxes drawn by `candidates` on one scene crop and averages the
    `top_k`; `adapt` takes its minibatches by `adapt`.

    Keyword-only, so a config that inherits them keeps its own positional field order.
    """

    n_candidates: int = 256
    candidates: SampleRule = CANDIDATES
    top_k: int = 5
    adapt: AdaptConfig = AdaptConfig()
    scene: SceneConfig = field(default_factory=SceneConfig)


def binary_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy over positives (label 1) and negatives (label 0)."""
    return F.cross_entropy(logits, labels)


def _batch(net: RTMDNet, params: dict[str, torch.Tensor], pos: torch.Tensor, neg: torch.Tensor,
           config: AdaptConfig, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random positives and hard negatives (scored without grad by the current parameters)."""
    pos = pos[torch.from_numpy(rng.permutation(len(pos))[:config.batch_pos]).to(pos.device)]
    if len(neg) > config.batch_neg:
        cand = neg[torch.from_numpy(rng.permutation(len(neg))[:config.neg_candidates]).to(neg.device)]
        was_training = net.training
        net.eval()
        with torch.no_grad():
            scores = net.classify(cand.detach(), {k: v.detach() for k, v in params.items()})[:, 1]
        net.train(was_training)
        neg = cand[torch.topk(scores, config.batch_neg).indices]
    labels = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).long().to(pos.device)
    return torch.cat([pos, neg]), labels


def adapt(net: RTMDNet, params: dict[str, torch.Tensor], rates: Sequence[dict[str, torch.Tensor]],
          pos: torch.Tensor, neg: torch.Tensor, rng: np.random.Generator,
          config: AdaptConfig = AdaptConfig(), create_graph: bool = False) -> list[dict[str, torch.Tensor]]:
    """K = len(rates) steps theta_k = theta_{k-1} - alpha_k * grad L; returns [theta_1 .. theta_K].

    With `create_graph` the steps stay differentiable w.r.t. theta_0, the rates and the features
    (meta-training); otherwise each iterate is a detached leaf (tracking).
    """
    iterates = []
    with torch.enable_grad():
        for alpha in rates:
            if not create_graph:
                params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            x, y = _batch(net, params, pos, neg, config, rng)
            loss = binary_loss(net.classify(x, params), y)
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
            params = {k: v - alpha[k] * g for (k, v), g in zip(params.items(), grads)}
            if not create_graph:
                params = {k: v.detach() for k, v in params.items()}
            iterates.append(params)
    return iterates


class LearningRates(nn.Module):
    """K per-parameter learning-rate vectors alpha_1..alpha_K shaped like the head parameters."""

    def __init__(self, shapes: dict[str, torch.Size], steps: int, value: float):
        super().__init__()
        self.names = list(shapes)
        self.steps = nn.ModuleList()
        for _ in range(steps):
            step = nn.ParameterDict()
            for name, shape in shapes.items():
                lr = value * (10.0 if name.startswith("fc6") else 1.0)
                step[name.replace(".", "_")] = nn.Parameter(torch.full(tuple(shape), lr))
            self.steps.append(step)

    def rates(self) -> list[dict[str, torch.Tensor]]:
        return [{name: step[name.replace(".", "_")] for name in self.names} for step in self.steps]


class MaskPredictor(nn.Module):
    """psi_l = mean_i MLP_l(AvgPool(F_l(x_i))): per-channel masks from the first frame's samples."""

    def __init__(self, widths: dict[str, int], dropout: float = 0.5):
        super().__init__()
        self.mlps = nn.ModuleDict()
        for layer, c in widths.items():
            hidden = max(8, c // 4)
            mlp = nn.Sequential(nn.Linear(c, hidden), nn.LeakyReLU(0.1), nn.Dropout(dropout),
                                nn.Linear(hidden, c), nn.ReLU())
            nn.init.normal_(mlp[3].weight, std=0.01)
            nn.init.ones_(mlp[3].bias)
            self.mlps[layer] = mlp

    def forward(self, pooled: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """pooled[layer]: (N, c) features of the N first-frame samples -> masks[layer]: (c,)."""
        return {layer: self.mlps[layer](pooled[layer]).mean(dim=0) for layer in self.mlps}


def lasso(masks: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of the masks' L1 norms (the LASSO sparsity term)."""
    return torch.stack([m.abs().sum() for m in masks.values()]).sum()


@dataclass(frozen=True)
class MetaRTTConfig:
    """MetaRTT's meta-parameter set-up: K_init = K_on = 5 (the paper)."""

    net: RTMDNetConfig = RTMDNetConfig()
    k_init: int = 5
    k_on: int = 5
    alpha_init_value: float = 1e-3  # fc6 x10
    mask_dropout: float = 0.5


class MetaRTT(nn.Module):
    """Meta-parameters {theta_0 (whole net), A_init, A_on} plus the one-shot pruning network."""

    def __init__(self, config: MetaRTTConfig = MetaRTTConfig()):
        super().__init__()
        self.config = config
        self.net = RTMDNet(config.net)
        shapes = {k: v.shape for k, v in self.net.head_params().items()}
        self.alpha_init = LearningRates(shapes, config.k_init, config.alpha_init_value)
        self.alpha_on = LearningRates(shapes, config.k_on, config.alpha_init_value)
        self.pruner = MaskPredictor(config.net.widths(), config.mask_dropout)

    def meta_parameters(self) -> list[nn.Parameter]:
        """What meta-training optimises: theta_0 and both learning-rate sets (not the pruner)."""
        return [*self.net.parameters(), *self.alpha_init.parameters(), *self.alpha_on.parameters()]

    def pooled_features(self, frame: np.ndarray, boxes: np.ndarray, target_wh: Sequence[float],
                        params: dict[str, torch.Tensor], scene: SceneConfig = SceneConfig()
                        ) -> dict[str, torch.Tensor]:
        """Pruning-network inputs from the first frame (see the module docstring)."""
        device = self.net.conv1.weight.device
        image, rois = scene_rois(frame, boxes, target_wh, scene)
        maps = self.net.features(image.to(device), all_layers=True)
        pooled = {layer: fmap.mean(dim=(2, 3)) for layer, fmap in zip(PRUNABLE[:3], maps)}
        feats = roi_pool(maps[-1], torch.from_numpy(rois).float().to(device), self.net.config.roi_size)
        a4, a5, _ = self.net.classify(feats, params, all_layers=True)
        return {**pooled, "fc4": a4, "fc5": a5}
