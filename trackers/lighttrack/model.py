"""The standalone LightTrack subnet: exactly what one architecture of a space needs to track.

Only blocks up to the output position are built, so parameters and FLOPs are those of the deployed
tracker. The template branch (`template`) runs once per sequence and returns the cached *template
state*, a flat dict of tensors; the per-frame search branch (`track`) takes the search crop and
that state. The state always holds `zf` (template features after the neck BN); head types add
their own entries under `<head>.<key>`:

* `tower` (LightTrack's DSConv stacks): nothing; it reads the fused neck output.
* `dimp` (DiMP's discriminative model predictor, replacing the `cls` tower): `<head>.filter`, the
  target filter learned once from the template crop. Its classification features are a bias-free
  3x3 conv to D on the raw backbone map plus DiMP's instance L2 norm, shared by template and search
  so the filter learned on one applies to the other; the initializer pools the target box
  (precise RoI pooling, k x k) and `num_iter` steepest-descent Gauss-Newton steps refine it. Scores
  are DiMP's regression scores (about 1 on the target, 0 elsewhere), not logits:
  `cls_is_logit` tells the tracker. Filter sizes are odd so the score map is the S x S grid of the
  reg tower. In training mode the state also holds `<head>.iterates` and `track` returns the
  scores of every iterate under `<head>.iterates` (DiMP's loss supervises all of them).
  Choices: the filter is learned from the template crop (the tracker's contract is one template
  per sequence), not from DiMP's search-sized train crops; there is no online memory update (the
  standalone `trackers.dimp` baseline has one).
* `gradnet` (GradNet's gradient-guided template update): `hidden` (the hidden template h, the
  backbone features after the stem or a stage) and `zf0` (the original template).
  `update_template` takes the gradient of the cls loss on a few search crops with respect to h,
  maps it through U1 (kxk conv to a width W, BN, ReLU, 1x1 conv back, BN, tanh; GradNet uses one
  3x3 conv + BN + tanh), adds it to h and re-runs the template tail (U2 = the backbone blocks after
  h and the neck BN). The new `zf` is `(1 - weight) zf0 + weight zf'`: the pixel-wise correlation
  is linear in zf, so this mixes the two templates' correlation maps as GradNet mixes its two
  score maps, at no per-frame cost. The inner gradient is treated as a constant (first order).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from nas.space.grammar import OpSpec
from nas.space.space import Arch, SearchSpace
from nas.space.spec import SEConfig, SpaceSpec
from nas.train.losses import balanced_bce
from trackers.dimp.features import InstanceL2Norm
from trackers.dimp.initializer import FilterInitializerLinear
from trackers.dimp.optimizer import DiMPSteepestDescentGN, apply_filter
from trackers.lighttrack.blocks import PixelwiseFusion, Predictor, make_op
from trackers.lighttrack.geometry import block_slots, hidden_point, output_geometry, stem_plan

Template = dict[str, torch.Tensor]
"""The cached template state: `zf` plus per-head entries named `<head>.<key>`."""


def make_stem(spec: SpaceSpec) -> nn.Sequential:
    """The fixed stem (stem conv + fixed blocks); shared with the supernet so both build the same modules."""
    bb = spec.backbone
    return nn.Sequential(*[make_op(op, cin, cout, stride, bb.act, bb.se)
                           for op, (cin, cout, stride) in zip((bb.stem, *bb.fixed), stem_plan(spec))])


def make_head_layer(op: OpSpec, cin: int, channels: int, se_cfg: SEConfig) -> nn.Module:
    """One head-tower layer: LightTrack's towers run at stride 1 with ReLU whatever the backbone uses."""
    return make_op(op, cin, channels, 1, "relu", se_cfg)


