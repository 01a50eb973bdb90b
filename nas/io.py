"""Atomic file writes and bounded reads of user files.

Each writer writes a temp file in the destination directory, flushes and fsyncs it, then
`os.replace`s it over the destination, so a reader sees either the old or the new file.

Readers of user-written text (`read_text`, `load_yaml`, `load_json`) turn every way a file can be
wrong (missing, a directory, not UTF-8, too large, too deep, YAML aliases, NaN in JSON) into one
`TrackNASError` line naming the file. YAML aliases are refused outright: a 1 KB "billion laughs"
file otherwise expands for a minute and ends in MemoryError.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from nas.errors import TrackNASError

MAX_TEXT_BYTES = 16 * 2**20  # user-written YAML/JSON/list files; real ones are a few KB
MAX_NESTING = 64             # YAML/JSON nesting depth; real files use < 10


def _atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    path = Path(path)
    if path.is_dir():
        raise TrackNASError("is a directory; expected a file path to write", source=str(path))
    if path.parent.exists() and not path.parent.is_dir():
        raise TrackNASError("is a file; expected a directory to write into", source=str(path.parent))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    import torch

    return _atomic(path, lambda fh: torch.save(obj, fh))


def torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Load a checkpoint with `weights_only=True`: checkpoints never execute code. A missing, truncated
    or foreign file is one TrackNASError line."""
    import pickle
    import zipfile

    import torch

    if Path(path).is_dir():
        raise TrackNASError("is a directory; expected a checkpoint file", source=str(path))
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise TrackNASError("checkpoint not found", source=str(path)) from None
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise TrackNASError(f"not a readable torch checkpoint ({first})", source=str(path)) from None


def read_text(path: str | os.PathLike, *, error: type[TrackNASError] = TrackNASError, what: str = "file",
              max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A user file's UTF-8 text, or one `error` line saying why it cannot be read."""
    path = Path(path)
    try:
        if path.is_dir():
            raise error(f"is a directory; expected a {what}", source=str(path))
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{what} not found", source=str(path)) from None
    except OSError as err:
        raise error(f"cannot read {what} ({err.strerror})", source=str(path)) from None
    if len(data) > max_bytes:
        raise error(f"expected a {what} of at most {max_bytes // 2**20} MiB, got a larger one", source=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"expected UTF-8 text, got byte 0x{data[err.start]:02x} at offset {err.start}",
                    source=str(path)) from None


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of plain containers, stopping once past `limit`."""
    stack, deepest = [(obj, 1)], 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _yaml_loader():
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """SafeLoader that refuses aliases (`*name`, `<<: *name`) and nesting past MAX_NESTING."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed",
                                                  self.peek_event().start_mark)
            self._nesting = getattr(self, "_nesting", 0) + 1
            try:
                if self._nesting > MAX_NESTING:
                    raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_NESTING} levels",
                                                      self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self._nesting -= 1

    return NoAliasLoader


def load_yaml(path: str | os.PathLike, *, error: type[TrackNASError] = TrackNASError, what: str = "YAML file") -> Any:
    """Parse a user YAML file with the safe loader, no aliases and bounded nesting."""
    import yaml

    text = read_text(path, error=error, what=what)
    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise error(f"not valid YAML ({getattr(err, 'problem', None) or err})", source=str(path), key=where) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def load_json(path: str | os.PathLike, *, error: type[TrackNASError] = TrackNASError, what: str = "JSON file",
              max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """Parse a user JSON file: no NaN/Infinity, size and nesting bounded, every failure one line."""
    text = read_text(path, error=error, what=what, max_bytes=max_bytes)
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise error(f"not valid JSON ({err.msg} at line {err.lineno} column {err.colno})", source=str(path)) from None
    except ValueError as err:
        raise error(f"not valid JSON ({err})", source=str(path)) from None
    except RecursionError:
        obj = None
    else:
        if _depth(obj, MAX_NESTING) <= MAX_NESTING:
            return obj
    raise error(f"expected JSON nested at most {MAX_NESTING} levels deep", source=str(path))
