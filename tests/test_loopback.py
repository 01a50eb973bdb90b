"""Loopback only: a 2-worker Ray Train run listens on nothing but 127.0.0.0/8 and ::1.

Why: Ray Train's c10d TCPStore is unauthenticated; before `nas.raytrain` it listened on `*:<port>`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, write_train_config
from procnet import descendants, is_loopback, listening


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


@pytest.mark.slow
def test_two_worker_training_listens_on_loopback_only(tmp_path, tiny_data):
    config = write_train_config(tmp_path / "run.yaml", tiny_data, tmp_path / "out", epochs=1, pairs_per_epoch=64)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "nas.cli", "train-supernet", str(config), "--workers", "2"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen: dict[str, set[str]] = {}  # address -> every title its owner showed (Ray retitles a worker when it runs)
    deadline = time.monotonic() + 240
    while driver.poll() is None and time.monotonic() < deadline:
        for addr, pid in listening(descendants(driver.pid)).items():
            seen.setdefault(addr, set()).add(_cmdline(pid)[:120])
        time.sleep(0.05)
    out = driver.communicate(timeout=60)[0].decode(errors="replace")
    assert driver.returncode == 0, out[-2000:]
    public = {addr: titles for addr, titles in seen.items() if not is_loopback(addr)}
    assert not public, public
    # the check ran while the Ray Train workers (which own the process group's store) were listening
    assert any("RayTrainWorker" in title for titles in seen.values() for title in titles), seen
