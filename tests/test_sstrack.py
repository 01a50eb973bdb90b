"""SSTrack schedule: the exact success-chain derivative, its d limits, gradient scaling, the bin
sampler and checkpoint round trips. The chain is re-derived here with explicit 2x2 matrices (the
module uses scalar recursions), so the two implementations check each other."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from nas.data.intervals import UniformInterval
from nas.errors import ConfigError
from nas.io import atomic_torch_save, torch_load
from nas.train.sstrack import (
    IntervalBins,
    SSTrackSchedule,
    gradient_scale,
    make_interval_strategy,
    pacing,
    success_aware_q,
    success_gradient,
)


def chain_success(p: np.ndarray, d: float) -> float:
    """S = mean_k pi_0 T_0..T_k (1,0)^T with T_k = [[p, 1-p], [d p, 1-d p]] as explicit matrices."""
    state, total = np.array([1.0, 0.0]), 0.0
    for pk in p:
        state = state @ np.array([[pk, 1 - pk], [d * pk, 1 - d * pk]])
        total += state[0]
    return total / len(p)


def test_derivative_matches_finite_differences_and_autograd() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 10))
        p, d = rng.uniform(0, 1, n), float(rng.uniform(0, 1))
        exact = success_gradient(p, d)
        # S is affine in each p_i, so a central difference is exact up to rounding.
        h = 1e-3
        numeric = np.array([(chain_success(p + h * e, d) - chain_success(p - h * e, d)) / (2 * h)
                            for e in np.eye(n)])
        np.testing.assert_allclose(exact, numeric, rtol=0, atol=1e-11)
        pt = torch.tensor(p, requires_grad=True)
        state, total = torch.tensor([1.0, 0.0], dtype=torch.float64), 0.0
        for k in range(n):
            row0, row1 = torch.stack([pt[k], 1 - pt[k]]), torch.stack([d * pt[k], 1 - d * pt[k]])
            state = state[0] * row0 + state[1] * row1
            total = total + state[0]
        (total / n).backward()
        np.testing.assert_allclose(exact, pt.grad.numpy(), rtol=0, atol=1e-14)


def test_d_one_gives_uniform_q() -> None:
    rng = np.random.default_rng(1)
    for p in [rng.uniform(0, 1, 8), np.zeros(8), np.ones(8), np.r_[0.0, rng.uniform(0, 1, 7)]]:
        np.testing.assert_allclose(success_aware_q(p, 1.0), np.full(8, 1 / 8), rtol=0, atol=1e-15)


def test_d_zero_favours_short_intervals() -> None:
    n = 8
    for c in (0.3, 0.7, 0.95):
        q = success_aware_q(np.full(n, c), 0.0)
        # d = 0: E[X_k] = c^(k+1), so dS/dp_i = sum_{k>=i} c^k / n.
        expected = np.array([sum(c ** k for k in range(i, n)) for i in range(n)])
        np.testing.assert_allclose(q, expected / expected.sum(), rtol=1e-13)
        assert np.all(np.diff(q) < 0)
    # Raising d moves q monotonically from easy-heavy towards uniform (easier-to-harder).
    firsts = [success_aware_q(np.full(n, 0.6), d)[0] for d in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(a > b for a, b in zip(firsts, firsts[1:]))


@pytest.mark.parametrize("p", [np.zeros(6), np.ones(6), np.array([0.0, 1.0, 0.0, 0.5, 0.0, 1.0]),
                               np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0])])
@pytest.mark.parametrize("d", [0.0, 0.3, 1.0])
def test_no_nan_for_extreme_success_rates(p: np.ndarray, d: float) -> None:
    q = success_aware_q(p, d)
    assert np.all(np.isfinite(q)) and np.all(q >= 0)
    assert math.isclose(q.sum(), 1.0, rel_tol=1e-12)
    gamma = gradient_scale(IntervalBins(150, 30).random_mass(), q, 0.9)  # 1 + 5 bins
    assert np.all(np.isfinite(gamma)) and np.all(gamma >= 1)


def test_all_failures_at_d_zero_train_only_the_first_bin() -> None:
    q = success_aware_q(np.zeros(5), 0.0)
    np.testing.assert_array_equal(q, [1.0, 0.0, 0.0, 0.0, 0.0])


def test_pacing_schedule() -> None:
    assert pacing(0, 10, 2.0) == 0.0
    assert pacing(4, 16, 2.0) == 0.5
    assert pacing(8, 8, 2.0) == 1.0 and pacing(9, 8, 2.0) == 1.0
    assert pacing(1, 8, 1.0) == 0.125


def test_bins_partition_intervals_and_random_mass() -> None:
    bins = IntervalBins(200, 30)
    assert len(bins) == 1 + 7
    assert bins.bounds[:3] == ((0, 1), (1, 30), (30, 60)) and bins.bounds[-1] == (180, 200)
    covered = [g for lo, hi in bins.bounds for g in range(lo, hi)]
    assert covered == list(range(200))
    np.testing.assert_allclose(bins.random_mass(), np.r_[1, 29, 30, 30, 30, 30, 30, 20] / 200)


def test_gradient_scale_hand_checked() -> None:
    bins = IntervalBins(10, 5)  # widths 1, 4, 5 -> q^R = (0.1, 0.4, 0.5)
    np.testing.assert_allclose(bins.random_mass(), [0.1, 0.4, 0.5])
    # s = (0.5, -0.5, 0.3): pruned by half -> 2, enhanced -> 1, pruned by 0.3 -> 1/0.7.
    np.testing.assert_allclose(gradient_scale(bins.random_mass(), np.array([0.05, 0.6, 0.35]), 0.9),
                               [2.0, 1.0, 1 / 0.7], rtol=1e-14)
    # A bin dropped entirely has s = 1, clamped to 0.9 -> weight 10.
    np.testing.assert_allclose(gradient_scale(bins.random_mass(), np.array([0.0, 0.5, 0.5]), 0.9),
                               [10.0, 1.0, 1.0], rtol=1e-14)


def test_loss_weights_follow_bins() -> None:
    sched = SSTrackSchedule(epochs=4, max_interval=10, bin_width=5)
    sched.update_epoch([0, 1, 1, 2, 2, 2], [0.9, 0.8, 0.1, 0.2, 0.1, 0.0])
    gamma = gradient_scale(sched.q_random, sched.q, 0.9)
    assert not np.allclose(gamma, 1.0)
    w = sched.loss_weights(torch.tensor([2, 0, 1, 0]))
    assert w.dtype == torch.float32
    np.testing.assert_allclose(w.numpy(), gamma[[2, 0, 1, 0]], rtol=1e-6)
    off = SSTrackSchedule(epochs=4, max_interval=10, bin_width=5, gradient_scaling=False)
    off.load_state_dict({**sched.state_dict(), "config": off.state_dict()["config"]})
    assert torch.equal(off.loss_weights([2, 0, 1]), torch.ones(3))
    with pytest.raises(ValueError):
        sched.loss_weights([3])


def test_update_epoch_statistics() -> None:
    sched = SSTrackSchedule(epochs=5, max_interval=90, bin_width=30)  # bins 0..3
    np.testing.assert_allclose(sched.q, np.full(4, 0.25))  # first epoch: uniform
    ious = np.array([0.9, 0.7, 0.2, 0.6, 0.1, 0.0])  # mean 5/12
    rec = sched.update_epoch(np.array([0, 0, 1, 1, 1, 3]), ious)
    assert math.isclose(rec["tau"], ious.mean())
    assert rec["epoch"] == 2 and math.isclose(rec["d"], math.sqrt(2 / 5))
    assert rec["n"] == [2, 3, 0, 1]
    np.testing.assert_allclose(rec["p"], [1.0, 1 / 3, 0.5, 0.0])  # empty bin 2 keeps its prior
    np.testing.assert_allclose(rec["q"], success_aware_q(np.array(rec["p"]), rec["d"]))
    rec = sched.update_epoch([2, 2, 1], [0.5, 0.1, 0.9])
    np.testing.assert_allclose(rec["p"], [1.0, 1.0, 0.0, 0.0])  # bins 0, 3 carried
    assert set(rec) == {"epoch", "tau", "d", "n", "p", "q", "gamma"}
    with pytest.raises(ValueError):
        sched.update_epoch([0, 1], [0.5])
    with pytest.raises(ValueError):
        sched.update_epoch([0], [float("nan")])


def test_sampler_respects_bins_and_video_bounds() -> None:
    sched = SSTrackSchedule(epochs=3, max_interval=100, bin_width=20)
    sched.update_epoch(np.arange(6), np.linspace(0, 1, 6))
    rng = np.random.default_rng(3)
    for length in [*range(1, 130), 500]:  # includes the L = 2l - 1 edge of every bin
        feasible = sched.bins.feasible(length)
        for _ in range(60):
            t_z, t_x, b = sched.sample(rng, length)
            lo, hi = sched.bins.bounds[b]
            assert 0 <= t_z < length and 0 <= t_x < length
            assert lo <= abs(t_x - t_z) < hi and feasible[b]


def test_pairs_cover_exactly_the_frames_with_a_partner() -> None:
    bins, rng = IntervalBins(100, 20), np.random.default_rng(6)
    pairs = [bins.sample_pair(rng, 50, 3) for _ in range(4000)]  # bin 3 = [40, 60)
    assert {t_z for t_z, _ in pairs} == set(range(10)) | set(range(40, 50))
    assert {(t_z, t_x) for t_z, t_x in pairs} == {(a, b) for a in range(50) for b in range(50) if abs(a - b) >= 40}
    with pytest.raises(ValueError):
        bins.sample_pair(rng, 40, 3)


def test_sampler_bin_frequencies_follow_q_and_short_videos_fall_back() -> None:
    sched = SSTrackSchedule(epochs=3, max_interval=100, bin_width=20)
    sched.update_epoch(np.arange(6), [0.9, 0.8, 0.5, 0.4, 0.2, 0.1])
    rng = np.random.default_rng(4)
    freq = np.bincount([sched.sample(rng, 1000)[2] for _ in range(20000)], minlength=6) / 20000
    np.testing.assert_allclose(freq, sched.q, atol=0.015)
    # A 30-frame video holds bins 0..2 only: q renormalised over them.
    freq = np.bincount([sched.sample(rng, 30)[2] for _ in range(20000)], minlength=6) / 20000
    np.testing.assert_allclose(freq[:3], sched.q[:3] / sched.q[:3].sum(), atol=0.015)
    assert freq[3:].sum() == 0
    # q with no mass on the feasible bins: the longest feasible bin is used.
    sched.load_state_dict({**sched.state_dict(), "q": [0, 0, 0, 0, 0.5, 0.5]})
    assert {sched.sample(rng, 30)[2] for _ in range(50)} == {2}
    # A single image holds only the static bin.
    assert sched.sample(rng, 1) == (0, 0, 0)


def test_sampler_is_deterministic_for_a_seeded_rng() -> None:
    sched = SSTrackSchedule(epochs=3)
    draws = [[sched.sample(np.random.default_rng(7), length) for length in (3, 50, 400, 1000)] for _ in range(2)]
    assert draws[0] == draws[1]
    a, b = np.random.default_rng(7), np.random.default_rng(8)
    assert [sched.sample(a, 400) for _ in range(20)] != [sched.sample(b, 400) for _ in range(20)]


def test_state_dict_round_trip_through_checkpoint(tmp_path) -> None:
    sched = SSTrackSchedule(epochs=6, max_interval=120, bin_width=30)
    rng = np.random.default_rng(5)
    for _ in range(2):
        ids = rng.integers(0, 5, 200)
        sched.update_epoch(ids, np.clip(1 - ids / 5 + rng.normal(0, 0.2, 200), 0, 1))
    atomic_torch_save({"schedule": sched.state_dict()}, tmp_path / "ckpt.pt")
    resumed = SSTrackSchedule(epochs=6, max_interval=120, bin_width=30)
    resumed.load_state_dict(torch_load(tmp_path / "ckpt.pt")["schedule"])
    assert resumed.state_dict() == sched.state_dict()
    ids, ious = rng.integers(0, 5, 100), rng.uniform(0, 1, 100)
    assert resumed.update_epoch(ids, ious) == sched.update_epoch(ids, ious)
    assert [resumed.sample(np.random.default_rng(1), 90) for _ in range(5)] == \
        [sched.sample(np.random.default_rng(1), 90) for _ in range(5)]
    # DataLoader workers receive the strategy by pickling: the copy must draw the same pairs.
    copy = pickle.loads(pickle.dumps(sched))
    assert copy.sample(np.random.default_rng(2), 300) == sched.sample(np.random.default_rng(2), 300)
    with pytest.raises(ValueError):
        SSTrackSchedule(epochs=7, max_interval=120, bin_width=30).load_state_dict(sched.state_dict())


def test_factory_builds_strategies_and_rejects_bad_config() -> None:
    uniform = make_interval_strategy({"schedule": "uniform", "max_gap": 30})
    assert isinstance(uniform, UniformInterval) and uniform.max_gap == 30
    assert isinstance(make_interval_strategy({}), UniformInterval)
    sst = make_interval_strategy({"schedule": "sstrack", "epochs": 20, "bin_width": 25, "pacing_order": 3})
    assert isinstance(sst, SSTrackSchedule) and len(sst.bins) == 1 + 8 and sst.pacing_order == 3.0
    bad = [
        ({"schedule": "curriculum"}, "schedule"),
        ({"schedule": "uniform", "bin_width": 3}, "bin_width"),
        ({"schedule": "sstrack"}, "epochs"),
        ({"schedule": "sstrack", "epochs": 0}, "epochs"),
        ({"schedule": "sstrack", "epochs": 5, "bin_width": 1}, "bin_width"),
        ({"schedule": "sstrack", "epochs": 5, "max_interval": 2.5}, "max_interval"),
        ({"schedule": "sstrack", "epochs": 5, "pacing_order": 0}, "pacing_order"),
        ({"schedule": "sstrack", "epochs": 5, "max_prune": 1.0}, "max_prune"),
        ({"schedule": "sstrack", "epochs": 5, "gradient_scaling": "yes"}, "gradient_scaling"),
        ({"schedule": "uniform", "max_gap": True}, "max_gap"),
    ]
    for cfg, key in bad:
        with pytest.raises(ConfigError) as err:
            make_interval_strategy(cfg, source="train.yaml")
        message = str(err.value)
        assert "\n" not in message and message.startswith("train.yaml: ") and key in message, message
