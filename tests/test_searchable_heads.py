"""The `dimp` and `gradnet` head types: DSL genes and errors, weight sharing, exact costs, GradNet's update."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import REPO
from nas.cost.counting import reference_cost
from nas.cost.table import cost_table
from nas.errors import SpecError
from nas.heads.dimp import DiMPHead, DiMPSpec
from nas.heads.gradnet import GradNetSpec, GradNetUpdate
from nas.heads.tower import TowerSpec
from nas.space import Arch, SearchSpace, arch_from_json, arch_to_json, load_space
from nas.space.spec import parse_spec
from nas.supernet import Supernet
from trackers.lighttrack.losses import balanced_bce
from trackers.lighttrack.model import build_subnet

TINY_DIMP = REPO / "tests" / "spaces" / "tiny-dimp.yaml"
TINY_GRADNET = REPO / "tests" / "spaces" / "tiny-gradnet.yaml"
Z_SIZE, X_SIZE = 64, 128
BOX = torch.tensor([[10.0, 12.0, 40.0, 50.0], [20.0, 18.0, 44.0, 46.0]])  # off-centre target boxes (x1, y1, x2, y2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dimp_space() -> SearchSpace:
    return load_space(TINY_DIMP)


@pytest.fixture(scope="module")
def gradnet_space() -> SearchSpace:
    return load_space(TINY_GRADNET)


def randomise_bn(module: nn.Module, seed: int) -> None:
    """Non-trivial BN affine params and running stats, so a path that used the wrong BN would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, _BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.3 + 0.1)


def make_supernet(space: SearchSpace, seed: int) -> Supernet:
    torch.manual_seed(seed)
    net = Supernet(space)
    randomise_bn(net, seed + 1)
    return net


def images(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, Z_SIZE, Z_SIZE, generator=g), torch.randn(batch, 3, X_SIZE, X_SIZE, generator=g)


def with_genes(arch: Arch, **labels) -> Arch:
    """`arch` with genes set by name (dots as `__`) to the option labelled `labels[name]`."""
    genotype = list(arch.genotype)
    for name, label in labels.items():
        gene = arch.space.gene_index[name.replace("__", ".")]
        genotype[gene] = arch.space.genes[gene].index_of(str(label))
    return Arch(arch.space, tuple(genotype))


def spread_archs(space: SearchSpace, count: int, seed: int) -> list[Arch]:
    """Random archs whose output positions cycle through every option (both output strides)."""
    rng = np.random.default_rng(seed)
    positions = len(space.genes[space.output_gene].options)
    archs = []
    for i in range(count):
        genotype = list(space.random_genotype(rng))
        genotype[space.output_gene] = i % positions
        archs.append(Arch(space, tuple(genotype)))
    return archs


