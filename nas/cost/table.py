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
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import torch
from torch import nn

from nas.cost.counting import count_flops, count_params
from nas.io import atomic_write_json
from nas.space.space import Arch, SearchSpace
from nas.space.spec import DiMPHeadSpec, GradNetHeadSpec, HeadSpec
from trackers.lighttrack.blocks import PixelwiseFusion, Predictor, make_op
from trackers.lighttrack.geometry import block_slots, hidden_point, output_geometry, slot_input_size
from trackers.lighttrack.model import DiMPHead, centred_box, make_head_layer, make_stem, make_u1

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


class _TowerCost:
    """A tower head: per feature side and width, the predictor and every layer option (search branch only)."""

    def __init__(self, space: SearchSpace, head: HeadSpec, data: dict):
        self.data = data  # {str(side): [per channel option: {"predictor": [f, p], "layers": [[[f, p]...]...]}]}
        self.channel_gene, self.layer_genes = space.head_genes[head.name]

    @staticmethod
    def build(trace: _Tracer, space: SearchSpace, head: HeadSpec, sides: dict[str, tuple[int, int, int]]) -> dict:
        spec = space.spec
        table = {}
        for _, x_side, _ in sides.values():
            if str(x_side) not in table:
                table[str(x_side)] = [_tower_entry(trace, head, c, spec.neck.channels, x_side, spec.backbone.se)
                                      for c in head.channels]
        return table

    def value(self, genotype, position: "_Position", column: int) -> int:
        if column == 1:
            return 0
        index = 0 if column == 0 else 1
        entry = self.data[str(position.x_side)][genotype[self.channel_gene]]
        return entry["predictor"][index] + sum(entry["layers"][layer][genotype[g]][index]
                                               for layer, g in enumerate(self.layer_genes))

    def bounds(self, position: "_Position", column: int) -> tuple[int, int]:
        index = 0 if column == 0 else 1
        per_channel = [(e["predictor"][index] + sum(min(o[index] for o in layer) for layer in e["layers"]),
                        e["predictor"][index] + sum(max(o[index] for o in layer) for layer in e["layers"]))
                       for e in self.data[str(position.x_side)]]
        return min(v[0] for v in per_channel), max(v[1] for v in per_channel)


class _DiMPCost:
    """A dimp head, per output stage, width D and filter size k: [search flops, template flops with 0
    and with 1 GN iteration, flops of each further iteration, params]. Iterations after the first
    repeat the same ops (the first costs a little more in fvcore's trace), so three traces give every
    count exactly (the table equals fvcore for every number of iterations; tested)."""

    def __init__(self, space: SearchSpace, head: DiMPHeadSpec, data: dict):
        self.data, self.head = data, head
        self.genes = space.head_dims[head.name]

    @staticmethod
    def build(trace: _Tracer, space: SearchSpace, head: DiMPHeadSpec, sides: dict[str, tuple[int, int, int]]) -> dict:
        table = {}
        for stage, (channels, x_side, z_side) in sides.items():
            if stage in table:
                continue
            table[stage] = []
            for d in head.feature_dim:
                row = []
                for k in head.filter_size:
                    build = lambda n, c=channels, d=d, k=k: DiMPHead.build(c, d, k, n, 16)  # noqa: E731
                    search = trace(("dimp-search", channels, x_side, d, k), lambda: _DiMPSearch(build(0)),
                                   ((1, channels, x_side, x_side), (1, d, k, k)))
                    t0, t1, t2 = (trace(("dimp-template", channels, z_side, d, k, n),
                                        lambda n=n: _DiMPTemplate(build(n)), ((1, channels, z_side, z_side),))[0]
                                  for n in (0, 1, 2))
                    row.append([search[0], t0, t1, t2 - t1, search[1]])
                table[stage].append(row)
        return table

    def value(self, genotype, position: "_Position", column: int) -> int:
        entry = self.data[position.stage][genotype[self.genes["feature_dim"]]][genotype[self.genes["filter_size"]]]
        if column == 1:
            num_iter = self.head.num_iter[genotype[self.genes["num_iter"]]]
            return entry[1] if num_iter == 0 else entry[2] + (num_iter - 1) * entry[3]
        return entry[0] if column == 0 else entry[4]

    def bounds(self, position: "_Position", column: int) -> tuple[int, int]:
        values = [entry[0] if column == 0 else entry[4] for row in self.data[position.stage] for entry in row]
        return min(values), max(values)


class _GradNetCost:
    """A gradnet update: U1's parameters per (hidden point, kernel, width) and its FLOPs on the template
    side. The update runs every `interval` frames, off the per-frame path, so it adds parameters only;
    `update_flops` (U1 plus the recomputed template tail) is reported beside the per-frame count."""

    def __init__(self, space: SearchSpace, head: GradNetHeadSpec, data: dict):
        self.data, self.head, self.space = data, head, space
        self.genes = space.head_dims[head.name]

    @staticmethod
    def build(trace: _Tracer, space: SearchSpace, head: GradNetHeadSpec, sides: dict) -> dict:
        table = {}
        for hidden in head.hidden:
            blocks, channels, side = hidden_point(space, hidden, space.spec.template_size)
            table[hidden] = {"blocks": blocks, "u1": [[list(trace(("u1", channels, side, w, k),
                                                                  lambda c=channels, w=w, k=k: make_u1(c, w, k),
                                                                  ((1, channels, side, side),)))
                                                        for w in head.width] for k in head.kernel]}
        return table

    def _entry(self, genotype) -> tuple[dict, list[int]]:
        g = self.genes
        point = self.data[self.head.hidden[genotype[g["hidden"]]]]
        return point, point["u1"][genotype[g["kernel"]]][genotype[g["width"]]]

    def value(self, genotype, position: "_Position", column: int) -> int:
        return self._entry(genotype)[1][1] if column == 2 else 0

    def bounds(self, position: "_Position", column: int) -> tuple[int, int]:
        values = [u1[1] if column == 2 else 0 for point in self.data.values() for row in point["u1"] for u1 in row]
        return min(values), max(values)

    def update_flops(self, genotype, table: "CostTable") -> int:
        """U1 on the hidden template plus the template tail after it (blocks and neck BN_z)."""
        point, u1 = self._entry(genotype)
        p = genotype[table.space.output_gene]
        tail = sum(table.block[g][genotype[g]][1] for g in table.active[p][point["blocks"]:])
        return u1[0] + tail + table.position[p][4]


