"""`tower`: LightTrack's head branch, a stack of DSConv/skip layers at a searchable width, then a predictor.

Genes: `channels` (the width C), then one per layer, `0`, `1`, ... (layer 0 maps the neck width to C,
later layers keep C). It reads the fused neck output; cls towers give logits, reg towers boxes.
Supernet part: one `SuperTower` per width, holding every op of every layer plus that width's predictor.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.dsl.grammar import MAX_CHANNELS, MAX_DEPTH, OpSpec, SEConfig
from nas.dsl.reader import SpecReader
from nas.heads.base import (Attachment, Dimension, HeadContext, HeadCost, HeadKind, HeadModule, HeadSpec, Trace,
                            int_dimension, tie_kernel_variants)
from nas.ops.blocks import Predictor, make_op

HEAD_OPS = ("sep", "conv", "skip")


@dataclass(frozen=True)
class TowerSpec(HeadSpec):
    channels: tuple[int, ...]
    depth: int
    ops: tuple[OpSpec, ...]
    first_ops: tuple[OpSpec, ...]
    outputs: int
    activation: str
    scale: float

    def layer_ops(self, layer: int) -> tuple[OpSpec, ...]:
        return self.first_ops if layer == 0 else self.ops


def make_head_layer(op: OpSpec, cin: int, channels: int, se_cfg: SEConfig) -> nn.Module:
    """One head-tower layer: LightTrack's towers run at stride 1 with ReLU whatever the backbone uses."""
    return make_op(op, cin, channels, 1, "relu", se_cfg)


def tower_layers(head: TowerSpec, choices: dict[str, Any]) -> list[OpSpec]:
    """The chosen op of every layer, in order."""
    return [choices[str(layer)] for layer in range(head.depth)]


class TowerHead(HeadModule):
    """A cls or reg branch: layer 0 maps the neck width to C, later layers keep C, then the predictor."""

    def __init__(self, layers: Iterable[nn.Module], predictor: nn.Module):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.predictor = predictor

    def forward(self, fused: torch.Tensor, raw: torch.Tensor, state: dict) -> dict[str, torch.Tensor]:
        return {"": self.predictor(self.layers(fused))}


class SuperTower(nn.Module):
    """All layer candidates of one head at one channel width, plus that width's predictor."""

    def __init__(self, head: TowerSpec, channels: int, cin: int, se_cfg: SEConfig, share_kernels: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(make_head_layer(op, cin if layer == 0 else channels, channels, se_cfg)
                          for op in head.layer_ops(layer))
            for layer in range(head.depth))
        if share_kernels:
            for layer, options in enumerate(self.layers):
                tie_kernel_variants(options, head.layer_ops(layer))
        self.predictor = Predictor(channels, head.outputs, head.activation, head.scale)


class _TowerCost(HeadCost):
    """Per search-feature side and width: the predictor and every layer option (search branch only)."""

    def __init__(self, data: dict, genes: dict[str, int], depth: int):
        self.data = data  # {str(side): [per channel option: {"predictor": [f, p], "layers": [[[f, p]...]...]}]}
        self.channel_gene = genes["channels"]
        self.layer_genes = [genes[str(layer)] for layer in range(depth)]

    def value(self, genotype, at: Attachment, column: int) -> int:
        if column == 1:
            return 0
        index = 0 if column == 0 else 1
        entry = self.data[str(at.search_side)][genotype[self.channel_gene]]
        return entry["predictor"][index] + sum(entry["layers"][layer][genotype[g]][index]
                                               for layer, g in enumerate(self.layer_genes))

    def bounds(self, at: Attachment, column: int) -> tuple[int, int]:
        if column == 1:
            return 0, 0
        index = 0 if column == 0 else 1
        per_channel = [(e["predictor"][index] + sum(min(o[index] for o in layer) for layer in e["layers"]),
                        e["predictor"][index] + sum(max(o[index] for o in layer) for layer in e["layers"]))
                       for e in self.data[str(at.search_side)]]
        return min(v[0] for v in per_channel), max(v[1] for v in per_channel)


