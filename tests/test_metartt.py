"""MetaRTT: RoIAlign, Meta-SGD steps, physical channel pruning (fvcore FLOPs), meta-training, tracking."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from nas.cost.counting import count_flops, count_params
from nas.data.datasets import open_dataset
from trackers.metartt import (
    AdaptConfig, EpisodeConfig, MetaRTT, MetaRTTConfig, MetaRTTTracker, MetaRTTTrackerConfig, RTMDNet,
    RTMDNetConfig, SceneConfig, adapt, effective_masks, kept_channels, make_synthetic_episodes,
    meta_step, pruning_step, roi_align, roi_pool, slice_parameters)
from trackers.metartt.geometry import iou
from trackers.metartt.model import PRUNABLE, lasso

SMALL_NET = RTMDNetConfig(channels=(16, 32, 64), fc_widths=(64, 64))
SMALL_NET_NO_DROPOUT = replace(SMALL_NET, dropout=0.0)
SMALL_SCENE = SceneConfig(img_size=80)
SMALL_EPISODES = EpisodeConfig(n_pos=16, n_neg=48, n_candidates=32, scene=SMALL_SCENE)


def _bilinear(fmap: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """Direct bilinear value of a (C, H, W) map at (y, x), coordinates clamped to the map."""
    h, w = fmap.shape[-2:]
    y, x = min(max(y, 0.0), h - 1.0), min(max(x, 0.0), w - 1.0)
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * fmap[:, y0, x0] + (1 - ly) * lx * fmap[:, y0, x1]
            + ly * (1 - lx) * fmap[:, y1, x0] + ly * lx * fmap[:, y1, x1])


def test_roi_align_matches_direct_bilinear_sampling():
    torch.manual_seed(0)
    fmap = torch.randn(1, 3, 6, 9)
    # bins below, near and above one cell (1, 2 and 3 samples per axis) and a RoI past the border
    rois = torch.tensor([[0.3, 0.7, 5.9, 4.2], [1.0, 1.0, 1.6, 1.3], [-0.5, -0.2, 8.6, 5.8], [0.0, 0.0, 8.0, 5.0]])
    size = 3
    out = roi_align(fmap, rois, size)
    assert out.shape == (4, 3, size, size)
    for r, (x1, y1, x2, y2) in enumerate(rois.tolist()):
        bw, bh = (x2 - x1) / size, (y2 - y1) / size
        nx, ny = max(1, round(bw)), max(1, round(bh))
        for i in range(size):
            for j in range(size):
                points = [_bilinear(fmap[0], y1 + (i + (a + 0.5) / ny) * bh, x1 + (j + (b + 0.5) / nx) * bw)
                          for a in range(ny) for b in range(nx)]
                torch.testing.assert_close(out[r, :, i, j], torch.stack(points).mean(0), atol=1e-5, rtol=1e-5)
    # the default 7x7 align + 3x3/2 max pool gives RT-MDNet's 3x3 cells per channel
    assert roi_pool(fmap, rois).shape == (4, 3 * 3 * 3)


def test_default_network_shapes():
    net = RTMDNet().eval()
    with torch.no_grad():
        fmap = net.features(torch.zeros(1, 3, 107, 107))
        # VALID 7/2, pool 3/2, 5/2, 3 dil 3: 107 -> 51 -> 25 -> 11 -> 5
        assert fmap.shape == (1, 512, 5, 5)
        logits = net(torch.zeros(1, 3, 203, 203), torch.tensor([[0.0, 0.0, 8.0, 8.0], [2.0, 1.0, 9.0, 11.0]]))
    assert logits.shape == (2, 2)
    assert net.head.fc4.in_features == 4608


def test_adaptation_steps_are_per_parameter_sgd_and_differentiable():
    torch.manual_seed(0)
    learner = MetaRTT(MetaRTTConfig(net=SMALL_NET_NO_DROPOUT))
    rates = learner.alpha_init.rates()
    assert len(rates) == 5 and len(learner.alpha_on.rates()) == 5
    params = learner.net.head_params()
    assert all(rates[0][k].shape == v.shape for k, v in params.items())
    pos, neg = torch.randn(6, 576), torch.randn(10, 576)  # smaller than one minibatch: all used
    rng = np.random.default_rng(0)
    first = adapt(learner.net, params, rates[:1], pos, neg, rng, AdaptConfig(), create_graph=True)[0]
    labels = torch.cat([torch.ones(6), torch.zeros(10)]).long()
    loss = torch.nn.functional.cross_entropy(learner.net.classify(torch.cat([pos, neg]), params), labels)
    grads = torch.autograd.grad(loss, list(params.values()), retain_graph=True)
    for (name, value), grad in zip(params.items(), grads):
        torch.testing.assert_close(first[name], value - rates[0][name] * grad)
    # the unrolled steps carry gradients to theta_0 and to the learning-rate vectors
    learner.net.classify(pos, first)[:, 1].sum().backward()
    assert learner.alpha_init.steps[0]["fc4_weight"].grad.abs().sum() > 0
    assert learner.net.head.fc4.weight.grad.abs().sum() > 0


def _random_masks(rng: np.random.Generator, widths: dict[str, int]) -> dict[str, torch.Tensor]:
    """Masks in [0.5, 1.5] with about half of each layer's channels at exactly 0."""
    return {layer: torch.from_numpy(rng.uniform(0.5, 1.5, c) * (rng.uniform(size=c) < 0.5)).float()
            for layer, c in widths.items()}


