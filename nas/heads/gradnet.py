"""`gradnet`: GradNet's gradient-guided template update, searchable (an `update`, not a per-frame head).

Genes: `hidden` (the hidden template h: the backbone features after the stem or a stage before every
output stage), the U1 `kernel` and `width`, and the update `interval` in frames. Template state:
`hidden` (h) and `zf0` (the original template). The update takes the gradient of the cls loss on a
few search crops with respect to h, maps it through U1 (kxk conv to a width W, BN, ReLU, 1x1 conv
back, BN, tanh; GradNet uses one 3x3 conv + BN + tanh), adds it to h and re-runs the template tail
(U2: the backbone blocks after h and the neck BN). The new `zf` is `(1 - weight) zf0 + weight zf'`:
the pixel-wise correlation is linear in zf, so this mixes the two templates' correlation maps as
GradNet mixes its two score maps, at no per-frame cost. The inner gradient is a constant (first order).
`grad_scale` sets what U1 sees: `rms` (default, None here) divides each template's gradient by its
root mean square, so U1 gets a unit-scale direction whatever the path's depth and logit scale; a
number multiplies it as GradNet does (its 1e4 suits its own loss scale: on a LightTrack path that
product is ~1e-5, U1's BN erases it and the update no longer depends on the gradient).

Supernet part: one U1 per (hidden, kernel, width), keyed `<hidden>_k<kernel>_w<width>`; the interval
needs no weights. Cost: U1's parameters; the update runs every `interval` frames, off the per-frame
path, so its FLOPs (U1 plus the recomputed template tail) are reported apart (`update_flops`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.dsl.grammar import MAX_CHANNELS, MAX_INTERVAL, MAX_KERNEL
from nas.dsl.reader import SpecReader
from nas.heads.base import Attachment, Dimension, HeadContext, HeadCost, HeadKind, HeadSpec, Trace, int_dimension


@dataclass(frozen=True)
class GradNetSpec(HeadSpec):
    hidden: tuple[str, ...]
    kernel: tuple[int, ...]
    width: tuple[int, ...]
    interval: tuple[int, ...]
    weight: float
    grad_scale: float | None


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

    def forward(self, hidden: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """h' = h + U1(g'), g' the gradient at unit RMS per template (grad_scale None) or scaled."""
        if self.grad_scale is None:
            rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-30)
            grad = grad / rms.view(-1, *([1] * (grad.dim() - 1)))
        else:
            grad = grad * self.grad_scale
        return hidden + self.u1(grad)


def _u1_key(hidden: str, kernel: int, width: int) -> str:
    return f"{hidden}_k{kernel}_w{width}"


class _GradNetCost(HeadCost):
    """U1's parameters per (hidden point, kernel, width), and its FLOPs for `update_flops`."""

    def __init__(self, head: GradNetSpec, data: dict, genes: dict[str, int]):
        self.head, self.data, self.genes = head, data, genes

    def _entry(self, genotype) -> tuple[dict, list[int]]:
        g = self.genes
        point = self.data[self.head.hidden[genotype[g["hidden"]]]]
        return point, point["u1"][genotype[g["kernel"]]][genotype[g["width"]]]

    def value(self, genotype, at: Attachment, column: int) -> int:
        return self._entry(genotype)[1][1] if column == 2 else 0

    def bounds(self, at: Attachment, column: int) -> tuple[int, int]:
        values = [u1[1] if column == 2 else 0 for point in self.data.values() for row in point["u1"] for u1 in row]
        return min(values), max(values)

    def update_flops(self, genotype, template_tail: Callable[[int], int]) -> int:
        """U1 on the hidden template plus `template_tail(blocks)`, the template branch after the hidden point."""
        point, u1 = self._entry(genotype)
        return u1[0] + template_tail(point["blocks"])


