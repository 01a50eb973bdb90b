"""argparse `type=` checks: a bad option value is a one-line usage error (exit 2) before any work."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def _in_range(convert: Callable[[str], float], name: str, low: float, high: float, expected: str
              ) -> Callable[[str], float]:
    """An argparse type: `convert(text)` within [low, high] (NaN fails the comparison), else `expected`."""
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = name
    return parse


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An integer in low..high."""
    return _in_range(int, "integer", low, high, f"an integer in {low}..{high}")


def number_range(low: float, high: float) -> Callable[[str], float]:
    """A finite number in [low, high]."""
    return _in_range(float, "number", low, high, f"a number in [{low:g}, {high:g}]")


def folder(text: str) -> Path:
    """A folder to write into: missing (it is created) or a directory, never a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: expected a folder, got a file")
    return path


def existing_folder(text: str) -> Path:
    """A folder to read from: it must exist and be a directory."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: expected an existing folder, got "
                                         f"{'a file' if path.exists() else 'nothing (not found)'}")
    return path