def test_pruned_network_equals_masked_network_and_costs_less():
    torch.manual_seed(0)
    net = RTMDNet(SMALL_NET).eval()
    masks = _random_masks(np.random.default_rng(3), SMALL_NET.widths())
    keep = kept_channels(masks)
    small = net.prune(masks).eval()
    assert small.config.widths() == {layer: len(keep[layer]) for layer in PRUNABLE}
    image = torch.randn(1, 3, 171, 171) * 60.0
    rois = torch.tensor([[0.0, 0.0, 6.0, 6.0], [3.0, 2.5, 9.5, 10.0], [1.0, 4.0, 12.0, 11.0]])
    with torch.no_grad():
        full_maps = net.features(image, masks, all_layers=True)
        small_maps = small.features(image, all_layers=True)
        for layer, full, pruned in zip(PRUNABLE, full_maps, small_maps):
            torch.testing.assert_close(pruned, full[:, keep[layer]], atol=1e-4, rtol=1e-4)
            assert full[:, masks[layer] == 0].abs().max() == 0  # removed channels carried nothing
        feats = roi_pool(full_maps[-1], rois)
        full_head = net.classify(feats, masks=masks, all_layers=True)
        small_head = small.classify(roi_pool(small_maps[-1], rois), all_layers=True)
        for layer, full, pruned in zip(("fc4", "fc5"), full_head, small_head):
            torch.testing.assert_close(pruned, full[:, keep[layer]], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(small(image, rois), full_head[-1], atol=1e-4, rtol=1e-4)
    # adapted head parameters and learning-rate vectors are sliced the same way
    sliced = slice_parameters(net.head_params(), keep, masks)
    assert {k: v.shape for k, v in sliced.items()} == {k: v.shape for k, v in small.head_params().items()}
    # fvcore: the FLOPs drop to exactly those of a fresh network of the kept widths
    flops_full, flops_small = count_flops(net, (image, rois)), count_flops(small, (image, rois))
    fresh = RTMDNet(small.config)
    assert flops_small == count_flops(fresh, (image, rois))
    assert flops_small < 0.6 * flops_full
    assert count_params(small) == count_params(fresh) < count_params(net)


def test_pruning_network_learns_masks_that_remove_channels():
    torch.manual_seed(0)
    learner = MetaRTT(MetaRTTConfig(net=SMALL_NET))
    episodes = make_synthetic_episodes(2, np.random.default_rng(0), n_frames=3)
    config = EpisodeConfig(n_pos=16, n_neg=48, n_candidates=32, scene=SMALL_SCENE)
    theta_before = {k: v.clone() for k, v in learner.net.state_dict().items()}
    optimizer = torch.optim.Adam(learner.pruner.parameters(), lr=3e-2)

    def predicted() -> dict[str, torch.Tensor]:
        learner.pruner.eval()
        episode = episodes[0]
        boxes = np.array([episode.boxes[0]])
        with torch.no_grad():
            pooled = learner.pooled_features(episode.frames[0], boxes, episode.boxes[0][2:],
                                             learner.net.head_params(), SMALL_SCENE)
            return learner.pruner(pooled)

    before = predicted()
    assert all(len(kept_channels(before, 0.05)[k]) == SMALL_NET.widths()[k] for k in PRUNABLE)
    losses = [pruning_step(learner, episodes, optimizer, config, np.random.default_rng(1), lasso_weight=0.05)
              for _ in range(6)]
    after = predicted()
    assert float(lasso(after)) < float(lasso(before))
    assert losses[-1] < losses[0]
    for key, value in learner.net.state_dict().items():  # theta is fixed while the pruner learns
        assert torch.equal(value, theta_before[key]), key
    masks = effective_masks(after, 0.05)
    kept = {k: len(v) for k, v in kept_channels(masks).items()}
    assert sum(kept.values()) < sum(SMALL_NET.widths().values())
    small = learner.net.prune(masks)
    image, rois = torch.randn(1, 3, 150, 150) * 60.0, torch.tensor([[0.0, 0.0, 7.0, 7.0]])
    assert count_flops(small, (image, rois)) < count_flops(learner.net, (image, rois))


def test_meta_training_lowers_the_meta_loss():
    torch.manual_seed(0)
    learner = MetaRTT(MetaRTTConfig(net=SMALL_NET_NO_DROPOUT))
    episodes = make_synthetic_episodes(3, np.random.default_rng(0), n_frames=4)
    for episode in episodes:
        assert len(episode.frames) == 4 and episode.boxes.shape == (4, 4)
        assert (episode.boxes[:, 2:] > 10).all()
    alpha_before = learner.alpha_on.steps[4]["fc6_weight"].detach().clone()
    optimizer = torch.optim.Adam(learner.meta_parameters(), lr=3e-4)
    # a fixed sample seed per step makes the meta-objective a function of the meta-parameters only
    losses = [meta_step(learner, episodes, optimizer, SMALL_EPISODES, np.random.default_rng(1))
              for _ in range(10)]
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    assert not torch.equal(learner.alpha_on.steps[4]["fc6_weight"], alpha_before)  # A_on is learnt too


@pytest.fixture(scope="module")
def crossing(otb_root):
    seq = next(s for s in open_dataset(otb_root, "otb") if s.name == "Crossing")
    return [seq.frame(i) for i in range(15)], seq.boxes[:15]


TRACK_CONFIG = MetaRTTTrackerConfig(n_pos_init=64, n_neg_init=256, n_candidates=64, n_pos_update=16,
                                    n_neg_update=48, scene=SceneConfig(max_scene_size=512))


@pytest.mark.parametrize("prune", [False, True])
def test_tracker_runs_on_crossing(crossing, prune):
    frames, boxes = crossing
    torch.manual_seed(0)
    learner = MetaRTT(MetaRTTConfig(net=SMALL_NET))
    if prune:  # an extreme pruner output: every other channel off in every layer
        with torch.no_grad():
            for mlp in learner.pruner.mlps.values():
                mlp[3].weight.zero_()
                mlp[3].bias.copy_(torch.arange(mlp[3].bias.numel()) % 2)
    tracker = MetaRTTTracker(learner, replace(TRACK_CONFIG, prune=prune), device="cpu")
    tracker.initialize(frames[0], boxes[0])
    if prune:
        assert tracker.net.config.widths() == {k: v // 2 for k, v in SMALL_NET.widths().items()}
        assert tracker.params["fc4.weight"].shape == (32, 32 * 9)
        assert tracker.rates_on[0]["fc5.weight"].shape == (32, 32)
    else:
        assert tracker.net is learner.net
    theta_0 = learner.net.head_params()["fc6.weight"].detach().clone()
    results = [tracker.track(frame) for frame in frames[1:]]
    out = np.stack([r.box for r in results])
    assert out.shape == (14, 4) and np.isfinite(out).all() and (out[:, 2:] > 0).all()
    assert all(np.isfinite(r.score) for r in results)
    assert (out[:, :2] + out[:, 2:] / 2 >= 0).all()
    assert (out[:, 0] + out[:, 2] / 2 <= frames[0].shape[1]).all()
    # the tracker adapts a copy: the meta-learned initial weights are untouched
    assert torch.equal(learner.net.head_params()["fc6.weight"], theta_0)


def test_tracker_follows_the_target_with_a_longer_first_frame_adaptation(crossing):
    """Geometry check: even random conv features localise Crossing once the head is adapted enough.

    Without meta-training the positive logit stays below RT-MDNet's success threshold 0 (it only
    learns the class prior in a few steps), so the threshold is lowered to keep the tracker in its
    normal (success) regime; K_init = 50 and larger steps stand in for the meta-learned ones.
    """
    frames, boxes = crossing
    torch.manual_seed(0)
    learner = MetaRTT(MetaRTTConfig(net=RTMDNetConfig(channels=(32, 64, 128), fc_widths=(128, 128)),
                                    k_init=50, k_on=15, alpha_init_value=1e-2))
    config = replace(TRACK_CONFIG, n_pos_init=200, n_neg_init=1000, n_candidates=256, success_threshold=-10.0)
    tracker = MetaRTTTracker(learner, config, device="cpu")
    tracker.initialize(frames[0], boxes[0])
    overlaps = [iou(boxes[i:i + 1], tracker.track(frames[i]).box)[0] for i in range(1, len(frames))]
    assert np.mean(overlaps) > 0.5 and min(overlaps) > 0.2
