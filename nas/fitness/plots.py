"""Success and precision plots (one PNG, two panels) from one-pass score reports.

Drawn on a bare matplotlib `Figure` (Agg canvas, no pyplot state), so they render on headless
machines and never touch the caller's backend.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

from nas.fitness.metrics import PRECISION_THRESHOLDS, REPORT_INDEX, SUCCESS_THRESHOLDS
from nas.io import atomic_write_bytes


def plot_success_precision(reports: dict[str, dict], out_path: str | os.PathLike, title: str = "") -> Path:
    """Write the success (IoU threshold) and precision (centre-error threshold) curves as a PNG.

    `reports` maps a legend label to a one-pass score report (`success_curve`, `precision_curve`,
    `auc`, `precision`, as `score_results` returns for the otb/lasot protocols); several labels
    compare trackers on one figure. The file is written atomically.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend state, renders via Agg

    fig = Figure(figsize=(10, 4.2))
    success, precision = fig.subplots(1, 2)
    for label, report in reports.items():
        success.plot(SUCCESS_THRESHOLDS, report["success_curve"], label=f"{label} [AUC {report['auc']:.3f}]")
        precision.plot(PRECISION_THRESHOLDS, report["precision_curve"],
                       label=f"{label} [P@{REPORT_INDEX} {report['precision']:.3f}]")
    success.set(xlabel="overlap threshold (IoU)", ylabel="success rate", title="Success plot",
                xlim=(0, 1), ylim=(0, 1.02))
    precision.set(xlabel="location error threshold (px)", ylabel="precision", title="Precision plot",
                  xlim=(0, PRECISION_THRESHOLDS[-1]), ylim=(0, 1.02))
    for ax in (success, precision):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left" if ax is success else "lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(out_path, buffer.getvalue())
