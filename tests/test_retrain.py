"""`tracknas retrain`: standalone training of a found architecture, inherited weights, a Tune sweep."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import TINY_SPACE
from nas.cli import main
from nas.config import load_config
from nas.jobs.retrain import subnet_target
from nas.space import load_space, save_arch
from nas.supernet import Supernet
from nas.train.supernet_trainer import train
from tbevents import read_events
from trackers.lighttrack.export import load_export


@pytest.fixture()
def retrain_config(tmp_path, tiny_data):
    path = tmp_path / "retrain.yaml"
    path.write_text(yaml.safe_dump({
        "name": "rt", "space": str(TINY_SPACE), "seed": 0, "output": str(tmp_path / "run"),
        "data": {"root": str(tiny_data), "split": "train"},
        "supernet": {"epochs": 2, "pairs_per_epoch": 16, "batch_size": 8, "lr": 0.02, "warmup_epochs": 0},
        "fitness": {"val_split": "val"}}))
    arch = load_space(TINY_SPACE).sample(np.random.default_rng(4))
    save_arch(tmp_path / "arch.json", arch)
    return path, tmp_path / "arch.json", arch


def test_retrain_end_to_end_writes_an_evaluated_export(retrain_config):
    config, arch_path, arch = retrain_config
    assert main(["retrain", str(arch_path), str(config)]) == 0
    out = Path(load_config(config).output) / "retrain" / arch.arch_id
    summary = json.loads((out / "retrain.json").read_text())
    assert summary["epochs"] == 2 and np.isfinite(summary["final_loss"])
    assert 0.0 <= summary["metrics"]["ao"] <= 1.0
    rebuilt_arch, model = load_export(summary["export"])
    assert rebuilt_arch.arch_id == arch.arch_id
    trained = torch.load(out / "last.pt", weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, trained["model"][f"subnet.{key}"]), key
    scalars, _ = read_events(out / "tb")  # retraining logs as supernet training does
    history = json.loads((out / "history.json").read_text())
    assert [value for _, value in scalars["epoch/loss"]] == pytest.approx([h["loss"] for h in history])


def test_supernet_init_starts_from_the_inherited_weights(retrain_config, tmp_path):
    config, _, arch = retrain_config
    cfg = load_config(config)
    train(cfg, progress=False)  # the run's supernet
    target = subnet_target(cfg, arch, "supernet", tmp_path / "x")
    supernet = Supernet(arch.space)
    supernet.load_state_dict(torch.load(tmp_path / "run" / "supernet" / "last.pt", weights_only=True)["model"])
    expected = supernet.extract(arch).state_dict()
    for key, value in target.model.subnet.state_dict().items():
        assert torch.equal(value, expected[key]), key
    scratch = subnet_target(cfg, arch, "scratch", tmp_path / "y").model.subnet.state_dict()
    assert any(not torch.equal(scratch[k], expected[k]) for k in expected if k.endswith("weight"))


def test_tune_sweep_keeps_the_best_trial(retrain_config, tmp_path):
    import tempfile

    import ray

    from nas.raytools import init_ray
    from nas.jobs.retrain import retrain
    from nas.space.arch import arch_to_json

    config, _, arch = retrain_config
    cfg = load_config(config)
    init_ray(num_cpus=2, temp_dir=tempfile.mkdtemp(prefix="tn-ray-"))
    try:
        summary = retrain(cfg, arch, arch_to_json(arch), tune_trials=2, workers=2, out_dir=tmp_path / "sweep")
    finally:
        ray.shutdown()
    assert summary["tuned"] is not None and summary["tuned"]["lr"] > 0
    trials = sorted((tmp_path / "sweep" / "trials").iterdir())
    assert len(trials) == 2
    losses = {t.name: json.loads((t / "history.json").read_text())[-1]["loss"] for t in trials}
    for trial in trials:  # each Tune trial logs its own curves
        assert read_events(trial / "tb")[0]["epoch/loss"][-1][1] == pytest.approx(losses[trial.name])
    assert summary["tuned"]["loss"] == pytest.approx(min(losses.values()))
    assert 0.0 <= summary["metrics"]["ao"] <= 1.0
