"""The weight-sharing supernet: path == extracted subnet, path-only parameters and gradients, BN recalibration."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nas.cost.table import cost_table
from nas.space import Arch, SearchSpace, to_lighttrack_string
from nas.supernet import Supernet, recalibrate_bn
from trackers.lighttrack.geometry import block_slots

Z_SIZE, X_SIZE = 128, 256


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def randomise_bn(module: nn.Module, seed: int, affine: bool = True) -> None:
    """Non-trivial BN running stats (and affine params), so a path that used the wrong BN would show.

    Variances in [0.1, 0.4] keep random-init activations from fading, so outputs are far above the
    comparison tolerance.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, _BatchNorm):
                n = m.num_features
                if affine:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.3 + 0.1)


def images(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, Z_SIZE, Z_SIZE, generator=g), torch.randn(batch, 3, X_SIZE, X_SIZE, generator=g)


def with_output(space: SearchSpace, arch: Arch, position: int) -> Arch:
    genotype = list(arch.genotype)
    genotype[space.output_gene] = position
    return Arch(space, tuple(genotype))


def covering_archs(space: SearchSpace) -> list[Arch]:
    """Archs that together use every weight: each output position (a block is on a path only when the
    output lies at or after it) x each head width (each width has its own tower) x option k mod the
    cardinality of every other gene."""
    cards = [int(c) for c in space.cardinalities]
    widths = {genes["channels"] for genes in space.head_genes.values() if "channels" in genes}  # tower widths
    options = max(c for g, c in enumerate(cards) if g not in widths and g != space.output_gene)
    archs = []
    for position in range(cards[space.output_gene]):
        for width in range(max(cards[g] for g in widths)):
            for k in range(options):
                genotype = [width % c if g in widths else k % c for g, c in enumerate(cards)]
                genotype[space.output_gene] = position
                archs.append(Arch(space, tuple(genotype)))
    return archs


@pytest.fixture(scope="module")
def mobile_supernet(mobile_space) -> Supernet:
    torch.manual_seed(0)
    net = Supernet(mobile_space)
    randomise_bn(net, seed=1)
    return net.eval()


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_mobile_paths_equal_their_extracted_subnets(mobile_space, mobile_supernet):
    net = mobile_supernet
    rng = np.random.default_rng(11)
    positions = len(mobile_space.genes[mobile_space.output_gene].options)
    archs = [with_output(mobile_space, mobile_space.sample(rng), i % positions) for i in range(50)]
    z, x = images(1, seed=2)
    strides = set()
    for arch in archs:
        subnet = net.extract(arch)
        assert not subnet.training and subnet.arch == arch
        stride = net.arch_stride(arch)
        assert stride == subnet.stride
        strides.add(stride)
        with torch.no_grad():
            state = net.template(arch, z)
            assert list(state) == ["zf"] and torch.equal(state["zf"], subnet.template(z)["zf"])
            out, ref = net.track(arch, x, state), subnet(z, x)
        side = (X_SIZE - 1) // stride + 1
        assert out["cls"].shape == (1, 1, side, side) and out["reg"].shape == (1, 4, side, side)
        assert out["cls"].std() > 1e-3 and out["reg"].std() > 0.1, "degenerate outputs would hide a mismatch"
        assert max_diff(out, ref) <= 1e-5, to_lighttrack_string(arch)
    assert strides == {8, 16}  # c40 outputs (stride 8, 256 correlation channels) and c80/c96 (stride 16)

    # The comparison is sensitive to BN statistics, and the subnet owns copies, not aliases.
    with torch.no_grad():
        subnet.bn_x.running_var.mul_(2.0)
        assert max_diff(net(arch, z, x), ref) == 0.0
        assert max_diff(subnet(z, x), ref) > 1e-3


def test_large_paths_equal_their_extracted_subnets(large_space):
    torch.manual_seed(3)
    net = Supernet(large_space)
    randomise_bn(net, seed=4)
    net.eval()
    rng = np.random.default_rng(5)
    z, x = images(1, seed=6)
    for _ in range(3):
        arch = large_space.sample(rng)
        subnet = net.extract(arch)
        with torch.no_grad():
            out, ref = net(arch, z, x), subnet(z, x)
        assert out["cls"].std() > 1e-3 and out["reg"].std() > 0.1
        assert max_diff(out, ref) <= 1e-5, to_lighttrack_string(arch)


