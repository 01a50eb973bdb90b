"""The JSON form of an architecture: the only serialized form, versioned and self-checking.

```json
{"schema": "tracknas.arch/v1", "space": "lighttrack-mobile", "space_hash": "…", "arch_id": "…",
 "choices": {"backbone.c24.0": "ir_k7_e4_se0.25", …, "backbone.output": "c96.2",
             "heads.cls.channels": "256", "heads.cls.0": "sep_k5", …},
 "cost": {"params": …, "flops": …, "template_flops": …}, "provenance": {…}, "fitness": …}
```
`choices` alone defines the architecture; `cost`, `provenance`, `fitness` (with `fitness_std`,
`fitness_search`, `trials` and the `references` floors of a search's pick) and `metrics` are
informational and carried through untouched. A JSON made for another space (name or hash differs)
is rejected, so an architecture can never be silently rebuilt in a changed space.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.errors import ArchError
from nas.io import atomic_write_json, load_json
from nas.space.lighttrack_codec import from_lighttrack_string
from nas.space.space import Arch, SearchSpace

SCHEMA = "tracknas.arch/v1"
_INFO_KEYS = ("cost", "provenance", "fitness", "fitness_std", "fitness_search", "fitness_by_subset", "trials",
              "references", "metrics")
_KEYS = {"schema", "space", "space_hash", "arch_id", "choices", *_INFO_KEYS}


def arch_to_json(arch: Arch, **info: Any) -> dict:
    unknown = set(info) - set(_INFO_KEYS)
    if unknown:
        raise ValueError(f"unknown info keys {sorted(unknown)}; expected {_INFO_KEYS}")
    obj = {"schema": SCHEMA, "space": arch.space.name, "space_hash": arch.space.hash, "arch_id": arch.arch_id,
           "choices": arch.choices}
    obj.update({k: v for k, v in info.items() if v is not None})
    return obj


def arch_from_json(obj: Any, space: SearchSpace | Callable[[str], SearchSpace], *, source: str = "<json>") -> Arch:
    """Validate `obj` against `space` and build the Arch; `space` may be a resolver that gets the space
    name the JSON records (`nas.space.registry.load_space` resolves built-in names and paths)."""
    def fail(key: str, message: str) -> ArchError:
        return ArchError(message, source=source, key=key)

    if not isinstance(obj, dict):
        raise fail("", f"expected a JSON object, got {type(obj).__name__}")
    for key in ("schema", "space", "space_hash", "choices"):
        if key not in obj:
            raise fail(key, "missing required key")
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key; expected one of {', '.join(sorted(_KEYS))}")
    if obj["schema"] != SCHEMA:
        raise fail("schema", f"expected {SCHEMA!r}, got {obj['schema']!r}")
    if not isinstance(space, SearchSpace):
        space = space(str(obj["space"]))
    if obj["space"] != space.name:
        raise fail("space", f"architecture is for space {obj['space']!r}, expected {space.name!r}")
    if obj["space_hash"] != space.hash:
        raise fail("space_hash", f"architecture was made for a different version of space {space.name!r} "
                   f"(hash {obj['space_hash']!r}, expected {space.hash!r})")
    choices = obj["choices"]
    if not isinstance(choices, dict):
        raise fail("choices", "expected an object mapping gene name -> option")
    extra = sorted(set(choices) - set(space.gene_index))
    if extra:
        raise fail(f"choices.{extra[0]}", f"unknown gene for space {space.name!r}")
    genotype = []
    for gene in space.genes:
        if gene.name not in choices:
            raise fail(f"choices.{gene.name}", "missing gene")
        value = str(choices[gene.name])
        if value not in gene.labels:
            raise fail(f"choices.{gene.name}", f"expected one of {', '.join(gene.labels)}, got {choices[gene.name]!r}")
        genotype.append(gene.index_of(value))
    arch = Arch(space, tuple(genotype))
    if "arch_id" in obj and obj["arch_id"] != arch.arch_id:
        raise fail("arch_id", f"does not match the choices (expected {arch.arch_id!r}, got {obj['arch_id']!r})")
    return arch


def load_arch_json(path: str | Path) -> dict:
    return load_json(path, error=ArchError, what="architecture file")


def save_arch(path: str | Path, arch: Arch, **info: Any) -> Path:
    return atomic_write_json(path, arch_to_json(arch, **info))


def reference_arch(space: SearchSpace) -> tuple[str, Arch] | None:
    """The space's reference architecture (its DSL `reference`) and its name, or None without one."""
    ref = space.spec.reference
    if ref is None:
        return None
    source = f"{space.spec.source}: reference"
    if ref.lighttrack is not None:
        return ref.name, from_lighttrack_string(space, ref.lighttrack, source=source)
    obj = {"schema": SCHEMA, "space": space.name, "space_hash": space.hash, "choices": dict(ref.choices)}
    return ref.name, arch_from_json(obj, space, source=source)
