"""argparse `type=` checks: a bad option value is a one-line usage error (exit 2) before any work."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An integer in low..high."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in {low}..{high}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def number_range(low: float, high: float) -> Callable[[str], float]:
    """A finite number in [low, high]."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:  # NaN fails the comparison too
            raise argparse.ArgumentTypeError(f"expected a number in [{low:g}, {high:g}], got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


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
