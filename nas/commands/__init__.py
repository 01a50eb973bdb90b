"""CLI subcommands: one module per command family, each exposing `register(subparsers)`.

`nas.cli` discovers every module in this package, so adding a command never touches the entry point.
"""
