"""`dimp`: DiMP's discriminative model predictor as the `cls` head (it can only be `cls`).

Genes: the classification feature width `feature_dim` D, the odd `filter_size` k and `num_iter`, the
number of steepest-descent Gauss-Newton steps. Template state: `<head>.filter`, the target filter
learned once from the template crop. Its features are a bias-free 3x3 conv to D on the raw backbone
map plus DiMP's instance L2 norm, shared by template and search so the filter learned on one applies
to the other; the initializer pools the target box (precise RoI pooling, k x k) and the GN steps refine
it. Scores are DiMP's regression scores (about 1 on the target, 0 elsewhere), not logits. Odd filter
sizes keep the score map on the reg tower's S x S grid. In training mode the state also holds
`<head>.iterates`, and `track` returns the scores of every iterate (DiMP's loss supervises them all).
Choices: the filter is learned from the template crop (the tracker's contract is one template per
sequence), not from DiMP's search-sized train crops; no online memory update (the standalone
`trackers.dimp` baseline has one).

Supernet part: `features[stage][d]` (one feature conv per output stage and width D), `initializer[d]`
(the D->D conv before RoI pooling, shared by every filter size) and one `optimizer` (its 302
parameters depend on neither D, k nor the number of iterations).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.dsl.grammar import MAX_CHANNELS, MAX_ITERATIONS, MAX_KERNEL
from nas.dsl.reader import SpecReader
from nas.heads.base import (Attachment, Dimension, HeadContext, HeadCost, HeadKind, HeadModule, HeadSpec, Trace,
                            centred_box, int_dimension)
from nas.ops.dimp.features import InstanceL2Norm
from nas.ops.dimp.initializer import FilterInitializerLinear
from nas.ops.dimp.optimizer import DiMPSteepestDescentGN, apply_filter


@dataclass(frozen=True)
class DiMPSpec(HeadSpec):
    feature_dim: tuple[int, ...]
    filter_size: tuple[int, ...]
    num_iter: tuple[int, ...]


def make_dimp_features(cin: int, feature_dim: int) -> nn.Conv2d:
    """DiMP's classification-feature conv (3x3, no bias, normal(0, sqrt(2 / (9 D))))."""
    conv = nn.Conv2d(cin, feature_dim, 3, padding=1, bias=False)
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (9 * feature_dim)))
    return conv


def make_dimp_optimizer() -> DiMPSteepestDescentGN:
    """The GN optimizer in feature-cell units (boxes are converted per stride), DiMP's trained defaults."""
    return DiMPSteepestDescentGN(feat_stride=1)


class DiMPHead(HeadModule):
    """DiMP classifier on the backbone map: features -> filter learned on the template -> S x S scores."""

    scores_are_logits = False
    reads_template_box = True

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

    def template(self, raw: torch.Tensor, box: torch.Tensor) -> dict[str, torch.Tensor]:
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

    def forward(self, fused: torch.Tensor, raw: torch.Tensor, state: dict) -> dict[str, torch.Tensor]:
        feat = self._clf(raw)
        out = {"": apply_filter(feat, state["filter"])}
        if "iterates" in state:
            out["iterates"] = torch.stack([apply_filter(feat, w)[:, 0] for w in state["iterates"]])
        return out


class _DiMPTemplate(nn.Module):
    """Traceable template part of a DiMP head on a raw template map (op counts depend on no box or stride)."""

    def __init__(self, head: DiMPHead):
        super().__init__()
        self.head = head

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.head.template(raw, centred_box(raw.shape[-1] * 16, raw.shape[0]))["filter"]


