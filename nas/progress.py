"""Minimal progress reporting on stderr (no dependency): long jobs say where they are."""
from __future__ import annotations

import sys
import time


class Progress:
    """Prints `label: done/total (pct) elapsed, eta` at most every `interval` seconds and at the end."""

    def __init__(self, total: int, label: str, *, stream=None, interval: float = 1.0, enabled: bool = True):
        self.total, self.label, self.done = max(int(total), 0), label, 0
        self.stream = stream or sys.stderr
        self.interval, self.enabled = interval, enabled
        self.start = self._last = time.monotonic()

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last >= self.interval or self.done >= self.total):
            self._last = now
            elapsed = now - self.start
            eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
            pct = 100.0 * self.done / self.total if self.total else 100.0
            extra = f" {note}" if note else ""
            print(f"{self.label}: {self.done}/{self.total} ({pct:.0f}%) {elapsed:.1f}s elapsed, "
                  f"eta {eta:.1f}s{extra}", file=self.stream, flush=True)

