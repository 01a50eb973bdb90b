"""The compact block grammar of the DSL: one op string names one block, timm-style.

An op string is `<type>` followed by `_`-separated options, e.g. `ir_k5_e6_se0.25`:

| type   | block                                                                                  |
|--------|----------------------------------------------------------------------------------------|
| `ir`   | MBConv / inverted residual: pw expand, BN, act, dw kxk, BN, act, SE, pw linear, BN, residual |
| `ds`   | depthwise-separable (EfficientNet stage 0): dw kxk, BN, act, SE, pw, BN, residual       |
| `sep`  | LightTrack head DSConv: dw kxk, pw 1x1, BN, ReLU (no BN between dw and pw)              |
| `conv` | plain conv kxk, BN, act                                                                 |
| `skip` | identity (only where input and output shapes agree)                                    |

| option       | meaning                                   |
|--------------|-------------------------------------------|
| `k<int>`     | kernel size (odd)                         |
| `e<number>`  | expansion ratio (`ir` only)               |
| `s<int>`     | stride (fixed blocks; stage blocks take the stage's) |
| `c<int>`     | output channels (fixed blocks; stage blocks take the stage's) |
| `se<number>` | squeeze-excite ratio (0 < r <= 1)          |
| `n<act>`     | activation override: `nrelu`, `nswish`, `nhswish` |
| `noskip`     | no residual connection                    |
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from nas.errors import SpecError

OP_TYPES = ("ir", "ds", "sep", "conv", "skip")
ACTIVATIONS = ("relu", "swish", "hswish")
_OPTION = re.compile(r"^(se|k|e|s|c|n)(.+)$")

# Documented ranges of every DSL size (search_spaces/README.md): far beyond any tracker, small enough
# that a typo fails here instead of as an out-of-memory crash when the supernet is built.
MAX_CHANNELS = 4096
MAX_KERNEL = 15
MAX_EXPAND = 16.0
MAX_DEPTH = 32
MAX_ITERATIONS = 20  # DiMP's Gauss-Newton steps
MAX_INTERVAL = 10_000  # frames between template updates
INPUT_SIZE = (16, 2048)


@dataclass(frozen=True)
class SEConfig:
    """Squeeze-excite settings shared by every block of a backbone (and its head towers)."""

    gate: str = "hard_sigmoid"
    act: str = "relu"
    divisor: int = 8


@dataclass(frozen=True)
class OpSpec:
    """One block, parsed from an op string; `None` fields are filled by the enclosing stage."""

    type: str
    kernel: int = 3
    expand: float = 1.0
    stride: int | None = None
    channels: int | None = None
    se: float = 0.0
    act: str | None = None
    noskip: bool = False

    @property
    def label(self) -> str:
        """Canonical op string (the form written to architecture JSON)."""
        if self.type == "skip":
            return "skip"
        parts = [self.type, f"k{self.kernel}"]
        if self.type == "ir":
            parts.append(f"e{_num(self.expand)}")
        if self.stride is not None:
            parts.append(f"s{self.stride}")
        if self.channels is not None:
            parts.append(f"c{self.channels}")
        if self.se:
            parts.append(f"se{_num(self.se)}")
        if self.act:
            parts.append(f"n{self.act}")
        if self.noskip:
            parts.append("noskip")
        return "_".join(parts)

    @property
    def is_skip(self) -> bool:
        return self.type == "skip"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def parse_op(text: object, *, source: str, key: str) -> OpSpec:
    """Parse one op string; errors name the file and key path and say what was expected."""
    if not isinstance(text, str) or not text:
        raise SpecError(f"expected an op string like 'ir_k3_e4_se0.25', got {text!r}", source=source, key=key)
    tokens = text.strip().split("_")
    op_type = tokens[0]
    if op_type not in OP_TYPES:
        raise SpecError(f"unknown op type {op_type!r} in {text!r}; expected one of {', '.join(OP_TYPES)}",
                        source=source, key=key)
    if op_type == "skip":
        if len(tokens) > 1:
            raise SpecError(f"'skip' takes no options, got {text!r}", source=source, key=key)
        return OpSpec(type="skip", kernel=0)
    fields: dict = {}
    for token in tokens[1:]:
        if token == "noskip":
            fields["noskip"] = True
            continue
        match = _OPTION.match(token)
        if not match:
            raise SpecError(f"bad option {token!r} in {text!r}; expected k<int>, e<num>, s<int>, c<int>, "
                            "se<num>, n<act> or noskip", source=source, key=key)
        name, value = match.groups()
        if name in fields:
            raise SpecError(f"option {name!r} given twice in {text!r}", source=source, key=key)
        fields[name] = value
    try:
        op = OpSpec(
            type=op_type,
            kernel=int(fields.get("k", 3)),
            expand=float(fields.get("e", 1.0)),
            stride=int(fields["s"]) if "s" in fields else None,
            channels=int(fields["c"]) if "c" in fields else None,
            se=float(fields.get("se", 0.0)),
            act=fields.get("n"),
            noskip=bool(fields.get("noskip", False)),
        )
    except ValueError:
        raise SpecError(f"non-numeric option value in {text!r}", source=source, key=key) from None
    if not (1 <= op.kernel <= MAX_KERNEL and op.kernel % 2):
        raise SpecError(f"expected an odd kernel in 1..{MAX_KERNEL}, got {op.kernel} in {text!r}",
                        source=source, key=key)
    if op.type == "ir" and not (math.isfinite(op.expand) and 1 <= op.expand <= MAX_EXPAND):
        raise SpecError(f"expected an expansion in [1, {MAX_EXPAND:g}], got {op.expand} in {text!r}",
                        source=source, key=key)
    if op.type != "ir" and "e" in fields:
        raise SpecError(f"expansion 'e' applies to 'ir' ops only, got {text!r}", source=source, key=key)
    if not (math.isfinite(op.se) and 0 <= op.se <= 1):
        raise SpecError(f"SE ratio must be in (0, 1], got {op.se} in {text!r}", source=source, key=key)
    if op.type == "sep" and op.se:
        raise SpecError(f"'sep' head convs have no SE, got {text!r}", source=source, key=key)
    if op.stride is not None and op.stride not in (1, 2):
        raise SpecError(f"stride must be 1 or 2, got {op.stride} in {text!r}", source=source, key=key)
    if op.channels is not None and not 1 <= op.channels <= MAX_CHANNELS:
        raise SpecError(f"expected channels in 1..{MAX_CHANNELS}, got {op.channels} in {text!r}",
                        source=source, key=key)
    if op.act is not None and op.act not in ACTIVATIONS:
        raise SpecError(f"unknown activation {op.act!r} in {text!r}; expected one of {', '.join(ACTIVATIONS)}",
                        source=source, key=key)
    return op