def centred_box(side: int, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(B, 4) x1, y1, x2, y2 of the nominal exemplar box: a square half the crop (context 0.5, square target)."""
    return torch.tensor([[side / 4, side / 4, 3 * side / 4, 3 * side / 4]], device=device).expand(batch, 4)


def _sub_state(state: Template, name: str) -> Template:
    prefix = f"{name}."
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def _prefixed(name: str, entries: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}" if key else name: value for key, value in entries.items()}


class TowerHead(nn.Module):
    """A cls or reg branch: layer 0 maps the neck width to C, later layers keep C, then the predictor."""

    def __init__(self, layers: Iterable[nn.Module], predictor: nn.Module):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.predictor = predictor

    @classmethod
    def build(cls, arch: Arch, name: str, cin: int) -> "TowerHead":
        spec = arch.head_spec(name)
        channels, ops = arch.head(name)
        se_cfg = arch.space.spec.backbone.se
        return cls([make_head_layer(op, cin if i == 0 else channels, channels, se_cfg) for i, op in enumerate(ops)],
                   Predictor(channels, spec.outputs, spec.activation, spec.scale))

    def template(self, raw: torch.Tensor, box: torch.Tensor) -> Template:
        return {}

    def forward(self, fused: torch.Tensor, raw: torch.Tensor, state: Template) -> dict[str, torch.Tensor]:
        return {"": self.predictor(self.layers(fused))}


def make_dimp_features(cin: int, feature_dim: int) -> nn.Conv2d:
    """DiMP's classification-feature conv (3x3, no bias, normal(0, sqrt(2 / (9 D))))."""
    conv = nn.Conv2d(cin, feature_dim, 3, padding=1, bias=False)
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (9 * feature_dim)))
    return conv


def make_dimp_optimizer() -> DiMPSteepestDescentGN:
    """The GN optimizer in feature-cell units (boxes are converted per stride), DiMP's trained defaults."""
    return DiMPSteepestDescentGN(feat_stride=1)


class DiMPHead(nn.Module):
    """DiMP classifier on the backbone map: features -> filter learned on the template -> S x S scores."""

    def __init__(self, features: nn.Conv2d, initializer: FilterInitializerLinear, optimizer: DiMPSteepestDescentGN,
                 num_iter: int):
        super().__init__()
        self.features, self.initializer, self.optimizer = features, initializer, optimizer
        self.num_iter = num_iter
        k = initializer.filter_size
        self.norm = InstanceL2Norm(math.sqrt(1.0 / (features.out_channels * k * k)))

    @classmethod
    def build(cls, cin: int, feature_dim: int, filter_size: int, num_iter: int, stride: int) -> "DiMPHead":
        return cls(make_dimp_features(cin, feature_dim), FilterInitializerLinear(filter_size, feature_dim, stride),
                   make_dimp_optimizer(), num_iter)

    def _clf(self, raw: torch.Tensor) -> torch.Tensor:
        return self.norm(self.features(raw))[:, None]  # (B, 1, D, H, W): one image per sequence

    def template(self, raw: torch.Tensor, box: torch.Tensor) -> Template:
        """Learn the filter from template features and the target box (B, 4) x1, y1, x2, y2 in crop pixels."""
        feat = self._clf(raw)
        xywh = torch.cat([box[:, :2], box[:, 2:] - box[:, :2]], dim=1)[:, None].to(feat.dtype)
        weights = self.initializer(feat, xywh)
        # The optimizer places cell i at pixel (i + 1/2) stride for odd k; our grids put it at i * stride.
        cells = xywh / self.initializer.feature_stride
        cells = torch.cat([cells[..., :2] + 0.5, cells[..., 2:]], dim=-1)
        final, iterates, _ = self.optimizer(weights, feat, cells, num_iter=self.num_iter, compute_losses=False)
        state = {"filter": final}
        if self.training:
            state["iterates"] = torch.stack(iterates)
        return state

    def forward(self, fused: torch.Tensor, raw: torch.Tensor, state: Template) -> dict[str, torch.Tensor]:
        feat = self._clf(raw)
        out = {"": apply_filter(feat, state["filter"])}
        if "iterates" in state:
            out["iterates"] = torch.stack([apply_filter(feat, w)[:, 0] for w in state["iterates"]])
        return out


