"""Parse and validate a search-space DSL file (YAML, safe loader) into typed, frozen specs.

Validation happens here, once, so everything downstream (genes, builder, cost model) can trust the
spec. Each error is one line naming the file, the key path (e.g. `backbone.stages[2].ops[1]`) and
what was expected. The grammar is documented in `search_spaces/README.md`.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nas.dsl.grammar import INPUT_SIZE, MAX_CHANNELS, MAX_DEPTH, OpSpec, SEConfig, parse_op
from nas.dsl.reader import SpecReader
from nas.errors import SpecError
from nas.heads import KINDS, HeadSpec
from nas.io import load_yaml

SCHEMA_VERSION = 1
_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}
MAX_QUANTITY = 10**15  # FLOPs/params bounds
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMG]?)\s*$", re.IGNORECASE)


def parse_quantity(value: object, *, source: str = "", key: str = "") -> int:
    """'600M' -> 600_000_000, '2M' -> 2_000_000, 1.5e6 -> 1_500_000 (FLOPs/params bounds)."""
    if isinstance(value, bool):
        raise SpecError(f"expected a number like 600M or 2000000, got {value!r}", source=source, key=key)
    if isinstance(value, (int, float)):
        if not (math.isfinite(value) and 0 <= value <= MAX_QUANTITY):
            raise SpecError(f"expected a number in 0..{MAX_QUANTITY:.0e}, got {value!r}", source=source, key=key)
        return int(value)
    match = _QUANTITY.match(str(value))
    if not match:
        raise SpecError(f"expected a number like 600M or 2000000, got {value!r}", source=source, key=key)
    return int(round(float(match.group(1)) * _SUFFIX[match.group(2).upper()]))


@dataclass(frozen=True)
class Bounds:
    """Upper bounds on the cost of an architecture (None = unbounded)."""

    flops: int | None = None
    params: int | None = None
    latency_ms: float | None = None

    def admits(self, cost: dict) -> bool:
        """`cost` must carry `latency_ms` (predicted, see `nas.cost.lut`) when latency is bounded."""
        return ((self.flops is None or cost["flops"] <= self.flops)
                and (self.params is None or cost["params"] <= self.params)
                and (self.latency_ms is None or cost["latency_ms"] <= self.latency_ms))


@dataclass(frozen=True)
class StageSpec:
    """A searchable stage: `depth` choice blocks; only the first has `stride` (and may change channels)."""

    name: str
    channels: int
    depth: int
    stride: int
    ops: tuple[OpSpec, ...]
    first_ops: tuple[OpSpec, ...]


@dataclass(frozen=True)
class BackboneSpec:
    act: str
    se: SEConfig
    stem: OpSpec
    fixed: tuple[OpSpec, ...]
    stages: tuple[StageSpec, ...]
    output: tuple[str, ...]  # names of the stages whose blocks may be the output position


@dataclass(frozen=True)
class NeckSpec:
    """LightTrack's neck: pixel-wise correlation of template and search features, `channels` wide."""

    channels: int
    type: str = "pixelwise"