def assert_equal_dicts(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    assert list(a) == list(b), what
    for key in a:
        assert a[key].shape == b[key].shape and torch.equal(a[key], b[key]), f"{what}: {key}"


# -- 1. DSL ---------------------------------------------------------------------------------------------

def head_gene_labels(space: SearchSpace, head: str) -> dict[str, tuple[str, ...]]:
    return {g.name: g.labels for g in space.genes if g.name.startswith(f"heads.{head}.")}


def test_tiny_dimp_space_genes(dimp_space):
    cls = dimp_space.spec.heads[0]
    assert isinstance(cls, DiMPSpec) and cls.name == "cls"
    assert isinstance(dimp_space.spec.heads[1], TowerSpec) and dimp_space.spec.heads[1].name == "reg"
    assert head_gene_labels(dimp_space, "cls") == {"heads.cls.feature_dim": ("8", "16"),
                                                   "heads.cls.filter_size": ("1", "3"),
                                                   "heads.cls.num_iter": ("0", "1", "2")}
    dims = dimp_space.head_genes["cls"]
    assert list(dims) == ["feature_dim", "filter_size", "num_iter"]
    assert [dimp_space.genes[g].name for g in dims.values()] == list(head_gene_labels(dimp_space, "cls"))
    assert list(dimp_space.head_genes["reg"])[:2] == ["channels", "0"]
    arch = with_genes(dimp_space.sample(np.random.default_rng(0)), heads__cls__feature_dim=16,
                      heads__cls__filter_size=3, heads__cls__num_iter=2)
    assert arch.head_choices("cls") == {"feature_dim": 16, "filter_size": 3, "num_iter": 2}
    assert arch_from_json(arch_to_json(arch), dimp_space) == arch
    # 3 head genes of 2 x 2 x 3 options in a space otherwise like tiny.yaml
    assert dimp_space.size() == 12 * int(np.prod([int(c) for g, c in enumerate(dimp_space.cardinalities)
                                                  if g not in dims.values()]))


def test_tiny_gradnet_space_genes(gradnet_space):
    update = next(h for h in gradnet_space.spec.heads if h.name == "update")
    assert isinstance(update, GradNetSpec)
    assert (update.weight, update.grad_scale) == (0.15, None)  # defaults: GradNet weight, RMS-normalised gradient
    assert head_gene_labels(gradnet_space, "update") == {"heads.update.hidden": ("stem", "c16"),
                                                         "heads.update.kernel": ("1", "3"),
                                                         "heads.update.width": ("8", "16"),
                                                         "heads.update.interval": ("2", "5")}
    assert list(gradnet_space.head_genes) == ["cls", "reg", "update"]
    assert list(gradnet_space.head_genes["update"]) == ["hidden", "kernel", "width", "interval"]
    arch = with_genes(gradnet_space.sample(np.random.default_rng(1)), heads__update__hidden="c16",
                      heads__update__kernel=3, heads__update__width=8, heads__update__interval=5)
    assert arch.head_choices("update") == {"hidden": "c16", "kernel": 3, "width": 8, "interval": 5}
    assert arch_from_json(arch_to_json(arch), gradnet_space) == arch
    # The interval and U1 change the subnet, so they are active genes and change the arch id.
    assert with_genes(arch, heads__update__interval=2).arch_id != arch.arch_id
    update_module = build_subnet(gradnet_space, arch).update
    assert isinstance(update_module, GradNetUpdate)
    assert (update_module.hidden_blocks, update_module.interval, update_module.weight) == (2, 5, 0.15)
    assert update_module.u1[0].kernel_size == (3, 3) and update_module.u1[0].out_channels == 8
    assert update_module.u1[0].in_channels == 16  # c16's width
    stem_update = build_subnet(gradnet_space, with_genes(arch, heads__update__hidden="stem")).update
    assert stem_update.hidden_blocks == 0 and stem_update.u1[0].in_channels == 8


def test_shipped_head_spaces_parse():
    dimp = load_space("lighttrack-dimp")
    assert head_gene_labels(dimp, "cls") == {"heads.cls.feature_dim": ("64", "128", "256"),
                                             "heads.cls.filter_size": ("1", "3", "5"),
                                             "heads.cls.num_iter": ("0", "1", "2", "3", "4", "5")}
    assert [h.type for h in dimp.spec.heads] == ["dimp", "tower"]
    gradnet = load_space("lighttrack-gradnet")
    assert [h.type for h in gradnet.spec.heads] == ["tower", "tower", "gradnet"]
    assert head_gene_labels(gradnet, "update") == {"heads.update.hidden": ("stem", "c24"),
                                                   "heads.update.kernel": ("1", "3"),
                                                   "heads.update.width": ("16", "32", "64"),
                                                   "heads.update.interval": ("5", "10", "20")}
    assert gradnet.spec.heads[2].weight == 0.15
    assert len({dimp.hash, gradnet.hash, load_space("lighttrack-mobile").hash}) == 3
    # The update genes are the last ones: a mobile genotype plus four genes.
    mobile = load_space("lighttrack-mobile")
    assert [g.name for g in gradnet.genes[:-4]] == [g.name for g in mobile.genes]


def _tiny(path) -> dict:
    return yaml.safe_load(path.read_text())


def _edit(path, fn) -> dict:
    data = copy.deepcopy(_tiny(path))
    fn(data)
    return data


def _dimp_head(**over) -> dict:
    return {"type": "dimp", "feature_dim": [8], "filter_size": [1], "num_iter": [0], **over}


def _gradnet_head(**over) -> dict:
    return {"type": "gradnet", "hidden": ["stem"], "kernel": [1], "width": [8], "interval": [2], **over}


# (case id, tiny space edited, edit of its YAML data, exact key path, fragment of the message)
HEAD_SPEC_CASES = [
    ("dimp-even-filter", TINY_DIMP, lambda d: d["heads"]["cls"].update(filter_size=[1, 4]),
     "heads.cls.filter_size[1]", "odd integer"),
    ("dimp-negative-iter", TINY_DIMP, lambda d: d["heads"]["cls"].update(num_iter=[0, -1]),
     "heads.cls.num_iter[1]", "integer in 0..20"),
    ("dimp-zero-dim", TINY_DIMP, lambda d: d["heads"]["cls"].update(feature_dim=[0, 8]),
     "heads.cls.feature_dim[0]", "integer in 1..4096"),
    ("dimp-empty-filter", TINY_DIMP, lambda d: d["heads"]["cls"].update(filter_size=[]),
     "heads.cls.filter_size", "empty choice list"),
    ("dimp-duplicate-iter", TINY_DIMP, lambda d: d["heads"]["cls"].update(num_iter=[1, 1]),
     "heads.cls.num_iter", "distinct"),
    ("dimp-missing-iter", TINY_DIMP, lambda d: d["heads"]["cls"].pop("num_iter"),
     "heads.cls.num_iter", "missing required key"),
    ("dimp-tower-key", TINY_DIMP, lambda d: d["heads"]["cls"].update(channels=[16]),
     "heads.cls.channels", "unknown key"),
    ("dimp-on-reg", TINY_DIMP, lambda d: d["heads"].update(reg=_dimp_head()),
     "heads.reg.type", "must be a 'tower'"),
    ("dimp-extra-head", TINY_DIMP, lambda d: d["heads"].update(aux=_dimp_head()),
     "heads.aux.type", "only be the 'cls' head"),
    ("gradnet-with-dimp-cls", TINY_DIMP, lambda d: d["heads"].update(update=_gradnet_head()),
     "heads.update", "needs a 'tower' cls head"),
    ("gradnet-twice", TINY_GRADNET, lambda d: d["heads"].update(update2=_gradnet_head()),
     "heads.update2", "at most one 'gradnet'"),
    ("gradnet-hidden-at-output", TINY_GRADNET, lambda d: d["heads"]["update"].update(hidden=["stem", "c24"]),
     "heads.update.hidden[1]", "before the first output stage"),
    ("gradnet-hidden-after-output", TINY_GRADNET, lambda d: d["heads"]["update"].update(hidden=["c40"]),
     "heads.update.hidden[0]", "before the first output stage"),
    ("gradnet-hidden-unknown", TINY_GRADNET, lambda d: d["heads"]["update"].update(hidden=["c16", "c99"]),
     "heads.update.hidden[1]", "got 'c99'"),
    ("gradnet-even-kernel", TINY_GRADNET, lambda d: d["heads"]["update"].update(kernel=[2]),
     "heads.update.kernel[0]", "odd integer"),
    ("gradnet-zero-weight", TINY_GRADNET, lambda d: d["heads"]["update"].update(weight=0),
     "heads.update.weight", "(0, 1]"),
    ("gradnet-negative-scale", TINY_GRADNET, lambda d: d["heads"]["update"].update(grad_scale=-1.0),
     "heads.update.grad_scale", "positive"),
    ("gradnet-missing-interval", TINY_GRADNET, lambda d: d["heads"]["update"].pop("interval"),
     "heads.update.interval", "missing required key"),
    ("unknown-head-type", TINY_GRADNET, lambda d: d["heads"]["update"].update(type="siamrpn"),
     "heads.update.type", "expected one of tower, dimp, gradnet"),
]


@pytest.mark.parametrize("case,base,edit,key,fragment", HEAD_SPEC_CASES, ids=[c[0] for c in HEAD_SPEC_CASES])
def test_malformed_head_specs_get_one_line_errors(case, base, edit, key, fragment):
    source = f"{case}.yaml"
    parse_spec(_tiny(base), source=source)  # the unedited file is valid
    with pytest.raises(SpecError) as info:
        parse_spec(_edit(base, edit), source=source)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{source}: "), message
    assert info.value.key == key, message
    assert fragment in message, message


# -- 2. Supernet weight sharing --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dimp_supernet(dimp_space) -> Supernet:
    return make_supernet(dimp_space, seed=0)


@pytest.fixture(scope="module")
def gradnet_supernet(gradnet_space) -> Supernet:
    return make_supernet(gradnet_space, seed=10)


def test_dimp_supernet_layout(dimp_space, dimp_supernet):
    net = dimp_supernet
    parts = net.heads["cls"]
    assert net.update is None
    assert set(parts["features"]) == {"c24", "c32", "c40"}
    for stage, channels in (("c24", 24), ("c32", 32), ("c40", 40)):
        convs = parts["features"][stage]
        assert [(c.in_channels, c.out_channels) for c in convs] == [(channels, 8), (channels, 16)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in parts["initializer"]] == [(8, 8, (3, 3)),
                                                                                          (16, 16, (3, 3))]
    assert sum(p.numel() for p in parts["optimizer"].parameters()) == 302
    # Every supernet weight lies on some path.
    covered = {id(p) for arch in spread_archs(dimp_space, 300, seed=3) for p in net.path_parameters(arch)}
    assert covered == {id(p) for p in net.parameters()}


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_dimp_paths_equal_their_extracted_subnets(dimp_space, dimp_supernet, training):
    net = dimp_supernet.train(training)
    z, x = images(2, seed=1)
    archs = spread_archs(dimp_space, 8, seed=2)
    seen_iters = set()
    try:
        for arch in archs:
            subnet = net.extract(arch)
            assert subnet.training == training and not subnet.cls_is_logit and subnet.uses_template_box
            num_iter = arch.head_choices("cls")["num_iter"]
            seen_iters.add(num_iter)
            with torch.no_grad():
                state, ref_state = net.template(arch, z, BOX), subnet.template(z, BOX)
                assert list(state) == ["zf", "cls.filter"] + (["cls.iterates"] if training else [])
                assert_equal_dicts(state, ref_state, arch.arch_id)
                out, ref = net.track(arch, x, state), subnet.track(x, ref_state)
                assert_equal_dicts(out, ref, arch.arch_id)
                assert_equal_dicts(net(arch, z, x, BOX), subnet(z, x, BOX), arch.arch_id)
            side = (X_SIZE - 1) // subnet.stride + 1
            k = arch.head_choices("cls")["filter_size"]
            d = arch.head_choices("cls")["feature_dim"]
            assert state["cls.filter"].shape == (2, d, k, k)
            assert out["cls"].shape == (2, 1, side, side) and out["reg"].shape == (2, 4, side, side)
            assert out["cls"].std() > 1e-2 and out["reg"].std() > 0.1, "degenerate outputs would hide a mismatch"
            if training:
                assert list(out) == ["cls", "cls.iterates", "reg"]
                assert state["cls.iterates"].shape == (num_iter + 1, 2, d, k, k)
                assert out["cls.iterates"].shape == (num_iter + 1, 2, side, side)
                assert torch.equal(state["cls.iterates"][-1], state["cls.filter"])
                assert torch.equal(out["cls.iterates"][-1], out["cls"][:, 0])
            else:
                assert list(out) == ["cls", "reg"]
    finally:
        net.eval()
    assert seen_iters == {0, 1, 2}
    # The box reaches the filter: another box, another filter.
    with torch.no_grad():
        moved, kept = (net.template(archs[0], z, box)["cls.filter"] for box in (BOX + 6.0, BOX))
    assert (moved - kept).abs().max() > 1e-6


def test_dimp_filter_size_and_iterations_share_every_weight(dimp_space, dimp_supernet):
    net = dimp_supernet
    base = dimp_space.sample(np.random.default_rng(4))
    variants = [with_genes(base, heads__cls__filter_size=k, heads__cls__num_iter=n)
                for k in (1, 3) for n in (0, 1, 2)]
    assert len({v.arch_id for v in variants}) == 6
    ids = [[id(p) for p in net.path_parameters(v)] for v in variants]
    assert all(i == ids[0] for i in ids)
    heads = [net.path_modules(v)["heads.cls"] for v in variants]
    assert {(h.initializer.filter_size, h.num_iter) for h in heads} == {(k, n) for k in (1, 3) for n in (0, 1, 2)}
    assert all(h.initializer.feature_stride == net.arch_stride(base) for h in heads)


def test_dimp_feature_widths_have_their_own_convs(dimp_space, dimp_supernet):
    net = dimp_supernet
    base = dimp_space.sample(np.random.default_rng(5))
    narrow, wide = (with_genes(base, heads__cls__feature_dim=d) for d in (8, 16))
    head_n, head_w = net.path_modules(narrow)["heads.cls"], net.path_modules(wide)["heads.cls"]
    assert head_n.features is not head_w.features and head_n.initializer.conv is not head_w.initializer.conv
    assert head_n.optimizer is head_w.optimizer  # the GN optimizer does not depend on D
    only_narrow = {id(p) for p in net.path_parameters(narrow)} - {id(p) for p in net.path_parameters(wide)}
    expected = {id(head_n.features.weight), id(head_n.initializer.conv.weight), id(head_n.initializer.conv.bias)}
    assert only_narrow == expected


def test_dimp_zero_iterations_give_the_initializer_filter(dimp_space, dimp_supernet):
    net = dimp_supernet.eval()
    z, _ = images(2, seed=6)
    arch = with_genes(dimp_space.sample(np.random.default_rng(7)), heads__cls__num_iter=0, heads__cls__filter_size=3)
    head = net.path_modules(arch)["heads.cls"]
    assert isinstance(head, DiMPHead)
    with torch.no_grad():
        filt = net.template(arch, z, BOX)["cls.filter"]
        raw = net.extract(arch).features(z)
        feat = head.norm(head.features(raw))[:, None]
        xywh = torch.cat([BOX[:, :2], BOX[:, 2:] - BOX[:, :2]], dim=1)[:, None]
        pooled = head.initializer(feat, xywh)
        refined = net.template(with_genes(arch, heads__cls__num_iter=1), z, BOX)["cls.filter"]
    assert pooled.shape == filt.shape == (2, arch.head_choices("cls")["feature_dim"], 3, 3)
    assert torch.equal(filt, pooled)
    assert (refined - pooled).abs().max() > 1e-6  # one GN step moves it


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_gradnet_paths_equal_their_extracted_subnets(gradnet_space, gradnet_supernet, training):
    net = gradnet_supernet.train(training)
    z, x = images(2, seed=8)
    hiddens = set()
    try:
        for arch in spread_archs(gradnet_space, 6, seed=9):
            subnet = net.extract(arch)
            assert subnet.cls_is_logit and not subnet.uses_template_box
            hiddens.add(arch.head_choices("update")["hidden"])
            with torch.no_grad():
                state, ref_state = net.template(arch, z), subnet.template(z)
                assert list(state) == ["zf", "hidden", "zf0"]
                assert_equal_dicts(state, ref_state, arch.arch_id)
                out = net.track(arch, x, state)
                assert_equal_dicts(out, subnet.track(x, ref_state), arch.arch_id)
                side = out["cls"].shape[-1]
                labels = torch.zeros(2, side, side)
                labels[:, side // 2 - 1: side // 2 + 2, side // 2 - 1: side // 2 + 2] = 1.0
                updated = net(arch, z, x, None, labels)
                assert_equal_dicts(updated, subnet(z, x, None, labels), arch.arch_id)
            assert out["cls"].std() > 1e-3 and out["reg"].std() > 0.1, "degenerate outputs would hide a mismatch"
            assert not torch.equal(updated["cls"], out["cls"])
    finally:
        net.eval()
    assert hiddens == {"stem", "c16"}


def test_gradnet_u1_sharing(gradnet_space, gradnet_supernet):
    net = gradnet_supernet
    assert set(net.update) == {f"{h}_k{k}_w{w}" for h in ("stem", "c16") for k in (1, 3) for w in (8, 16)}
    base = with_genes(gradnet_space.sample(np.random.default_rng(11)), heads__update__hidden="stem",
                      heads__update__kernel=3, heads__update__width=16)
    u1 = net.path_modules(base)["update"].u1
    assert u1 is net.update["stem_k3_w16"]
    slow = with_genes(base, heads__update__interval=5)
    fast = with_genes(base, heads__update__interval=2)
    assert [id(p) for p in net.path_parameters(slow)] == [id(p) for p in net.path_parameters(fast)]
    assert (net.path_modules(slow)["update"].interval, net.path_modules(fast)["update"].interval) == (5, 2)
    other = with_genes(base, heads__update__kernel=1)
    only_base = {id(p) for p in net.path_parameters(base)} - {id(p) for p in net.path_parameters(other)}
    assert only_base == {id(p) for p in u1.parameters()}


# -- 3. Cost ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [TINY_DIMP, TINY_GRADNET], ids=["tiny-dimp", "tiny-gradnet"])
def test_tiny_table_equals_fvcore_and_extremes_bracket(path):
    space = load_space(path)
    table = cost_table(space)
    gradnet = any(h.type == "gradnet" for h in space.spec.heads)
    costs = []
    for arch in spread_archs(space, 8, seed=12):
        ref = reference_cost(build_subnet(space, arch), Z_SIZE, X_SIZE)
        assert ("update_flops" in ref) == gradnet
        assert table.cost(arch) == ref, arch.choices
        costs.append(ref)
    if not gradnet:
        assert table.update_flops(spread_archs(space, 1, seed=0)[0]) is None
    ext = table.extremes()
    rng = np.random.default_rng(13)
    sampled = [space.random_genotype(rng) for _ in range(500)]
    for name, getter in (("flops", table.flops), ("params", table.params)):
        values = [c[name] for c in costs] + [getter(g) for g in sampled]
        assert ext[name][0] <= min(values) and max(values) <= ext[name][1], name
        assert ext[name][0] < ext[name][1]


def test_dimp_iterations_cost_exactly_on_lighttrack_dimp():
    space = load_space("lighttrack-dimp")
    table = cost_table(space)
    rng = np.random.default_rng(14)
    for base in (space.sample(rng), space.sample(rng)):
        costs = []
        for n in range(6):
            arch = with_genes(base, heads__cls__num_iter=n)
            ref = reference_cost(build_subnet(space, arch), 128, 256)
            assert table.cost(arch) == ref, (n, arch.choices)
            costs.append(ref)
        # Iterations run on the template only: per-frame FLOPs and params do not move, template FLOPs grow.
        assert len({(c["flops"], c["params"]) for c in costs}) == 1
        template = [c["template_flops"] for c in costs]
        assert all(a < b for a, b in zip(template, template[1:])), template


def test_gradnet_update_flops_on_lighttrack_gradnet():
    space = load_space("lighttrack-gradnet")
    table = cost_table(space)
    rng = np.random.default_rng(15)
    updates = {}
    for hidden in ("stem", "c24"):
        arch = with_genes(space.sample(rng), heads__update__hidden=hidden)
        ref = reference_cost(build_subnet(space, arch), 128, 256)
        assert set(ref) == {"params", "flops", "template_flops", "update_flops"}
        assert table.cost(arch) == ref, arch.choices
        assert table.update_flops(arch) == ref["update_flops"] > 0
        updates[hidden] = arch
    # The update adds U1's parameters but nothing per frame; the interval costs nothing.
    arch = updates["c24"]
    for interval in (5, 10, 20):
        assert table.cost(with_genes(arch, heads__update__interval=interval)) == table.cost(arch)
    wide, narrow = with_genes(arch, heads__update__width=64), with_genes(arch, heads__update__width=16)
    assert table.flops(wide) == table.flops(narrow) and table.params(wide) > table.params(narrow)
    assert table.update_flops(wide) > table.update_flops(narrow)


# -- 4. GradNet's template update --------------------------------------------------------------------------

def _labels(batch: int, side: int) -> torch.Tensor:
    labels = torch.zeros(batch, side, side)
    labels[:, side // 2 - 1: side // 2 + 2, side // 2 - 1: side // 2 + 2] = 1.0
    return labels


def test_gradnet_training_step_reaches_only_the_paths_u1(gradnet_space):
    net = make_supernet(gradnet_space, seed=20).train()
    arch = with_genes(spread_archs(gradnet_space, 1, seed=21)[0], heads__update__hidden="c16",
                      heads__update__kernel=3, heads__update__width=8)
    z, x = images(2, seed=22)
    side = (X_SIZE - 1) // net.arch_stride(arch) + 1
    labels = _labels(2, side)
    with torch.no_grad():
        plain = net(arch, z, x)
    out = net(arch, z, x, None, labels)
    assert out["cls"].shape == plain["cls"].shape == (2, 1, side, side)
    assert not torch.equal(out["cls"], plain["cls"])
    (balanced_bce(out["cls"], labels).mean() + out["reg"].mean()).backward()
    u1 = net.update["c16_k3_w8"]
    convs = [m for m in u1 if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2
    for conv in convs:
        assert conv.weight.grad is not None and conv.weight.grad.abs().max() > 0
    for key, other in net.update.items():
        if key != "c16_k3_w8":
            assert all(p.grad is None for p in other.parameters()), key
    on_path = {id(p) for p in net.path_parameters(arch)}
    assert all(p.grad is None for p in net.parameters() if id(p) not in on_path)


def test_update_template_mixes_the_templates(gradnet_space):
    net = make_supernet(gradnet_space, seed=30).eval()
    arch = with_genes(spread_archs(gradnet_space, 1, seed=31)[0], heads__update__hidden="stem")
    subnet = net.extract(arch)
    w = subnet.update.weight
    z, _ = images(1, seed=32)
    _, x = images(3, seed=33)  # one template, three crops (tracking): the mean gradient is used
    state = subnet.template(z)
    side = (X_SIZE - 1) // subnet.stride + 1
    with torch.no_grad():
        new = subnet.update_template(state, x, _labels(3, side))
        assert list(new) == list(state) and torch.equal(new["zf0"], state["zf0"])
        assert new["zf"].shape == state["zf"].shape and new["hidden"].shape == state["hidden"].shape
        assert (new["hidden"] - state["hidden"]).abs().max() > 1e-4
        assert torch.equal(new["zf"], (1.0 - w) * state["zf0"] + w * subnet._tail(new["hidden"]))
        # A second update starts from the updated hidden template but still mixes in the original zf0.
        again = subnet.update_template(new, x, _labels(3, side))
        assert torch.equal(again["zf"], (1.0 - w) * state["zf0"] + w * subnet._tail(again["hidden"]))
        # U1 ending in BN(0, 0) -> tanh(0) = 0: the update is the identity on h, zf stays zf0.
        last_bn = subnet.update.u1[4]
        last_bn.weight.zero_()
        last_bn.bias.zero_()
        still = subnet.update_template(state, x, _labels(3, side))
    assert torch.equal(still["hidden"], state["hidden"])
    torch.testing.assert_close(still["zf"], state["zf0"], rtol=1e-5, atol=1e-6)


def test_update_template_needs_a_gradnet_head(dimp_space, dimp_supernet):
    subnet = dimp_supernet.eval().extract(dimp_space.sample(np.random.default_rng(40)))
    assert subnet.update is None
    z, x = images(1, seed=41)
    with pytest.raises(ValueError, match="no gradnet update head"):
        subnet.update_template(subnet.template(z), x, torch.zeros(1, 8, 8))


# -- Head mechanisms carry a measurable effect (margins, not allclose on near-zero tensors) ---------------

def test_dimp_iterations_lower_the_discriminative_loss_and_change_the_scores(dimp_space, dimp_supernet):
    net = dimp_supernet.eval()
    z, x = images(2, seed=21)
    arch = with_genes(dimp_space.sample(np.random.default_rng(22)), heads__cls__num_iter=0,
                      heads__cls__filter_size=3)
    head = net.path_modules(arch)["heads.cls"]
    with torch.no_grad():
        raw = net.extract(arch).features(z)
        feat = head.norm(head.features(raw))[:, None]
        xywh = torch.cat([BOX[:, :2], BOX[:, 2:] - BOX[:, :2]], dim=1)[:, None]
        cells = xywh / head.initializer.feature_stride
        cells = torch.cat([cells[..., :2] + 0.5, cells[..., 2:]], dim=-1)
        _, _, losses = head.optimizer(head.initializer(feat, xywh), feat, cells, num_iter=2)
        scores = {n: net.track(with_genes(arch, heads__cls__num_iter=n), x,
                               net.template(with_genes(arch, heads__cls__num_iter=n), z, BOX))["cls"]
                  for n in (0, 2)}
    assert losses[-1] < 0.9 * losses[0], losses  # two Gauss-Newton steps cut the filter's loss by > 10 %
    change = (scores[2] - scores[0]).norm() / scores[0].norm()
    assert change > 0.05, f"the iterations barely change the scores (relative change {change:.3g})"


def test_gradnet_update_moves_the_template_by_a_non_trivial_amount(gradnet_space, gradnet_supernet):
    """With the gradient at unit RMS, U1 sees a real direction: the updated template differs from the
    original by several percent, and a different gradient (other labels) gives a different update."""
    net = gradnet_supernet.eval()
    z, x = images(2, seed=23)
    for hidden in ("stem", "c16"):
        arch = with_genes(gradnet_space.sample(np.random.default_rng(24)), heads__update__hidden=hidden)
        subnet = net.extract(arch).eval()
        with torch.no_grad():
            state = subnet.template(z)
            side = subnet.track(x, state)["cls"].shape[-1]
        centre, corner = torch.zeros(2, side, side), torch.zeros(2, side, side)
        centre[:, side // 2, side // 2] = 1.0
        corner[:, 0, 0] = 1.0
        moved = subnet.update_template(state, x, centre)
        other = subnet.update_template(state, x, corner)
        hidden_change = (moved["hidden"] - state["hidden"]).norm() / state["hidden"].norm()
        template_change = (moved["zf"] - state["zf0"]).norm() / state["zf0"].norm()
        assert hidden_change > 0.05 and template_change > 0.01, (hidden, float(hidden_change), float(template_change))
        differ = (moved["hidden"] - other["hidden"]).norm() / (moved["hidden"] - state["hidden"]).norm()
        assert differ > 0.05, f"the update does not depend on the gradient ({hidden}: {float(differ):.3g})"
