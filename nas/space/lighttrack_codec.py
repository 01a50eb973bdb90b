"""LightTrack's official path strings: `back_<digits>+cls_<digits>+reg_<digits>_ops_<stage><block>`.

- `back`: '0' (fixed stem + DS block), one digit per searchable block (the op's index in its
  stage's `ops` list), then '0' (the fixed last conv of the ImageNet backbone).
- `cls` / `reg`: the channel index, then one digit per head layer (index in the head's `ops`).
- `ops`: the output position as (stage index among the searchable stages, block index).

The reference parser strips characters rather than prefixes (`str.strip('back_')`); this codec
parses the whole string with one regular expression instead and checks every digit, so a malformed
string is reported rather than silently misread.
"""
from __future__ import annotations

import re

from nas.errors import ArchError
from nas.space.space import Arch, OutputPosition, SearchSpace

LIGHTTRACK_MOBILE = "back_04502514044521042540+cls_211000022+reg_100000111_ops_32"
"""LightTrack-Mobile, the one searched architecture the authors published (space lighttrack-mobile)."""

_PATTERN = re.compile(r"^back_(\d+)\+cls_(\d+)\+reg_(\d+)_ops_(\d)(\d)$")
_HEADS = ("cls", "reg")


def _check_codable(space: SearchSpace) -> None:
    names = tuple(h.name for h in space.spec.heads)
    if names != _HEADS or any(h.type != "tower" for h in space.spec.heads):
        raise ArchError(f"space {space.name!r} has heads {names}; LightTrack strings need tower heads cls, reg")
    too_many = [g.name for g in space.genes if len(g.options) > 10 and g.name != "backbone.output"]
    if too_many:
        raise ArchError(f"gene {too_many[0]} of space {space.name!r} has more than 10 options; "
                        "LightTrack strings use one digit per choice")


def to_lighttrack_string(arch: Arch) -> str:
    space = arch.space
    _check_codable(space)
    stages = space.spec.backbone.stages
    back = "0" + "".join(str(stages[s].ops.index(space.genes[g].options[arch.genotype[g]]))
                         for g, s, _ in space.block_genes) + "0"
    heads = []
    for head in space.spec.heads:
        choices = arch.head_choices(head.name)
        heads.append(str(head.channels.index(choices["channels"]))
                     + "".join(str(head.ops.index(choices[str(layer)])) for layer in range(head.depth)))
    out = arch.output
    return f"back_{back}+cls_{heads[0]}+reg_{heads[1]}_ops_{out.stage}{out.block}"


def from_lighttrack_string(space: SearchSpace, text: str, *, source: str = "<string>") -> Arch:
    """Decode an official path string into an Arch of `space`; one-line ArchError on any mismatch."""
    _check_codable(space)

    def fail(key: str, message: str) -> ArchError:
        return ArchError(message, source=source, key=key)

    match = _PATTERN.match(text.strip())
    if not match:
        raise fail("", "malformed LightTrack path string; expected "
                   "'back_<digits>+cls_<digits>+reg_<digits>_ops_<stage><block>'")
    back, cls, reg, stage_text, block_text = match.groups()
    n_blocks = len(space.block_genes)
    if len(back) != n_blocks + 2:
        raise fail("back", f"expected {n_blocks + 2} digits (0 + {n_blocks} blocks + 0), got {len(back)}")
    if back[0] != "0" or back[-1] != "0":
        raise fail("back", "expected the fixed first and last digits to be 0")
    genotype = [0] * len(space.genes)
    stages = space.spec.backbone.stages
    for (g, s, b), digit in zip(space.block_genes, back[1:-1]):
        ops = stages[s].ops
        if int(digit) >= len(ops):
            raise fail("back", f"block {stages[s].name}.{b}: digit {digit} out of range 0..{len(ops) - 1}")
        op = ops[int(digit)]
        gene = space.genes[g]
        if op not in gene.options:
            raise fail("back", f"block {stages[s].name}.{b}: op {op.label!r} is not allowed there")
        genotype[g] = gene.options.index(op)
    for head, digits in zip(space.spec.heads, (cls, reg)):
        genes = space.head_genes[head.name]
        channel_gene, layer_genes = genes["channels"], [genes[str(layer)] for layer in range(head.depth)]
        if len(digits) != 1 + head.depth:
            raise fail(head.name, f"expected {1 + head.depth} digits (channel + {head.depth} layers), got {len(digits)}")
        if int(digits[0]) >= len(head.channels):
            raise fail(head.name, f"channel digit {digits[0]} out of range 0..{len(head.channels) - 1}")
        genotype[channel_gene] = int(digits[0])
        for layer, (g, digit) in enumerate(zip(layer_genes, digits[1:])):
            if int(digit) >= len(head.ops):
                raise fail(head.name, f"layer {layer}: digit {digit} out of range 0..{len(head.ops) - 1}")
            op = head.ops[int(digit)]
            if op not in space.genes[g].options:
                raise fail(head.name, f"layer {layer}: op {op.label!r} is not allowed there")
            genotype[g] = space.genes[g].options.index(op)
    position = OutputPosition(int(stage_text), int(block_text))
    positions = space.genes[space.output_gene].options
    if position not in positions:
        allowed = ", ".join(f"{p.stage}{p.block}" for p in positions)
        raise fail("ops", f"output position {stage_text}{block_text} is not in the space; expected one of {allowed}")
    genotype[space.output_gene] = positions.index(position)
    return Arch(space, tuple(genotype))
