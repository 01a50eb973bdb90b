"""The head-kind protocol: everything the engine knows about one kind of tracking head, in one place.

A head kind (tower, dimp, gradnet, ...) is one module under `nas/heads/` with one `HeadKind` object,
registered in `nas/heads/__init__.py`. The kind parses its DSL block, declares its genes, builds its
part of a standalone subnet, builds its part of the supernet (every option's weights) and selects
the active subnet part from it (OFA-style: the selection *is* a subnet part, made of the supernet's
modules), and gives its cost-table entries. The space, the model, the supernet and the cost table
only ever ask the kind; none of them branches on a head's type.

Kinds see plain values (`HeadSpec`, chosen options, `HeadContext`, `Attachment`), never a
`SearchSpace` or `Arch`, so this layer sits below the space and the model.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import nn

from nas.dsl.grammar import SEConfig
from nas.dsl.reader import SpecReader

Template = dict[str, torch.Tensor]
"""A head's slice of the cached template state (keys without the `<head>.` prefix)."""

Trace = Callable[[tuple, Callable[[], nn.Module], tuple[tuple[int, ...], ...]], tuple[int, int]]
"""fvcore counting, memoised by key: trace(key, build_module, input_shapes) -> (flops, params)."""

ROLES = ("head", "update")
"""`head`: runs on every frame and writes `out[<name>]`; `update`: changes the template between frames."""


@dataclass(frozen=True)
class HeadSpec:
    """The fields every head's DSL block has; each kind's spec adds its own."""

    name: str
    type: str


@dataclass(frozen=True)
class Dimension:
    """One searchable dimension of a head: becomes the gene `heads.<head>.<name>`."""

    name: str
    options: tuple[Any, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Attachment:
    """Where heads attach for one output position: the backbone map they read."""

    stage: str  # the output stage's name
    channels: int  # backbone width there
    stride: int  # total stride of the features
    template_side: int  # template feature side
    search_side: int  # search feature side (= the score map's)


@dataclass(frozen=True)
class HeadContext:
    """What a space offers every head, whatever the output position."""

    neck_channels: int
    se: SEConfig
    attachments: tuple[Attachment, ...]  # one per output stage, in the space's order
    hidden_point: Callable[[str], tuple[int, int, int]]  # 'stem' or a stage -> (blocks, channels, side)

    def attachment(self, stage: str) -> Attachment:
        return next(a for a in self.attachments if a.stage == stage)


class HeadModule(nn.Module):
    """A per-frame head of the subnet: learns its template state once, then scores every frame."""

    scores_are_logits: ClassVar[bool] = True  # False: scores are already in [0, 1]-like units (DiMP)
    reads_template_box: ClassVar[bool] = False  # True: `template` needs the target box

    def template(self, raw: torch.Tensor, box: torch.Tensor) -> Template:
        return {}

    def forward(self, fused: torch.Tensor, raw: torch.Tensor, state: Template) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class HeadCost:
    """A head's share of an architecture's cost, read from its cost-table data.

    Columns: 0 per-frame search FLOPs, 1 template FLOPs, 2 parameters."""

    def value(self, genotype: tuple[int, ...], at: Attachment, column: int) -> int:
        raise NotImplementedError

    def bounds(self, at: Attachment, column: int) -> tuple[int, int]:
        """Exact (min, max) of `value` over the head's options at this attachment."""
        raise NotImplementedError


class HeadKind:
    """The protocol one head kind implements (see the module docstring)."""

    name: ClassVar[str]
    role: ClassVar[str] = "head"
    regresses_boxes: ClassVar[bool] = False  # may be the `reg` head

    def parse(self, r: SpecReader, name: str, node: dict, key: str) -> HeadSpec:
        """The kind's DSL block (its `type` already read) -> its frozen spec; one-line errors via `r`."""
        raise NotImplementedError

    def check(self, head: HeadSpec, spec: Any, r: SpecReader) -> None:
        """Rules that need the whole space (`spec`: the parsed `SpaceSpec`, other heads, the backbone);
        default: none. (The space layer sits above this one, hence no type import.)"""

    def dimensions(self, head: HeadSpec) -> tuple[Dimension, ...]:
        raise NotImplementedError

    def build(self, head: HeadSpec, choices: dict[str, Any], ctx: HeadContext, at: Attachment) -> nn.Module:
        """A fresh subnet part for the chosen options."""
        raise NotImplementedError

    def build_super(self, head: HeadSpec, ctx: HeadContext, share_kernels: bool) -> nn.Module:
        """The supernet part: the weights of every option."""
        raise NotImplementedError

    def select(self, part: nn.Module, head: HeadSpec, choices: dict[str, Any], ctx: HeadContext,
               at: Attachment) -> nn.Module:
        """The subnet part of the chosen options, made of `part`'s modules (no copy): running it trains them,
        and its state dict is what `build` would hold."""
        raise NotImplementedError

    def cost_data(self, head: HeadSpec, ctx: HeadContext, trace: Trace) -> Any:
        """The JSON-able cost entries of every option (traced once per distinct piece)."""
        raise NotImplementedError

    def cost(self, head: HeadSpec, data: Any, genes: dict[str, int]) -> HeadCost:
        """A reader of `data` for genotypes whose dimensions sit at the gene indices `genes`."""
        raise NotImplementedError


def int_dimension(name: str, options: tuple[int, ...] | tuple[str, ...]) -> Dimension:
    return Dimension(name, options, tuple(str(o) for o in options))


def centred_box(side: int, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(B, 4) x1, y1, x2, y2 of the nominal exemplar box: a square half the crop (context 0.5, square target)."""
    return torch.tensor([[side / 4, side / 4, 3 * side / 4, 3 * side / 4]], device=device).expand(batch, 4)


def _tie(first: nn.Module, other: nn.Module) -> None:
    """Make `other` use `first`'s leaf modules wherever both have a leaf of the same type and shapes."""
    for (name, a), (_, b) in zip(first.named_children(), list(other.named_children())):
        if type(a) is not type(b):
            continue
        if list(a.children()):
            _tie(a, b)
        elif [t.shape for t in (*a.parameters(), *a.buffers())] == [t.shape for t in (*b.parameters(), *b.buffers())]:
            setattr(other, name, a)  # also for nn.Sequential, whose children are named "0", "1", ...


def tie_kernel_variants(options: nn.ModuleList, specs: tuple) -> None:
    """Options whose op specs differ only in kernel size share every equally shaped leaf module
    (the supernet's `weight_sharing: kernel`)."""
    firsts: dict[object, nn.Module] = {}
    for module, op in zip(options, specs):
        if getattr(op, "type", "skip") == "skip":
            continue
        key = replace(op, kernel=0)
        if key in firsts:
            _tie(firsts[key], module)
        else:
            firsts[key] = module
