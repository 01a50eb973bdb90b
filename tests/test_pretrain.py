"""Backbone pretraining (LightTrack phase 1): config checks, an ImageFolder that learns, resume, and the
pretrained backbone feeding `train-supernet` (`supernet.backbone_checkpoint`)."""
from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, TINY_SPACE, write_train_config
from nas.config import load_config
from nas.data.crops import crop_square
from nas.data.datasets import open_dataset
from nas.errors import ConfigError
from nas.io import torch_load
from nas.space import load_space
from nas.supernet import Supernet
from nas.train.lr import cosine_lr
from nas.train.pretrain import BACKBONE, launch_pretrain, pretrain_dir
from nas.train.supernet_trainer import train

SHAPES = ("circle", "square", "triangle")


def _shapes_folder(root: Path, per_class: int = 24, size: int = 40) -> Path:
    """Three classes of filled shapes on noise, each in its own (jittered) colour."""
    rng = np.random.default_rng(0)
    for name, base in zip(SHAPES, ((230, 60, 60), (60, 230, 60), (60, 60, 230))):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 128, (size, size, 3), dtype=np.uint8)
            colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in base)
            cx, cy, r = (int(v) for v in (*rng.integers(size // 3, 2 * size // 3, 2), rng.integers(size // 5, size // 3)))
            if name == "circle":
                cv2.circle(image, (cx, cy), r, colour, -1)
            elif name == "square":
                cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
            else:
                cv2.fillPoly(image, [np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)], colour)
            cv2.imwrite(str(root / name / f"{i:03d}.png"), image)
    return root


def _config(path: Path, data_root: Path, output: Path, pretrain: dict | None, **supernet) -> Path:
    write_train_config(path, data_root, output, **supernet)
    config = yaml.safe_load(path.read_text())
    if pretrain is not None:
        config["pretrain"] = pretrain
    path.write_text(yaml.safe_dump(config))
    return path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(REPO), "PATH": "", "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("section, expected", [
    ({"epochs": 2}, "pretrain.root: missing required key"),
    ({"root": "x", "label_smoothing": 1.5}, "pretrain.label_smoothing: expected a finite number in [0, 1], got 1.5"),
    ({"root": "x", "optimizer": "lamb"}, "pretrain.optimizer: expected one of sgd, adamw, got 'lamb'"),
    ({"root": "x", "lr": 0.01, "end_lr": 0.1}, "pretrain.end_lr: expected <= pretrain.lr (0.01), got 0.1"),
    ({"root": "x", "image_size": 8}, "pretrain.image_size: expected an integer in 16..1024, got 8"),
    ({"root": "x", "epochs": "3"}, "pretrain.epochs: expected int, got '3'"),
    ({"root": "x", "bogus": 1}, "pretrain.bogus: unknown key"),
])
def test_pretrain_section_is_checked_in_one_line(tmp_path, tiny_data, section, expected):
    path = _config(tmp_path / "c.yaml", tiny_data, tmp_path / "run", section)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: {expected}")


def test_pretrain_refuses_a_missing_section_or_a_bad_image_folder_up_front(tmp_path, tiny_data):
    path = _config(tmp_path / "c.yaml", tiny_data, tmp_path / "run", None)
    proc = _cli("pretrain-backbone", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "pretrain: missing section" in proc.stderr
    (tmp_path / "one" / "cats").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "one" / "cats" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    path = _config(tmp_path / "c.yaml", tiny_data, tmp_path / "run", {"root": str(tmp_path / "one")})
    with pytest.raises(ConfigError, match=r"pretrain.root: .*one: expected at least 2 class sub-folders, found 1"):
        launch_pretrain(load_config(path))
    (tmp_path / "one" / "dogs").mkdir()
    with pytest.raises(ConfigError, match="class folder 'dogs' holds no images"):
        launch_pretrain(load_config(path))
    assert not (tmp_path / "run").exists()


def test_cosine_lr_warms_up_then_decays_to_the_end_value():
    lrs = [cosine_lr(s, steps=10, base=0.1, end=0.001, warmup_steps=2) for s in range(10)]
    assert lrs[:3] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1]) and lrs[-1] == pytest.approx(0.001)
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))


