"""Where each block sits: its channels, stride and the feature size it sees, for any input size.

Shared by the subnet builder, the supernet and the cost table so all agree on every block's context,
and on what the heads see (`attachment`, `head_context`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from nas.heads import Attachment, HeadContext
from nas.space.space import OutputPosition, SearchSpace
from nas.space.spec import SpaceSpec, conv_out


@dataclass(frozen=True)
class BlockSlot:
    gene: int
    stage: int
    block: int
    cin: int
    cout: int
    stride: int


def stem_plan(spec: SpaceSpec) -> list[tuple[int, int, int]]:
    """(cin, cout, stride) of the stem conv and each fixed block."""
    plan, cin = [], 3
    for op in (spec.backbone.stem, *spec.backbone.fixed):
        plan.append((cin, op.channels, op.stride or 1))
        cin = op.channels
    return plan


def block_slots(space: SearchSpace) -> list[BlockSlot]:
    """One slot per searchable block gene, in gene order."""
    stages = space.spec.backbone.stages
    cin = stem_plan(space.spec)[-1][1]
    slots = []
    for gene, s, b in space.block_genes:
        stage = stages[s]
        first = b == 0
        slots.append(BlockSlot(gene, s, b, cin if first else stage.channels, stage.channels,
                               stage.stride if first else 1))
        if first:
            cin = stage.channels
    return slots


def stem_output_size(spec: SpaceSpec, image_size: int) -> int:
    size = image_size
    for _, _, stride in stem_plan(spec):
        size = conv_out(size, stride)
    return size


def slot_input_size(space: SearchSpace, slot: BlockSlot, image_size: int) -> int:
    size = stem_output_size(space.spec, image_size)
    for stage in space.spec.backbone.stages[: slot.stage]:
        size = conv_out(size, stage.stride)
    return size if slot.block == 0 else conv_out(size, space.spec.backbone.stages[slot.stage].stride)


def output_geometry(space: SearchSpace, position: OutputPosition, image_size: int) -> tuple[int, int, int]:
    """(channels, spatial size, total stride) of the backbone features at an output position."""
    size = stem_output_size(space.spec, image_size)
    stride = 1
    for _, _, s in stem_plan(space.spec):
        stride *= s
    for stage in space.spec.backbone.stages[: position.stage + 1]:
        size, stride = conv_out(size, stage.stride), stride * stage.stride
    return space.spec.backbone.stages[position.stage].channels, size, stride


def output_strides(space: SearchSpace) -> list[int]:
    """Every total stride an output position of the space can have (labels are made for each)."""
    return sorted({output_geometry(space, p, space.spec.search_size)[2]
                   for p in space.genes[space.output_gene].options})


def hidden_point(space: SearchSpace, hidden: str, image_size: int) -> tuple[int, int, int]:
    """(blocks before it, channels, spatial size) of a gradnet hidden template: after the stem or a stage.

    The spec guarantees the stage precedes every output stage, so all its blocks are active.
    """
    spec = space.spec
    if hidden == "stem":
        return 0, stem_plan(spec)[-1][1], stem_output_size(spec, image_size)
    names = [st.name for st in spec.backbone.stages]
    index = names.index(hidden)
    size = stem_output_size(spec, image_size)
    for stage in spec.backbone.stages[: index + 1]:
        size = conv_out(size, stage.stride)
    blocks = sum(st.depth for st in spec.backbone.stages[: index + 1])
    return blocks, spec.backbone.stages[index].channels, size


def attachment(space: SearchSpace, position: OutputPosition) -> Attachment:
    """What the heads read at an output position: the stage's map on template and search crops."""
    spec = space.spec
    channels, template_side, stride = output_geometry(space, position, spec.template_size)
    search_side = output_geometry(space, position, spec.search_size)[1]
    return Attachment(spec.backbone.stages[position.stage].name, channels, stride, template_side, search_side)


def head_context(space: SearchSpace) -> HeadContext:
    """The space's offer to every head kind: neck width, SE settings, one attachment per output stage."""
    spec = space.spec
    attachments = {}
    for p in space.genes[space.output_gene].options:
        at = attachment(space, p)
        attachments.setdefault(at.stage, at)
    return HeadContext(neck_channels=spec.neck.channels, se=spec.backbone.se, attachments=tuple(attachments.values()),
                       hidden_point=partial(hidden_point, space, image_size=spec.template_size))
