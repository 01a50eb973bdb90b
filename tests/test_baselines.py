"""`tracknas baselines`: small training runs, every baseline in the one harness, one comparison table."""
from __future__ import annotations

import contextlib
import io
import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nas.cli import main
from nas.data.datasets import open_dataset
from nas.fitness.baselines import (
    BASELINE_NAMES, IDENTITY_NAME, SUBNET_NAME, TABLE_JSON, TABLE_MD, SPEED_PLOT, CURVES_PLOT, baseline_specs, compare,
    frame_cost, parse_baseline_config)
from nas.fitness.metrics import rect_iou
from nas.fitness.results import read_sequence_result
from nas.io import torch_load
from nas.space import load_space
from nas.space.arch import save_arch
from trackers.dimp.spec import DiMPSpec
from trackers.gradnet.spec import GradNetSpec

# a handful of steps on tiny networks: the point is the plumbing, not the accuracy
TINY_TRAINING = {
    "seed": 0,
    "gradnet": {"epochs": 1, "pairs_per_epoch": 8, "batch_size": 4, "channels": [24, 32, 32, 32, 32],
                "tracker": {"response_up": 4}},
    "metartt": {"episodes": 4, "prune_steps": 4, "prune_lr": 0.03, "lasso_weight": 0.05,
                "channels": [16, 32, 64], "fc_widths": [64, 64],
                "tracker": {"n_pos_init": 64, "n_neg_init": 256, "n_candidates": 64, "n_pos_update": 16,
                            "n_neg_update": 48}},
    "dimp": {"epochs": 1, "episodes_per_epoch": 4, "batch_size": 2, "widths": [8, 16, 16, 32, 32],
             "feature_dim": 16, "image_sample_size": 96, "tracker": {"net_opt_iter": 3}},
}
CONFIG = parse_baseline_config(TINY_TRAINING, "<test>")
MAX_FRAMES = 8


@pytest.fixture(scope="module")
def cli_run(tiny_data, tmp_path_factory):
    """One `tracknas baselines` run on the tiny val split, with a sampled LightTrack subnet."""
    tmp = tmp_path_factory.mktemp("baselines")
    config = tmp / "train.yaml"
    config.write_text(yaml.safe_dump(TINY_TRAINING))
    arch = load_space("lighttrack-mobile").sample(np.random.default_rng(3))
    save_arch(tmp / "arch.json", arch)
    out = tmp / "out"
    argv = ["baselines", "--dataset", str(tiny_data), "--train-config", str(config), "--out", str(out),
            "--backend", "serial", "--max-frames", str(MAX_FRAMES), "--subnet", str(tmp / "arch.json")]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(argv)
    return code, stdout.getvalue(), out, argv


def _check_results(rows: list[dict], sequences: list) -> None:
    """Every tracker wrote complete, finite result files and sane metrics for every sequence."""
    for row in rows:
        for seq in sequences:
            boxes, times = read_sequence_result(row["results"], seq.name)
            assert boxes.shape == (len(seq), 4) and np.isfinite(boxes).all(), (row["name"], seq.name)
            assert (boxes[:, 2:] > 0).all() and (times > 0).all()
        metrics = json.loads((Path(row["results"]) / "metrics.json").read_text())
        assert metrics["auc"] == pytest.approx(row["auc"])
        for key in ("auc", "precision", "ao", "sr50"):
            assert 0.0 <= row[key] <= 1.0, (row["name"], key)
        if row["name"] == IDENTITY_NAME:  # the floor: the first box everywhere, no network
            assert (boxes == boxes[0]).all() and row["params"] == row["flops"] == 0
            continue
        assert row["fps"] > 0 and row["params"] > 0 and row["flops"] > 0, row["name"]


def test_cli_writes_one_table_with_every_tracker(cli_run, tiny_data):
    code, stdout, out, _ = cli_run
    assert code == 0
    names = [IDENTITY_NAME, *BASELINE_NAMES, SUBNET_NAME]
    table = json.loads((out / TABLE_JSON).read_text())
    assert [row["name"] for row in table["rows"]] == names
    assert table["num_sequences"] == 2 and table["max_frames"] == MAX_FRAMES
    sequences = [s.head(MAX_FRAMES) for s in open_dataset(tiny_data, "got10k", "val")]
    _check_results(table["rows"], sequences)
    markdown = (out / TABLE_MD).read_text()
    assert markdown in stdout
    body = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| tracker")]
    assert [line.split("|")[1].strip() for line in body] == names
    assert "random init" in dict(zip(names, body))["lighttrack-mobile"]
    for png in (SPEED_PLOT, CURVES_PLOT):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the pruned MetaRTT ran a physically smaller network than the unpruned one
    rows = {row["name"]: row for row in table["rows"]}
    assert rows["metartt-pruned"]["flops"] < rows["metartt"]["flops"]
    assert rows["metartt-pruned"]["params"] < rows["metartt"]["params"]


