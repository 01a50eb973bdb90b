"""The exact, fast cost model: per-choice lookup tables built from fvcore counts.

FLOPs and parameters are additive over blocks once each entry is keyed by the context that changes
its cost (input/output channels, stride, feature size). So the table traces every distinct
(block, context) once with fvcore, and an architecture's cost is a sum of table entries: the same
integer fvcore gives for the whole subnet (tested on random architectures), at microseconds per
architecture instead of ~0.2 s per trace. Tables are cached on disk keyed by the space hash.
"""
from __future__ import annotations

import json
import os
import sys
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import torch
from torch import nn

from nas.cost.counting import count_flops, count_params
from nas.heads import KINDS
from nas.heads.base import Trace
from nas.io import atomic_write_json
from nas.ops.blocks import PixelwiseFusion, make_op
from nas.space.space import Arch, SearchSpace
from trackers.lighttrack.geometry import attachment, block_slots, head_context, output_geometry, slot_input_size
from trackers.lighttrack.model import make_stem

TABLE_VERSION = 2


def cache_dir() -> Path:
    return Path(os.environ.get("TRACKNAS_CACHE_DIR", Path.home() / ".cache" / "tracknas"))


class _Tracer:
    """Counts (flops, params) of a module on an input shape, each distinct piece once."""

    def __init__(self):
        self.memo: dict[tuple, tuple[int, int]] = {}

    def __call__(self, key: tuple, build, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, int]:
        if key not in self.memo:
            module: nn.Module = build()
            inputs = tuple(torch.randn(*s) for s in shapes)
            self.memo[key] = (count_flops(module, inputs), count_params(module))
        return self.memo[key]


