"""DiMP core: closed-form filter gradient and Gauss-Newton step against autograd and the formulas
recomputed here, optimizer convergence, exact PrRoI pooling against numeric integration, the
learned-loss initialisation, losses, and shapes on a LightTrack-sized stride-16 map."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nas.ops.dimp import (
    ClassificationFeatures,
    DiMPSteepestDescentGN,
    FilterInitializerLinear,
    FilterInitializerZero,
    InstanceL2Norm,
    IterateWeightedLoss,
    LBHinge,
    apply_filter,
    filter_gradient,
    prroi_pool2d,
)

STRIDE = 16


def random_problem(seed: int, k: int, b: int = 2, n: int = 3, d: int = 5, size: int = 7):
    """Random double-precision features, filters, boxes inside the map and sample weights."""
    gen = torch.Generator().manual_seed(seed)
    feat = torch.randn(b, n, d, size, size, generator=gen, dtype=torch.float64)
    weights = torch.randn(b, d, k, k, generator=gen, dtype=torch.float64) * 0.3
    wh = (torch.rand(b, n, 2, generator=gen, dtype=torch.float64) * 2 + 1) * STRIDE
    xy = torch.rand(b, n, 2, generator=gen, dtype=torch.float64) * (size * STRIDE - wh)
    sample_weight = torch.rand(b, n, generator=gen, dtype=torch.float64) + 0.1
    return feat, weights, torch.cat([xy, wh], dim=-1), sample_weight


def learned_optimizer(seed: int) -> DiMPSteepestDescentGN:
    """An optimizer whose label/mask/weight functions and step/reg are perturbed away from their init."""
    opt = DiMPSteepestDescentGN(num_dist_bins=20, bin_displacement=0.5).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in (opt.label_map_predictor, opt.target_mask_predictor, opt.spatial_weight_predictor):
            conv.weight.add_(0.5 * torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64))
        opt.spatial_weight_predictor.weight.abs_()
        opt.filter_reg.fill_(0.3)
        opt.log_step_length.fill_(math.log(0.7))
    return opt


def reference_residual(opt, feat, bb, sample_weight, weights):
    """r = sw (act(x * f, m) - y) with per-image convs and act written as a case split."""
    k = weights.shape[-1]
    label, mask, sw = opt.loss_maps(bb, feat.shape[-2:], k, sample_weight)
    scores = torch.stack([torch.stack([F.conv2d(feat[i, j][None], weights[i][None], padding=k // 2)[0, 0]
                                       for j in range(feat.shape[1])]) for i in range(feat.shape[0])])
    return sw * (torch.where(scores > 0, scores, mask * scores) - label)


@pytest.mark.parametrize("k", [3, 4])
def test_closed_form_gradient_matches_autograd(k: int) -> None:
    for seed in range(3):
        feat, weights, bb, sample_weight = random_problem(seed, k)
        opt = learned_optimizer(seed)
        with torch.no_grad():
            label, mask, sw = opt.loss_maps(bb, feat.shape[-2:], k, sample_weight)
            assert 0.05 < mask.std() and sw.std() > 0.05  # mask and weights really vary in space
            reg = opt.reg_weight()
            grad, _, _ = filter_gradient(feat, weights, label, mask, sw, reg)
        f = weights.clone().requires_grad_(True)
        half_loss = 0.5 * (reference_residual(opt, feat, bb, sample_weight, f).pow(2).sum() + reg * f.pow(2).sum())
        (expected,) = torch.autograd.grad(half_loss, f)
        torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)


def test_gauss_newton_step_matches_its_formula() -> None:
    k = 4
    feat, weights, bb, sample_weight = random_problem(7, k)
    opt = learned_optimizer(7)
    with torch.no_grad():
        reg, step = opt.reg_weight(), opt.log_step_length.exp()

    def residual(f: torch.Tensor) -> torch.Tensor:
        return reference_residual(opt, feat, bb, sample_weight, f)

    f = weights.clone().requires_grad_(True)
    loss = residual(f).pow(2).sum() + reg * f.pow(2).sum()
    (grad,) = torch.autograd.grad(0.5 * loss, f)
    _, jac_grad = torch.func.jvp(residual, (weights,), (grad,))  # J g, per sequence
    grad_sq = grad.pow(2).sum(dim=(1, 2, 3))
    alpha = grad_sq / (jac_grad.pow(2).sum(dim=(1, 2, 3)) + reg * grad_sq)
    with torch.no_grad():
        final, iterates, losses = opt(weights, feat, bb, sample_weight=sample_weight, num_iter=1)
    torch.testing.assert_close(final, weights - step * alpha.view(-1, 1, 1, 1) * grad, rtol=1e-10, atol=1e-12)
    assert len(iterates) == 2 and iterates[1] is final
    torch.testing.assert_close(losses[0], loss.detach() / feat.shape[0], rtol=1e-12, atol=0)


@pytest.mark.parametrize(("seed", "k"), [(0, 4), (1, 4), (2, 3)])
def test_loss_falls_and_filter_finds_the_target(seed: int, k: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    b, n, d, size = 2, 3, 32, 16
    feat = InstanceL2Norm(math.sqrt(1 / (d * k * k)))(torch.randn(b * n, d, size, size, generator=gen))
    feat = feat.view(b, n, d, size, size)
    cells = torch.randint(3, size - 3, (b, n, 2), generator=gen)
    # Box centre at image 16c (even k) or 16c + 8 (odd k): both put the label peak on output cell c.
    bb = torch.cat([cells * STRIDE - 8.0 + 8 * (k % 2), torch.full((b, n, 2), 16.0)], dim=-1)
    opt = DiMPSteepestDescentGN()
    f0 = FilterInitializerZero(k)(feat, bb)
    with torch.no_grad():
        final, _, losses = opt(f0, feat, bb, num_iter=10)
    assert torch.all(losses[1:] < losses[:-1]), losses
    assert losses[-1] < 0.5 * losses[0]
    out = size + (k + 1) % 2
    peaks = apply_filter(feat, final).flatten(2).argmax(-1)
    torch.testing.assert_close(torch.stack([peaks % out, peaks // out], dim=-1), cells)


def test_num_iter_zero_returns_the_initializer_filter_and_num_iter_is_a_forward_argument() -> None:
    feat, _, bb, _ = random_problem(3, 4, d=8)
    init = FilterInitializerLinear(filter_size=4, feature_dim=8).double()
    opt = DiMPSteepestDescentGN(num_iter=2).double()
    f0 = init(feat, bb)
    final, iterates, losses = opt(f0, feat, bb, num_iter=0)
    assert final is f0 and len(iterates) == 1 and losses.shape == (1,)
    assert len(opt(f0, feat, bb)[1]) == 3 and len(opt(f0, feat, bb, num_iter=4)[1]) == 5
    final, iterates, losses = opt(f0, feat, bb, num_iter=3, compute_losses=False)
    assert losses is None and len(iterates) == 4 and not torch.equal(final, f0)


def bilinear_reference(fmap: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of fmap (C, H, W) at points with zeros outside the map (padded lookup)."""
    pad = 2
    padded = F.pad(fmap, (pad, pad, pad, pad))
    y0, x0 = ys.floor(), xs.floor()
    out = 0
    for dy in (0, 1):
        for dx in (0, 1):
            wy, wx = 1 - (ys - y0 - dy).abs(), 1 - (xs - x0 - dx).abs()
            rows = (y0 + dy).long().clamp(-pad, fmap.shape[1] + pad - 1) + pad
            cols = (x0 + dx).long().clamp(-pad, fmap.shape[2] + pad - 1) + pad
            out = out + padded[:, rows, cols] * (wy * wx)
    return out


