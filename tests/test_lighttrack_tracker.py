"""LightTrack tracking pipeline: decoding geometry, penalties, window, smoothing, clamping, real model."""
from __future__ import annotations

import numpy as np
import pytest

from nas.data.crops import cosine_window
from nas.errors import ConfigError
from nas.space import from_lighttrack_string
from trackers.lighttrack.tracker import (
    LightTrackSpec, TrackerConfig, clamp_state, decode, preset)

S, STRIDE, INSTANCE = 16, 16, 256
NEUTRAL = TrackerConfig(penalty_k=0.0, window_influence=0.0, lr=1.0)


def _maps(peaks: dict[tuple[int, int], tuple[float, tuple[float, float, float, float]]]):
    """Score logits -30 (sigmoid ~0) and ltrb 8 everywhere except at the given cells."""
    cls = np.full((S, S), -30.0)
    reg = np.full((4, S, S), 8.0)
    for (iy, ix), (logit, ltrb) in peaks.items():
        cls[iy, ix] = logit
        reg[:, iy, ix] = ltrb
    return cls, reg


def _decode(cls, reg, config, center=(200.0, 150.0), size=(40.0, 60.0), scale_z=0.5):
    return decode(cls, reg, center=np.array(center), size=np.array(size), scale_z=scale_z,
                  instance_size=INSTANCE, stride=STRIDE, config=config)


