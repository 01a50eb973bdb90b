"""TensorBoard event files of a run (`runs/<name>/tb/<part>/`), the one place tracknas writes them.

Why one module: supernet training and the search both log, and `--no-tb` must switch both off. An
`EventLog` made with `log_dir=None` accepts every call and writes nothing, so callers never branch.
Writing only reads values the caller already computed (no RNG, no extra forward pass), so a run's
results are the same with or without event files; tensorboardX's background writer keeps it cheap.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TB_DIR = "tb"


def tb_dir(run_dir: str | Path, part: str, enabled: bool = True) -> Path | None:
    """`run_dir/tb/part`, or None when event files are switched off (`--no-tb`)."""
    return Path(run_dir) / TB_DIR / part if enabled else None


class EventLog:
    """Scalars and markdown tables for TensorBoard; a no-op when `log_dir` is None."""

    def __init__(self, log_dir: Path | None):
        self._writer = None
        if log_dir is not None:
            from tensorboardX import SummaryWriter

            Path(log_dir).mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(logdir=str(log_dir), flush_secs=10)

    def scalars(self, step: int, values: Mapping[str, Any]) -> None:
        """One scalar per tag at `step`; None and non-finite values (a failed candidate) are left out."""
        if self._writer is None:
            return
        for tag, value in values.items():
            if value is not None and math.isfinite(float(value)):
                self._writer.add_scalar(tag, float(value), step)

    def table(self, tag: str, step: int, header: list[str], rows: list[list[Any]]) -> None:
        """A markdown table (TensorBoard's text tab renders it) at `step`."""
        if self._writer is None or not rows:
            return
        lines = [" | ".join(header), " | ".join("---" for _ in header)]
        lines += [" | ".join(str(cell) for cell in row) for row in rows]
        self._writer.add_text(tag, "\n".join(lines), step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