def test_prroi_pooling_matches_numeric_integration() -> None:
    gen = torch.Generator().manual_seed(0)
    fmap = torch.randn(2, 3, 6, 8, generator=gen, dtype=torch.float64)
    # Boxes in image pixels (scale 1/4): one inside, one crossing the right/bottom border, one sub-cell.
    rois = torch.tensor([[3.0, 2.0, 25.0, 19.0], [20.0, 9.0, 33.0, 27.0]], dtype=torch.float64)
    for roi_set in (rois, torch.tensor([[5.0, 6.0, 7.0, 9.0], [0.5, 0.5, 2.5, 3.5]], dtype=torch.float64)):
        pooled = prroi_pool2d(fmap, roi_set, (3, 2), spatial_scale=0.25)
        assert pooled.shape == (2, 3, 3, 2)
        steps = 240  # midpoint rule per bin
        for m in range(2):
            x0, y0, x1, y1 = (roi_set[m] * 0.25).tolist()
            for by in range(3):
                for bx in range(2):
                    ly, hy = y0 + (y1 - y0) * by / 3, y0 + (y1 - y0) * (by + 1) / 3
                    lx, hx = x0 + (x1 - x0) * bx / 2, x0 + (x1 - x0) * (bx + 1) / 2
                    ys = ly + (hy - ly) * (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
                    xs = lx + (hx - lx) * (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
                    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
                    expected = bilinear_reference(fmap[m], gy, gx).mean(dim=(1, 2))
                    torch.testing.assert_close(pooled[m, :, by, bx], expected, rtol=0, atol=2e-4)
    zero_width = torch.tensor([[4.0, 4.0, 4.0, 12.0], [8.0, 8.0, 2.0, 2.0]], dtype=torch.float64)
    assert torch.equal(prroi_pool2d(fmap, zero_width, 2, 0.25), torch.zeros(2, 3, 2, 2, dtype=torch.float64))


def test_learned_loss_functions_start_as_the_notes_say() -> None:
    opt = DiMPSteepestDescentGN()
    assert sum(p.numel() for p in opt.parameters()) == 302
    assert math.isclose(opt.reg_weight().item(), 0.01, rel_tol=1e-6)
    assert math.isclose(opt.log_step_length.exp().item(), 0.9, rel_tol=1e-6)
    bb = torch.tensor([[[8 * STRIDE - 24.0, 8 * STRIDE - 24.0, 48.0, 48.0]] * 2])  # centre on cell (8, 8)
    label, mask, sw = opt.loss_maps(bb, (16, 16), 4)
    assert label.shape == (1, 2, 17, 17)
    floor = math.exp(-0.5 * (9.9 / 0.9) ** 2)
    for dist, cell in ((0, (8, 8)), (2, (8, 10)), (3, (5, 8)), (5, (8, 13))):
        y, m = label[0, 0][cell].item(), mask[0, 0][cell].item()
        assert math.isclose(y, math.exp(-0.5 * (dist / 0.9) ** 2) - floor, abs_tol=1e-5), (dist, y)
        assert math.isclose(m, 1 / (1 + math.exp(-3.0 * math.tanh(2.0 - dist))), abs_tol=1e-5), (dist, m)
    assert math.isclose(mask[0, 0, 8, 10].item(), 0.5, abs_tol=1e-5)
    assert label[0, 0, 0, 0].abs().item() < 1e-6  # distance > 9.9 cells: the saturated last bin
    torch.testing.assert_close(sw, torch.full_like(sw, math.sqrt(0.5)))  # v = 1, w = 1/N
    # A wide Gaussian has a visible floor: the label is shifted so the far bin is exactly 0.
    wide = DiMPSteepestDescentGN(init_gauss_sigma=4.0).loss_maps(bb, (16, 16), 4)[0]
    assert math.isclose(wide[0, 0, 8, 8].item(), 1 - math.exp(-0.5 * (9.9 / 4.0) ** 2), abs_tol=1e-6)
    assert wide[0, 0, 0, 0].abs().item() < 1e-6


def test_lbhinge_and_iterate_weights() -> None:
    label = torch.tensor([1.0, 0.5, 0.01, 0.0])
    scores = torch.tensor([0.8, 0.7, 0.3, -0.4])
    # Target cells regress the label; background cells only pay for positive scores.
    assert math.isclose(LBHinge(0.05)(scores, label).item(), (0.04 + 0.04 + 0.09 + 0.0) / 4, rel_tol=1e-6)
    zeros = torch.zeros(3, 3)
    loss = IterateWeightedLoss()
    for count in (1, 2, 6):
        levels = [0.1 * (i + 1) for i in range(count)]  # iterate i scores a constant level: loss level^2
        total, per_iterate = loss([torch.full((3, 3), v) for v in levels], zeros)
        torch.testing.assert_close(per_iterate, torch.tensor([v * v for v in levels]))
        middle = [v * v for v in levels[1:-1]]
        expected = 100 * levels[-1] ** 2 + 100 * levels[0] ** 2 + (400 * sum(middle) / len(middle) if middle else 0)
        assert math.isclose(total.item(), expected, rel_tol=1e-6), (count, total.item(), expected)


def test_feature_block_normalises_energy() -> None:
    block = ClassificationFeatures(in_dim=96, out_dim=64, filter_size=4)
    out = block(torch.randn(2, 3, 96, 16, 16))
    assert out.shape == (2, 3, 64, 16, 16)
    torch.testing.assert_close(out.pow(2).mean(dim=(-3, -2, -1)), torch.full((2, 3), 1 / (64 * 16)), rtol=1e-4, atol=0)


@pytest.mark.parametrize("k", [1, 3, 4, 5])
def test_head_on_a_lighttrack_map_shapes_and_gradients(k: int) -> None:
    """Backbone 96 ch at stride 16 (16x16 search map) -> D = 32 features -> filter -> scores."""
    torch.manual_seed(k)
    b, n, d = 2, 3, 32
    features = ClassificationFeatures(in_dim=96, out_dim=d, filter_size=k, num_blocks=0)
    init = FilterInitializerLinear(filter_size=k, feature_dim=d)
    opt = DiMPSteepestDescentGN(num_iter=2)
    train = features(torch.randn(b, n, 96, 16, 16))
    test = features(torch.randn(b, n, 96, 16, 16))
    bb = torch.tensor([96.0, 80.0, 48.0, 64.0]).repeat(b, n, 1)
    f0 = init(train, bb)
    assert f0.shape == (b, d, k, k)
    final, iterates, _ = opt(f0, train, bb)
    out = 16 + (k + 1) % 2
    scores = [apply_filter(test, f) for f in iterates]
    assert all(s.shape == (b, n, out, out) for s in scores)
    label = opt.loss_maps(bb, (16, 16), k)[0].detach()
    total, _ = IterateWeightedLoss()(scores, label)
    total.backward()
    for module in (features, init, opt):
        for name, p in module.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert opt.log_step_length.grad.abs() > 0 and opt.target_mask_predictor.weight.grad.abs().sum() > 0