class GradNet(HeadKind):
    name = "gradnet"
    role = "update"

    def parse(self, r: SpecReader, name: str, node: dict, key: str) -> GradNetSpec:
        h = r.mapping(node, key, {"type", "hidden", "kernel", "width", "interval", "weight", "grad_scale"},
                      {"type", "hidden", "kernel", "width", "interval"})
        hidden = h["hidden"]
        hidden = [hidden] if isinstance(hidden, str) else hidden
        if not isinstance(hidden, list) or not hidden or not all(isinstance(v, str) for v in hidden):
            raise r.fail(f"{key}.hidden", "expected a non-empty list of stage names (or 'stem')")
        if len(set(hidden)) != len(hidden):
            raise r.fail(f"{key}.hidden", "choices must be distinct")
        weight = r.number(h, key, "weight", 0.15, maximum=1.0)
        grad_scale = None if h.get("grad_scale", "rms") == "rms" else r.number(h, key, "grad_scale", 1.0, maximum=1e9)
        return GradNetSpec(name=name, type=self.name, hidden=tuple(hidden),
                           kernel=r.int_choices(h, key, "kernel", maximum=MAX_KERNEL, odd=True),
                           width=r.int_choices(h, key, "width", maximum=MAX_CHANNELS),
                           interval=r.int_choices(h, key, "interval", maximum=MAX_INTERVAL),
                           weight=weight, grad_scale=grad_scale)

    def check(self, head: GradNetSpec, spec, r: SpecReader) -> None:
        """One update per space; its gradient comes from tower cls logits; h must precede every output."""
        updates = [h.name for h in spec.heads if h.type == self.name]
        if updates.index(head.name) > 0:
            raise r.fail(f"heads.{head.name}", "at most one 'gradnet' update head")
        if next(h for h in spec.heads if h.name == "cls").type != "tower":
            raise r.fail(f"heads.{head.name}", "a 'gradnet' update needs a 'tower' cls head (its gradient "
                         "comes from the cls logits)")
        names = [st.name for st in spec.backbone.stages]
        allowed = ["stem", *names[:min(names.index(n) for n in spec.backbone.output)]]
        for i, hidden in enumerate(head.hidden):
            if hidden not in allowed:
                raise r.fail(f"heads.{head.name}.hidden[{i}]", f"expected 'stem' or a stage before the first output "
                             f"stage ({', '.join(allowed)}), got {hidden!r}")

    def dimensions(self, head: GradNetSpec) -> tuple[Dimension, ...]:
        return tuple(int_dimension(dim, getattr(head, dim)) for dim in ("hidden", "kernel", "width", "interval"))

    def build(self, head: GradNetSpec, choices: dict[str, Any], ctx: HeadContext, at: Attachment) -> GradNetUpdate:
        blocks, channels, _ = ctx.hidden_point(choices["hidden"])
        return GradNetUpdate(make_u1(channels, choices["width"], choices["kernel"]), blocks, choices["interval"],
                             head.weight, head.grad_scale)

    def build_super(self, head: GradNetSpec, ctx: HeadContext, share_kernels: bool) -> nn.ModuleDict:
        return nn.ModuleDict({_u1_key(hidden, k, w): make_u1(ctx.hidden_point(hidden)[1], w, k)
                              for hidden in head.hidden for k in head.kernel for w in head.width})

    def select(self, part: nn.ModuleDict, head: GradNetSpec, choices: dict[str, Any], ctx: HeadContext,
               at: Attachment) -> GradNetUpdate:
        u1 = part[_u1_key(choices["hidden"], choices["kernel"], choices["width"])]
        return GradNetUpdate(u1, ctx.hidden_point(choices["hidden"])[0], choices["interval"], head.weight,
                             head.grad_scale)

    def cost_data(self, head: GradNetSpec, ctx: HeadContext, trace: Trace) -> dict:
        table = {}
        for hidden in head.hidden:
            blocks, channels, side = ctx.hidden_point(hidden)
            table[hidden] = {"blocks": blocks, "u1": [[list(trace(("u1", channels, side, w, k),
                                                                  lambda c=channels, w=w, k=k: make_u1(c, w, k),
                                                                  ((1, channels, side, side),)))
                                                        for w in head.width] for k in head.kernel]}
        return table

    def cost(self, head: GradNetSpec, data: dict, genes: dict[str, int]) -> _GradNetCost:
        return _GradNetCost(head, data, genes)


GRADNET = GradNet()
