"""`SearchSpace`: a validated spec flattened into genes, and `Arch`, one point of it.

A genotype is a tuple of choice indices, one per gene, in a fixed order:
`backbone.<stage>.<block>` for every searchable block, `backbone.output` (the output position:
stage and block), then per head one gene `heads.<name>.<dimension>` for each dimension its kind
declares (`nas.heads`: a tower's `channels`, `0`, `1`, ...; a dimp head's `feature_dim`, ...). Genes
carry a `group` used by crossover (a whole backbone stage travels together, head genes one by one).
Genes past the output position do not change the subnet; `Arch.arch_id` ignores them so two
genotypes that build the same network share an id (dedup caches key on it).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from nas.heads import KINDS
from nas.space.spec import Bounds, SpaceSpec, StageSpec


@dataclass(frozen=True)
class Gene:
    name: str
    options: tuple[Any, ...]  # OpSpec, int, str (hidden point) or (stage_index, block) output positions
    labels: tuple[str, ...]
    group: str

    def index_of(self, label: str) -> int:
        return self.labels.index(label)


@dataclass(frozen=True)
class OutputPosition:
    stage: int  # index into backbone.stages
    block: int

    def label(self, stages: tuple[StageSpec, ...]) -> str:
        return f"{stages[self.stage].name}.{self.block}"


class SearchSpace:
    """Genes of a spec plus sampling and variation operators (all driven by an explicit RNG)."""

    def __init__(self, spec: SpaceSpec):
        self.spec = spec
        self.name, self.hash = spec.name, spec.hash
        genes: list[Gene] = []
        self.block_genes: list[tuple[int, int, int]] = []  # (gene index, stage index, block index)
        for si, st in enumerate(spec.backbone.stages):
            for b in range(st.depth):
                ops = st.first_ops if b == 0 else st.ops
                self.block_genes.append((len(genes), si, b))
                genes.append(Gene(f"backbone.{st.name}.{b}", ops, tuple(op.label for op in ops),
                                  f"backbone.{st.name}"))
        positions = tuple(OutputPosition(si, b) for si, st in enumerate(spec.backbone.stages)
                          if st.name in spec.backbone.output for b in range(st.depth))
        self.output_gene = len(genes)
        genes.append(Gene("backbone.output", positions,
                          tuple(p.label(spec.backbone.stages) for p in positions), "backbone.output"))
        self.head_genes: dict[str, dict[str, int]] = {}  # head -> dimension -> gene index
        for head in spec.heads:
            self.head_genes[head.name] = {}
            for dim in KINDS[head.type].dimensions(head):
                self.head_genes[head.name][dim.name] = len(genes)
                genes.append(Gene(f"heads.{head.name}.{dim.name}", dim.options, dim.labels,
                                  f"heads.{head.name}.{dim.name}"))
        self.genes: tuple[Gene, ...] = tuple(genes)
        self.gene_index = {g.name: i for i, g in enumerate(self.genes)}
        self.cardinalities = np.array([len(g.options) for g in self.genes], dtype=np.int64)

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, hash={self.hash}, genes={len(self.genes)})"

    # -- structure -------------------------------------------------------------------------
    @property
    def constraints(self) -> dict[str, Bounds]:
        return self.spec.constraints

    def size(self) -> int:
        """Number of distinct genotypes (exact integer)."""
        return int(np.prod([int(c) for c in self.cardinalities], dtype=object))

    def active_block_genes(self, position: OutputPosition) -> list[tuple[int, int, int]]:
        """Block genes that are part of the subnet when the output is taken at `position`."""
        return [(g, s, b) for g, s, b in self.block_genes
                if s < position.stage or (s == position.stage and b <= position.block)]

    def output_position(self, genotype: tuple[int, ...]) -> OutputPosition:
        return self.genes[self.output_gene].options[genotype[self.output_gene]]

    # -- sampling and variation -----------------------------------------------------------------
    def random_genotype(self, rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(int(rng.integers(c)) for c in self.cardinalities)

    def sample(self, rng: np.random.Generator) -> "Arch":
        """Uniform sample (within cost bounds: `nas.cost.sampling.sample_within`)."""
        return Arch(self, self.random_genotype(rng))

    def mutate(self, arch: "Arch", rng: np.random.Generator, prob: float) -> "Arch":
        """Re-draw each gene with probability `prob` (a re-draw always picks a different option)."""
        genotype = list(arch.genotype)
        for i, card in enumerate(self.cardinalities):
            if card > 1 and rng.random() < prob:
                choice = int(rng.integers(card - 1))
                genotype[i] = choice + (choice >= genotype[i])
        return Arch(self, tuple(genotype))

    def crossover(self, a: "Arch", b: "Arch", rng: np.random.Generator) -> "Arch":
        """Uniform crossover over gene groups: backbone stages whole, head genes one by one."""
        take_b = {group: bool(rng.random() < 0.5) for group in dict.fromkeys(g.group for g in self.genes)}
        genotype = tuple(b.genotype[i] if take_b[g.group] else a.genotype[i] for i, g in enumerate(self.genes))
        return Arch(self, genotype)


@dataclass(frozen=True, eq=False)
class Arch:
    """One architecture: a genotype of `space`. Equality and hashing follow `arch_id`."""

    space: SearchSpace
    genotype: tuple[int, ...]

    def __post_init__(self):
        if len(self.genotype) != len(self.space.genes):
            raise ValueError(f"genotype has {len(self.genotype)} genes, space {self.space.name} has "
                             f"{len(self.space.genes)}")
        for gene, idx in zip(self.space.genes, self.genotype):
            if not 0 <= idx < len(gene.options):
                raise ValueError(f"gene {gene.name}: index {idx} out of range 0..{len(gene.options) - 1}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Arch) and self.space.hash == other.space.hash and self.arch_id == other.arch_id

    def __hash__(self) -> int:
        return hash(self.arch_id)

    @property
    def choices(self) -> dict[str, str]:
        """Human-readable gene -> option label mapping (the `choices` block of the JSON form)."""
        return {g.name: g.labels[i] for g, i in zip(self.space.genes, self.genotype)}

    @property
    def output(self) -> OutputPosition:
        return self.space.output_position(self.genotype)

    def head_choices(self, name: str) -> dict[str, Any]:
        """The chosen option of each dimension of head `name` (what its kind builds from)."""
        return {dim: self.space.genes[g].options[self.genotype[g]] for dim, g in self.space.head_genes[name].items()}

    @cached_property
    def active_genes(self) -> tuple[int, ...]:
        """Indices of genes that change the built subnet."""
        inactive = {g for g, _, _ in self.space.block_genes} - {g for g, _, _ in
                                                                 self.space.active_block_genes(self.output)}
        return tuple(i for i in range(len(self.genotype)) if i not in inactive)

    @cached_property
    def arch_id(self) -> str:
        """Stable id of the subnet this genotype builds (inactive genes excluded)."""
        active = {self.space.genes[i].name: self.space.genes[i].labels[self.genotype[i]] for i in self.active_genes}
        text = json.dumps([self.space.hash, active], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
