"""Supernet training (Alg. 1): losses, schedules, path samplers, convergence, resume and Ray Train."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
import torch

from conftest import REPO, TINY_SPACE, write_train_config
from nas.config import load_config
from nas.data.datasets import open_dataset
from nas.data.pairs import PairSampler, collate
from nas.errors import ConfigError
from nas.io import torch_load
from nas.space import Bounds, load_space
from nas.space.arch import reference_arch
from nas.supernet import Supernet
from nas.train.lr import epoch_lr
from nas.train.paths import PathSampler
from nas.train.supernet_trainer import launch, supernet_dir, train
from trackers.lighttrack.losses import balanced_bce, iou_loss, tracking_loss


def test_balanced_bce_weights_positives_and_negatives_equally():
    logits = torch.zeros(1, 1, 2, 2)
    labels = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert balanced_bce(logits, labels).item() == pytest.approx(np.log(2))
    logits = torch.tensor([[[[10.0, -10.0], [-10.0, 10.0]]]])  # one negative badly wrong
    expected = 0.5 * np.log1p(np.exp(-10)) + 0.5 * (2 * np.log1p(np.exp(-10)) + np.log1p(np.exp(10))) / 3
    assert balanced_bce(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_iou_loss_is_zero_for_exact_boxes_and_ignores_cells_outside():
    target = torch.rand(2, 4, 3, 3) * 10 + 1
    weight = torch.zeros(2, 3, 3)
    weight[:, 1, 1] = 1
    assert torch.allclose(iou_loss(target.clone(), target, weight), torch.zeros(2), atol=1e-6)
    target_outside = target.clone()
    target_outside[:, :, 0, 0] = -5  # outside the box: negative distances must not matter
    pred = target.clone().requires_grad_(True)
    loss = iou_loss(pred * 1.5, target_outside, weight).sum()
    loss.backward()
    assert torch.isfinite(pred.grad).all() and loss.item() > 0


def test_lr_schedule_warms_up_then_decays_log_linearly():
    kw = dict(epochs=10, base=0.03, warmup_epochs=5, warmup_start=0.01, end=1e-4)
    assert epoch_lr(0, **kw) == pytest.approx(0.01)
    assert epoch_lr(5, **kw) == pytest.approx(0.03)
    assert epoch_lr(9, **kw) == pytest.approx(1e-4)
    decay = [epoch_lr(e, **kw) for e in range(5, 10)]
    ratios = np.array(decay[1:]) / np.array(decay[:-1])
    assert np.allclose(ratios, ratios[0]) and ratios[0] < 1


def test_path_samplers():
    space = load_space(TINY_SPACE)
    uniform = PathSampler(space, "uniform", seed=3)
    assert uniform(5).genotype == PathSampler(space, "uniform", seed=3)(5).genotype
    assert len({uniform(s).arch_id for s in range(20)}) > 10
    fair = PathSampler(space, "fair", seed=3)
    cycle = int(np.lcm.reduce(space.cardinalities))
    counts = [Counter(fair(s).genotype[g] for s in range(cycle)) for g in range(len(space.genes))]
    for g, card in enumerate(space.cardinalities):
        assert set(counts[g].values()) == {cycle // card}, space.genes[g].name
    from nas.cost.table import cost_table

    table = cost_table(space)
    sandwich = PathSampler(space, "sandwich", seed=3)
    low, high = table.extremes()["flops"]
    assert table.flops(sandwich(0)) == high and table.flops(sandwich(1)) == low
    assert table.flops(sandwich(4)) == high
    anchored = PathSampler(space, "anchored", seed=3)
    reference = reference_arch(space)[1]
    assert all(anchored(s) == reference for s in range(0, 20, 2))  # every other step: the space's reference
    assert len({anchored(s).arch_id for s in range(1, 40, 2)}) > 10  # the others uniform
    bounded = PathSampler(space, "uniform", Bounds(flops=9_000_000), seed=3)
    assert all(table.flops(bounded(s)) <= 9_000_000 for s in range(30))
    with pytest.raises(ConfigError, match="fair sampling"):
        PathSampler(space, "fair", Bounds(flops=9_000_000))


def _fixed_path_loss(model: Supernet, batch: dict, archs) -> float:
    model.train()  # BN on batch statistics, as during training
    with torch.no_grad():
        return float(np.mean([tracking_loss(model(a, batch["template"], batch["search"]),
                                            batch["labels"][model.arch_stride(a)])[0].item() for a in archs]))


def test_loss_falls_on_the_synthetic_train_split(tmp_path, tiny_data):
    cfg = load_config(write_train_config(tmp_path / "c.yaml", tiny_data, tmp_path / "run", epochs=6,
                                         pairs_per_epoch=48, lr=0.05, end_lr=0.02))
    space = load_space(TINY_SPACE)
    pairs = PairSampler(open_dataset(tiny_data, split="train"), template_size=64, search_size=128, strides=(8, 16),
                        length=16, seed=99)
    batch = collate([pairs[i] for i in range(16)])
    archs = [space.sample(np.random.default_rng(i)) for i in range(6)]
    torch.manual_seed(cfg.seed)
    before = _fixed_path_loss(Supernet(space), batch, archs)
    history = train(cfg, progress=False)
    trained = Supernet(space)
    trained.load_state_dict(torch_load(supernet_dir(cfg) / "last.pt")["model"])
    after = _fixed_path_loss(trained, batch, archs)
    assert after < 0.8 * before, (before, after, [h["loss"] for h in history])
    assert [h["epoch"] for h in history] == list(range(1, 7))
    assert all(np.isfinite(h["loss"]) for h in history)


def _run_cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "nas.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def test_killed_training_resumes_from_its_last_checkpoint(tmp_path, tiny_data):
    settings = dict(epochs=4, pairs_per_epoch=24)
    straight = write_train_config(tmp_path / "a.yaml", tiny_data, tmp_path / "straight", **settings)
    assert _run_cli(["train-supernet", str(straight)]).wait(timeout=600) == 0
    expected = json.loads((tmp_path / "straight" / "supernet" / "history.json").read_text())
    again = _run_cli(["train-supernet", str(straight)])  # a finished run is not silently overwritten
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 2 and "pass --resume" in out

    killed = write_train_config(tmp_path / "b.yaml", tiny_data, tmp_path / "killed", **settings)
    proc = _run_cli(["train-supernet", str(killed)])
    history = tmp_path / "killed" / "supernet" / "history.json"
    deadline = time.monotonic() + 600
    while not (history.exists() and len(json.loads(history.read_text())) >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = torch_load(tmp_path / "killed" / "supernet" / "last.pt")  # never half-written
    assert 2 <= state["epoch"] < 4
    resumed = _run_cli(["train-supernet", str(killed), "--resume"])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert "resuming supernet training after epoch" in out
    got = json.loads(history.read_text())
    assert [h["epoch"] for h in got] == [1, 2, 3, 4]
    assert [h["loss"] for h in got] == pytest.approx([h["loss"] for h in expected], rel=1e-6, abs=1e-9)


def test_two_ray_workers_match_in_process_training(tmp_path, tiny_data):
    """Same seed: 2 Ray Train workers equal in-process training with 2 shards (float-order tolerance)."""
    import nas.raytools  # noqa: F401

    base = dict(epochs=2, pairs_per_epoch=32, batch_size=8, shards=2)
    # Each 1-CPU Ray worker runs one intra-op thread; the in-process run must use the same count, since a
    # different float summation order grows to ~1% in the loss within a few SGD steps.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = launch(load_config(write_train_config(tmp_path / "l.yaml", tiny_data, tmp_path / "local", **base)))
    finally:
        torch.set_num_threads(threads)
    import tempfile

    import ray

    from nas.raytools import init_ray

    init_ray(num_cpus=2, temp_dir=tempfile.mkdtemp(prefix="tn-ray-"))  # AF_UNIX paths must stay short
    try:
        distributed = launch(load_config(write_train_config(tmp_path / "d.yaml", tiny_data, tmp_path / "dist", **base)),
                             workers=2)
    finally:
        ray.shutdown()
    assert [h["workers"] for h in distributed] == [2, 2] and [h["workers"] for h in local] == [1, 1]
    assert [h["loss"] for h in distributed] == pytest.approx([h["loss"] for h in local], rel=1e-4)
    a = torch_load(tmp_path / "local" / "supernet" / "last.pt")["model"]
    b = torch_load(tmp_path / "dist" / "supernet" / "last.pt")["model"]
    # parameters agree; BN running statistics are per rank (rank 0's are saved) and are
    # re-estimated by BN recalibration before any evaluation
    params = {name for name, _ in Supernet(load_space(TINY_SPACE)).named_parameters()}
    assert max((a[k] - b[k]).abs().max().item() for k in params) < 1e-4


def test_sstrack_schedule_is_a_config_switch_logged_per_epoch(tmp_path, tiny_data):
    cfg = load_config(write_train_config(tmp_path / "s.yaml", tiny_data, tmp_path / "run", epochs=2,
                                         schedule={"schedule": "sstrack", "epochs": 2, "max_interval": 12,
                                                   "bin_width": 4}))
    history = train(cfg, progress=False)
    for record in history:
        log = record["schedule"]
        assert len(log["q"]) == len(log["gamma"]) == len(log["p"]) > 2
        assert sum(log["q"]) == pytest.approx(1.0) and all(g >= 1.0 for g in log["gamma"])
    assert history[1]["schedule"]["d"] == pytest.approx(1.0)  # pacing (e/E)^(1/p) reaches 1 at the last epoch
    state = torch_load(tmp_path / "run" / "supernet" / "last.pt")
    assert state["schedule"]["q"] == pytest.approx(history[-1]["schedule"]["q"])  # resumes with the planned q


def test_backbone_checkpoint_and_freeze_epochs(tmp_path, tiny_data):
    space = load_space(TINY_SPACE)
    donor = Supernet(space)
    for p in donor.parameters():
        torch.nn.init.normal_(p, std=0.05)
    backbone = {k: v for k, v in donor.state_dict().items() if k.startswith(("stem.", "blocks."))}
    torch.save(backbone, tmp_path / "backbone.pt")
    cfg = load_config(write_train_config(tmp_path / "f.yaml", tiny_data, tmp_path / "run", epochs=1,
                                         freeze_backbone_epochs=1, backbone_checkpoint=str(tmp_path / "backbone.pt")))
    history = train(cfg, progress=False)
    trained = torch_load(tmp_path / "run" / "supernet" / "last.pt")["model"]
    assert history[0]["backbone_frozen"] is True
    for key, value in backbone.items():  # loaded, then frozen for the whole (only) epoch
        assert torch.equal(trained[key], value), key
    torch.manual_seed(cfg.seed)  # the trainer's own initialisation
    initial = Supernet(space).state_dict()
    heads = [k for k in trained if k.startswith("heads.") and k.endswith("weight")]
    assert any(not torch.equal(trained[k], initial[k]) for k in heads)  # the heads did train


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_address_joins_an_existing_loopback_cluster(tmp_path, tiny_data):
    """`--address`: training runs on a Ray cluster started separately (`ray start --head`)."""
    import shutil
    import socket
    import tempfile

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    ray_cli = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false", f"--temp-dir={tempfile.mkdtemp(prefix='tn-ray-')}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cfg = load_config(write_train_config(tmp_path / "a.yaml", tiny_data, tmp_path / "run", epochs=1,
                                             pairs_per_epoch=16))
        deadline = time.monotonic() + 120
        while not _listening(port):  # the head's GCS accepts drivers
            assert head.poll() is None and time.monotonic() < deadline, "ray head did not start"
            time.sleep(0.5)
        history = launch(cfg, workers=2, address=f"127.0.0.1:{port}")
        assert [h["workers"] for h in history] == [2]
        assert torch_load(tmp_path / "run" / "supernet" / "last.pt")["epoch"] == 1
    finally:
        head.terminate()  # --block: the head's own processes go down with it
        head.wait(timeout=60)
