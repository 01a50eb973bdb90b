"""The model learns: a fixed subnet fits one batch, and supernet training makes a path localise better.

These are the checks a training recipe must pass before any search result means something: the loss
falls well below chance (ln 2 = 0.693 for the balanced cls BCE), and a trained path, extracted and
BN-recalibrated as the fitness does, finds the target on unseen pairs better than the same path at
initialisation.
"""
from __future__ import annotations


import numpy as np
import pytest
import torch

from conftest import TINY_SPACE, write_train_config
from nas.config import load_config
from nas.data.datasets import open_dataset
from nas.data.pairs import PairSampler, collate
from nas.io import torch_load
from nas.space import load_space
from nas.space.arch import reference_arch
from nas.supernet import Supernet, recalibrate_bn
from nas.train.supernet_trainer import make_optimizer, supernet_dir, train
from trackers.lighttrack.losses import box_iou, predicted_boxes, tracking_loss
from trackers.lighttrack.model import build_subnet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(root, split: str, count: int, seed: int, strides=(8, 16)) -> dict:
    pairs = PairSampler(open_dataset(root, split=split), template_size=64, search_size=128, strides=strides,
                        length=count, seed=seed)
    return collate([pairs[i] for i in range(count)])


def test_a_fixed_subnet_fits_one_batch_well_below_chance(tiny_data, tmp_path):
    space = load_space(TINY_SPACE)
    arch = space.sample(np.random.default_rng(3))
    torch.manual_seed(0)
    model = build_subnet(space, arch).train()
    batch = _batch(tiny_data, "train", 8, seed=5)
    labels = batch["labels"][model.stride]
    cfg = load_config(write_train_config(tmp_path / "c.yaml", tiny_data, tmp_path / "run", optimizer="adamw",
                                         lr=1e-2, weight_decay=1e-4))
    optimizer = make_optimizer(cfg.supernet, [{"params": list(model.parameters())}])
    history = []
    for _ in range(60):
        outputs = model(batch["template"], batch["search"], batch["template_box"])
        loss, parts = tracking_loss(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(parts)
    assert history[0]["cls"] > 0.6  # starts at chance ...
    assert history[-1]["cls"] < 0.3, [round(h["cls"], 3) for h in history[::10]]  # ... ends well below it
    assert history[-1]["reg"] < 0.7 * history[0]["reg"]


def _localisation(supernet: Supernet, arch, bn_batch: dict, val: dict) -> tuple[float, float]:
    """(mean IoU of the top-scoring box, cls loss) of `arch` on `val` pairs after BN recalibration."""
    subnet = supernet.extract(arch)
    recalibrate_bn(subnet, [lambda: subnet(bn_batch["template"], bn_batch["search"], bn_batch["template_box"])], 1)
    with torch.no_grad():
        out = subnet.eval()(val["template"], val["search"], val["template_box"])
        _, parts = tracking_loss(out, val["labels"][subnet.stride])
        iou = box_iou(predicted_boxes(out, 128, subnet.stride), val["box"])
    return float(iou.mean()), parts["cls"]


def test_a_trained_supernet_path_localises_better_than_at_initialisation(tiny_data, tmp_path):
    """The quickstart's recipe (AdamW, kernel weight sharing, anchored sampling) on the tiny space."""
    cfg = load_config(write_train_config(tmp_path / "c.yaml", tiny_data, tmp_path / "run", optimizer="adamw",
                                         epochs=6, pairs_per_epoch=160, lr=1e-2, end_lr=3e-3, weight_decay=1e-4,
                                         path_sampler="anchored", weight_sharing="kernel"))
    space = load_space(TINY_SPACE)
    torch.manual_seed(cfg.seed)
    initial = Supernet(space, "kernel")
    history = train(cfg, progress=False)
    trained = Supernet(space, "kernel")
    trained.load_state_dict(torch_load(supernet_dir(cfg) / "last.pt")["model"])
    bn_batch, val = _batch(tiny_data, "train", 32, seed=11), _batch(tiny_data, "val", 48, seed=12)
    archs = [reference_arch(space)[1], *(space.sample(np.random.default_rng(i)) for i in range(2))]
    before = [_localisation(initial, a, bn_batch, val) for a in archs]
    after = [_localisation(trained, a, bn_batch, val) for a in archs]
    assert history[-1]["cls"] < history[0]["cls"] - 0.03, [h["cls"] for h in history]
    (iou0, cls0), (iou1, cls1) = before[0], after[0]
    # the anchored path (the space's reference, trained every other step) finds the target clearly better ...
    assert iou1 > iou0 + 0.1 and cls1 < cls0 - 0.05, (before[0], after[0])
    # ... and the paths that share part of its weights improve too
    for arch, (iou0, _), (iou1, _) in zip(archs[1:], before[1:], after[1:]):
        assert iou1 > iou0 + 0.02, (arch.arch_id, iou0, iou1)