def test_path_parameters_are_exactly_the_extracted_subnets(mobile_space, mobile_supernet):
    net, table = mobile_supernet, cost_table(mobile_space)
    rng = np.random.default_rng(21)
    for _ in range(10):
        arch = mobile_space.sample(rng)
        params, subnet = net.path_parameters(arch), net.extract(arch)
        sub_params = list(subnet.parameters())
        assert sum(p.numel() for p in params) == sum(p.numel() for p in sub_params) == table.params(arch)
        assert len(params) == len(sub_params) == len({id(p) for p in params})
        assert all(torch.equal(p, q) for p, q in zip(params, sub_params))


def test_backward_and_step_touch_only_the_sampled_path(mobile_space):
    torch.manual_seed(7)
    net = Supernet(mobile_space).train()
    arch = mobile_space.sample(np.random.default_rng(8))
    on_path = {id(p) for p in net.path_parameters(arch)}
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    z, x = images(2, seed=9)
    out = net(arch, z, x)
    (out["cls"].square().mean() + out["reg"].mean()).backward()
    optimizer.step()
    changed = 0
    for name, p in net.named_parameters():
        if id(p) in on_path:
            assert p.grad is not None, name
            changed += not torch.equal(p, before[name])
        else:
            assert p.grad is None, name
            assert torch.equal(p, before[name]), name
    assert changed > 0.9 * len(on_path)


def test_supernet_parameters_are_the_sum_of_its_pieces(mobile_space, mobile_supernet):
    """Blocks and head layers counted independently (fvcore table); every weight lies on some path."""
    net, data = mobile_supernet, cost_table(mobile_space).data
    numel = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    built = block_slots(mobile_space)[: len(net.blocks)]  # blocks some output position reaches
    blocks = sum(option[2] for slot in built for option in data["block"][slot.gene])
    heads = 0
    for head in data["heads"]:
        per_channel = next(iter(head.values()))  # head params do not depend on the feature size
        heads += sum(entry["predictor"][1] + sum(o[1] for layer in entry["layers"] for o in layer)
                     for entry in per_channel)
    fixed = numel(net.stem) + numel(net.bn_z) + numel(net.bn_x) + numel(net.fusion)
    assert numel(net) == blocks + heads + fixed
    assert len(net.blocks) == 14 and set(net.fusion) == {"16", "8"} and set(net.bn_z) == {"c40", "c80", "c96"}
    covered = {id(p) for arch in covering_archs(mobile_space) for p in net.path_parameters(arch)}
    assert covered == {id(p) for p in net.parameters()}


def test_constructors_and_extract_leave_global_rng_alone(mobile_space, mobile_supernet):
    np_state = np.random.get_state()[1].copy()
    Supernet(mobile_space)
    assert np.array_equal(np.random.get_state()[1], np_state)
    torch_state = torch.get_rng_state()
    mobile_supernet.extract(mobile_space.sample(np.random.default_rng(0)))
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_arch_of_another_space_is_rejected(large_space, mobile_supernet):
    with pytest.raises(ValueError, match="lighttrack-large"):
        mobile_supernet.path_modules(large_space.sample(np.random.default_rng(0)))


def test_load_backbone_copies_stem_and_blocks_only(mobile_space):
    torch.manual_seed(12)
    source, target = Supernet(mobile_space), Supernet(mobile_space)
    heads_before = {k: v.clone() for k, v in target.heads.state_dict().items()}
    backbone = {k: v for k, v in source.state_dict().items() if k.startswith(("stem.", "blocks."))}
    target.load_backbone(backbone)
    loaded = target.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in backbone.items())
    assert all(torch.equal(v, target.heads.state_dict()[k]) for k, v in heads_before.items())
    with pytest.raises(RuntimeError, match="Missing key"):
        target.load_backbone({k: v for k, v in backbone.items() if not k.startswith("blocks.3.")})
    extra = {**backbone, "blocks.99.0.weight": torch.zeros(1)}
    assert target.load_backbone(extra, strict=False).unexpected_keys == ["blocks.99.0.weight"]


# -- BN recalibration --------------------------------------------------------------------------------

