"""`tracknas status RUN` (where a running or interrupted run stands) and `tracknas report RUN` (one
self-contained HTML page about a finished run), both read from the run directory alone."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="stage, progress, ETA, best so far and resumability of a run directory")
    p.add_argument("run_dir", type=Path, metavar="RUN", help="run directory (runs/<name>)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_status)

    r = sub.add_parser("report", help="one self-contained HTML page about a finished run")
    r.add_argument("run_dir", type=Path, metavar="RUN", help="run directory (runs/<name>)")
    r.add_argument("-o", "--out", type=Path, help="output file (default RUN/report.html)")
    r.set_defaults(func=_report)


def _status(args: argparse.Namespace) -> int:
    from nas.jobs.status import format_status, run_status

    status = run_status(args.run_dir)
    print(json.dumps(status) if args.json else format_status(status))
    return 0


def _report(args: argparse.Namespace) -> int:
    from nas.jobs.report_html import write_report

    print(f"wrote {write_report(args.run_dir, args.out)}")
    return 0