_HEAD_COSTS = {"tower": _TowerCost, "dimp": _DiMPCost, "gradnet": _GradNetCost}


@dataclass(frozen=True)
class _Position:
    stage: str
    x_side: int


class CostTable:
    """`flops`, `template_flops`, `params` of any genotype of one space, equal to fvcore's counts."""

    def __init__(self, space: SearchSpace, data: dict):
        self.space, self.data = space, data
        self.block = data["block"]  # [gene][option] -> [search flops, template flops, params]
        # [output option] -> [search flops, template flops, params, search side, BN_z template flops]
        self.position = data["position"]
        positions = space.genes[space.output_gene].options
        self._positions = [_Position(space.spec.backbone.stages[p.stage].name, entry[3])
                           for p, entry in zip(positions, self.position)]
        self.active = [[g for g, _, _ in space.active_block_genes(p)] for p in positions]
        self._heads = [_HEAD_COSTS[h.type](space, h, d) for h, d in zip(space.spec.heads, data["heads"])]
        self._update = next((c for c in self._heads if isinstance(c, _GradNetCost)), None)
        self._out = space.output_gene

    # -- queries ------------------------------------------------------------------------------
    def _sum(self, genotype: tuple[int, ...] | list[int], column: int) -> int:
        p = genotype[self._out]
        total = self.position[p][column]
        for g in self.active[p]:
            total += self.block[g][genotype[g]][column]
        for head in self._heads:
            total += head.value(genotype, self._positions[p], column)
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
        return self._update.update_flops(arch.genotype if isinstance(arch, Arch) else arch, self)

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
                    head_lo, head_hi = head.bounds(self._positions[p], column)
                    lo, hi = lo + head_lo, hi + head_hi
                lows.append(lo)
                highs.append(hi)
            result[name] = (min(lows), max(highs))
        return result

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def build(cls, space: SearchSpace) -> "CostTable":
        """Trace every distinct piece of the space once with fvcore."""
        spec = space.spec
        bb = spec.backbone
        trace = _Tracer()
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
        sides: dict[str, tuple[int, int, int]] = {}  # output stage -> (channels, search side, template side)
        for p in space.genes[space.output_gene].options:
            channels, x_side, _ = output_geometry(space, p, spec.search_size)
            _, z_side, _ = output_geometry(space, p, spec.template_size)
            sides[bb.stages[p.stage].name] = (channels, x_side, z_side)
            bn_x = trace(("bn", channels, x_side), lambda c=channels: nn.BatchNorm2d(c), ((1, channels, x_side, x_side),))
            bn_z = trace(("bn", channels, z_side), lambda c=channels: nn.BatchNorm2d(c), ((1, channels, z_side, z_side),))
            fusion = trace(("fusion", channels, z_side, x_side, spec.neck.channels),
                           lambda z=z_side: PixelwiseFusion(z * z, spec.neck.channels),
                           ((1, channels, z_side, z_side), (1, channels, x_side, x_side)))
            position.append([stem[0][0] + bn_x[0] + fusion[0], stem[1][0] + bn_z[0],
                             stem[0][1] + bn_x[1] + bn_z[1] + fusion[1], x_side, bn_z[0]])
        heads = [_HEAD_COSTS[h.type].build(trace, space, h, sides) for h in spec.heads]
        data = {"version": TABLE_VERSION, "space": space.name, "space_hash": space.hash,
                "block": block, "position": position, "heads": heads}
        return cls(space, data)


def _tower_entry(trace: _Tracer, head: HeadSpec, channels: int, cin: int, side: int, se_cfg) -> dict:
    predictor = trace(("predictor", channels, head.outputs, side),
                      lambda: Predictor(channels, head.outputs, head.activation, head.scale),
                      ((1, channels, side, side),))
    layers = []
    for layer in range(head.depth):
        options = head.first_ops if layer == 0 else head.ops
        layer_in = cin if layer == 0 else channels
        layers.append([list(trace(("head", op.label, layer_in, channels, side),
                                  lambda op=op, c_in=layer_in: make_head_layer(op, c_in, channels, se_cfg),
                                  ((1, layer_in, side, side),))) if not op.is_skip else [0, 0]
                       for op in options])
    return {"predictor": list(predictor), "layers": layers}


class _DiMPTemplate(nn.Module):
    """Traceable template part of a DiMP head on a raw template map (op counts depend on no box or stride)."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.head.template(raw, centred_box(raw.shape[-1] * 16, raw.shape[0]))["filter"]


class _DiMPSearch(nn.Module):
    """Traceable per-frame part of a DiMP head: features and filtering with a given filter."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, raw: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.head(raw, raw, {"filter": weights})[""]


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
