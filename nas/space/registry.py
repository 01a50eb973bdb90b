"""Named search spaces: the built-in DSL files shipped in the `search_spaces` package, or any path."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from nas.errors import SpecError
from nas.space.arch import arch_from_json, load_arch_json, reference_arch
from nas.space.space import Arch, SearchSpace
from nas.space.spec import load_spec_file


def _builtin_dir() -> Path:
    return Path(str(resources.files("search_spaces")))


def list_spaces() -> list[str]:
    """Names of the built-in spaces (one `<name>.yaml` each)."""
    return sorted(p.stem for p in _builtin_dir().glob("*.yaml"))


def resolve_space_file(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SpecError("search-space file not found", source=text)
        return path.resolve()
    builtin = _builtin_dir() / f"{text}.yaml"
    if builtin.is_file():
        return builtin
    raise SpecError(f"unknown search space {text!r}; expected one of {', '.join(list_spaces())} "
                    "or a path to a .yaml file")


@lru_cache(maxsize=32)
def _load(path: Path, mtime_ns: int) -> SearchSpace:
    space = SearchSpace(load_spec_file(path))
    reference_arch(space)  # a reference that is not an architecture of the space fails here, up front
    return space


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Parse, validate and flatten a space (cached per file and modification time)."""
    path = resolve_space_file(name_or_path)
    return _load(path, path.stat().st_mtime_ns)


def load_arch(path: str | Path, space: SearchSpace | None = None) -> Arch:
    """Read and validate an architecture JSON file; its space is the one given, or the one it names."""
    return arch_from_json(load_arch_json(path), space or load_space, source=str(path))
