"""`tracknas score`: benchmark numbers of a results folder, as a table or one JSON object."""
from __future__ import annotations

import argparse
import json

from nas.argtypes import existing_folder
from nas.data.datasets import DATASET_FORMATS, open_dataset
from nas.fitness.scoring import PROTOCOLS, score_results

# (JSON key, column title, is a fraction shown as a percentage)
_COLUMNS = {"got10k": [("ao", "AO", True), ("sr50", "SR0.5", True), ("sr75", "SR0.75", True), ("fps", "FPS", False)],
            "one_pass": [("auc", "AUC", True), ("precision", "P@20", True), ("norm_precision", "NormP", True),
                         ("fps", "FPS", False)]}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("score", help="score tracking results against a dataset",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset root folder")
    parser.add_argument("--results", required=True, type=existing_folder, help="folder of <seq>.txt and <seq>_time.txt files")
    parser.add_argument("--protocol", required=True, choices=PROTOCOLS)
    parser.add_argument("--format", dest="fmt", choices=DATASET_FORMATS, help="dataset layout (default: detect)")
    parser.add_argument("--split", help="dataset split, e.g. val (GOT-10k default), test, train")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


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


def run(args: argparse.Namespace) -> int:
    sequences = open_dataset(args.dataset, args.fmt, args.split)
    report = score_results(sequences, args.results, args.protocol)
    print(json.dumps(report) if args.json else format_table(report))
    return 0
