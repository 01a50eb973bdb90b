"""The one `tracknas` entry point: each subcommand is a thin call into a module.

Subsystems own their commands: a module listed in `COMMAND_MODULES` exposes
`register(subparsers)` which adds its parsers and sets `func(args) -> int` on each.
User errors (`TrackNASError`) print one line to stderr and exit with code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from nas.errors import TrackNASError

COMMAND_MODULES = (
    "nas.space.commands",
    "nas.cost.commands",
    "nas.data.commands",
    "nas.fitness.commands",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with exit code 2 (its default code)."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tracknas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TrackNASError as err:
        print(f"tracknas: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tracknas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
