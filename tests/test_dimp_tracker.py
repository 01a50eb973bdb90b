"""DiMP baseline: episodic training lowers the loss, checkpoints reload and resume exactly, the
sample-memory weight rule by hand, localisation flags on synthetic score maps, the GN update
schedule, and whole runs through the evaluation harness (tiny synthetic val split, real OTB)."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data.datasets import open_dataset
from nas.errors import ConfigError
from nas.fitness.harness import run_tracker
from nas.io import torch_load
from trackers.dimp.model import DiMPNetConfig, load_dimp_net
from trackers.dimp.spec import DiMPSpec
from trackers.dimp.tracker import (
    DiMPTrackerConfig,
    SampleMemory,
    localize,
    refine_peak,
    update_sample_weights,
)
from trackers.dimp.train import DiMPTrainConfig, EpisodeSampler, build_net, episode_loss, make_loss, train_dimp

SEED = 0
TRAIN_CONFIG = DiMPTrainConfig(net=DiMPNetConfig(image_sample_size=128), episodes_per_epoch=16, batch_size=4)


@pytest.fixture(scope="module")
def train_split(tiny_data: Path) -> list:
    return open_dataset(tiny_data, "got10k", "train")


@pytest.fixture(scope="module")
def trained(train_split: list, tmp_path_factory) -> tuple[Path, list[dict]]:
    """A short training run on the tiny train split: (checkpoint, history)."""
    path = tmp_path_factory.mktemp("dimp") / "dimp.pt"
    return path, train_dimp(train_split, TRAIN_CONFIG, path, seed=SEED, epochs=4, progress=False)


def test_training_lowers_the_episode_loss(train_split: list, trained: tuple[Path, list[dict]]) -> None:
    path, history = trained
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert all(math.isfinite(row["loss"]) for row in history)
    # a fixed batch of episodes (an epoch index training never uses), scored before and after
    batch = EpisodeSampler(train_split, TRAIN_CONFIG, SEED).batch(10 ** 6, range(8))
    loss_fn = make_loss(TRAIN_CONFIG)
    with torch.no_grad():
        before = episode_loss(build_net(TRAIN_CONFIG, SEED).train(), batch, loss_fn)[0].item()
        after = episode_loss(load_dimp_net(path).train(), batch, loss_fn)[0].item()
    assert after < 0.9 * before


def test_checkpoint_reloads_and_resumed_training_is_identical(train_split: list, tmp_path: Path) -> None:
    config = replace(TRAIN_CONFIG, episodes_per_epoch=8)
    straight, resumed = tmp_path / "straight.pt", tmp_path / "resumed.pt"
    full = train_dimp(train_split, config, straight, seed=3, epochs=2, progress=False)
    first = train_dimp(train_split, config, resumed, seed=3, epochs=1, progress=False)
    assert torch_load(resumed)["epoch"] == 1  # weights_only load of a mid-run checkpoint
    rest = train_dimp(train_split, config, resumed, seed=3, epochs=2, progress=False)
    assert len(first) == 1 and len(rest) == 2
    assert [r["loss"] for r in rest] == [r["loss"] for r in full]
    a, b = torch_load(straight), torch_load(resumed)
    assert a["epoch"] == b["epoch"] == 2 and a["config"] == config.to_dict()
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    net = load_dimp_net(straight)
    assert all(torch.equal(v, a["model"][k]) for k, v in net.state_dict().items())
    with pytest.raises(ConfigError, match="another config or seed"):
        train_dimp(train_split, config, resumed, seed=4, epochs=3, progress=False)


def test_sample_weight_rule_by_hand() -> None:
    lr, num_init = 0.1, 2
    weights = np.array([0.5, 0.5, 0.0, 0.0, 0.0])
    # first tracked sample: old weights / (1 - lr), the new one lr, then normalised
    assert update_sample_weights(weights, 2, num_init, None, lr, 0.25) == 2
    raw = np.array([0.5 / 0.9, 0.5 / 0.9, 0.1, 0.0, 0.0])
    np.testing.assert_allclose(weights, raw / raw.sum())
    # later samples: the previous new weight / (1 - lr) (before normalising)
    assert update_sample_weights(weights, 3, num_init, 2, lr, 0.25) == 3
    assert weights[3] / weights[2] == pytest.approx(1 / 0.9)
    assert weights.sum() == pytest.approx(1.0)
    # a high learning rate drives the init samples under 0.25: they are set to 0.25 in total
    assert update_sample_weights(weights, 4, num_init, 3, 0.98, 0.25) == 4
    assert weights[:2].sum() == pytest.approx(0.25) and weights.sum() == pytest.approx(1.0)
    assert weights[0] == pytest.approx(weights[1])
    assert weights[4] / weights[3] == pytest.approx(1 / 0.02)
    assert weights[3] / weights[2] == pytest.approx(1 / 0.9)
    # full memory: the lowest non-init sample (slot 2) is replaced, never an init slot
    weights[:] = [0.01, 0.01, 0.2, 0.3, 0.48]
    assert update_sample_weights(weights, 5, num_init, 4, lr, 0.0) == 2
    raw = np.array([0.01, 0.01, 0.48 / 0.9, 0.3, 0.48])
    np.testing.assert_allclose(weights, raw / raw.sum())


def test_sample_memory_stores_and_replaces() -> None:
    init = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 3, 2, 2).clone()
    memory = SampleMemory(4, init, torch.ones(2, 4))
    for value in (10.0, 11.0, 12.0):
        memory.add(torch.full((3, 2, 2), value), torch.full((4,), value), 0.01, 0.25)
    feat, boxes, weights = memory.training_set()
    assert feat.shape == (1, 4, 3, 2, 2) and boxes.shape == (1, 4, 4)
    assert weights.sum().item() == pytest.approx(1.0)
    # 12 replaced 10 (the oldest tracked sample); the init samples are untouched
    assert feat[0, :, 0, 0, 0].tolist() == [0.0, 1.0, 12.0, 11.0]
    with pytest.raises(ConfigError, match="sample memory"):
        SampleMemory(2, init, torch.ones(2, 4))


def blob(center: tuple[float, float], height: float, size: int = 11, sigma: float = 0.8) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return height * np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * sigma ** 2))


@pytest.mark.parametrize("peaks, target, flag, cell", [
    ([((5, 5), 1.0)], (1.0, 1.0), "normal", (5, 5)),  # one peak
    ([((5, 5), 0.2)], (1.0, 1.0), "not_found", (5, 5)),  # max below 0.25
    ([((5, 5), 1.0), ((1, 9), 0.9)], (1.0, 1.0), "hard_negative", (5, 5)),  # distractor far, target near
    ([((1, 1), 1.0), ((5, 5), 0.9)], (1.0, 1.0), "hard_negative", (5, 5)),  # strongest peak far: take the near one
    ([((1, 1), 1.0), ((9, 9), 0.95)], (1.0, 1.0), "uncertain", (1, 1)),  # both far
    ([((5, 5), 1.0), ((1, 9), 0.6)], (1.0, 1.0), "hard_negative", (5, 5)),  # second peak above 0.5 x max1
    ([((5, 5), 1.0), ((5, 7), 0.95)], (2.0, 2.0), "normal", (5, 5)),  # second peak inside 2.2 x target
    ([((5, 5), 1.0), ((1, 9), 0.4)], (1.0, 1.0), "normal", (5, 5)),  # weak distractor
])
def test_localization_flags(peaks: list, target: tuple[float, float], flag: str, cell: tuple[int, int]) -> None:
    scores = np.maximum.reduce([blob(c, h) for c, h in peaks])
    loc = localize(scores, np.array(target), DiMPTrackerConfig())
    assert loc.flag == flag
    assert tuple(loc.cell) == cell
    assert loc.score == pytest.approx(scores[cell])


@pytest.mark.parametrize("center", [(5.3, 4.8), (4.6, 6.2)])
def test_subcell_peak_refinement(center: tuple[float, float]) -> None:
    scores = blob(center, 1.0)
    cell = np.array(np.unravel_index(int(np.argmax(scores)), scores.shape))
    assert np.abs(cell - center).max() >= 0.2  # the integer peak alone is off by a fraction of a cell
    assert np.abs(refine_peak(scores, cell) - center).max() < 0.1
    np.testing.assert_array_equal(refine_peak(blob((5, 5), 1.0), np.array([5, 5])), [5.0, 5.0])
    np.testing.assert_array_equal(refine_peak(scores, np.array([0, 0])), [0.0, 0.0])  # border: integer cell


def test_update_schedule_and_memory_growth(tiny_data: Path, trained: tuple[Path, list[dict]]) -> None:
    seq = open_dataset(tiny_data, "got10k", "val")[0]
    # thresholds out of reach: every frame is "normal", so only the schedule is under test (a briefly
    # trained net's absolute scores are not calibrated to DiMP's thresholds)
    config = DiMPTrackerConfig(train_skipping=3, sample_memory_size=14, target_not_found_threshold=-math.inf,
                               distractor_threshold=math.inf, hard_negative_threshold=math.inf)
    tracker = DiMPSpec(str(trained[0]), config)()
    frame = seq.frame(0)
    tracker.initialize(frame, seq.boxes[0])
    num_init = tracker.memory.num_init
    assert num_init == 11  # identity, 4 shifts, flip, 3 blurs, 2 dropout copies
    changed, stored = [], []
    for _ in range(6):  # the first frame again: the filter peaks on the unmoved target
        before = tracker.filter.clone()
        result = tracker.track(frame)
        assert tracker.flag == "normal"
        moved = result.box[:2] + result.box[2:] / 2 - (seq.boxes[0][:2] + seq.boxes[0][2:] / 2)
        assert np.linalg.norm(moved) < 0.25 * np.sqrt(np.prod(seq.boxes[0][2:]))
        changed.append(not torch.equal(before, tracker.filter))
        stored.append(tracker.memory.num_stored)
    # frame_index 1..6: GN iterations when frame_index % 3 == 0, i.e. the 3rd and 6th tracked frame
    assert changed == [False, False, True, False, False, True]
    assert stored == [12, 13, 14, 14, 14, 14]
    assert tracker.memory.weights.sum() == pytest.approx(1.0)


def check_run(report: dict, results: Path, sequences: list) -> None:
    assert report["scored"]
    for seq in sequences:
        boxes = np.loadtxt(results / f"{seq.name}.txt", delimiter=",")
        assert boxes.shape == (len(seq), 4) and np.isfinite(boxes).all() and (boxes[:, 2:] > 0).all()
        np.testing.assert_allclose(boxes[0], seq.boxes[0], atol=1e-3)
    assert (results / "metrics.json").is_file()


def test_tracker_runs_through_the_harness(tiny_data: Path, otb_root: Path, trained: tuple[Path, list[dict]],
                                          tmp_path: Path) -> None:
    val = open_dataset(tiny_data, "got10k", "val")
    spec = DiMPSpec(str(trained[0]))
    serial = run_tracker(spec, val, tmp_path / "serial", backend="serial", progress=False)
    check_run(serial, tmp_path / "serial", val)
    assert 0.0 <= serial["ao"] <= 1.0 and math.isfinite(serial["fps"])
    crossing = open_dataset(otb_root, "otb")[0].head(20)
    otb = run_tracker(spec, [crossing], tmp_path / "otb", backend="serial", progress=False)
    check_run(otb, tmp_path / "otb", [crossing])
    assert 0.0 <= otb["auc"] <= 1.0
    # separate processes build their own tracker from the spec and give the same boxes
    process = run_tracker(spec, val, tmp_path / "process", backend="process", workers=2, progress=False)
    check_run(process, tmp_path / "process", val)
    assert process["run"]["workers"] == 2
    for seq in val:
        np.testing.assert_array_equal(np.loadtxt(tmp_path / "process" / f"{seq.name}.txt", delimiter=","),
                                      np.loadtxt(tmp_path / "serial" / f"{seq.name}.txt", delimiter=","))


def test_random_init_spec_is_reproducible_and_bad_inputs_fail_clearly(tiny_data: Path) -> None:
    seq = open_dataset(tiny_data, "got10k", "val")[0]
    spec = DiMPSpec(None, net=DiMPNetConfig(image_sample_size=96), device="cpu", seed=1)
    boxes = []
    for _ in range(2):  # the same spec gives the same tracker and the same boxes
        tracker = spec()
        tracker.initialize(seq.frame(0), seq.boxes[0])
        boxes.append(np.stack([tracker.track(seq.frame(i)).box for i in range(1, 4)]))
    assert np.isfinite(boxes[0]).all()
    np.testing.assert_array_equal(boxes[0], boxes[1])
    with pytest.raises(ConfigError, match="multiple of 16"):
        DiMPNetConfig(image_sample_size=100)
    with pytest.raises(ConfigError, match="checkpoint not found"):
        DiMPSpec("/nonexistent/dimp.pt")()
