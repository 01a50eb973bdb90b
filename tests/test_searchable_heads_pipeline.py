"""DiMP and GradNet heads end to end: tracking, training and `tracknas search` over their genes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from nas.cli import main
from nas.data.datasets import open_dataset
from nas.data.pairs import PairSampler, collate
from nas.fitness.harness import run_sequence
from nas.space import load_space
from trackers.lighttrack.export import load_export
from trackers.lighttrack.losses import tracking_loss
from trackers.lighttrack.model import build_subnet
from trackers.lighttrack.tracker import LightTrackTracker

DIMP_SPACE = REPO / "tests" / "spaces" / "tiny-dimp.yaml"
GRADNET_SPACE = REPO / "tests" / "spaces" / "tiny-gradnet.yaml"


def _arch(space, **choices):
    """A seeded random architecture of `space` with some genes fixed by label."""
    arch = space.sample(np.random.default_rng(3))
    genotype = list(arch.genotype)
    for gene, label in choices.items():
        index = space.gene_index[gene]
        genotype[index] = space.genes[index].index_of(label)
    return type(arch)(space, tuple(genotype))


@pytest.fixture(scope="module")
def crossing(otb_root):
    return open_dataset(otb_root, "otb")[0].head(12)


def test_dimp_head_tracks_with_a_filter_learned_from_the_template_box(crossing):
    space = load_space(DIMP_SPACE)
    torch.manual_seed(0)
    model = build_subnet(space, _arch(space, **{"heads.cls.num_iter": "2"})).eval()
    assert not model.cls_is_logit and model.uses_template_box
    z = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        centred = model.template(z)["cls.filter"]
        shifted = model.template(z, torch.tensor([[4.0, 4.0, 30.0, 40.0]]))["cls.filter"]
    assert centred.shape[:2] == (1, model.heads["cls"].features.out_channels)
    assert (centred - shifted).abs().max() > 1e-4  # the box drives what the filter learns

    tracker = LightTrackTracker(model, device="cpu")
    boxes, _ = run_sequence(tracker, crossing)
    assert boxes.shape == (len(crossing), 4) and np.isfinite(boxes).all()
    scores = [tracker.track(crossing.frame(i)).score for i in range(3)]
    assert all(0.0 <= s <= 1.0 for s in scores)  # regression scores clipped, not squashed by a sigmoid


def test_gradnet_tracker_updates_the_template_every_interval(crossing):
    space = load_space(GRADNET_SPACE)
    torch.manual_seed(0)
    model = build_subnet(space, _arch(space, **{"heads.update.interval": "2", "heads.update.hidden": "c16"}))
    model.train()
    with torch.no_grad():  # give U1's BN running statistics a non-trivial scale, as training would
        pairs = PairSampler([crossing], template_size=64, search_size=128, strides=(model.stride,), length=4)
        batch = collate([pairs[i] for i in range(4)])
        for _ in range(3):
            model(batch["template"], batch["search"], batch["template_box"], batch["labels"][model.stride]["cls"])
    tracker = LightTrackTracker(model.eval(), device="cpu")
    assert tracker.update is not None and tracker.update.interval == 2
    tracker.initialize(crossing.frame(0), crossing.boxes[0])
    original = tracker._state["zf0"].clone()
    first = tracker._state["zf"].clone()
    assert (first - original).abs().max() > 0  # GradNet updates once on the first frame
    tracker.track(crossing.frame(1))
    assert torch.equal(tracker._state["zf"], first)  # no update between intervals
    tracker.track(crossing.frame(2))
    assert not torch.equal(tracker._state["zf"], first)  # frame 2: an update
    assert torch.equal(tracker._state["zf0"], original)  # the original template is kept for the mix
    assert 1 <= len(tracker._memory) <= 5
    boxes, _ = run_sequence(tracker, crossing)
    assert np.isfinite(boxes).all()


@pytest.mark.parametrize("space_path,choices", [
    (DIMP_SPACE, {"heads.cls.num_iter": "2", "heads.cls.filter_size": "3"}),
    (GRADNET_SPACE, {"heads.update.hidden": "c16"}),
])
def test_training_steps_lower_the_loss(tiny_data, space_path, choices):
    """A fixed batch: a few Adam steps on the subnet lower the tracking loss (DiMP's iterate loss or the
    loss after GradNet's inner update), and every parameter of the path receives a gradient."""
    space = load_space(space_path)
    torch.manual_seed(0)
    model = build_subnet(space, _arch(space, **choices)).train()
    pairs = PairSampler(open_dataset(tiny_data, "got10k", "train"), template_size=64, search_size=128,
                        strides=(model.stride,), seed=1)
    batch = collate([pairs[i] for i in range(8)])
    labels = batch["labels"][model.stride]
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for step in range(12):
        optimizer.zero_grad()
        outputs = model(batch["template"], batch["search"], batch["template_box"], labels["cls"])
        if space_path == DIMP_SPACE:
            assert outputs["cls.iterates"].shape[0] == 3  # f0, f1, f2 all supervised
        loss, _ = tracking_loss(outputs, labels)
        loss.backward()
        if step == 0:
            missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert not missing, missing
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[-1] < 0.9 * losses[0]


def _search_config(path, data, out, space) -> str:
    path.write_text(yaml.safe_dump({
        "name": "heads", "space": str(space), "seed": 0, "output": str(out),
        "data": {"root": str(data), "split": "train"},
        "supernet": {"epochs": 1, "pairs_per_epoch": 16, "batch_size": 8, "lr": 0.02, "warmup_epochs": 0},
        "fitness": {"bn_batches": 1, "bn_batch_size": 8, "max_sequences": 1, "max_frames": 6},
        "search": {"population": 4, "top_k": 2, "mutations": 2, "crossovers": 2, "generations": 1}}))
    return str(path)


@pytest.mark.parametrize("space_path,gene", [(DIMP_SPACE, "heads.cls.num_iter"),
                                             (GRADNET_SPACE, "heads.update.interval")])
def test_search_over_the_new_head_genes_exports_a_rebuildable_subnet(tmp_path, tiny_data, space_path, gene):
    config = _search_config(tmp_path / "job.yaml", tiny_data, tmp_path / "run", space_path)
    assert main(["search", config]) == 0
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert gene in best["choices"] and best["space"] == load_space(space_path).name
    state = json.loads((tmp_path / "run" / "search" / "state.json").read_text())
    labels = {record["genotype"][load_space(space_path).gene_index[gene]] for record in state["evaluated"].values()}
    assert len(state["evaluated"]) >= 4 and len(labels) >= 2  # the search really varies the head's gene
    arch, model = load_export(tmp_path / "run" / "best")
    assert arch.arch_id == best["arch_id"]
    if space_path == GRADNET_SPACE:
        assert "update_flops" in best["cost"] and model.update is not None
        from nas.fitness.supernet_fitness import FitnessSpec

        fitness = FitnessSpec(space=str(space_path), checkpoint=str(tmp_path / "run" / "supernet" / "last.pt"),
                              data_root=str(tiny_data), bn_batches=1, bn_batch_size=4)()
        recalibrated = fitness.recalibrated_subnet(arch).update.u1[1]
        inherited = fitness.supernet.path_modules(arch)["update"].u1[1]
        assert int(recalibrated.num_batches_tracked) == 1  # BN recalibration ran the update, so U1's BN too
        assert not torch.allclose(recalibrated.running_mean, inherited.running_mean)
    z, x = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        out = model.eval()(z, x)
    assert out["cls"].shape == (1, 1, *out["reg"].shape[-2:]) and torch.isfinite(out["reg"]).all()