class _DiMPSearch(nn.Module):
    """Traceable per-frame part of a DiMP head: features and filtering with a given filter."""

    def __init__(self, head: DiMPHead):
        super().__init__()
        self.head = head

    def forward(self, raw: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.head(raw, raw, {"filter": weights})[""]


class _DiMPCost(HeadCost):
    """Per output stage, width D and filter size k: [search flops, template flops with 0 and with 1 GN
    iteration, flops of each further iteration, params]. Iterations after the first repeat the same ops
    (the first costs a little more in fvcore's trace), so three traces give every count exactly."""

    def __init__(self, head: DiMPSpec, data: dict, genes: dict[str, int]):
        self.head, self.data, self.genes = head, data, genes

    def value(self, genotype, at: Attachment, column: int) -> int:
        entry = self.data[at.stage][genotype[self.genes["feature_dim"]]][genotype[self.genes["filter_size"]]]
        if column == 1:
            num_iter = self.head.num_iter[genotype[self.genes["num_iter"]]]
            return entry[1] if num_iter == 0 else entry[2] + (num_iter - 1) * entry[3]
        return entry[0] if column == 0 else entry[4]

    def bounds(self, at: Attachment, column: int) -> tuple[int, int]:
        values = [entry[0] if column == 0 else entry[4] for row in self.data[at.stage] for entry in row]
        return min(values), max(values)


class DiMP(HeadKind):
    name = "dimp"

    def parse(self, r: SpecReader, name: str, node: dict, key: str) -> DiMPSpec:
        h = r.mapping(node, key, {"type", "feature_dim", "filter_size", "num_iter"},
                      {"type", "feature_dim", "filter_size", "num_iter"})
        return DiMPSpec(name=name, type=self.name,
                        feature_dim=r.int_choices(h, key, "feature_dim", maximum=MAX_CHANNELS),
                        filter_size=r.int_choices(h, key, "filter_size", maximum=MAX_KERNEL, odd=True),
                        num_iter=r.int_choices(h, key, "num_iter", minimum=0, maximum=MAX_ITERATIONS))

    def check(self, head: DiMPSpec, spec, r: SpecReader) -> None:
        if head.name != "cls":
            raise r.fail(f"heads.{head.name}.type", "a 'dimp' head can only be the 'cls' head")

    def dimensions(self, head: DiMPSpec) -> tuple[Dimension, ...]:
        return tuple(int_dimension(dim, getattr(head, dim)) for dim in ("feature_dim", "filter_size", "num_iter"))

    def build(self, head: DiMPSpec, choices: dict[str, Any], ctx: HeadContext, at: Attachment) -> DiMPHead:
        return DiMPHead.build(at.channels, choices["feature_dim"], choices["filter_size"], choices["num_iter"],
                              at.stride)

    def build_super(self, head: DiMPSpec, ctx: HeadContext, share_kernels: bool) -> nn.ModuleDict:
        return nn.ModuleDict({
            "features": nn.ModuleDict({at.stage: nn.ModuleList(make_dimp_features(at.channels, d)
                                                               for d in head.feature_dim)
                                       for at in ctx.attachments}),
            "initializer": nn.ModuleList(FilterInitializerLinear(1, d).conv for d in head.feature_dim),
            "optimizer": make_dimp_optimizer()})

    def select(self, part: nn.ModuleDict, head: DiMPSpec, choices: dict[str, Any], ctx: HeadContext,
               at: Attachment) -> DiMPHead:
        d = head.feature_dim.index(choices["feature_dim"])
        initializer = FilterInitializerLinear(choices["filter_size"], choices["feature_dim"], at.stride,
                                              conv=part["initializer"][d])
        return DiMPHead(part["features"][at.stage][d], initializer, part["optimizer"], choices["num_iter"])

    def cost_data(self, head: DiMPSpec, ctx: HeadContext, trace: Trace) -> dict:
        table: dict[str, list] = {}
        for at in ctx.attachments:
            channels = at.channels
            table[at.stage] = []
            for d in head.feature_dim:
                row = []
                for k in head.filter_size:
                    build = lambda n, c=channels, d=d, k=k: DiMPHead.build(c, d, k, n, 16)  # noqa: E731
                    search = trace(("dimp-search", channels, at.search_side, d, k), lambda: _DiMPSearch(build(0)),
                                   ((1, channels, at.search_side, at.search_side), (1, d, k, k)))
                    t0, t1, t2 = (trace(("dimp-template", channels, at.template_side, d, k, n),
                                        lambda n=n: _DiMPTemplate(build(n)),
                                        ((1, channels, at.template_side, at.template_side),))[0]
                                  for n in (0, 1, 2))
                    row.append([search[0], t0, t1, t2 - t1, search[1]])
                table[at.stage].append(row)
        return table

    def cost(self, head: DiMPSpec, data: dict, genes: dict[str, int]) -> HeadCost:
        return _DiMPCost(head, data, genes)


DIMP = DiMP()
