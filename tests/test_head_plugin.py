"""A new head kind is one module plus its tests. This file is that worked example (docs/ARCHITECTURE.md):
a `conv` cls head, one conv from the neck to logits with a searchable kernel, registered for the test
only. Once registered, the DSL parses it, the space has its gene, the standalone subnet, the supernet
(and extraction) and the exact cost table all work, with no other file touched."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from conftest import TINY_SPACE
from nas.cost.counting import reference_cost
from nas.cost.table import CostTable
from nas.errors import SpecError
from nas.heads import KINDS
from nas.heads.base import Attachment, Dimension, HeadContext, HeadCost, HeadKind, HeadModule, HeadSpec, Trace, \
    int_dimension
from nas.dsl.reader import SpecReader
from nas.space.space import SearchSpace
from nas.space.spec import parse_spec
from nas.supernet import Supernet
from trackers.lighttrack.model import build_subnet


# -- the new kind: everything below would be nas/heads/conv.py ---------------------------------------
@dataclass(frozen=True)
class ConvSpec(HeadSpec):
    kernel: tuple[int, ...]


def make_conv(cin: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(cin, 1, kernel, padding=kernel // 2)


class ConvHead(HeadModule):
    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, fused: torch.Tensor, raw: torch.Tensor, state: dict) -> dict[str, torch.Tensor]:
        return {"": self.conv(fused)}


class _ConvCost(HeadCost):
    def __init__(self, data: dict, gene: int):
        self.data, self.gene = data, gene

    def value(self, genotype, at: Attachment, column: int) -> int:
        return 0 if column == 1 else self.data[str(at.search_side)][genotype[self.gene]][0 if column == 0 else 1]

    def bounds(self, at: Attachment, column: int) -> tuple[int, int]:
        values = [0 if column == 1 else entry[0 if column == 0 else 1] for entry in self.data[str(at.search_side)]]
        return min(values), max(values)


class Conv(HeadKind):
    name = "conv"

    def parse(self, r: SpecReader, name: str, node: dict, key: str) -> ConvSpec:
        h = r.mapping(node, key, {"type", "kernel"}, {"type", "kernel"})
        return ConvSpec(name=name, type=self.name, kernel=r.int_choices(h, key, "kernel", maximum=7, odd=True))

    def dimensions(self, head: ConvSpec) -> tuple[Dimension, ...]:
        return (int_dimension("kernel", head.kernel),)

    def build(self, head: ConvSpec, choices: dict[str, Any], ctx: HeadContext, at: Attachment) -> ConvHead:
        return ConvHead(make_conv(ctx.neck_channels, choices["kernel"]))

    def build_super(self, head: ConvSpec, ctx: HeadContext, share_kernels: bool) -> nn.ModuleList:
        return nn.ModuleList(make_conv(ctx.neck_channels, k) for k in head.kernel)

    def select(self, part: nn.ModuleList, head: ConvSpec, choices: dict[str, Any], ctx: HeadContext,
               at: Attachment) -> ConvHead:
        return ConvHead(part[head.kernel.index(choices["kernel"])])

    def cost_data(self, head: ConvSpec, ctx: HeadContext, trace: Trace) -> dict:
        c = ctx.neck_channels
        return {str(at.search_side): [list(trace(("conv-head", c, k, at.search_side), lambda k=k: make_conv(c, k),
                                                 ((1, c, at.search_side, at.search_side),))) for k in head.kernel]
                for at in ctx.attachments}

    def cost(self, head: ConvSpec, data: dict, genes: dict[str, int]) -> HeadCost:
        return _ConvCost(data, genes["kernel"])


CONV = Conv()
# -- end of the new kind -------------------------------------------------------------------------------


def _conv_space() -> SearchSpace:
    data = yaml.safe_load(TINY_SPACE.read_text())
    data["heads"]["cls"] = {"type": "conv", "kernel": [1, 3]}
    data.pop("reference")
    return SearchSpace(parse_spec(data, source="tiny-conv.yaml"))


@pytest.fixture
def conv_space(monkeypatch) -> SearchSpace:
    monkeypatch.setitem(KINDS, CONV.name, CONV)  # the one registration line of nas/heads/__init__.py
    return _conv_space()


def test_an_unregistered_kind_is_a_one_line_spec_error():
    with pytest.raises(SpecError, match=r"heads\.cls\.type.*expected one of tower, dimp, gradnet, got 'conv'"):
        _conv_space()


def test_a_registered_kind_gets_its_gene_and_a_working_subnet(conv_space, one_torch_thread):
    assert conv_space.genes[conv_space.head_genes["cls"]["kernel"]].labels == ("1", "3")
    arch = conv_space.sample(np.random.default_rng(0))
    model = build_subnet(conv_space, arch).eval()
    z, x = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        out = model(z, x)
    assert isinstance(model.heads["cls"], ConvHead) and model.cls_is_logit
    assert out["cls"].shape[:2] == (2, 1) and out["cls"].shape[2:] == out["reg"].shape[2:]


def test_supernet_paths_extract_and_the_cost_table_matches_fvcore(conv_space, one_torch_thread):
    torch.manual_seed(0)
    supernet = Supernet(conv_space).eval()
    table = CostTable.build(conv_space)
    rng = np.random.default_rng(1)
    z, x = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 128, 128)
    kernels = set()
    for _ in range(6):
        arch = conv_space.sample(rng)
        kernels.add(arch.head_choices("cls")["kernel"])
        subnet = supernet.extract(arch)
        with torch.no_grad():
            assert torch.allclose(supernet(arch, z, x)["cls"], subnet(z, x)["cls"], atol=1e-6)
        assert table.cost(arch) == reference_cost(subnet, 64, 128)
    assert kernels == {1, 3}  # both options were exercised
