"""`tracknas data ...`: make the embedded default data (synthetic GOT-10k-layout sequences)."""
from __future__ import annotations

import argparse
import re
import time

from nas.data import synth
from nas.errors import ConfigError


def _size(text: str) -> tuple[int, int]:
    """Parse `WxH` (e.g. 320x240); a one-line ConfigError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(f"expected WxH such as 320x240, got {text!r}", key="--size")
    return int(match.group(1)), int(match.group(2))


def _synth(args: argparse.Namespace) -> int:
    start = time.monotonic()
    summary = synth.generate_dataset(args.out, sequences=args.sequences, frames=args.frames, seed=args.seed,
                                     val_fraction=args.val_fraction, size=_size(args.size),
                                     overwrite=args.force, progress=True)
    print(f"wrote {summary['train']} train + {summary['val']} val sequences of {summary['frames']} frames "
          f"({summary['size'][0]}x{summary['size'][1]}) to {summary['out_dir']} "
          f"in {time.monotonic() - start:.1f}s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `data synth`."""
    data = subparsers.add_parser("data", help="make or inspect tracking data")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("synth", help="write deterministic synthetic sequences (GOT-10k layout)",
                       description=synth.__doc__.splitlines()[0])
    p.add_argument("out", metavar="OUT", help="output directory: missing, empty, or made by an earlier synthesis")
    p.add_argument("--sequences", type=int, default=synth.DEFAULT_SEQUENCES,
                   help=f"total sequences, train + val (default {synth.DEFAULT_SEQUENCES})")
    p.add_argument("--frames", type=int, default=synth.DEFAULT_FRAMES,
                   help=f"frames per sequence (default {synth.DEFAULT_FRAMES})")
    p.add_argument("--seed", type=int, default=0, help="same seed, byte-identical files (default 0)")
    p.add_argument("--val-fraction", type=float, default=synth.DEFAULT_VAL_FRACTION,
                   help=f"share of sequences in val/ (default {synth.DEFAULT_VAL_FRACTION})")
    p.add_argument("--size", default="{}x{}".format(*synth.DEFAULT_SIZE),
                   help="frame size WxH (default %(default)s)")
    p.add_argument("--force", action="store_true",
                   help=f"regenerate data synthesis made before (only paths its {synth.MANIFEST} lists are replaced)")
    p.set_defaults(func=_synth)
