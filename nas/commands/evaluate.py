"""`tracknas evaluate`: track a dataset with an architecture or a baseline, then score and plot it."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.argtypes import folder, int_range
from nas.data.datasets import DATASET_FORMATS, open_dataset
from nas.fitness.harness import BACKENDS, METRICS_FILE, PLOT_FILE, run_tracker
from nas.fitness.scoring import PROTOCOLS
from trackers.identity import IdentityTracker
from trackers.lighttrack.tracker import BASELINES, PRESETS, LightTrackSpec, preset
from trackers.runtime import DEFAULT_RUNTIME, RUNTIMES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="track and score a dataset with one tracker",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("target", metavar="TARGET",
                        help=f"architecture JSON file, export directory (tracknas export), or a baseline: "
                             f"{', '.join(BASELINES)}")
    parser.add_argument("--weights", metavar="CKPT", help="state-dict checkpoint (default: random weights)")
    parser.add_argument("--dataset", required=True, help="dataset root folder")
    parser.add_argument("--format", dest="fmt", choices=DATASET_FORMATS, help="dataset layout (default: detect)")
    parser.add_argument("--split", help="dataset split, e.g. val (GOT-10k default), test, train")
    parser.add_argument("--results", required=True, metavar="OUT", type=folder, help="folder for result files, metrics, plot")
    parser.add_argument("--workers", type=int_range(1, 256), default=1, help="sequences tracked in parallel (default 1)")
    parser.add_argument("--backend", choices=BACKENDS, default="process", help="parallel backend (default process)")
    parser.add_argument("--protocol", choices=PROTOCOLS,
                        help="scoring protocol (default: the dataset's; otb for TrackingNet)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default",
                        help="tracker hyper-parameters (default: Ocean's 0.062/0.38/0.765)")
    parser.add_argument("--runtime", choices=RUNTIMES, default=DEFAULT_RUNTIME,
                        help="what runs the network: torch (eager) or onnxruntime (extra 'onnx'; default torch)")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="re-run sequences that already have complete results")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.commands.score import format_table

    spec = LightTrackSpec(args.target, preset(args.preset), weights=args.weights).with_runtime(args.runtime)
    spec()  # fail here, with one line, on a bad architecture or checkpoint rather than in every worker
    sequences = open_dataset(args.dataset, args.fmt, args.split)
    report = run_tracker(spec, sequences, args.results, workers=args.workers, backend=args.backend,
                         resume=args.resume, protocol=args.protocol, label=spec.name)
    if report["scored"]:
        # the do-nothing floor on the same frames, through the same harness and scoring
        floor = run_tracker(IdentityTracker, sequences, Path(args.results) / "identity", backend="serial",
                            resume=False, protocol=report["protocol"], progress=False, label="identity")
        report["identity"] = {k: v for k, v in floor.items() if k not in ("per_sequence", "run")
                              and not k.endswith("_curve")}
    if args.json:
        print(json.dumps(report))
    elif report["scored"]:
        print(format_table(report, extra_rows={"IDENTITY (floor)": report["identity"]}))
        print(f"metrics: {args.results}/{METRICS_FILE}  plot: {args.results}/{PLOT_FILE}")
    else:
        print(f"{len(sequences)} sequences tracked; only their first box is annotated, so they are not "
              f"scored here: submit the result files in {args.results} to the benchmark server")
    return 0