class CostTable:
    """`flops`, `template_flops`, `params` of any genotype of one space, equal to fvcore's counts."""

    def __init__(self, space: SearchSpace, data: dict):
        self.space, self.data = space, data
        self.block = data["block"]  # [gene][option] -> [search flops, template flops, params]
        # [output option] -> [search flops, template flops, params, search side, BN_z template flops]
        self.position = data["position"]
        positions = space.genes[space.output_gene].options
        self._attachments = [attachment(space, p) for p in positions]
        self.active = [[g for g, _, _ in space.active_block_genes(p)] for p in positions]
        self._heads = [KINDS[h.type].cost(h, d, space.head_genes[h.name]) for h, d in zip(space.spec.heads, data["heads"])]
        self._update = next((c for h, c in zip(space.spec.heads, self._heads) if KINDS[h.type].role == "update"), None)
        self._out = space.output_gene

    # -- queries ------------------------------------------------------------------------------
    def _sum(self, genotype: tuple[int, ...] | list[int], column: int) -> int:
        p = genotype[self._out]
        total = self.position[p][column]
        for g in self.active[p]:
            total += self.block[g][genotype[g]][column]
        for head in self._heads:
            total += head.value(genotype, self._attachments[p], column)
        return total

    def flops(self, arch: Arch | tuple[int, ...]) -> int:
        """Per-frame search-branch FLOPs (template state precomputed)."""
        return self._sum(arch.genotype if isinstance(arch, Arch) else arch, 0)

    def template_flops(self, arch: Arch | tuple[int, ...]) -> int:
        return self._sum(arch.genotype if isinstance(arch, Arch) else arch, 1)

    def params(self, arch: Arch | tuple[int, ...]) -> int:
        return self._sum(arch.genotype if isinstance(arch, Arch) else arch, 2)

    def update_flops(self, arch: Arch | tuple[int, ...]) -> int | None:
        """Forward FLOPs of one gradnet template update (None without an update head)."""
        if self._update is None:
            return None
        genotype = arch.genotype if isinstance(arch, Arch) else arch
        p = genotype[self._out]

        def template_tail(blocks: int) -> int:  # the template branch after `blocks` blocks: blocks and BN_z
            return sum(self.block[g][genotype[g]][1] for g in self.active[p][blocks:]) + self.position[p][4]

        return self._update.update_flops(genotype, template_tail)

    def cost(self, arch: Arch) -> dict[str, int]:
        cost = {"params": self.params(arch), "flops": self.flops(arch), "template_flops": self.template_flops(arch)}
        if self._update is not None:
            cost["update_flops"] = self.update_flops(arch)
        return cost

    def extremes(self) -> dict[str, tuple[int, int]]:
        """Exact (min, max) FLOPs and params over the whole space (genes are independent given the output)."""
        result = {}
        for name, column in (("flops", 0), ("params", 2)):
            lows, highs = [], []
            for p, position in enumerate(self.position):
                lo = hi = position[column]
                for g in self.active[p]:
                    values = [entry[column] for entry in self.block[g]]
                    lo, hi = lo + min(values), hi + max(values)
                for head in self._heads:
                    head_lo, head_hi = head.bounds(self._attachments[p], column)
                    lo, hi = lo + head_lo, hi + head_hi
                lows.append(lo)
                highs.append(hi)
            result[name] = (min(lows), max(highs))
        return result

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def build(cls, space: SearchSpace, trace: Trace | None = None) -> "CostTable":
        """Trace every distinct piece of the space once: with fvcore by default, or with another `trace`
        giving (value, params) per piece (the latency table's timer, `nas.cost.lut`)."""
        spec = space.spec
        bb = spec.backbone
        trace = trace or _Tracer()
        sizes = (spec.search_size, spec.template_size)
        stem = [trace(("stem", size), lambda: make_stem(spec), ((1, 3, size, size),)) for size in sizes]
        ever_active = {g for p in space.genes[space.output_gene].options for g, _, _ in space.active_block_genes(p)}
        block: list[list[list[int]]] = [[] for _ in space.genes]
        for slot in block_slots(space):
            gene = space.genes[slot.gene]
            for op in gene.options:
                if slot.gene not in ever_active:
                    block[slot.gene].append([0, 0, 0])  # never part of a tracking subnet
                    continue
                counts = []
                for size in sizes:
                    side = slot_input_size(space, slot, size)
                    counts.append(trace(("block", op.label, slot.cin, slot.cout, slot.stride, side),
                                        lambda op=op, slot=slot: make_op(op, slot.cin, slot.cout, slot.stride,
                                                                         bb.act, bb.se),
                                        ((1, slot.cin, side, side),)))
                block[slot.gene].append([counts[0][0], counts[1][0], counts[0][1]])
        position = []
        for p in space.genes[space.output_gene].options:
            channels, x_side, _ = output_geometry(space, p, spec.search_size)
            _, z_side, _ = output_geometry(space, p, spec.template_size)
            bn_x = trace(("bn", channels, x_side), lambda c=channels: nn.BatchNorm2d(c), ((1, channels, x_side, x_side),))
            bn_z = trace(("bn", channels, z_side), lambda c=channels: nn.BatchNorm2d(c), ((1, channels, z_side, z_side),))
            fusion = trace(("fusion", channels, z_side, x_side, spec.neck.channels),
                           lambda z=z_side: PixelwiseFusion(z * z, spec.neck.channels),
                           ((1, channels, z_side, z_side), (1, channels, x_side, x_side)))
            position.append([stem[0][0] + bn_x[0] + fusion[0], stem[1][0] + bn_z[0],
                             stem[0][1] + bn_x[1] + bn_z[1] + fusion[1], x_side, bn_z[0]])
        ctx = head_context(space)
        heads = [KINDS[h.type].cost_data(h, ctx, trace) for h in spec.heads]
        data = {"version": TABLE_VERSION, "space": space.name, "space_hash": space.hash,
                "block": block, "position": position, "heads": heads}
        return cls(space, data)


def _cache_file(space: SearchSpace) -> Path:
    tag = f"torch{torch.__version__}-fvcore{version('fvcore')}-v{TABLE_VERSION}"
    return cache_dir() / "cost" / f"{space.name}-{space.hash}-{tag}.json"


@lru_cache(maxsize=16)
def _table_for(space_hash: str, space: SearchSpace) -> CostTable:
    path = _cache_file(space)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if data.get("space_hash") == space.hash and data.get("version") == TABLE_VERSION:
                table = CostTable(space, data)
                table.cost(Arch(space, tuple(0 for _ in space.genes)))  # a damaged entry fails here, not later
                return table
            raise ValueError("made for another space or table version")
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            print(f"warning: {path}: unusable cost-table cache ({type(exc).__name__}); rebuilding it",
                  file=sys.stderr, flush=True)
    table = CostTable.build(space)
    try:
        atomic_write_json(path, table.data, indent=None)
    except OSError:
        pass  # a read-only cache only costs a rebuild next time
    return table


def cost_table(space: SearchSpace) -> CostTable:
    """The space's table: from the on-disk cache when present, else built once (seconds) and cached."""
    return _table_for(space.hash, space)