@dataclass(frozen=True)
class ReferenceSpec:
    """The space's reference architecture, scored beside every search as a floor: a LightTrack path
    string or one option per gene (resolved against the genes by `nas.space.arch.reference_arch`)."""

    name: str
    lighttrack: str | None = None
    choices: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class SpaceSpec:
    name: str
    description: str
    template_size: int
    search_size: int
    backbone: BackboneSpec
    neck: NeckSpec
    heads: tuple[HeadSpec, ...]
    constraints: dict[str, Bounds]
    source: str
    reference: ReferenceSpec | None = None

    @property
    def hash(self) -> str:
        """Content hash of the normalised spec: comments, ordering of keys, the file name and the
        informational keys (description, reference) don't count."""
        body = asdict(self)
        for key in ("source", "description", "reference"):
            body.pop(key)
        text = json.dumps(body, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_spec_file(path: str | Path) -> SpaceSpec:
    path = Path(path)
    return parse_spec(load_yaml(path, error=SpecError, what="search-space file"), source=str(path))


def parse_spec(data: Any, *, source: str) -> SpaceSpec:
    r = SpecReader(source)
    top = r.mapping(data, "", {"name", "description", "version", "input", "backbone", "neck", "heads",
                               "constraints", "reference"}, {"name", "input", "backbone", "neck", "heads"})
    version = top.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise r.fail("version", f"expected DSL version {SCHEMA_VERSION}, got {version!r}")
    name = r.text(top, "", "name")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise r.fail("name", f"expected lowercase letters, digits, '.', '_' or '-', got {name!r}")
    inputs = r.mapping(top["input"], "input", {"template", "search"}, {"template", "search"})
    template_size = r.integer(inputs, "input", "template", minimum=INPUT_SIZE[0], maximum=INPUT_SIZE[1])
    search_size = r.integer(inputs, "input", "search", minimum=INPUT_SIZE[0], maximum=INPUT_SIZE[1])
    if search_size < template_size:
        raise r.fail("input.search", f"expected search size >= template size {template_size}, got {search_size}")
    backbone = _parse_backbone(r, top["backbone"])
    neck = _parse_neck(r, top["neck"])
    heads = _parse_heads(r, top["heads"])
    constraints = _parse_constraints(r, top.get("constraints", {}))
    reference = _parse_reference(r, top["reference"]) if "reference" in top else None
    spec = SpaceSpec(name=name, description=str(top.get("description", "")).strip(),
                     template_size=template_size, search_size=search_size, backbone=backbone, neck=neck,
                     heads=heads, constraints=constraints, source=source, reference=reference)
    for head in heads:
        KINDS[head.type].check(head, spec, r)
    _check_geometry(r, spec)
    return spec


def _parse_backbone(r: SpecReader, node: Any) -> BackboneSpec:
    key = "backbone"
    bb = r.mapping(node, key, {"act", "se", "stem", "fixed", "choices", "stages", "output"},
                   {"stem", "stages", "output"})
    act = r.text(bb, key, "act", ("relu", "swish", "hswish"), default="swish")
    se_node = r.mapping(bb.get("se", {}), f"{key}.se", {"gate", "act", "divisor"}, set())
    se = SEConfig(gate=r.text(se_node, f"{key}.se", "gate", ("hard_sigmoid", "sigmoid"), default="hard_sigmoid"),
                  act=r.text(se_node, f"{key}.se", "act", ("relu", "swish", "hswish"), default="relu"),
                  divisor=r.integer(se_node, f"{key}.se", "divisor", maximum=64, default=8))
    stem = parse_op(bb["stem"], source=r.source, key=f"{key}.stem")
    if stem.type != "conv" or stem.stride is None or stem.channels is None:
        raise r.fail(f"{key}.stem", f"expected a conv op with stride and channels like 'conv_k3_s2_c16', got {bb['stem']!r}")
    fixed_node = bb.get("fixed", [])
    if not isinstance(fixed_node, list):
        raise r.fail(f"{key}.fixed", "expected a list of op strings")
    fixed = tuple(parse_op(t, source=r.source, key=f"{key}.fixed[{i}]") for i, t in enumerate(fixed_node))
    for i, op in enumerate(fixed):
        if op.is_skip or op.channels is None:
            raise r.fail(f"{key}.fixed[{i}]", f"fixed blocks need explicit channels (c<int>), got {op.label!r}")
    named: dict[str, tuple[OpSpec, ...]] = {}
    choices = r.mapping(bb.get("choices", {}), f"{key}.choices", set(map(str, bb.get("choices", {}) or {})), set())
    for cname, items in choices.items():
        named[str(cname)] = r.op_list(items, f"{key}.choices.{cname}", {})
    stages_node = bb["stages"]
    if not isinstance(stages_node, list) or not stages_node:
        raise r.fail(f"{key}.stages", "expected a non-empty list of stages")
    stages = []
    for i, st in enumerate(stages_node):
        skey = f"{key}.stages[{i}]"
        st = r.mapping(st, skey, {"name", "channels", "depth", "stride", "ops", "first_ops"},
                       {"name", "channels", "depth", "stride", "ops"})
        stride = r.integer(st, skey, "stride", maximum=99)
        if stride not in (1, 2):
            raise r.fail(f"{skey}.stride", f"expected 1 or 2, got {stride}")
        ops = r.op_list(st["ops"], f"{skey}.ops", named)
        first_ops = r.op_list(st["first_ops"], f"{skey}.first_ops", named) if "first_ops" in st else ops
        for label, group in (("ops", ops), ("first_ops", first_ops)):
            for j, op in enumerate(group):
                if op.type not in ("ir", "ds", "conv", "skip"):
                    raise r.fail(f"{skey}.{label}[{j}]", f"expected a backbone op (ir, ds, conv, skip), got {op.label!r}")
                if op.stride is not None or op.channels is not None:
                    raise r.fail(f"{skey}.{label}[{j}]", f"stage ops take stride and channels from the stage; "
                                 f"remove s/c from {op.label!r}")
        missing = [op.label for op in first_ops if op not in ops]
        if missing:
            raise r.fail(f"{skey}.first_ops", f"expected a subset of ops; {missing[0]!r} is not in ops")
        stages.append(StageSpec(name=r.text(st, skey, "name"),
                                channels=r.integer(st, skey, "channels", maximum=MAX_CHANNELS),
                                depth=r.integer(st, skey, "depth", maximum=MAX_DEPTH), stride=stride, ops=ops,
                                first_ops=first_ops))
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise r.fail(f"{key}.stages", "stage names must be unique")
    in_ch = fixed[-1].channels if fixed else stem.channels
    for i, st in enumerate(stages):
        changes_shape = st.stride != 1 or st.channels != in_ch
        if changes_shape and any(op.is_skip for op in st.first_ops):
            raise r.fail(f"{key}.stages[{i}].first_ops", f"the first block of stage {st.name!r} changes "
                         f"channels {in_ch}->{st.channels} or stride {st.stride}, so it cannot be 'skip'; "
                         "give first_ops without skip")
        in_ch = st.channels
    output = bb["output"]
    output = [output] if isinstance(output, str) else output
    if not isinstance(output, list) or not output:
        raise r.fail(f"{key}.output", "expected a non-empty list of stage names")
    for i, sname in enumerate(output):
        if sname not in names:
            raise r.fail(f"{key}.output[{i}]", f"unknown stage {sname!r}; expected one of {', '.join(names)}")
    return BackboneSpec(act=act, se=se, stem=stem, fixed=fixed, stages=tuple(stages), output=tuple(output))


def _parse_neck(r: SpecReader, node: Any) -> NeckSpec:
    neck = r.mapping(node, "neck", {"type", "channels"}, {"type", "channels"})
    return NeckSpec(type=r.text(neck, "neck", "type", ("pixelwise",)),
                    channels=r.integer(neck, "neck", "channels", maximum=MAX_CHANNELS))


def _parse_heads(r: SpecReader, node: Any) -> tuple[HeadSpec, ...]:
    if not isinstance(node, dict) or not node:
        raise r.fail("heads", "expected a non-empty mapping of head name -> head spec")
    heads = []
    for hname, h in node.items():
        key = f"heads.{hname}"
        if not isinstance(h, dict):
            raise r.fail(key, f"expected a mapping, got {type(h).__name__}")
        heads.append(KINDS[r.text(h, key, "type", tuple(KINDS))].parse(r, str(hname), h, key))
    names = {h.name: h for h in heads}
    if "cls" not in names or "reg" not in names:
        raise r.fail("heads", "expected a 'cls' and a 'reg' head (the tracker decodes both)")
    if not KINDS[names["reg"].type].regresses_boxes:
        regressors = " or ".join(repr(kind.name) for kind in KINDS.values() if kind.regresses_boxes)
        raise r.fail("heads.reg.type", f"the box regression head must be a {regressors}")
    return tuple(heads)


def _parse_constraints(r: SpecReader, node: Any) -> dict[str, Bounds]:
    if not isinstance(node, dict):
        raise r.fail("constraints", "expected a mapping of preset name -> {flops, params, latency_ms}")
    presets = {}
    for pname, b in node.items():
        key = f"constraints.{pname}"
        b = r.mapping(b, key, {"flops", "params", "latency_ms"}, set())
        presets[str(pname)] = Bounds(
            flops=parse_quantity(b["flops"], source=r.source, key=f"{key}.flops") if "flops" in b else None,
            params=parse_quantity(b["params"], source=r.source, key=f"{key}.params") if "params" in b else None,
            latency_ms=r.number(b, key, "latency_ms", 0.0, maximum=1e6) if "latency_ms" in b else None)
    return presets


def _parse_reference(r: SpecReader, node: Any) -> ReferenceSpec:
    ref = r.mapping(node, "reference", {"name", "lighttrack", "choices"}, {"name"})
    name = r.text(ref, "reference", "name")
    if ("lighttrack" in ref) == ("choices" in ref):
        raise r.fail("reference", "expected exactly one of lighttrack (a path string) or choices (gene -> option)")
    if "lighttrack" in ref:
        return ReferenceSpec(name, lighttrack=r.text(ref, "reference", "lighttrack"))
    choices = ref["choices"]
    if not isinstance(choices, dict) or not choices:
        raise r.fail("reference.choices", "expected a mapping of gene name -> option")
    return ReferenceSpec(name, choices=tuple((str(k), str(v)) for k, v in choices.items()))


def conv_out(size: int, stride: int) -> int:
    """Output side of a 'same'-padded odd-kernel conv: floor((size - 1) / stride) + 1."""
    return (size - 1) // stride + 1


def _check_geometry(r: SpecReader, spec: SpaceSpec) -> None:
    """Every output position must leave a template feature map of at least 1x1."""
    bb = spec.backbone
    strides = [bb.stem.stride] + [op.stride or 1 for op in bb.fixed]
    size = spec.template_size
    for s in strides:
        size = conv_out(size, s)
    for i, st in enumerate(bb.stages):
        size = conv_out(size, st.stride)
        if size < 1 and st.name in bb.output:
            raise r.fail(f"backbone.stages[{i}].stride", f"template features vanish at stage {st.name!r}; "
                         f"expected a template size large enough for the total stride")
