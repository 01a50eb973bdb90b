"""The one `tracknas` entry point: each subcommand is a thin call into a module.

Every module in `nas.commands` exposes `register(subparsers)`, which adds its parsers and sets
`func(args) -> int` on each; modules are discovered, so commands never edit this file.
User errors (`TrackNASError`) print one line to stderr and exit with code 2; so does a Ray error that
reaches this far (Ray's traceback stays in the log file the line names).
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import warnings

import nas.commands
from nas.errors import DataWarning, SkippedSequence, TrackNASError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with exit code 2 (its default code)."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tracknas", description=nas.__doc__.strip())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for info in sorted(pkgutil.iter_modules(nas.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"nas.commands.{info.name}").register(sub)
    return parser


_PYTHON_SHOWWARNING = warnings.showwarning


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Dataset warnings as one line each (a skipped sequence is an error line); others as Python shows them."""
    if not issubclass(category, DataWarning):
        return _PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)
    level = "error" if issubclass(category, SkippedSequence) else "warning"
    print(f"tracknas: {level}: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # usage errors (exit 2) and --help (0) return a code like every other outcome
        return int(done.code or 0)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return int(args.func(args) or 0)
    except TrackNASError as err:
        print(f"tracknas: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tracknas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (`| head`): stop quietly, without a traceback at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("tracknas: error: output closed early (broken pipe)", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - only Ray's own errors are summarised; the rest keep their traceback
        if not type(err).__module__.startswith("ray."):
            raise
        from nas.raytools import ray_failure

        print(f"tracknas: error: {ray_failure('a Ray worker or actor failed', err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
