"""GradNet: shapes, the zero-gradient property of U1, the loss, template-generalization training, tracking."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data

from nas.data.crops import crop_square, normalize
from nas.data.datasets import open_dataset
from trackers.gradnet import (
    GradNet, GradNetConfig, GradNetTracker, GradNetTrackerConfig, logistic_label, logistic_loss,
    template_generalization_step, trainable_parameters, xcorr)

SMALL = GradNetConfig(channels=(24, 32, 32, 32, 32))


@pytest.fixture(scope="module")
def model() -> GradNet:
    torch.manual_seed(0)
    return GradNet().eval()


def test_shapes_follow_siamfc(model):
    z, x, x_train = torch.randn(1, 3, 127, 127), torch.randn(2, 3, 255, 255), torch.randn(1, 3, 239, 239)
    with torch.no_grad():
        h = model.hidden(z)
        template = model.template(h)
        feats = model.search_features(x)
        assert h.shape == (1, 256, 12, 12)
        assert template.shape == model.siamfc_template(z).shape == (1, 256, 6, 6)
        assert feats.shape == (2, 256, 22, 22)
        assert model.score(template, feats).shape == (2, 1, 17, 17)
        assert model.score(template, model.search_features(x_train)).shape == (1, 1, 15, 15)


def test_pairwise_correlation_matches_per_pair():
    templates, feats = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 5, 5)
    paired = xcorr(templates, feats)
    for b in range(3):
        torch.testing.assert_close(paired[b:b + 1], xcorr(templates[b:b + 1], feats[b:b + 1]))


@pytest.mark.parametrize("training", [False, True])
def test_zero_gradient_leaves_the_template_unchanged(training):
    torch.manual_seed(1)
    net = GradNet(GradNetConfig(channels=(24, 32, 32, 32, 32), u1_width=16)).train(training)
    with torch.no_grad():  # arbitrary "trained" normalisation state: U1(0) must still be exactly 0
        net.u1.norm.weight.uniform_(0.5, 2.0)
        net.u1.norm.running_sq.uniform_(0.1, 3.0)
    h = torch.randn(1, 32, 12, 12)
    assert torch.equal(h + net.u1(torch.zeros_like(h)), h)
    net.eval()  # U2 in eval mode, so the two templates are computed identically
    assert torch.equal(net.template(h + net.u1(torch.zeros_like(h))), net.template(h))
    net.train(training)
    assert not torch.equal(h + net.u1(1e-4 * torch.randn_like(h)), h)


def test_update_changes_the_template_and_gradient_is_nonzero(model):
    z, x = torch.randn(1, 3, 127, 127), torch.randn(2, 3, 255, 255)
    with torch.no_grad():
        h, feats = model.hidden(z), model.search_features(x)
    leaf = h.clone().requires_grad_(True)
    loss = logistic_loss(model.score(model.template(leaf), feats), model.label(17))
    grad, = torch.autograd.grad(loss, leaf)
    assert torch.isfinite(grad).all() and grad.abs().max() > 0
    h_new, template = model.update_template(h, feats)
    assert h_new.shape == h.shape and template.shape == (1, 256, 6, 6)
    assert (h_new - h).abs().max() > 0
    assert (template - model.template(h)).abs().max() > 0


def test_label_and_balanced_logistic_loss():
    label = logistic_label(17, 2.0)
    assert int((label > 0).sum()) == 13  # cells within 2 of the centre: 1 + 4 + 4 + 4
    assert label[8, 8] == 1 and label[8, 11] == -1
    zero = torch.zeros(2, 1, 17, 17)
    # weights sum to 1 per map, then the mean runs over B*H*W cells
    assert float(logistic_loss(zero, label)) == pytest.approx(math.log(2.0) / 289, rel=1e-6)
    perfect = (20.0 * label).expand(2, 1, 17, 17)
    assert float(logistic_loss(perfect, label)) < 1e-9
    assert float(logistic_loss(-perfect, label)) > 0.05


def _centred_pairs(search_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exemplar/search crops of four real images (one per 'video'), target at each search centre."""
    images = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    centres = [(250.0, 180.0), (300.0, 200.0), (220.0, 150.0), (300.0, 250.0)]
    z = [normalize(crop_square(im, c, 90.0, 127)) for im, c in zip(images, centres)]
    x = [normalize(crop_square(im, (c[0] + 5.0, c[1] - 3.0), 90.0 * search_size / 127, search_size))
         for im, c in zip(images, centres)]
    return torch.from_numpy(np.stack(z)), torch.from_numpy(np.stack(x))


def test_template_generalization_lowers_the_loss():
    torch.manual_seed(0)
    net = GradNet(SMALL)
    z, x = _centred_pairs(239)
    search_before = {k: v.clone() for k, v in net.search.state_dict().items()}
    u1_before = net.u1.convs[0].weight.detach().clone()
    optimizer = torch.optim.Adam(trainable_parameters(net), lr=1e-3)
    losses = [template_generalization_step(net, z, x, optimizer) for _ in range(8)]
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:2])
    # U1 learns through the second-order path; the search branch (weights and BN stats) stays frozen
    assert (net.u1.convs[0].weight - u1_before).abs().max() > 0
    for key, value in net.search.state_dict().items():
        assert torch.equal(value, search_before[key]), key


def _crossing(otb_root, n: int):
    seq = next(s for s in open_dataset(otb_root, "otb") if s.name == "Crossing")
    return [seq.frame(i) for i in range(n)], seq.boxes[:n]


def test_tracker_runs_on_crossing(otb_root, model):
    frames, boxes = _crossing(otb_root, 15)
    tracker = GradNetTracker(model, device="cpu")
    tracker.initialize(frames[0], boxes[0])
    templates, results = [], []
    for frame in frames[1:]:
        results.append(tracker.track(frame))
        templates.append(tracker.template_gra.clone())
    out = np.stack([r.box for r in results])
    assert out.shape == (14, 4) and np.isfinite(out).all() and (out[:, 2:] > 0).all()
    assert all(np.isfinite(r.score) for r in results)
    # the threshold is the mean peak of frames 1..5, not the first frame's peak
    assert tracker.threshold == pytest.approx(np.mean([r.score for r in results[:5]]))
    # a periodic update at frame 5 changes the GradNet template, none happens at frames 1..4
    assert all(torch.equal(templates[0], t) for t in templates[:4])
    assert not torch.equal(templates[3], templates[4])


def test_tracker_update_interval_and_small_settings_are_configurable(otb_root):
    torch.manual_seed(0)
    frames, boxes = _crossing(otb_root, 8)
    config = GradNetTrackerConfig(num_scales=1, response_up=4, update_interval=3)
    tracker = GradNetTracker(GradNet(SMALL), config, device="cpu")
    tracker.initialize(frames[0], boxes[0])
    assert tracker.window.shape == (68, 68)
    templates = []
    for frame in frames[1:]:
        assert np.isfinite(tracker.track(frame).box).all()
        templates.append(tracker.template_gra.clone())
    changed = [not torch.equal(a, b) for a, b in zip(templates, templates[1:])]
    assert changed == [False, True, False, False, True, False]  # updates at frames 3 and 6
