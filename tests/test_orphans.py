"""Worker processes die with their driver: kill -9 of `evaluate --workers 2` leaves no tracknas worker.

Why: orphaned pool workers (~300 MB each) and their resource tracker kept running (issue 16).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import REPO
from procnet import descendants


def _alive(pids: set[int]) -> set[int]:
    """Pids still running (zombies count as gone)."""
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
        except OSError:
            pass
    return alive


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_kill_9_of_the_driver_leaves_no_worker(tmp_path, tiny_data):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "nas.cli", "evaluate", "lighttrack-mobile", "--dataset",
                               str(tiny_data), "--split", "train", "--results", str(tmp_path / "out"),
                               "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while len(workers) < 2 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.2)
        workers = {p for p in descendants(driver.pid) - {driver.pid} if "multiprocessing" in _cmdline(p)}
    assert len(workers) >= 2, "the pool never started two workers"
    time.sleep(0.5)
    children = descendants(driver.pid) - {driver.pid}
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    end = time.monotonic() + 10
    while _alive(children) and time.monotonic() < end:
        time.sleep(0.2)
    assert not _alive(children), {p: _cmdline(p)[:80] for p in _alive(children)}
