"""`tracknas score`: benchmark numbers of a results folder, as a table or one JSON object.

`--protocol vot` reads a VOT workspace's results (`<results>/<tracker>/<experiment>/<seq>/<seq>_NNN.txt`)
and reports the supervised protocol's accuracy, robustness, failures and EAO (`nas.fitness.vot`).
"""
from __future__ import annotations

import argparse
import json

from nas.argtypes import existing_folder
from nas.data.datasets import DATASET_FORMATS, open_dataset
from nas.errors import ConfigError
from nas.fitness.scoring import PROTOCOLS, score_results
from nas.fitness.vot import DEFAULT_EXPERIMENT, DEFAULT_YEAR, EAO_INTERVALS, PROTOCOL as VOT, score_vot_results

# (JSON key, column title, is a fraction shown as a percentage)
_COLUMNS = {"got10k": [("ao", "AO", True), ("sr50", "SR0.5", True), ("sr75", "SR0.75", True), ("fps", "FPS", False)],
            "one_pass": [("auc", "AUC", True), ("precision", "P@20", True), ("norm_precision", "NormP", True),
                         ("fps", "FPS", False)]}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("score", help="score tracking results against a dataset",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset root folder")
    parser.add_argument("--results", required=True, type=existing_folder,
                        help="folder of <seq>.txt and <seq>_time.txt files (vot: the results root holding <tracker>/)")
    parser.add_argument("--protocol", required=True, choices=(*PROTOCOLS, VOT))
    parser.add_argument("--format", dest="fmt", choices=DATASET_FORMATS, help="dataset layout (default: detect)")
    parser.add_argument("--split", help="dataset split, e.g. val (GOT-10k default), test, train")
    add_vot_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


def add_vot_options(parser: argparse.ArgumentParser, tracker_help: str = "tracker folder under --results (vot)") -> None:
    parser.add_argument("--tracker", help=tracker_help)
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                        help=f"VOT experiment folder (default {DEFAULT_EXPERIMENT})")
    parser.add_argument("--year", type=int, choices=sorted(EAO_INTERVALS), default=DEFAULT_YEAR,
                        help=f"VOT year whose EAO interval is used (default {DEFAULT_YEAR})")


def _cell(value: float | None, percent: bool) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}" if percent else f"{value:.1f}"


def format_table(report: dict, extra_rows: dict[str, dict] | None = None) -> str:
    """Per-sequence rows, the overall row, then any `extra_rows` (e.g. the identity floor), aligned."""
    columns = _COLUMNS["got10k" if report["protocol"] == "got10k" else "one_pass"]
    extra = extra_rows or {}
    names = [*report["per_sequence"], "OVERALL", *extra]
    width = max(len(name) for name in names)
    lines = [f"{'sequence':<{width}}" + "".join(f"{title:>9}" for _, title, _ in columns)]
    for name in names:
        row = report if name == "OVERALL" else extra[name] if name in extra else report["per_sequence"][name]
        lines.append(f"{name:<{width}}" + "".join(f"{_cell(row[key], pct):>9}" for key, _, pct in columns))
    return "\n".join(lines)


def format_vot_table(report: dict) -> str:
    """Per-sequence accuracy and failures, then the overall accuracy, robustness, failures and EAO."""
    names = [*report["sequences"], "OVERALL"]
    width = max(len(name) for name in names)
    lines = [f"{'sequence':<{width}}{'A':>9}{'failures':>10}"]
    lines += [f"{name:<{width}}{100 * row['accuracy']:>9.1f}{row['failures']:>10.2f}"
              for name, row in report["sequences"].items()]
    eao = "-" if report["eao"] is None else f"{report['eao']:.4f}"
    lines.append(f"{'OVERALL':<{width}}{100 * report['accuracy']:>9.1f}{report['failures']:>10.2f}"
                 f"   R {report['robustness']:.4f}  EAO(VOT{report['year']}) {eao}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.protocol == VOT and not args.tracker:
        raise ConfigError("--protocol vot needs --tracker NAME (the folder under --results)", key="--tracker")
    sequences = open_dataset(args.dataset, args.fmt, args.split)
    if args.protocol == VOT:
        report = score_vot_results(sequences, args.results, args.tracker, args.experiment, args.year)
        print(json.dumps(report) if args.json else format_vot_table(report))
        return 0
    report = score_results(sequences, args.results, args.protocol)
    print(json.dumps(report) if args.json else format_table(report))
    return 0
