"""`tracknas evaluate`: track a dataset with an architecture or a baseline, then score and plot it.

`--protocol vot` runs the VOT supervised (reset-based) experiment instead (`nas.fitness.vot`): result
files go to `<results>/<tracker>/<experiment>/<seq>/<seq>_NNN.txt`, sequences run one after another
and are always run again (`--workers`, `--backend` and `--no-resume` serve the one-pass protocols),
and the report is the one `tracknas score --protocol vot` gives for them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.argtypes import folder, int_range
from nas.commands.score import add_vot_options, format_vot_table
from nas.data.datasets import DATASET_FORMATS, open_dataset
from nas.fitness.harness import BACKENDS, METRICS_FILE, PLOT_FILE, run_tracker
from nas.fitness.scoring import PROTOCOLS
from nas.fitness.vot import PROTOCOL as VOT, REPETITIONS, SupervisedExperiment, check_vot_sequences, score_vot_results
from nas.io import atomic_write_json
from nas.progress import Progress
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
    parser.add_argument("--workers", type=int_range(1, 256), default=1, help="sequences tracked in parallel (default 1; vot: one after another)")
    parser.add_argument("--backend", choices=BACKENDS, default="process", help="parallel backend (default process)")
    parser.add_argument("--protocol", choices=(*PROTOCOLS, VOT),
                        help="scoring protocol (default: the dataset's; otb for TrackingNet); vot (the default for "
                             "VOT datasets) runs the VOT supervised experiment")
    add_vot_options(parser, tracker_help="vot: the tracker's folder name under --results (default: the target's name)")
    parser.add_argument("--repetitions", type=int_range(1, 1000), default=REPETITIONS,
                        help=f"vot: runs per sequence; three identical runs end it early (default {REPETITIONS})")
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
    if args.protocol == VOT or (args.protocol is None and sequences and sequences[0].dataset == VOT):
        return _run_vot(args, spec, sequences)
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


def _run_vot(args: argparse.Namespace, spec: LightTrackSpec, sequences: list) -> int:
    """The supervised experiment of `spec` on a VOT dataset, scored; metrics.json beside its results."""
    check_vot_sequences(sequences, args.dataset)
    experiment = SupervisedExperiment(str(args.results), args.tracker or spec.name, args.experiment, args.repetitions)
    bar = Progress(len(sequences), f"evaluate {experiment.tracker} (vot supervised)", interval=0.0)
    experiment.run(spec, sequences, progress=lambda note: bar.update(note=note))
    report = score_vot_results(sequences, args.results, experiment.tracker, args.experiment, args.year)
    atomic_write_json(Path(args.results) / experiment.tracker / args.experiment / METRICS_FILE, report)
    print(json.dumps(report) if args.json else format_vot_table(report))
    return 0