def test_single_peak_decodes_to_the_exact_box():
    # cell (row 5, col 11) has its centre at crop (176, 80); l,t,r,b = 20,12,36,28 puts the box
    # centre at crop (184, 88), i.e. (+56, -40) crop px from the crop centre 128 = (+112, -80)
    # image px at scale 0.5, and its size 56x40 crop px = 112x80 image px.
    cls, reg = _maps({(5, 11): (50.0, (20.0, 12.0, 36.0, 28.0))})
    center, size, score = _decode(cls, reg, NEUTRAL)
    np.testing.assert_allclose(center, [312.0, 70.0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(size, [112.0, 80.0], rtol=0, atol=1e-9)
    assert score == pytest.approx(1.0)


def test_big_search_grid_is_centred_too():
    # at 288 the 18x18 map's middle cell (9, 9) sits on the crop centre: a symmetric box keeps the centre
    cls = np.full((18, 18), -30.0)
    cls[9, 9] = 50.0
    reg = np.full((4, 18, 18), 10.0)
    center, size, _ = decode(cls, reg, center=np.array([50.0, 60.0]), size=np.array([5.0, 5.0]),
                             scale_z=2.0, instance_size=288, stride=16, config=NEUTRAL)
    np.testing.assert_allclose(center, [50.0, 60.0], atol=1e-9)
    np.testing.assert_allclose(size, [10.0, 10.0], atol=1e-9)


def test_cosine_window_prefers_small_motion():
    # a slightly stronger peak 5 cells off-centre beats the centre without the window, not with it
    same = (8.0, 8.0, 8.0, 8.0)
    cls, reg = _maps({(8, 8): (0.0, same), (8, 13): (1.0, same)})
    off_x = 200.0 + (5 * STRIDE) / 0.5
    center, _, _ = _decode(cls, reg, NEUTRAL)
    assert center[0] == pytest.approx(off_x)
    with_window = TrackerConfig(penalty_k=0.0, window_influence=0.38, lr=1.0)
    center, _, _ = _decode(cls, reg, with_window)
    assert center[0] == pytest.approx(200.0)
    window = cosine_window(S)
    assert window.shape == (S, S) and window.argmax() in {7 * S + 7, 7 * S + 8, 8 * S + 7, 8 * S + 8}


@pytest.mark.parametrize("changed", ["scale", "ratio"])
def test_penalty_prefers_unchanged_size_and_shape(changed):
    # current size 40x60 image px = 20x30 crop px at scale 0.5; the rival cell is a bit surer but
    # predicts a box 3x larger (scale change) or 30x20 (aspect change)
    keep = (10.0, 15.0, 10.0, 15.0)
    rival = (30.0, 45.0, 30.0, 45.0) if changed == "scale" else (15.0, 10.0, 15.0, 10.0)
    cls, reg = _maps({(4, 4): (2.0, keep), (12, 12): (2.1, rival)})
    no_penalty = TrackerConfig(penalty_k=0.0, window_influence=0.0, lr=1.0)
    penalised = TrackerConfig(penalty_k=0.062, window_influence=0.0, lr=1.0)
    rival_center, _, _ = _decode(cls, reg, no_penalty)
    keep_center, keep_size, _ = _decode(cls, reg, penalised)
    assert rival_center[0] > 200.0 > keep_center[0]
    assert keep_center == pytest.approx([200.0 - 4 * STRIDE / 0.5, 150.0 - 4 * STRIDE / 0.5])
    # keep predicts exactly the current size, so smoothing leaves it unchanged
    np.testing.assert_allclose(keep_size, [40.0, 60.0])


def test_size_smoothing_rate_and_the_double_update():
    # cls 0.5, no penalty, lr 0.8: rate 0.4. Predicted 100x100 image px from 50x50.
    cls, reg = _maps({(8, 8): (0.0, (25.0, 25.0, 25.0, 25.0))})
    twice = TrackerConfig(penalty_k=0.0, window_influence=0.0, lr=0.8)
    once = TrackerConfig(penalty_k=0.0, window_influence=0.0, lr=0.8, smooth_twice=False)
    _, size_twice, score = _decode(cls, reg, twice, size=(50.0, 50.0))
    _, size_once, _ = _decode(cls, reg, once, size=(50.0, 50.0))
    assert score == pytest.approx(0.5)
    np.testing.assert_allclose(size_once, [50.0 + 0.4 * 50.0] * 2)
    np.testing.assert_allclose(size_twice, [50.0 + 0.4 ** 2 * 50.0] * 2)


def test_clamping_keeps_centre_in_image_and_size_in_range():
    center, size = clamp_state(np.array([-5.0, 500.0]), np.array([2.0, 1000.0]), (320, 240), 10.0)
    np.testing.assert_array_equal(center, [0.0, 240.0])
    np.testing.assert_array_equal(size, [10.0, 240.0])
    center, size = clamp_state(np.array([100.0, 50.0]), np.array([30.0, 40.0]), (320, 240), 10.0)
    np.testing.assert_array_equal(center, [100.0, 50.0])
    np.testing.assert_array_equal(size, [30.0, 40.0])


def test_presets():
    vot = preset("vot2019")
    assert (vot.penalty_k, vot.window_influence, vot.lr) == (0.007, 0.225, 0.616)
    default = preset("default")
    assert (default.penalty_k, default.window_influence, default.lr) == (0.062, 0.38, 0.765)
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        preset("nope")


@pytest.fixture(scope="module")
def mobile_tracker():
    """LightTrack-Mobile with random (seeded) weights, through the same spec the harness uses."""
    return LightTrackSpec("lighttrack-mobile", device="cpu")()


@pytest.fixture(scope="module")
def crossing(otb_root):
    from nas.data.datasets import open_dataset

    (seq,) = [s for s in open_dataset(otb_root, fmt="otb") if s.name == "Crossing"]
    return seq


def test_big_search_for_tiny_targets(mobile_tracker, crossing):
    frame = crossing.frame(0)
    h, w = frame.shape[:2]
    mobile_tracker.initialize(frame, np.array([100.0, 100.0, 12.0, 12.0]))  # 144 px < 0.4% of 86400
    assert mobile_tracker.instance_size == 288
    result = mobile_tracker.track(crossing.frame(1))
    assert mobile_tracker.window.shape == (18, 18) and np.isfinite(result.box).all()
    mobile_tracker.initialize(frame, np.array([100.0, 100.0, 0.1 * w, 0.1 * h]))  # 1% of the image
    assert mobile_tracker.instance_size == 256 and mobile_tracker.window.shape == (16, 16)


def test_mobile_tracks_crossing(mobile_tracker, crossing):
    from nas.fitness.harness import run_sequence

    n = 20
    boxes, times = run_sequence(mobile_tracker, crossing.head(n))
    w, h = crossing.image_size()
    assert boxes.shape == (n, 4) and np.isfinite(boxes).all() and (times > 0).all()
    np.testing.assert_array_equal(boxes[0], crossing.boxes[0])
    centers = boxes[:, :2] + boxes[:, 2:] / 2
    assert ((centers >= 0) & (centers <= [w, h])).all()
    assert ((boxes[:, 2:] >= 10.0) & (boxes[:, 2:] <= [w, h])).all()
    score = mobile_tracker.track(crossing.frame(n)).score
    assert np.isfinite(score) and 0.0 <= score <= 1.0


def test_arch_json_target_and_checkpoint(tmp_path, crossing):
    import torch

    from nas.io import atomic_torch_save
    from nas.space import load_space, save_arch

    arch = load_space("lighttrack-mobile").sample(np.random.default_rng(1))
    arch_path = save_arch(tmp_path / "arch.json", arch)
    trained = LightTrackSpec(str(arch_path), seed=7).build_model()
    atomic_torch_save(trained.state_dict(), tmp_path / "weights.pt")
    loaded = LightTrackSpec(str(arch_path), weights=str(tmp_path / "weights.pt")).build_model()
    fresh = LightTrackSpec(str(arch_path)).build_model()
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert any(not torch.equal(fresh.state_dict()[k], v) for k, v in trained.state_dict().items())
    tracker = LightTrackSpec(str(arch_path), weights=str(tmp_path / "weights.pt"), device="cpu")()
    assert tracker.name == "arch" and tracker.stride == trained.stride
    tracker.initialize(crossing.frame(0), crossing.boxes[0])
    # a stride-8 output (this sample) needs a 32x32 window: decode would fail on a size mismatch
    assert tracker.window.shape == (256 // tracker.stride,) * 2
    assert np.isfinite(tracker.track(crossing.frame(1)).box).all()


def test_folded_batchnorm_is_the_same_function_with_fewer_layers():
    import torch

    from nas.space import load_space
    from nas.space.lighttrack_codec import LIGHTTRACK_MOBILE
    from nas.ops.blocks import fold_batchnorm
    from trackers.lighttrack.model import build_subnet

    space = load_space("lighttrack-mobile")
    model = build_subnet(space, from_lighttrack_string(space, LIGHTTRACK_MOBILE))
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():  # non-trivial statistics, so a wrong fold cannot pass
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.5, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.normal_(0, 0.2, generator=generator)
    model.eval()
    folded = fold_batchnorm(model)
    count = lambda m: sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())  # noqa: E731
    assert count(folded) == 2 < count(model)  # only the neck's standalone template/search BNs remain
    z, x = torch.randn(1, 3, 128, 128, generator=generator), torch.randn(1, 3, 256, 256, generator=generator)
    with torch.no_grad():
        expected, got = model(z, x), folded(z, x)
    for key in ("cls", "reg"):
        assert torch.allclose(got[key], expected[key], rtol=1e-4, atol=1e-4), key
    assert any(isinstance(x, torch.nn.BatchNorm2d) for x in model.modules())  # the original is untouched
