"""Training pairs: crop geometry, label maps at strides 8/16 (and others), determinism, intervals."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nas.data.crops import IMAGENET_MEAN, IMAGENET_STD, context_size, grid_centers, score_size
from nas.data.intervals import UniformInterval
from nas.data.pairs import PairSampler, collate, make_labels
from nas.data.sequence import Sequence
from nas.data.synth import generate_dataset
from nas.errors import DataError

GREY, RED = 90, (255, 0, 0)
# x, y, w, h of the red rectangle drawn on each frame of the fixture video
RECT_BOXES = np.array([[40, 30, 36, 24], [60, 50, 36, 24], [80, 40, 30, 30], [100, 60, 40, 20],
                       [70, 70, 24, 36], [50, 45, 44, 28], [30, 35, 32, 32], [90, 55, 38, 26]], dtype=float)
NO_JITTER = dict(search_shift=0, search_scale=0, template_shift=0, template_scale=0, color_jitter=0)


@pytest.fixture(scope="module")
def rect_video(tmp_path_factory) -> Sequence:
    """Lossless PNG frames: a red rectangle exactly at RECT_BOXES on a flat grey background."""
    root = tmp_path_factory.mktemp("rect")
    paths = []
    for i, (x, y, w, h) in enumerate(RECT_BOXES.astype(int)):
        img = np.full((150, 200, 3), GREY, np.uint8)
        img[y:y + h, x:x + w] = RED
        paths.append(root / f"{i:04d}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return Sequence("rect", paths, RECT_BOXES.copy(), visible=np.ones(len(paths), bool))


@pytest.fixture(scope="module")
def synth_videos(tmp_path_factory) -> list[Sequence]:
    """Real generated GOT-10k files, read back into `Sequence`s (visible = not absent, cover > 0)."""
    root = tmp_path_factory.mktemp("pairs_synth")
    generate_dataset(root, sequences=4, frames=30, seed=5, val_fraction=0.0, size=(160, 120))
    out = []
    for name in (root / "train" / "list.txt").read_text().split():
        folder = root / "train" / name
        absent = np.loadtxt(folder / "absence.label", dtype=int)
        cover = np.loadtxt(folder / "cover.label", dtype=int)
        boxes = np.loadtxt(folder / "groundtruth.txt", delimiter=",")
        out.append(Sequence(name, sorted(folder.glob("*.jpg")), boxes, visible=(absent == 0) & (cover > 0),
                            cover=cover))
    return out


def _red_extent(crop: np.ndarray) -> np.ndarray:
    """x1, y1, x2, y2 (pixel edges) of the red pixels in a normalised 3xHxW crop."""
    rgb = (crop.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255
    ys, xs = np.nonzero((rgb[:, :, 0] > (GREY + 255) / 2) & (rgb[:, :, 1] < GREY / 2))
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)


def test_crops_centre_the_target_at_the_expected_size(rect_video):
    sampler = PairSampler([rect_video], interval=UniformInterval(0), **NO_JITTER)
    for index in range(4):
        pair = sampler.sample(index)
        x, y, w, h = RECT_BOXES[pair["frames"][1]]
        k = 128 / context_size(w, h)  # the context side maps to the 128 template in both crops
        expected = 128 + np.array([-w, -h, w, h]) * k / 2
        np.testing.assert_allclose(pair["box"], expected, atol=1e-3)
        np.testing.assert_allclose(_red_extent(pair["search"]), expected, atol=1.0)
        np.testing.assert_allclose(_red_extent(pair["template"]), expected - 64, atol=1.0)


def test_jittered_search_box_matches_the_pixels(rect_video):
    sampler = PairSampler([rect_video], seed=1)
    offsets = []
    for index in range(12):
        pair = sampler.sample(index)
        box = pair["box"]
        np.testing.assert_allclose(_red_extent(pair["search"]), box, atol=1.0)
        x, y, w, h = RECT_BOXES[pair["frames"][1]]
        nominal = w * 128 / context_size(w, h)
        assert nominal / 1.18 - 1e-3 <= box[2] - box[0] <= nominal / 0.82 + 1e-3
        offsets.append((box[:2] + box[2:]) / 2 - 128)
    offsets = np.abs(np.array(offsets))
    assert offsets.max() <= 64 and offsets.max() > 16, "shift jitter missing or out of range"


@pytest.mark.parametrize("stride", [8, 16])
def test_positive_labels_are_the_l1_diamond_around_the_centre_cell(rect_video, stride):
    sampler = PairSampler([rect_video], strides=(8, 16), seed=2)
    grid = grid_centers(256, stride)
    for index in range(6):
        pair = sampler.sample(index)
        box = pair["box"]
        cls = pair["labels"][stride]["cls"]
        assert cls.shape == (score_size(256, stride),) * 2
        col = int(np.argmin(np.abs(grid - (box[0] + box[2]) / 2)))
        row = int(np.argmin(np.abs(grid - (box[1] + box[3]) / 2)))
        expected = {(r, c) for r in range(len(grid)) for c in range(len(grid))
                    if abs(r - row) + abs(c - col) <= 16 / stride}
        assert set(zip(*np.nonzero(cls))) == expected
        assert len(expected) == {16: 5, 8: 13}[stride]
        assert set(np.unique(cls)) == {0.0, 1.0}


@pytest.mark.parametrize("stride, cells", [(4, 41), (32, 1)])
def test_labels_work_for_other_strides(stride, cells):
    labels = make_labels(np.array([100.3, 90.2, 150.7, 170.1]), 256, stride)
    assert labels["cls"].shape == (score_size(256, stride),) * 2
    assert int(labels["cls"].sum()) == cells


@pytest.mark.parametrize("stride", [8, 16])
def test_regression_targets_recover_the_box(rect_video, stride):
    sampler = PairSampler([rect_video], strides=(stride,), seed=3)
    grid = grid_centers(256, stride)
    for index in range(6):
        pair = sampler.sample(index)
        x1, y1, x2, y2 = pair["box"]
        lab = pair["labels"][stride]
        rows, cols = np.nonzero(lab["cls"])
        l, t, r, b = lab["reg"][:, rows, cols]
        gx, gy = grid[cols], grid[rows]
        for got, want in ((gx - l, x1), (gy - t, y1), (gx + r, x2), (gy + b, y2)):
            np.testing.assert_allclose(got, want, atol=1e-3)
        inside_x = (grid >= x1) & (grid <= x2)
        inside_y = (grid >= y1) & (grid <= y2)
        np.testing.assert_array_equal(lab["reg_weight"], np.outer(inside_y, inside_x).astype(np.float32))
        assert lab["reg_weight"].sum() > 0


def test_pairs_are_deterministic_per_seed_epoch_and_index(synth_videos):
    a, b = PairSampler(synth_videos, seed=7, strides=(8, 16)), PairSampler(synth_videos, seed=7, strides=(8, 16))
    for index in (0, 3, 5):
        pa, pb = a.sample(index), b[index]
        for key in ("template", "search", "box", "frames"):
            np.testing.assert_array_equal(pa[key], pb[key])
        np.testing.assert_array_equal(pa["labels"][8]["reg"], pb["labels"][8]["reg"])
    assert not np.array_equal(a.sample(0)["search"], a.sample(4)["search"])
    assert not np.array_equal(a.sample(0)["search"], PairSampler(synth_videos, seed=8).sample(0)["search"])
    first = a.sample(1)["search"]
    a.set_epoch(1)
    assert not np.array_equal(first, a.sample(1)["search"])
    a.set_epoch(0)
    np.testing.assert_array_equal(first, a.sample(1)["search"])


def test_every_video_visited_once_per_epoch(synth_videos):
    sampler = PairSampler(synth_videos)
    assert len(sampler) == len(synth_videos)
    assert [sampler.sample(i)["sequence"] for i in range(len(sampler))] == list(range(len(synth_videos)))


def test_uniform_interval_bounds_the_frame_gap(rect_video):
    sampler = PairSampler([rect_video], interval=UniformInterval(2), length=40)
    gaps = np.array([np.diff(sampler.sample(i)["frames"])[0] for i in range(40)])
    assert np.abs(gaps).max() == 2 and (gaps == 0).any()


class FixedGap:
    """A real IntervalStrategy: search frame exactly `gap` (visible) frames after the template."""

    def __init__(self, gap: int):
        self.gap = gap

    def sample(self, rng: np.random.Generator, length: int) -> tuple[int, int, int]:
        t = int(rng.integers(length - self.gap))
        return t, t + self.gap, self.gap


def test_invisible_frames_are_skipped(rect_video):
    visible = np.array([1, 1, 0, 0, 0, 1, 1, 1], bool)
    video = dataclasses.replace(rect_video, visible=visible)
    order = list(np.flatnonzero(visible))
    sampler = PairSampler([video], interval=FixedGap(1), length=30)
    pairs = {tuple(sampler.sample(i)["frames"]) for i in range(30)}
    assert all(visible[t_z] and visible[t_x] for t_z, t_x in pairs)
    assert all(order.index(t_x) - order.index(t_z) == 1 for t_z, t_x in pairs)
    assert (1, 5) in pairs, "the gap is counted in visible frames, across the absent stretch"
    assert {sampler.sample(i)["bin"] for i in range(5)} == {1}


def test_synthetic_absent_frames_never_used(synth_videos):
    hidden = sum(int((~s.visible).sum()) for s in synth_videos)
    assert hidden > 0, "fixture data should contain absent frames"
    sampler = PairSampler(synth_videos, interval=UniformInterval(30), length=60)
    for i in range(60):
        pair = sampler.sample(i)
        assert synth_videos[pair["sequence"]].visible[pair["frames"]].all()


def test_no_visible_frame_is_a_data_error(rect_video):
    with pytest.raises(DataError):
        PairSampler([dataclasses.replace(rect_video, visible=np.zeros(len(rect_video), bool))])


def test_collate_shapes_and_dataloader(synth_videos):
    sampler = PairSampler(synth_videos, strides=(8, 16), length=3)
    batch = collate([sampler[i] for i in range(3)])
    assert batch["template"].shape == (3, 3, 128, 128) and batch["template"].dtype == torch.float32
    assert batch["search"].shape == (3, 3, 256, 256) and batch["box"].shape == (3, 4)
    assert batch["bin"].shape == (3,) and batch["bin"].dtype == torch.int64
    assert batch["frames"].shape == (3, 2)
    for stride, side in ((8, 32), (16, 16)):
        lab = batch["labels"][stride]
        assert lab["cls"].shape == (3, side, side) and lab["reg_weight"].shape == (3, side, side)
        assert lab["reg"].shape == (3, 4, side, side)
    loaded = next(iter(DataLoader(sampler, batch_size=3, collate_fn=collate)))
    assert torch.equal(loaded["search"], batch["search"])
    assert torch.equal(loaded["labels"][16]["reg"], batch["labels"][16]["reg"])