def test_pretraining_learns_below_chance_and_a_killed_run_resumes_exactly(tmp_path, tiny_data):
    folder = _shapes_folder(tmp_path / "shapes")
    section = {"root": str(folder), "epochs": 8, "batch_size": 12, "image_size": 32, "optimizer": "adamw",
               "lr": 0.005, "label_smoothing": 0.1}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI below (OMP_NUM_THREADS=1): the same float summation order
    try:
        straight = load_config(_config(tmp_path / "a.yaml", tiny_data, tmp_path / "a", section))
        history = launch_pretrain(straight, tb=False)
        assert history[-1]["loss"] < math.log(len(SHAPES)) == pytest.approx(history[-1]["chance_loss"])
        assert history[-1]["loss"] < history[0]["loss"], [h["loss"] for h in history]

        killed = _config(tmp_path / "b.yaml", tiny_data, tmp_path / "b", section)
        proc = subprocess.Popen([sys.executable, "-m", "nas.cli", "pretrain-backbone", str(killed), "--no-tb"],
                                cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "", "OMP_NUM_THREADS": "1"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        saved = tmp_path / "b" / "pretrain" / "history.json"
        while proc.poll() is None and not (saved.is_file() and len(json.loads(saved.read_text() or "[]")) >= 3):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert 3 <= torch_load(tmp_path / "b" / "pretrain" / "last.pt")["epoch"] <= 8  # never half-written
        with pytest.raises(ConfigError, match="exists; pass --resume"):
            launch_pretrain(load_config(killed))
        resumed = load_config(killed)
        again = launch_pretrain(resumed, resume=True, tb=False)
    finally:
        torch.set_num_threads(threads)
    assert [h["epoch"] for h in again] == list(range(1, 9))
    assert [h["loss"] for h in again] == pytest.approx([h["loss"] for h in history], rel=1e-6)
    a, b = (torch_load(pretrain_dir(c) / BACKBONE) for c in (straight, resumed))
    assert a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def test_backbone_checkpoint_is_shape_checked_in_one_line(tmp_path, tiny_data):
    space = load_space(TINY_SPACE)
    state = Supernet(space).backbone_state_dict()
    assert state and all(k.startswith(("stem.", "blocks.")) for k in state)
    good = tmp_path / "good.pt"
    torch.save(state, good)
    cfg = load_config(_config(tmp_path / "ok.yaml", tiny_data, tmp_path / "ok", None, backbone_checkpoint=str(good)))
    from nas.jobs.validate import validate_run

    validate_run(cfg, search=False)
    key = next(k for k in state if k.endswith("weight") and state[k].dim() == 4)
    bad = tmp_path / "bad.pt"
    torch.save({**state, key: torch.zeros(1, 1, 1, 1)}, bad)
    path = _config(tmp_path / "c.yaml", tiny_data, tmp_path / "run", None, backbone_checkpoint=str(bad))
    proc = _cli("train-supernet", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"supernet.backbone_checkpoint: {bad} does not fit the space's backbone: 1 shape mismatch(es), e.g. " \
           f"{key} has shape (1, 1, 1, 1)" in proc.stderr
    torch.save({k: v for k, v in state.items() if k != key}, bad)
    with pytest.raises(ConfigError, match=f"1 missing key\\(s\\), e.g. {key}"):
        validate_run(load_config(path), search=False)
    assert not (tmp_path / "run").exists()


def _tracking_image_folder(data_root: Path, root: Path, size: int = 40) -> Path:
    """An ImageFolder made from the tracking train split: one class per target object (crops around its
    box) and a `background` class (crops away from it), so pretraining learns what the tracker must tell
    apart: the target from its surroundings."""
    for sequence in open_dataset(data_root, split="train"):
        rng = np.random.default_rng(len(sequence.name))
        for i in range(0, len(sequence.frames), 2):
            image, (x, y, w, h) = sequence.frame(i), sequence.boxes[i]
            side, centre = 1.3 * max(w, h), (x + w / 2, y + h / 2)
            crops = {sequence.name: centre}
            far = [(bx, by) for bx, by in rng.uniform((0, 0), image.shape[1::-1], (8, 2))
                   if abs(bx - centre[0]) > side and abs(by - centre[1]) > side]
            if far:
                crops["background"] = far[0]
            for label, where in crops.items():
                (root / label).mkdir(parents=True, exist_ok=True)
                crop = crop_square(image, where, side, size)
                cv2.imwrite(str(root / label / f"{sequence.name}_{i:03d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return root


@pytest.mark.slow
def test_pretrained_backbone_starts_tracking_at_a_lower_loss(tmp_path, tiny_data):
    """The acceptance of phase 1 -> Alg. 1: the same supernet, pairs, paths and head initialisation, the
    backbone frozen for the first epoch as LightTrack does with a pretrained one; the pretrained backbone's
    classification loss on the tracking pairs starts lower than random initialisation's.

    The cls part is what the backbone's features decide; the IoU part of the first epoch is dominated by
    the heads learning the box scale and varies either way with the seed (measured over seeds 0-4: cls
    lower 5/5 by 0.001-0.005, total loss lower 2/5)."""
    folder = _tracking_image_folder(tiny_data, tmp_path / "objects")
    section = {"root": str(folder), "epochs": 40, "batch_size": 16, "image_size": 40, "optimizer": "adamw",
               "lr": 0.005, "label_smoothing": 0.1}
    cfg = load_config(_config(tmp_path / "p.yaml", tiny_data, tmp_path / "pre", section))
    history = launch_pretrain(cfg, tb=False)
    assert history[-1]["loss"] < history[-1]["chance_loss"]
    tracking = dict(epochs=1, pairs_per_epoch=64, batch_size=8, optimizer="adamw", lr=0.002, end_lr=0.002,
                    freeze_backbone_epochs=1)
    losses = {}
    for name, checkpoint in (("random", None), ("pretrained", str(pretrain_dir(cfg) / BACKBONE))):
        extra = {"backbone_checkpoint": checkpoint} if checkpoint else {}
        run = load_config(_config(tmp_path / f"{name}.yaml", tiny_data, tmp_path / name, None, **tracking, **extra))
        losses[name] = train(run, progress=False)[0]
    assert losses["pretrained"]["cls"] < losses["random"]["cls"], losses


@pytest.mark.slow
def test_pretraining_on_two_ray_train_workers(tmp_path, tiny_data):
    """`--workers 2`: each rank takes half of every batch, rank 0 writes the checkpoints and TensorBoard."""
    import tempfile

    from nas.raytools import init_ray, shutdown_ray  # loopback-only Ray before ray is imported

    folder = _shapes_folder(tmp_path / "shapes", per_class=8)
    section = {"root": str(folder), "epochs": 2, "batch_size": 8, "image_size": 32, "optimizer": "adamw",
               "lr": 0.003}
    cfg = load_config(_config(tmp_path / "c.yaml", tiny_data, tmp_path / "run", section))
    with pytest.raises(ConfigError, match="divisible by --workers 3"):
        launch_pretrain(cfg, workers=3)
    init_ray(num_cpus=2, temp_dir=tempfile.mkdtemp(prefix="tn-ray-"))  # AF_UNIX paths must stay short
    try:
        history = launch_pretrain(cfg, workers=2)
    finally:
        shutdown_ray()
    assert [h["workers"] for h in history] == [2, 2] and all(np.isfinite(h["loss"]) for h in history)
    state = torch_load(pretrain_dir(cfg) / BACKBONE)
    Supernet(load_space(TINY_SPACE)).load_backbone(state)  # the checkpoint train-supernet consumes
    assert any((tmp_path / "run" / "tb" / "pretrain").glob("events.out.tfevents.*"))