def make_u1(channels: int, width: int, kernel: int) -> nn.Sequential:
    """GradNet's U1 on the scaled gradient, widened: kxk conv to W, BN, ReLU, 1x1 conv back, BN, tanh."""
    return nn.Sequential(nn.Conv2d(channels, width, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU(inplace=True), nn.Conv2d(width, channels, 1, bias=False), nn.BatchNorm2d(channels),
                         nn.Tanh())


class GradNetUpdate(nn.Module):
    """U1 plus where it acts (`hidden_blocks` backbone blocks in), how often and how strongly."""

    def __init__(self, u1: nn.Sequential, hidden_blocks: int, interval: int, weight: float,
                 grad_scale: float | None):
        super().__init__()
        self.u1 = u1
        self.hidden_blocks, self.interval, self.weight, self.grad_scale = hidden_blocks, interval, weight, grad_scale

    @classmethod
    def build(cls, arch: Arch, name: str) -> "GradNetUpdate":
        spec, options = arch.head_spec(name), arch.head_options(name)
        blocks, channels, _ = hidden_point(arch.space, options["hidden"], arch.space.spec.template_size)
        return cls(make_u1(channels, options["width"], options["kernel"]), blocks, options["interval"],
                   spec.weight, spec.grad_scale)

    def forward(self, hidden: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """h' = h + U1(g'), g' the gradient at unit RMS per template (grad_scale None) or scaled."""
        if self.grad_scale is None:
            rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-30)
            grad = grad / rms.view(-1, *([1] * (grad.dim() - 1)))
        else:
            grad = grad * self.grad_scale
        return hidden + self.u1(grad)


@dataclass(frozen=True)
class SubnetParts:
    """The modules a `LightTrackSubnet` is made of: freshly built, or a supernet path's own (no copy)."""

    stem: nn.Module
    blocks: list[nn.Module]
    bn_z: nn.Module
    bn_x: nn.Module
    fusion: nn.Module
    update: GradNetUpdate | None
    heads: dict[str, nn.Module]

    def named(self) -> dict[str, nn.Module]:
        """The parts under their submodule names in the subnet, in its registration order."""
        named = {"stem": self.stem, **{f"blocks.{i}": m for i, m in enumerate(self.blocks)},
                 "bn_z": self.bn_z, "bn_x": self.bn_x, "fusion": self.fusion}
        if self.update is not None:
            named["update"] = self.update
        named.update({f"heads.{name}": head for name, head in self.heads.items()})
        return named


def build_parts(space: SearchSpace, arch: Arch) -> SubnetParts:
    """Fresh, randomly initialised modules for `arch`: only blocks up to its output position."""
    spec = space.spec
    bb = spec.backbone
    active = {g for g, _, _ in space.active_block_genes(arch.output)}
    blocks = [make_op(space.genes[slot.gene].options[arch.genotype[slot.gene]], slot.cin, slot.cout, slot.stride,
                      bb.act, bb.se)
              for slot in block_slots(space) if slot.gene in active]
    channels, template_side, stride = output_geometry(space, arch.output, spec.template_size)
    heads: dict[str, nn.Module] = {}
    update = None
    for h in spec.heads:
        if h.type == "tower":
            heads[h.name] = TowerHead.build(arch, h.name, spec.neck.channels)
        elif h.type == "dimp":
            options = arch.head_options(h.name)
            heads[h.name] = DiMPHead.build(channels, options["feature_dim"], options["filter_size"],
                                           options["num_iter"], stride)
        else:
            update = GradNetUpdate.build(arch, h.name)
    return SubnetParts(stem=make_stem(spec), blocks=blocks, bn_z=nn.BatchNorm2d(channels),
                       bn_x=nn.BatchNorm2d(channels),
                       fusion=PixelwiseFusion(template_side * template_side, spec.neck.channels),
                       update=update, heads=heads)


class LightTrackSubnet(nn.Module):
    """backbone -> (BN_z | BN_x) -> pixel-wise fusion -> heads, for one architecture."""

    def __init__(self, space: SearchSpace, arch: Arch, parts: SubnetParts | None = None):
        """`parts` defaults to freshly built modules; a supernet passes its path's to run it as this subnet."""
        super().__init__()
        self.space, self.arch = space, arch
        self.stride = output_geometry(space, arch.output, space.spec.template_size)[2]
        parts = parts if parts is not None else build_parts(space, arch)
        self.stem = parts.stem
        self.blocks = nn.Sequential(*parts.blocks)
        self.bn_z, self.bn_x, self.fusion = parts.bn_z, parts.bn_x, parts.fusion
        self.update: GradNetUpdate | None = parts.update
        self.heads = nn.ModuleDict(parts.heads)
        self.cls_is_logit = isinstance(self.heads["cls"], TowerHead)
        self.uses_template_box = any(isinstance(head, DiMPHead) for head in self.heads.values())

    def features(self, image: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(image))

    def _tail(self, hidden: torch.Tensor) -> torch.Tensor:
        """The template branch from the hidden template on (GradNet's U2): remaining blocks, neck BN."""
        return self.bn_z(self.blocks[self.update.hidden_blocks:](hidden))

    def template(self, z: torch.Tensor, box: torch.Tensor | None = None) -> Template:
        """Template state, computed once per sequence and cached by the tracker.

        `box` (B, 4) is the target in template-crop pixels (x1, y1, x2, y2); by default the nominal
        centred box of a square target. Only heads that learn from the template (dimp) read it.
        """
        if box is None:
            box = centred_box(z.shape[-1], z.shape[0], z.device)
        if self.update is None:
            raw = self.features(z)
            state = {"zf": self.bn_z(raw)}
        else:
            hidden = self.blocks[: self.update.hidden_blocks](self.stem(z))
            raw = self.blocks[self.update.hidden_blocks:](hidden)
            zf = self.bn_z(raw)
            state = {"zf": zf, "hidden": hidden, "zf0": zf}
        for name, head in self.heads.items():
            state.update(_prefixed(name, head.template(raw, box)))
        return state

    def track(self, x: torch.Tensor, state: Template) -> dict[str, torch.Tensor]:
        """Per-frame search branch: {'cls': (B,1,S,S) scores, 'reg': (B,4,S,S) l,t,r,b pixels}."""
        raw = self.features(x)
        fused = self.fusion(state["zf"], self.bn_x(raw))
        out: dict[str, torch.Tensor] = {}
        for name, head in self.heads.items():
            out.update(_prefixed(name, head(fused, raw, _sub_state(state, name))))
        return out

    def update_template(self, state: Template, x: torch.Tensor, labels: torch.Tensor) -> Template:
        """GradNet's update from search crops x (M, 3, S, S) and their {0, 1} cls labels (M, S, S).

        Returns the state with the updated hidden template h' and `zf` = mix of zf0 and U2(h'). A
        state of one template (tracking) is updated from the mean gradient over the M crops; a batch
        of B templates (training) pairs template i with crop i.
        """
        if self.update is None:
            raise ValueError("this architecture has no gradnet update head")
        hidden = state["hidden"]
        with torch.enable_grad():
            leaf = hidden.detach().clone().requires_grad_(True)
            zf = self._tail(leaf)
            if zf.shape[0] != x.shape[0]:
                zf = zf.expand(x.shape[0], *zf.shape[1:])
            logits = self.track(x, {**state, "zf": zf})["cls"]
            loss = balanced_bce(logits, labels).sum() * hidden.shape[0] / x.shape[0]
            (grad,) = torch.autograd.grad(loss, leaf)
        new_hidden = self.update(hidden, grad)
        updated = self._tail(new_hidden)
        return {**state, "hidden": new_hidden,
                "zf": (1.0 - self.update.weight) * state["zf0"] + self.update.weight * updated}

    def forward(self, z: torch.Tensor, x: torch.Tensor, z_box: torch.Tensor | None = None,
                cls_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training/evaluation pass on pairs; with a gradnet head and `cls_labels`, the template is updated
        from its own search crop first (GradNet's training step, per pair)."""
        state = self.template(z, z_box)
        if self.update is not None and cls_labels is not None:
            state = self.update_template(state, x, cls_labels)
        return self.track(x, state)


class TemplateBranch(nn.Module):
    """`template` with tensor-tuple outputs (in state-key order), for tracers: fvcore, ONNX export."""

    def __init__(self, model: LightTrackSubnet):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, box: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.template(z, box).values())


class SearchBranch(nn.Module):
    """`track` on (x, *template state values in `keys` order) with tuple outputs, for tracers."""

    def __init__(self, model: LightTrackSubnet, keys: Iterable[str]):
        super().__init__()
        self.model, self.keys = model, list(keys)

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.track(x, dict(zip(self.keys, state))).values())


def build_subnet(space: SearchSpace, arch: Arch) -> LightTrackSubnet:
    """Build the standalone model of `arch` (random init; weights come from a supernet or training)."""
    if arch.space.hash != space.hash:
        raise ValueError(f"architecture belongs to space {arch.space.name} ({arch.space.hash}), not {space.hash}")
    return LightTrackSubnet(space, arch)