class Tower(HeadKind):
    name = "tower"
    regresses_boxes = True

    def parse(self, r: SpecReader, name: str, node: dict, key: str) -> TowerSpec:
        h = r.mapping(node, key, {"type", "channels", "depth", "ops", "first_ops", "outputs", "activation", "scale"},
                      {"type", "channels", "depth", "ops", "outputs"})
        chans = r.int_choices(h, key, "channels", maximum=MAX_CHANNELS)
        ops = r.op_list(h["ops"], f"{key}.ops", {})
        first_ops = r.op_list(h["first_ops"], f"{key}.first_ops", {}) if "first_ops" in h else ops
        for label, group in (("ops", ops), ("first_ops", first_ops)):
            for j, op in enumerate(group):
                if op.type not in HEAD_OPS:
                    raise r.fail(f"{key}.{label}[{j}]", f"expected a head op (sep, conv, skip), got {op.label!r}")
        if any(op.is_skip for op in first_ops):
            raise r.fail(f"{key}.first_ops", "layer 0 maps the neck width to the head width, so it cannot be "
                         "'skip'; give first_ops without skip")
        missing = [op.label for op in first_ops if op not in ops]
        if missing:
            raise r.fail(f"{key}.first_ops", f"expected a subset of ops; {missing[0]!r} is not in ops")
        return TowerSpec(name=name, type=self.name, channels=chans, depth=r.integer(h, key, "depth", maximum=MAX_DEPTH),
                         ops=ops, first_ops=first_ops, outputs=r.integer(h, key, "outputs", maximum=64),
                         activation=r.text(h, key, "activation", ("none", "relu"), default="none"),
                         scale=r.number(h, key, "scale", 1.0, maximum=1e6))

    def dimensions(self, head: TowerSpec) -> tuple[Dimension, ...]:
        layers = tuple(Dimension(str(layer), ops, tuple(op.label for op in ops))
                       for layer, ops in enumerate(head.layer_ops(i) for i in range(head.depth)))
        return (int_dimension("channels", head.channels), *layers)

    def build(self, head: TowerSpec, choices: dict[str, Any], ctx: HeadContext, at: Attachment) -> TowerHead:
        channels = choices["channels"]
        return TowerHead([make_head_layer(op, ctx.neck_channels if i == 0 else channels, channels, ctx.se)
                          for i, op in enumerate(tower_layers(head, choices))],
                         Predictor(channels, head.outputs, head.activation, head.scale))

    def build_super(self, head: TowerSpec, ctx: HeadContext, share_kernels: bool) -> nn.ModuleList:
        return nn.ModuleList(SuperTower(head, c, ctx.neck_channels, ctx.se, share_kernels) for c in head.channels)

    def select(self, part: nn.ModuleList, head: TowerSpec, choices: dict[str, Any], ctx: HeadContext,
               at: Attachment) -> TowerHead:
        tower = part[head.channels.index(choices["channels"])]
        return TowerHead([tower.layers[layer][head.layer_ops(layer).index(op)]
                          for layer, op in enumerate(tower_layers(head, choices))], tower.predictor)

    def cost_data(self, head: TowerSpec, ctx: HeadContext, trace: Trace) -> dict:
        table = {}
        for at in ctx.attachments:
            if str(at.search_side) not in table:
                table[str(at.search_side)] = [_tower_entry(trace, head, c, ctx.neck_channels, at.search_side, ctx.se)
                                              for c in head.channels]
        return table

    def cost(self, head: TowerSpec, data: dict, genes: dict[str, int]) -> HeadCost:
        return _TowerCost(data, genes, head.depth)


def _tower_entry(trace: Trace, head: TowerSpec, channels: int, cin: int, side: int, se_cfg: SEConfig) -> dict:
    predictor = trace(("predictor", channels, head.outputs, side),
                      lambda: Predictor(channels, head.outputs, head.activation, head.scale),
                      ((1, channels, side, side),))
    layers = []
    for layer in range(head.depth):
        layer_in = cin if layer == 0 else channels
        layers.append([list(trace(("head", op.label, layer_in, channels, side),
                                  lambda op=op, c_in=layer_in: make_head_layer(op, c_in, channels, se_cfg),
                                  ((1, layer_in, side, side),))) if not op.is_skip else [0, 0]
                       for op in head.layer_ops(layer)])
    return {"predictor": list(predictor), "layers": layers}


TOWER = Tower()
