"""The standalone LightTrack subnet: exactly what one architecture of a space needs to track.

Only blocks up to the output position are built, so parameters and FLOPs are those of the deployed
tracker. The template branch (`template`) runs once per sequence and returns the cached *template
state*, a flat dict of tensors; the per-frame search branch (`track`) takes the search crop and
that state. The state always holds `zf` (template features after the neck BN); head types add
their own entries under `<head>.<key>`:

Each head kind (`nas.heads`) builds its own part and documents its state entries: a `tower` adds
none (it reads the fused neck output), a `dimp` cls head its learned filter, a `gradnet` update
(`self.update`, not a per-frame head) the hidden template `hidden` and the original template `zf0`.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from nas.heads import KINDS
from nas.heads.base import centred_box
from nas.heads.gradnet import GradNetUpdate
from nas.ops.blocks import PixelwiseFusion, make_op
from nas.space.space import Arch, SearchSpace
from nas.space.spec import SpaceSpec
from trackers.lighttrack.geometry import attachment, block_slots, head_context, output_geometry, stem_plan
from trackers.lighttrack.losses import balanced_bce

Template = dict[str, torch.Tensor]
"""The cached template state: `zf` plus per-head entries named `<head>.<key>`."""


def make_stem(spec: SpaceSpec) -> nn.Sequential:
    """The fixed stem (stem conv + fixed blocks); shared with the supernet so both build the same modules."""
    bb = spec.backbone
    return nn.Sequential(*[make_op(op, cin, cout, stride, bb.act, bb.se)
                           for op, (cin, cout, stride) in zip((bb.stem, *bb.fixed), stem_plan(spec))])


def _sub_state(state: Template, name: str) -> Template:
    prefix = f"{name}."
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def _prefixed(name: str, entries: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}" if key else name: value for key, value in entries.items()}


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
    ctx, at = head_context(space), attachment(space, arch.output)
    built = {h.name: KINDS[h.type].build(h, arch.head_choices(h.name), ctx, at) for h in spec.heads}
    return SubnetParts(stem=make_stem(spec), blocks=blocks, bn_z=nn.BatchNorm2d(at.channels),
                       bn_x=nn.BatchNorm2d(at.channels),
                       fusion=PixelwiseFusion(at.template_side ** 2, spec.neck.channels),
                       **split_roles(spec, built))


def split_roles(spec: SpaceSpec, parts: dict[str, nn.Module]) -> dict:
    """Head parts by role: per-frame `heads` (by name) and the template `update` (None without one)."""
    updates = [parts[h.name] for h in spec.heads if KINDS[h.type].role == "update"]
    return {"heads": {h.name: parts[h.name] for h in spec.heads if KINDS[h.type].role == "head"},
            "update": updates[0] if updates else None}


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
        self.cls_is_logit = self.heads["cls"].scores_are_logits
        self.uses_template_box = any(head.reads_template_box for head in self.heads.values())

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
