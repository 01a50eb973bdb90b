"""The standalone LightTrack subnet: exactly what one architecture of a space needs to track.

Only blocks up to the output position are built, so parameters and FLOPs are those of the deployed
tracker. The template branch (`template`) runs once per sequence and returns cached features; the
per-frame search branch (`track`) takes the search crop and those features.
"""
from __future__ import annotations

import torch
from torch import nn

from nas.space.grammar import OpSpec
from nas.space.space import Arch, SearchSpace
from nas.space.spec import SEConfig, SpaceSpec
from trackers.lighttrack.blocks import PixelwiseFusion, Predictor, make_op
from trackers.lighttrack.geometry import block_slots, output_geometry, stem_plan


def make_stem(spec: SpaceSpec) -> nn.Sequential:
    """The fixed stem (stem conv + fixed blocks); shared with the supernet so both build the same modules."""
    bb = spec.backbone
    return nn.Sequential(*[make_op(op, cin, cout, stride, bb.act, bb.se)
                           for op, (cin, cout, stride) in zip((bb.stem, *bb.fixed), stem_plan(spec))])


def make_head_layer(op: OpSpec, cin: int, channels: int, se_cfg: SEConfig) -> nn.Module:
    """One head-tower layer: LightTrack's towers run at stride 1 with ReLU whatever the backbone uses."""
    return make_op(op, cin, channels, 1, "relu", se_cfg)


class TowerHead(nn.Module):
    """A cls or reg branch: layer 0 maps the neck width to C, later layers keep C, then the predictor."""

    def __init__(self, arch: Arch, name: str, cin: int):
        super().__init__()
        spec = arch.head_spec(name)
        channels, ops = arch.head(name)
        se_cfg = arch.space.spec.backbone.se
        self.layers = nn.Sequential(*[make_head_layer(op, cin if i == 0 else channels, channels, se_cfg)
                                      for i, op in enumerate(ops)])
        self.predictor = Predictor(channels, spec.outputs, spec.activation, spec.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.layers(x))


class LightTrackSubnet(nn.Module):
    """backbone -> (BN_z | BN_x) -> pixel-wise fusion -> heads, for one architecture."""

    def __init__(self, space: SearchSpace, arch: Arch):
        super().__init__()
        self.space, self.arch = space, arch
        spec = space.spec
        bb = spec.backbone
        self.stem = make_stem(spec)
        active = {g for g, _, _ in space.active_block_genes(arch.output)}
        self.blocks = nn.Sequential(*[
            make_op(space.genes[slot.gene].options[arch.genotype[slot.gene]], slot.cin, slot.cout, slot.stride,
                    bb.act, bb.se)
            for slot in block_slots(space) if slot.gene in active])
        channels, template_side, self.stride = output_geometry(space, arch.output, spec.template_size)
        self.bn_z = nn.BatchNorm2d(channels)
        self.bn_x = nn.BatchNorm2d(channels)
        self.fusion = PixelwiseFusion(template_side * template_side, spec.neck.channels)
        self.heads = nn.ModuleDict({h.name: TowerHead(arch, h.name, spec.neck.channels) for h in spec.heads})

    def features(self, image: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(image))

    def template(self, z: torch.Tensor) -> torch.Tensor:
        """Template features, computed once per sequence and cached by the tracker."""
        return self.bn_z(self.features(z))

    def track(self, x: torch.Tensor, zf: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-frame search branch: {'cls': (B,1,S,S) logits, 'reg': (B,4,S,S) l,t,r,b pixels}."""
        fused = self.fusion(zf, self.bn_x(self.features(x)))
        return {name: head(fused) for name, head in self.heads.items()}

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.track(x, self.template(z))


def build_subnet(space: SearchSpace, arch: Arch) -> LightTrackSubnet:
    """Build the standalone model of `arch` (random init; weights come from a supernet or training)."""
    if arch.space.hash != space.hash:
        raise ValueError(f"architecture belongs to space {arch.space.name} ({arch.space.hash}), not {space.hash}")
    return LightTrackSubnet(space, arch)
