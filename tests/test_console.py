"""A quiet, useful console (issue 14, point 5): a `--workers 2` search shows tracknas's own progress, once.

Why: Ray's internal messages (the Train controller's state-API warnings, core_worker errors,
TrainingReport dumps, "Started a local Ray instance") reached the terminal, and every supernet
progress line was printed twice (Ray Train's print patch tees a worker's print to stdout and to
stderr, and both were forwarded to the driver). Ray's output belongs in `runs/<name>/logs/`.
"""
from __future__ import annotations

import io
import os
import re
import tempfile
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY_SPACE, write_job_config, write_train_config
from nas.progress import Progress
from tbevents import read_events

RAY_INTERNAL = re.compile(
    r"core_worker|raylet|gcs_|\(RayTrainWorker|\(TrainController|\(PlacementGroupCleaner|\(_FitnessActor|"
    r"\(pid=|pid=\d+\)|TrainingReport\(|Ray Train Controller|\[repeated |INFO worker\.py|"
    r"Started a local Ray instance|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(INFO|WARNING|ERROR)|"
    r"^\[\d{4}-\d\d-\d\d .*\] [IWE] |ray\.(train|tune|data|_private)|Traceback")
PROGRESS = re.compile(r"^(supernet epoch|epoch \d|search gen|re-scoring)")


@pytest.mark.slow
def test_two_worker_search_console_is_quiet_and_prints_each_line_once(tmp_path, tiny_data):
    run_dir = tmp_path / "run"
    config = write_job_config(tmp_path / "job.yaml", tiny_data, run_dir, population=4, top_k=2, mutations=2,
                              crossovers=2)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "nas.cli", "search", config, "--workers", "2"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    lines = [line for line in output.splitlines() if line.strip()]
    assert "\r" not in output  # not a terminal: plain lines, no carriage-return redraws
    noise = [line for line in lines if RAY_INTERNAL.search(line)]
    assert not noise, "Ray's own output reached the console:\n" + "\n".join(noise[:20])
    repeated = sorted({line for line in lines if lines.count(line) > 1})
    assert not repeated, "printed more than once:\n" + "\n".join(repeated)
    progress = [line for line in lines if PROGRESS.match(line)]
    assert any(line.startswith("epoch 2/2") for line in progress), output  # training progress still shown
    assert any(line.startswith("search gen") for line in progress), output
    assert any(line.startswith("re-scoring") for line in progress), output
    # Ray's logs went to the run directory: the driver's Ray log and a copy of each session's logs
    logs = run_dir / "logs"
    sessions = sorted(p for p in logs.iterdir() if p.name.startswith("session_"))
    assert len(sessions) == 2, sorted(logs.iterdir())  # supernet training, then the actor pool
    assert all(p.is_dir() and not p.is_symlink() and any(p.glob("worker-*.out")) for p in sessions)
    assert (logs / "ray-driver.log").is_file()
    # rank 0 is a Ray Train worker: its TensorBoard events still land in the run directory
    scalars, _ = read_events(run_dir / "tb" / "supernet")
    assert [step for step, _ in scalars["epoch/loss"]] == [1, 2]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_plain_lines_off_a_terminal_and_one_redrawn_line_on_it():
    plain, tty = io.StringIO(), _Terminal()
    for stream in (plain, tty):
        bar = Progress(50, "stage", stream=stream, interval=0.0)
        for _ in range(50):
            bar.update()
    assert "\r" not in plain.getvalue() and plain.getvalue().count("\n") == 50
    redrawn = tty.getvalue()
    assert redrawn.count("\r") == 50 and redrawn.count("\n") == 1 and redrawn.endswith("\n")
    assert redrawn.rsplit("\r", 1)[1].startswith("stage: 50/50 (100%)")


@pytest.mark.slow
def test_a_failed_ray_worker_is_one_line_naming_its_log(tmp_path, tiny_data):
    """3 workers cannot split a batch of 8: every Ray Train worker raises, the driver says so in one line."""
    config = write_train_config(tmp_path / "run.yaml", tiny_data, tmp_path / "out", epochs=1)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "nas.cli", "train-supernet", str(config), "--workers", "3"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("tracknas: error: supernet training failed on a Ray worker"), errors
    assert "must split into 3 shards" in errors[0]
    log = Path(errors[0].rsplit("; see ", 1)[1])
    assert log.is_relative_to(tmp_path / "out" / "logs") and "Traceback" in log.read_text(), log


def test_a_dead_or_failing_actor_prints_nothing_and_its_error_names_its_log(tmp_path, capfd):
    """An actor killed by a signal is retried; a candidate that always raises is recorded with the
    actor's log file. Ray's "(raylet) A worker died ..." message goes to the driver log, not the console."""
    import numpy as np
    import ray

    from nas.raytools import DRIVER_LOG
    from nas.search import RayPoolEvaluator
    from faults import FaultyFactory
    from nas.search.toy import ToyFactory
    from nas.space import load_space

    assert not ray.is_initialized(), "this test starts its own Ray, with the run's log directory"
    space = load_space(TINY_SPACE)
    killed, failing = (space.sample(np.random.default_rng(seed)).genotype for seed in (1, 2))
    factory = FaultyFactory(ToyFactory(str(TINY_SPACE)), kill_marker=str(tmp_path / "killed"), kill_on=killed,
                            fail_on=failing)
    logs = tmp_path / "logs"
    pool = RayPoolEvaluator(factory, workers=2, max_retries=1, num_cpus=2, log_dir=logs,
                            temp_dir=tempfile.mkdtemp(prefix="tn-ray-"))  # AF_UNIX paths must stay short
    try:
        outcomes = {o.genotype: o for o in pool.evaluate([killed, failing])}
    finally:
        pool.close()
    assert not outcomes[killed].failed and outcomes[killed].attempts == 2
    error = outcomes[failing].error
    assert "injected failure" in error, error
    log = Path(error.rsplit("(see ", 1)[1].rstrip(")"))
    assert log.is_file() and log.is_relative_to(logs) and log.name.startswith("worker-"), error
    captured = capfd.readouterr()
    assert not captured.out.strip() and not captured.err.strip(), captured
    assert "A worker died" in (logs / DRIVER_LOG).read_text()
