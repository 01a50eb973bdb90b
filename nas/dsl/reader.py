"""Typed, located access to a parsed YAML mapping: every mistake becomes one `SpecError` line naming the
file, the key path and what was expected. Shared by the space parser and every head kind's parser."""
from __future__ import annotations

from typing import Any

from nas.dsl.grammar import OpSpec, parse_op
from nas.errors import SpecError


class SpecReader:
    """Typed access to a YAML mapping that reports the file and key path on every mistake."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str) -> SpecError:
        return SpecError(message, source=self.source, key=key)

    def mapping(self, node: Any, key: str, allowed: set[str], required: set[str]) -> dict:
        if not isinstance(node, dict):
            raise self.fail(key, f"expected a mapping, got {type(node).__name__}")
        unknown = sorted(set(map(str, node)) - allowed)
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}" if key else unknown[0],
                            f"unknown key; expected one of {', '.join(sorted(allowed))}")
        for name in sorted(required):
            if name not in node:
                raise self.fail(f"{key}.{name}" if key else name, "missing required key")
        return node

    def integer(self, node: dict, key: str, name: str, *, minimum: int = 1, maximum: int,
                default: int | None = None) -> int:
        value = node.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.fail(f"{key}.{name}", f"expected an integer in {minimum}..{maximum}, got {value!r}")
        return value

    def number(self, node: dict, key: str, name: str, default: float, *, maximum: float) -> float:
        """A finite number in (0, maximum]."""
        value = node.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= maximum:
            raise self.fail(f"{key}.{name}", f"expected a finite positive number in (0, {maximum:g}], got {value!r}")
        return float(value)

    def text(self, node: dict, key: str, name: str, choices: tuple[str, ...] | None = None,
             default: str | None = None) -> str:
        value = node.get(name, default)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{key}.{name}", f"expected a string, got {value!r}")
        if choices and value not in choices:
            raise self.fail(f"{key}.{name}", f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def op_list(self, node: Any, key: str, named: dict[str, tuple[OpSpec, ...]]) -> tuple[OpSpec, ...]:
        """A choice list: inline op strings and/or names of lists declared under `choices`."""
        items = [node] if isinstance(node, str) else node
        if not isinstance(items, list):
            raise self.fail(key, f"expected a list of op strings, got {type(node).__name__}")
        ops: list[OpSpec] = []
        for i, item in enumerate(items):
            if isinstance(item, str) and item in named:
                ops.extend(named[item])
            else:
                ops.append(parse_op(item, source=self.source, key=f"{key}[{i}]"))
        if not ops:
            raise self.fail(key, "empty choice list; expected at least one op")
        labels = [op.label for op in ops]
        duplicate = next((lab for lab in labels if labels.count(lab) > 1), None)
        if duplicate:
            raise self.fail(key, f"op {duplicate!r} listed twice")
        return tuple(ops)

    def int_choices(self, node: dict, key: str, name: str, *, minimum: int = 1, maximum: int,
                    odd: bool = False) -> tuple[int, ...]:
        """A non-empty list of distinct integers in minimum..maximum (odd ones when `odd`)."""
        values = node.get(name)
        if not isinstance(values, list) or not values:
            raise self.fail(f"{key}.{name}", "empty choice list; expected a non-empty list of integers")
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum or (odd and v % 2 == 0):
                what = "an odd integer" if odd else "an integer"
                raise self.fail(f"{key}.{name}[{i}]", f"expected {what} in {minimum}..{maximum}, got {v!r}")
        if len(set(values)) != len(values):
            raise self.fail(f"{key}.{name}", "choices must be distinct")
        return tuple(values)
