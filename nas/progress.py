"""Minimal progress reporting on stderr (no dependency): long jobs say where they are.

On a terminal the display is one line rewritten in place (carriage return), finished with a newline;
elsewhere (tests, CI, log files, a worker's progress log) it is a plain line at most every `interval`
seconds and one at the end, so captured output holds no carriage-return spam.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Prints `label: done/total (pct) elapsed, eta` at most every `interval` seconds and at the end."""

    TTY_INTERVAL = 0.2  # seconds between in-place redraws on a terminal

    def __init__(self, total: int, label: str, *, stream: TextIO | None = None, interval: float = 1.0,
                 enabled: bool = True):
        self.total, self.label, self.done = max(int(total), 0), label, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = _is_tty(self.stream)
        self.interval = min(interval, self.TTY_INTERVAL) if self.tty else interval
        self.start = self._last = time.monotonic()

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.monotonic()
        finished = self.done >= self.total
        if self.enabled and (now - self._last >= self.interval or finished):
            self._last = now
            elapsed = now - self.start
            eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
            pct = 100.0 * self.done / self.total if self.total else 100.0
            extra = f" {note}" if note else ""
            line = f"{self.label}: {self.done}/{self.total} ({pct:.0f}%) {elapsed:.1f}s elapsed, eta {eta:.1f}s{extra}"
            if self.tty:  # rewrite the line in place; erase what a longer previous line left behind
                self.stream.write(f"\r{line}\x1b[K" + ("\n" if finished else ""))
                self.stream.flush()
            else:
                print(line, file=self.stream, flush=True)