def test_cli_rerun_resumes_checkpoints_and_results(cli_run, capsys):
    code, _, out, argv = cli_run
    assert code == 0
    checkpoints = sorted((out / "checkpoints").glob("*.pt"))
    assert [p.stem for p in checkpoints] == sorted(["dimp", "metartt", "siamfc-gradnet"])
    stamps = {p: p.stat().st_mtime_ns for p in checkpoints}
    results = out / "siamfc-gradnet" / "GOT-10k_Val_000001.txt"
    result_stamp = results.stat().st_mtime_ns
    assert main([*argv, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows"] == json.loads((out / TABLE_JSON).read_text())["rows"]
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == stamps  # nothing retrained
    assert results.stat().st_mtime_ns == result_stamp  # nothing re-tracked


def test_checkpoints_reload_weights_only_into_working_trackers(cli_run, otb_root):
    out = cli_run[2] / "checkpoints"
    seq = open_dataset(otb_root, "otb")[0].head(4)
    for section in CONFIG.sections.values():
        path = out / f"{section.checkpoint_name}.pt"
        state = torch_load(path)  # weights_only=True
        state = state["model"] if section.key == "dimp" else state  # DiMP's also holds its resume state
        for name, spec in section.specs(str(path), CONFIG.seed).items():
            model = spec.build_model()
            initial = replace(spec, checkpoint=None).build_model().state_dict()
            assert {k: v.shape for k, v in initial.items()} == {k: v.shape for k, v in state.items()}, name
            for key, value in model.state_dict().items():
                assert torch.equal(value, state[key]), (name, key)
            assert any(not torch.equal(value, initial[key]) for key, value in state.items()), name  # it trained
            tracker = pickle.loads(pickle.dumps(spec))()  # the harness ships specs to worker processes
            assert tracker.name == name
            tracker.initialize(seq.frame(0), seq.boxes[0])
            for i in range(1, len(seq)):
                assert np.isfinite(tracker.track(seq.frame(i)).box).all(), name


def test_every_baseline_runs_in_the_harness_on_crossing(cli_run, otb_root, tmp_path):
    checkpoints = {p.stem: p for p in (cli_run[2] / "checkpoints").glob("*.pt")}
    specs, notes = baseline_specs(CONFIG, checkpoints)
    sequences = [open_dataset(otb_root, "otb")[0].head(15)]
    rows = compare(specs, sequences, tmp_path, backend="serial", progress=False, notes=notes)
    assert [row["name"] for row in rows] == [IDENTITY_NAME, *BASELINE_NAMES]
    _check_results(rows, sequences)
    # OTB has no cover labels: AO / SR0.5 are over every frame after the first, IoU bounded by the image
    seq = sequences[0]
    for row in rows:
        boxes, _ = read_sequence_result(row["results"], seq.name)
        ious = rect_iou(boxes[1:], seq.boxes[1:], bound=seq.image_size())
        assert row["ao"] == pytest.approx(ious.mean()) and row["sr50"] == pytest.approx((ious > 0.5).mean())


def test_per_frame_flops_follow_the_input_the_tracker_scores(otb_root):
    seq = open_dataset(otb_root, "otb")[0].head(2)
    gradnet = GradNetSpec(None, CONFIG["gradnet"].tracker_settings(), CONFIG["gradnet"].net())
    one_scale = frame_cost(replace(gradnet, config=replace(gradnet.config, num_scales=1)), seq)
    three_scales = frame_cost(gradnet, seq)
    assert three_scales["params"] == one_scale["params"]
    assert 2.5 * one_scale["flops"] < three_scales["flops"] <= 3 * one_scale["flops"]
    dimp = DiMPSpec(None, CONFIG["dimp"].tracker_settings(), CONFIG["dimp"].train_config().net)
    small, large = frame_cost(dimp, seq), frame_cost(replace(dimp, net=replace(dimp.net, image_sample_size=192)), seq)
    assert 3.5 * small["flops"] < large["flops"] < 4.5 * small["flops"]  # 2x the side, ~4x the pixels


@pytest.mark.parametrize("args, message", [
    (["--dataset", "{tmp}/missing"], "dataset root is not a directory"),
    (["--dataset", "{data}", "--train-config", "{tmp}/bad.yaml"], "gradnet.epochs"),
    (["--dataset", "{data}", "--max-frames", "1"], "--max-frames"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tiny_data, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("gradnet: {epochs: 0}\n")
    argv = ["baselines", *(a.format(tmp=tmp_path, data=tiny_data) for a in args), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "out" / TABLE_JSON).exists()


def test_train_config_rejects_unknown_keys_and_bad_widths():
    from nas.errors import ConfigError

    for bad, key in (({"gradnet": {"epoch": 1}}, "gradnet.epoch"),
                     ({"metartt": {"channels": [8, 8]}}, "metartt.channels"),
                     ({"gradnet": {"channels": [8, 8, 8, 8, 9]}}, "gradnet.channels"),
                     ({"dimp": {"image_sample_size": 100}}, "dimp.image_sample_size"),
                     ({"metartt": {"tracker": {"n_neg_init": "many"}}}, "metartt.tracker.n_neg_init")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            parse_baseline_config(bad, "<test>")
