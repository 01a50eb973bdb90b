"""The DSL, genes, architecture JSON and LightTrack path strings."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch

from conftest import LIGHTTRACK_MOBILE
from nas.space import Arch, arch_from_json, arch_to_json, from_lighttrack_string, load_arch, load_space, save_arch, to_lighttrack_string
from trackers.lighttrack.model import build_subnet


def test_builtin_spaces_have_the_documented_structure(mobile_space, large_space):
    # mobile: 18 searchable blocks (2,4,4,4,4), one output gene, 2 heads x (channels + 8 layers)
    assert len(mobile_space.block_genes) == 18
    assert len(mobile_space.genes) == 18 + 1 + 2 * 9
    assert [g.labels for g in mobile_space.genes if g.name == "backbone.output"][0] == tuple(
        f"{s}.{b}" for s in ("c40", "c80", "c96") for b in range(4))
    # 6^18 backbones x 12 positions x (3 * 2 * 3^7)^2 heads
    assert mobile_space.size() == 6**18 * 12 * (3 * 2 * 3**7) ** 2
    # large (Table 1): 21 searchable layers, skip allowed except on a stage's first block, 16-layer heads
    assert len(large_space.block_genes) == 21
    assert large_space.genes[large_space.gene_index["backbone.c24.0"]].labels[-1] != "skip"
    assert large_space.genes[large_space.gene_index["backbone.c24.1"]].labels[-1] == "skip"
    assert large_space.genes[large_space.gene_index["heads.cls.channels"]].labels == ("192", "256", "320")
    assert len(large_space.head_genes["reg"]) == 1 + 16  # channels + one gene per layer
    assert set(large_space.constraints) >= {"LargeA", "LargeB"}
    assert large_space.constraints["LargeA"].params == 3_000_000


def test_space_hash_ignores_comments_but_not_content(tmp_path, mobile_space):
    text = open(mobile_space.spec.source).read()
    (tmp_path / "same.yaml").write_text("# a comment\n" + text)
    (tmp_path / "changed.yaml").write_text(text.replace("outputs: 4", "outputs: 2"))
    assert load_space(tmp_path / "same.yaml").hash == mobile_space.hash
    assert load_space(tmp_path / "changed.yaml").hash != mobile_space.hash


@pytest.mark.parametrize("space_name", ["lighttrack-mobile", "lighttrack-large"])
def test_json_round_trip_is_exact_for_random_archs(space_name, tmp_path):
    space = load_space(space_name)
    rng = np.random.default_rng(1)
    for i in range(100):
        arch = space.sample(rng)
        text = json.dumps(arch_to_json(arch))
        back = arch_from_json(json.loads(text), space)
        assert back.genotype == arch.genotype
        assert back.arch_id == arch.arch_id
    path = save_arch(tmp_path / "a.json", arch, cost={"flops": 1})
    assert load_arch(path).genotype == arch.genotype  # space resolved by name


@pytest.mark.parametrize("space_name", ["lighttrack-mobile", "lighttrack-large"])
def test_lighttrack_string_round_trip_is_exact_for_random_archs(space_name):
    space = load_space(space_name)
    rng = np.random.default_rng(2)
    for _ in range(100):
        arch = space.sample(rng)
        text = to_lighttrack_string(arch)
        assert from_lighttrack_string(space, text).genotype == arch.genotype
        assert to_lighttrack_string(from_lighttrack_string(space, text)) == text


def test_official_mobile_string_decodes_to_the_documented_blocks(mobile_space):
    arch = from_lighttrack_string(mobile_space, LIGHTTRACK_MOBILE)
    choices = arch.choices
    assert [choices[f"backbone.c24.{b}"] for b in range(2)] == ["ir_k7_e4_se0.25", "ir_k7_e6_se0.25"]
    assert choices["backbone.c40.2"] == "ir_k7_e6_se0.25"
    assert choices["backbone.output"] == "c96.2"
    cls, reg = arch.head_choices("cls"), arch.head_choices("reg")
    assert cls["channels"] == 256
    assert [cls[str(i)].label for i in range(8)] == ["sep_k5", "sep_k5"] + ["sep_k3"] * 4 + ["skip"] * 2
    assert reg["channels"] == 192
    assert [reg[str(i)].label for i in range(8)] == ["sep_k3"] * 5 + ["sep_k5"] * 3
    assert to_lighttrack_string(arch) == LIGHTTRACK_MOBILE


def test_arch_id_ignores_genes_past_the_output_position(mobile_space):
    arch = from_lighttrack_string(mobile_space, LIGHTTRACK_MOBILE)
    # the c192 stage and block c96.3 are past the output (c96.2): changing them builds the same subnet
    other = LIGHTTRACK_MOBILE.replace("42540+", "00000+")
    twin = from_lighttrack_string(mobile_space, other)
    assert twin.genotype != arch.genotype and twin.arch_id == arch.arch_id and twin == arch
    different = from_lighttrack_string(mobile_space, LIGHTTRACK_MOBILE.replace("back_045", "back_055"))
    assert different.arch_id != arch.arch_id


def test_mutation_and_crossover_stay_in_the_space(mobile_space):
    rng = np.random.default_rng(3)
    a, b = mobile_space.sample(rng), mobile_space.sample(rng)
    mutated = mobile_space.mutate(a, rng, prob=1.0)
    assert all(x != y for x, y, c in zip(a.genotype, mutated.genotype, mobile_space.cardinalities) if c > 1)
    assert mobile_space.mutate(a, rng, prob=0.0).genotype == a.genotype
    child = mobile_space.crossover(a, b, rng)
    for g, gene in enumerate(mobile_space.genes):
        assert child.genotype[g] in (a.genotype[g], b.genotype[g])
    # a backbone stage travels whole
    for _, stage_genes in _groups(mobile_space).items():
        source = {child.genotype[g] == a.genotype[g] for g in stage_genes if a.genotype[g] != b.genotype[g]}
        assert len(source) <= 1


def _groups(space):
    groups: dict[str, list[int]] = {}
    for i, gene in enumerate(space.genes):
        if gene.name.startswith("backbone.c"):
            groups.setdefault(gene.group, []).append(i)
    return groups


def test_subnet_outputs_match_stride_and_branches_are_separable(mobile_space):
    torch.manual_seed(0)
    for position, side in (("c40.1", 32), ("c80.0", 16), ("c96.3", 16)):
        genotype = list(mobile_space.sample(np.random.default_rng(4)).genotype)
        out_gene = mobile_space.genes[mobile_space.output_gene]
        genotype[mobile_space.output_gene] = out_gene.index_of(position)
        model = build_subnet(mobile_space, Arch(mobile_space, tuple(genotype))).eval()
        z, x = torch.randn(2, 3, 128, 128), torch.randn(2, 3, 256, 256)
        with torch.no_grad():
            out = model.track(x, model.template(z))
            joint = model(z, x)
        assert out["cls"].shape == (2, 1, side, side) and out["reg"].shape == (2, 4, side, side)
        assert model.stride == 256 // side
        assert torch.equal(out["cls"], joint["cls"]) and torch.equal(out["reg"], joint["reg"])
        assert (out["reg"] >= 0).all()  # ReLU x 16: l, t, r, b distances


def test_a_new_space_needs_no_python(tmp_path):
    """Other block types, depths, widths and input sizes, written as data only."""
    (tmp_path / "tiny.yaml").write_text(textwrap.dedent("""
        name: tiny
        input: {template: 96, search: 192}
        backbone:
          act: relu
          stem: conv_k3_s2_c8
          fixed: [conv_k3_s1_c8]
          stages:
            - {name: a, channels: 16, depth: 2, stride: 2, ops: [ds_k3, ds_k5_se0.5, skip], first_ops: [ds_k3]}
            - {name: b, channels: 24, depth: 3, stride: 2, ops: [ir_k3_e3, conv_k3, skip], first_ops: [ir_k3_e3]}
            - {name: c, channels: 32, depth: 2, stride: 2, ops: [ir_k5_e2_nhswish, ir_k3_e4], first_ops: [ir_k3_e4]}
          output: [b, c]
        neck: {type: pixelwise, channels: 32}
        heads:
          cls: {type: tower, channels: [16, 32], depth: 2, ops: [sep_k3, conv_k3, skip], first_ops: [conv_k3], outputs: 1}
          reg: {type: tower, channels: [24], depth: 3, ops: [sep_k7, skip], first_ops: [sep_k7], outputs: 4, activation: relu, scale: 8}
          ctr: {type: tower, channels: [8], depth: 1, ops: [sep_k3], outputs: 1}
        """))
    space = load_space(tmp_path / "tiny.yaml")
    rng = np.random.default_rng(0)
    for _ in range(5):
        arch = space.sample(rng)
        model = build_subnet(space, arch).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, 96, 96), torch.randn(1, 3, 192, 192))
        side = 192 // model.stride
        assert set(out) == {"cls", "reg", "ctr"}
        assert out["reg"].shape == (1, 4, side, side)


def test_quickstart_space_holds_lighttrack_mobile_as_its_reference():
    """lighttrack-quick fixes head widths and stride-16 outputs; its reference is LightTrack-Mobile itself
    (same cost as the official path string in the paper's space), and the quickstart config uses it."""
    from nas.config import load_config
    from nas.cost.table import cost_table
    from nas.space import from_lighttrack_string
    from nas.space.arch import reference_arch
    from conftest import LIGHTTRACK_MOBILE, REPO

    quick, mobile = load_space("lighttrack-quick"), load_space("lighttrack-mobile")
    name, ref = reference_arch(quick)
    official = from_lighttrack_string(mobile, LIGHTTRACK_MOBILE)
    assert name == reference_arch(mobile)[0] == "LightTrack-Mobile"
    assert cost_table(quick).cost(ref) == cost_table(mobile).cost(official)
    assert {k: v for k, v in ref.choices.items()} == {k: v for k, v in official.choices.items()}
    cfg = load_config(REPO / "runs" / "quickstart.yaml")
    assert cfg.space == "lighttrack-quick" and cfg.search.seed_reference
