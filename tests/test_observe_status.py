"""`tracknas status RUN` (issue 15) on a run really killed mid-search, on a finished run and on a bad path."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, write_job_config
from nas.cli import main
from nas.search.state import SearchState


def _kill_mid_search(config: str, run_dir, cwd) -> SearchState:
    """Start `tracknas search` in a subprocess and SIGKILL it once its state holds an evaluated candidate
    and the search is not done; returns the state it left."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nas.cli", "search", config], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_path = run_dir / "search" / "state.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if state_path.is_file():
                state = SearchState.load(state_path)
                if state.evaluated and not state.done:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the search ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return SearchState.load(state_path)


def test_status_of_a_run_killed_mid_search(tmp_path, tiny_data, capsys):
    run_dir = tmp_path / "run"
    config = write_job_config(tmp_path / "job.yaml", tiny_data, run_dir, generations=30)
    state = _kill_mid_search(config, run_dir, tmp_path)
    assert main(["status", str(run_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    last_id, last = next(reversed(state.evaluated.items()))
    assert status["stage"] == "search" and status["resumable"] is True and status["reason"] is None
    assert status["last_candidate"]["arch_id"] == last_id and status["last_candidate"]["fitness"] == last["fitness"]
    assert status["supernet"] == {"epochs_done": 2, "epochs": 2, "checkpoint": True}
    search = status["search"]
    assert search["evaluated"] == len(state.evaluated) >= 1 and search["generations"] == 30
    assert search["generation"] == state.generation and search["done"] is False
    best = max(r["fitness"] for r in state.evaluated.values())
    assert status["best"]["fitness"] == best and state.evaluated[status["best"]["arch_id"]]["fitness"] == best
    assert status["eta_s"] is not None and status["eta_s"] > 0  # 29+ generations are still to come
    assert main(["status", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert f"last      {last_id}" in text and "resumable yes" in text and "search generation" in text


def test_status_of_a_finished_run_and_of_a_bad_path(tmp_path, tiny_data, capsys):
    run_dir = tmp_path / "run"
    assert main(["search", write_job_config(tmp_path / "job.yaml", tiny_data, run_dir), "--no-tb"]) == 0
    capsys.readouterr()
    assert main(["status", str(run_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    best = json.loads((run_dir / "best.json").read_text())
    assert status["stage"] == "finished" and status["resumable"] is False and status["reason"] == "finished"
    assert status["best"]["arch_id"] == best["arch_id"] and status["best"]["fitness"] == best["fitness"]
    assert status["search"]["done"] is True and status["search"]["evaluated"] == 12
    assert main(["status", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a run directory" in err
    training = tmp_path / "training"  # killed after the supernet's first epoch
    (training / "supernet").mkdir(parents=True)
    (training / "config.json").write_text((run_dir / "config.json").read_text())
    history = json.loads((run_dir / "supernet" / "history.json").read_text())
    (training / "supernet" / "history.json").write_text(json.dumps(history[:1]))
    assert main(["status", str(training)]) == 0
    text = capsys.readouterr().out
    assert "stage     supernet training, epoch 2 of 2" in text and "resumable yes" in text
    assert main(["status", str(training), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["eta_s"] == pytest.approx(history[0]["seconds"], abs=0.05) and status["search"] is None
    broken = tmp_path / "broken"
    (broken / "search").mkdir(parents=True)
    (broken / "config.json").write_text((run_dir / "config.json").read_text())
    (broken / "search" / "state.json").write_text('{"schema": 1}')
    assert main(["status", str(broken), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["resumable"] is False and "not a search state" in status["reason"]
