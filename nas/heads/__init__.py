"""Head kinds: one module per kind (see `nas.heads.base` for the protocol), registered here, once.

Adding a kind: write `nas/heads/<kind>.py` with a `HeadKind` subclass and its instance, add it to
`KINDS` below, and test it (docs/ARCHITECTURE.md walks through an example).
"""
from nas.heads.base import Attachment, Dimension, HeadContext, HeadCost, HeadKind, HeadModule, HeadSpec
from nas.heads.dimp import DIMP
from nas.heads.gradnet import GRADNET
from nas.heads.tower import TOWER

KINDS: dict[str, HeadKind] = {kind.name: kind for kind in (TOWER, DIMP, GRADNET)}


def head_kind(name: str) -> HeadKind:
    return KINDS[name]


__all__ = ["Attachment", "Dimension", "HeadContext", "HeadCost", "HeadKind", "HeadModule", "HeadSpec", "KINDS",
           "head_kind"]
