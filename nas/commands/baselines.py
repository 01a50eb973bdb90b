"""`tracknas baselines`: train the small baselines, then track and score every tracker in one harness."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.data.datasets import DATASET_FORMATS, open_dataset
from nas.data.sequence import Sequence
from nas.errors import ConfigError, DataError
from nas.fitness.baselines import (
    SPEED_PLOT, TABLE_JSON, TABLE_MD, BaselineConfig, baseline_specs, compare, format_markdown,
    load_baseline_config, plot_speed_accuracy, train_baselines, write_table)
from nas.fitness.harness import BACKENDS
from trackers.runtime import DEFAULT_RUNTIME, RUNTIMES, check_runtime

DEFAULT_SYNTH = Path("data/synth")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("baselines", help="train and compare the baseline trackers in one table",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset root folder to evaluate on")
    parser.add_argument("--format", dest="fmt", choices=DATASET_FORMATS, help="dataset layout (default: detect)")
    parser.add_argument("--split", help="evaluation split (default: the format's, val for GOT-10k)")
    parser.add_argument("--train-config", metavar="YAML",
                        help="baseline training settings (see nas.fitness.baselines.BaselineConfig)")
    parser.add_argument("--train-data", metavar="PATH",
                        help="GOT-10k-layout data whose train split trains the baselines (default: --dataset "
                             f"when it has a train split, else the synthetic data in {DEFAULT_SYNTH}, made if missing)")
    parser.add_argument("--out", default="runs/baselines", help="output folder (default runs/baselines)")
    parser.add_argument("--workers", type=int, default=1, help="sequences tracked in parallel (default 1)")
    parser.add_argument("--backend", choices=BACKENDS, default="process", help="parallel backend (default process)")
    parser.add_argument("--subnet", metavar="ARCH",
                        help="found LightTrack subnet: arch JSON or `tracknas export` directory "
                             "(default: none; LightTrack-Mobile with random weights stands in)")
    parser.add_argument("--subnet-weights", metavar="CKPT", help="state dict for an arch JSON --subnet")
    parser.add_argument("--runtime", choices=RUNTIMES, default=DEFAULT_RUNTIME,
                        help="what runs the networks that can run there (onnxruntime: the LightTrack ones, "
                             "extra 'onnx'); the others stay on torch (default torch)")
    parser.add_argument("--max-frames", type=int, metavar="M", help="track only the first M frames of each sequence")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="re-track sequences that already have results (checkpoints are kept)")
    parser.add_argument("--json", action="store_true", help="print the table as one JSON object")
    parser.set_defaults(func=run)


def _train_sequences(args: argparse.Namespace) -> list[Sequence]:
    """The train split of --train-data, of --dataset if it has one, else of the embedded synthetic data."""
    if args.train_data:
        return open_dataset(args.train_data, split="train")
    try:
        return open_dataset(args.dataset, args.fmt, "train")
    except DataError:
        pass
    if not (DEFAULT_SYNTH / "train" / "list.txt").is_file():
        from nas.data.synth import generate_dataset

        generate_dataset(DEFAULT_SYNTH, overwrite=True, progress=True)
    return open_dataset(DEFAULT_SYNTH, "got10k", "train")


def run(args: argparse.Namespace) -> int:
    if args.max_frames is not None and args.max_frames < 2:
        raise ConfigError(f"expected >= 2 frames, got {args.max_frames}", key="--max-frames")
    if args.subnet_weights and not args.subnet:
        raise ConfigError("--subnet-weights needs --subnet", key="--subnet-weights")
    check_runtime(args.runtime)
    config = load_baseline_config(args.train_config) if args.train_config else BaselineConfig()
    sequences = open_dataset(args.dataset, args.fmt, args.split)
    if args.max_frames:
        sequences = [seq.head(args.max_frames) for seq in sequences]
    out = Path(args.out)
    checkpoints = train_baselines(_train_sequences(args), out / "checkpoints", config, progress=not args.json)
    specs, notes = baseline_specs(config, checkpoints, args.subnet, args.subnet_weights, args.runtime)
    for spec in specs.values():
        spec()  # fail here, in one line, on a bad subnet or checkpoint rather than in every worker
    rows = compare(specs, sequences, out, workers=args.workers, backend=args.backend, resume=args.resume,
                   progress=not args.json, notes=notes)
    meta = {"dataset": str(args.dataset), "split": args.split, "num_sequences": len(sequences),
            "max_frames": args.max_frames, "train_config": args.train_config, "runtime": args.runtime}
    write_table(rows, out, meta)
    plot_speed_accuracy(rows, out / SPEED_PLOT)
    if args.json:
        print(json.dumps({**meta, "rows": rows}))
    else:
        print(format_markdown(rows), end="")
        print(f"table: {out / TABLE_JSON}, {out / TABLE_MD}  plot: {out / SPEED_PLOT}")
    return 0