def split_state(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(BN running-stat buffers, every other parameter and buffer), cloned."""
    bn_names = {f"{name}.{b}" for name, m in module.named_modules() if isinstance(m, _BatchNorm)
                for b in ("running_mean", "running_var", "num_batches_tracked")}
    state = {k: v.clone() for k, v in module.state_dict().items()}
    return ({k: v for k, v in state.items() if k in bn_names}, {k: v for k, v in state.items() if k not in bn_names})


def test_recalibrate_subnet_changes_only_bn_buffers_with_cumulative_averages(mobile_space, mobile_supernet):
    arch = mobile_space.sample(np.random.default_rng(31))
    subnet = mobile_supernet.extract(arch)
    bn_before, rest_before = split_state(subnet)
    batches = [images(2, seed=40 + i) for i in range(3)]
    first_bn = subnet.stem[0][1]
    seen: list[torch.Tensor] = []
    hook = first_bn.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].mean(dim=(0, 2, 3))))
    count = recalibrate_bn(subnet, batches, num_batches=3)
    hook.remove()

    bn_layers = [m for m in subnet.modules() if isinstance(m, _BatchNorm)]
    assert count == len(bn_layers)
    assert not subnet.training and all(m.momentum == 0.1 for m in bn_layers)
    bn_after, rest_after = split_state(subnet)
    assert rest_after.keys() == rest_before.keys()
    assert all(torch.equal(rest_after[k], rest_before[k]) for k in rest_before)
    assert all(not torch.equal(bn_after[k], bn_before[k]) for k in bn_before if k.endswith("running_mean"))
    # Cumulative averaging: the stem BN sees z and x of every batch, each call weighted equally.
    assert len(seen) == 6 and int(first_bn.num_batches_tracked) == 6
    torch.testing.assert_close(first_bn.running_mean, torch.stack(seen).mean(0), rtol=1e-5, atol=1e-6)

    # Deterministic, whatever the statistics were before.
    randomise_bn(subnet, seed=99, affine=False)
    recalibrate_bn(subnet, (b for b in batches), num_batches=3)
    again, _ = split_state(subnet)
    assert all(torch.equal(again[k], bn_after[k]) for k in bn_after)
    with pytest.raises(ValueError, match="only 2"):
        recalibrate_bn(subnet, batches[:2], num_batches=3)


def test_recalibrate_supernet_path_resets_only_that_paths_bns(mobile_space):
    torch.manual_seed(50)
    net = Supernet(mobile_space)
    randomise_bn(net, seed=51)
    arch = mobile_space.sample(np.random.default_rng(52))
    subnet = net.extract(arch)
    path_bns = {id(m) for module in net.path_modules(arch).values() for m in module.modules()
                if isinstance(m, _BatchNorm)}
    path_bn_names = {name for name, m in net.named_modules() if id(m) in path_bns}
    bn_before, rest_before = split_state(net)
    batches = [images(2, seed=53 + i) for i in range(2)]

    assert recalibrate_bn(net, [lambda z=z, x=x: net(arch, z, x) for z, x in batches], num_batches=2) == len(path_bns)
    bn_after, rest_after = split_state(net)
    assert all(torch.equal(rest_after[k], rest_before[k]) for k in rest_before)
    for key in bn_before:
        on_path = key.rsplit(".", 1)[0] in path_bn_names
        assert torch.equal(bn_after[key], bn_before[key]) != on_path, key

    # Recalibrating the path in the supernet equals recalibrating its extracted subnet.
    recalibrate_bn(subnet, batches, num_batches=2)
    extracted = net.extract(arch).state_dict()
    for key, value in subnet.state_dict().items():
        torch.testing.assert_close(extracted[key], value, rtol=1e-5, atol=1e-6)


def test_kernel_weight_sharing_ties_every_equally_shaped_layer_and_paths_still_extract(mobile_space):
    torch.manual_seed(0)
    net = Supernet(mobile_space, weight_sharing="kernel")
    randomise_bn(net, seed=3)
    net.eval()
    separate = sum(p.numel() for p in Supernet(mobile_space).parameters())
    shared = sum(p.numel() for p in net.parameters())
    assert shared < 0.5 * separate  # 6 MBConv options -> 2 expand ratios; the DSConv head ops share their pw conv
    ops = [op.label for op in mobile_space.genes[0].options]
    block = net.blocks[0]
    k3_e4, k5_e4, k3_e6 = (block[ops.index(f"ir_{v}_se0.25")] for v in ("k3_e4", "k5_e4", "k3_e6"))
    assert k3_e4.expand[0] is k5_e4.expand[0] and k3_e4.project[0] is k5_e4.project[0] and k3_e4.se is not k5_e4.se
    assert k3_e4.se.reduce is k5_e4.se.reduce and k3_e4.dw[1] is k5_e4.dw[1]
    assert k3_e4.dw[0] is not k5_e4.dw[0]  # each kernel size keeps its own depthwise conv
    assert k3_e4.expand[0] is not k3_e6.expand[0]  # other widths cannot share
    z, x = images(1, seed=4)
    for arch in (mobile_space.sample(np.random.default_rng(i)) for i in range(6)):
        with torch.no_grad():
            assert max_diff(net(arch, z, x), net.extract(arch)(z, x)) <= 1e-5
    arch = mobile_space.sample(np.random.default_rng(7))
    params = net.path_parameters(arch)
    assert len({id(p) for p in params}) == len(params)  # a path never holds a shared tensor twice
