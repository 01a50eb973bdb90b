"""Evaluation harness: real Mobile model, real files, process workers, resume, and a real Ray instance."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from nas.data.datasets import open_dataset
from nas.data.sequence import Sequence
from nas.errors import ConfigError
from nas.fitness.harness import METRICS_FILE, PLOT_FILE, run_tracker, track_sequence
from nas.fitness.results import read_sequence_result, result_paths
from trackers.lighttrack.tracker import LightTrackSpec

SPEC = LightTrackSpec("lighttrack-mobile", device="cpu")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def synth_val(tiny_data) -> list[Sequence]:
    """The val split of the shared tiny synthetic GOT-10k tree (conftest `tiny_data`)."""
    sequences = open_dataset(tiny_data, "got10k", "val")
    assert len(sequences) >= 2
    return sequences


@pytest.fixture(scope="module")
def synth_run(synth_val, tmp_path_factory):
    """One 2-process-worker run over the synthetic val split, shared by the checks below."""
    out = tmp_path_factory.mktemp("synth_results")
    report = run_tracker(SPEC, synth_val, out, workers=2, backend="process", progress=False)
    return out, report


def test_process_run_writes_results_metrics_and_plot(synth_val, synth_run):
    out, report = synth_run
    assert report["protocol"] == "got10k"
    assert sorted(report["run"]["evaluated"]) == sorted(s.name for s in synth_val) and not report["run"]["resumed"]
    for seq in synth_val:
        boxes, times = read_sequence_result(out, seq.name)
        assert boxes.shape == (len(seq), 4) and np.isfinite(boxes).all()
        np.testing.assert_allclose(boxes[0], seq.boxes[0], atol=1e-4)  # first line is the init box
        assert times is not None and (times > 0).all()
    on_disk = json.loads((out / METRICS_FILE).read_text())
    assert on_disk["per_sequence"].keys() == {s.name for s in synth_val}
    assert 0.0 <= on_disk["ao"] <= 1.0 and on_disk["ao"] == pytest.approx(report["ao"])
    assert (out / PLOT_FILE).read_bytes().startswith(PNG_MAGIC)


def test_resume_runs_only_missing_sequences(synth_val, synth_run, tmp_path, capsys):
    out, _ = synth_run
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    *finished, interrupted = synth_val
    for seq in finished:  # these finished earlier, the last one was interrupted
        for path in result_paths(out, seq.name):
            (resumed / path.name).write_bytes(path.read_bytes())
    mtimes = {p.name: p.stat().st_mtime_ns for p in resumed.iterdir()}
    partial = result_paths(resumed, interrupted.name)[0]  # a short box file is not a finished sequence
    partial.write_text("".join(result_paths(out, interrupted.name)[0].read_text().splitlines(True)[:3]))
    report = run_tracker(SPEC, synth_val, resumed, workers=2, backend="process")
    assert report["run"]["evaluated"] == [interrupted.name]
    assert report["run"]["resumed"] == [s.name for s in finished]
    assert {p: resumed.joinpath(p).stat().st_mtime_ns for p in mtimes} == mtimes  # untouched
    progress_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("evaluate ")]
    assert len(progress_lines) == 1 and interrupted.name in progress_lines[0]
    # same seeded model in another process: the re-run sequence equals the first run's result
    np.testing.assert_array_equal(read_sequence_result(resumed, interrupted.name)[0],
                                  read_sequence_result(out, interrupted.name)[0])
    again = run_tracker(SPEC, synth_val, resumed, backend="process", progress=False)
    assert again["run"]["evaluated"] == [] and again["ao"] == pytest.approx(report["ao"])


def test_crossing_with_two_process_workers(otb_root, tmp_path):
    (crossing,) = open_dataset(otb_root, fmt="otb")
    sequences = [dataclasses.replace(crossing.head(n), name=f"Crossing-{n}") for n in (12, 16)]
    report = run_tracker(SPEC, sequences, tmp_path, workers=2, backend="process", progress=False)
    assert report["protocol"] == "otb" and report["run"]["workers"] == 2
    assert set(report["per_sequence"]) == {"Crossing-12", "Crossing-16"}
    assert 0.0 < report["auc"] <= 20 / 21 and len(report["success_curve"]) == 21
    assert (tmp_path / PLOT_FILE).read_bytes().startswith(PNG_MAGIC)
    assert json.loads((tmp_path / METRICS_FILE).read_text())["auc"] == pytest.approx(report["auc"])
    # a worker process (1 thread, spawned) gives the same boxes as tracking here in-process
    serial = tmp_path / "serial"
    track_sequence(SPEC, sequences[1], serial)
    np.testing.assert_allclose(read_sequence_result(serial, "Crossing-16")[0],
                               read_sequence_result(tmp_path, "Crossing-16")[0], atol=1e-3)


def test_ray_backend_on_local_loopback_instance(synth_val, synth_run, tmp_path, tmp_path_factory):
    from nas.raytools import init_ray  # before ray: loopback-only

    import ray

    # a short pytest temp dir: Ray's unix socket paths under it must stay within 107 bytes
    assert init_ray(num_cpus=2, temp_dir=tmp_path_factory.mktemp("ray"))
    try:
        assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
        report = run_tracker(SPEC, synth_val, tmp_path / "out", workers=2, backend="ray", progress=False)
        assert ray.is_initialized()  # the caller's instance is reused, not shut down
        listening = _listening_addresses()
        assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening
    finally:
        ray.shutdown()
    assert sorted(report["run"]["evaluated"]) == sorted(s.name for s in synth_val)
    out, first = synth_run
    for seq in synth_val:
        np.testing.assert_array_equal(read_sequence_result(tmp_path / "out", seq.name)[0],
                                      read_sequence_result(out, seq.name)[0])
    assert report["ao"] == pytest.approx(first["ao"])


def _listening_addresses() -> set[str]:
    """IPs that this process and its children (Ray's GCS, raylet, workers) listen on."""
    import psutil

    me = psutil.Process()
    addresses = set()
    for proc in [me, *me.children(recursive=True)]:
        try:
            addresses |= {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.NoSuchProcess:
            continue
    return addresses


def test_first_frame_only_split_is_tracked_not_scored(otb_root, tmp_path):
    (crossing,) = open_dataset(otb_root, fmt="otb")
    short = crossing.head(5)
    test_like = dataclasses.replace(short, name="Crossing-test", boxes=short.boxes[:1])  # only the init box
    report = run_tracker(SPEC, [test_like], tmp_path, backend="serial", progress=False)
    assert report["scored"] is False and report["run"]["evaluated"] == ["Crossing-test"]
    boxes, times = read_sequence_result(tmp_path, "Crossing-test")
    assert boxes.shape == (5, 4) and times.shape == (5,)
    assert json.loads((tmp_path / METRICS_FILE).read_text())["scored"] is False
    assert not (tmp_path / PLOT_FILE).exists()


@pytest.mark.parametrize("kwargs, match", [({"backend": "threads"}, "unknown backend"),
                                           ({"workers": 0}, "workers must be >= 1"),
                                           ({"protocol": "vot"}, "unknown protocol 'vot'")])
def test_bad_options_are_one_line_errors(synth_val, tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        run_tracker(SPEC, synth_val, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()  # rejected before any tracking


def test_evaluate_command_json(tiny_data, synth_val, synth_run, tmp_path, capsys):
    from nas.cli import main

    rc = main(["evaluate", "lighttrack-mobile", "--dataset", str(tiny_data), "--split", "val",
               "--results", str(tmp_path), "--backend", "serial", "--preset", "vot2019", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["protocol"] == "got10k" and set(report["per_sequence"]) == {s.name for s in synth_val}
    assert (tmp_path / METRICS_FILE).is_file() and (tmp_path / PLOT_FILE).is_file()
    # the VOT2019 preset really reaches the tracker: its boxes differ from the default-preset run
    default_dir, _ = synth_run
    assert any(not np.allclose(read_sequence_result(tmp_path, s.name)[0], read_sequence_result(default_dir, s.name)[0])
               for s in synth_val)


@pytest.mark.parametrize("target, weights, message", [
    ("no-such-arch.json", None, "not an architecture file nor a baseline"),
    ("lighttrack-mobile", "garbage.pt", "cannot read checkpoint"),
    ("lighttrack-mobile", "missing.pt", "weights file not found"),
])
def test_evaluate_command_bad_input(tiny_data, tmp_path, capsys, target, weights, message):
    from nas.cli import main

    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    argv = ["evaluate", target, "--dataset", str(tiny_data), "--results", str(tmp_path / "out")]
    if weights:
        argv += ["--weights", str(tmp_path / weights)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tracknas: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()
