"""Data mixtures (issue 11 item 2): the list form of `data:`, COCO still images as one-frame videos,
weighted deterministic source draws, and up-front one-line errors naming a bad source."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from conftest import TINY_SPACE
from nas.cli import main
from nas.config import load_config, parse_config
from nas.data.coco import read_coco
from nas.data.mixture import open_source, open_sources
from nas.data.pairs import PairSampler
from nas.errors import ConfigError, DataError
from nas.train.supernet_trainer import train

# (image file, width, height, [(bbox x, y, w, h, iscrowd)])
COCO_IMAGES = [("a.jpg", 160, 120, [(20, 30, 40, 30, 0), (90, 10, 30, 50, 0)]),
               ("b.jpg", 128, 96, [(10, 10, 50, 40, 0), (0, 0, 128, 96, 1), (5, 5, 0, 10, 0)]),
               ("c.jpg", 140, 100, [])]


def make_coco(root: Path, images=COCO_IMAGES, split: str = "train2017") -> Path:
    """A tiny COCO tree: coloured boxes on noise, `annotations/instances_<split>.json`."""
    rng = np.random.default_rng(0)
    (root / split).mkdir(parents=True)
    (root / "annotations").mkdir()
    doc = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "thing"}]}
    for image_id, (name, w, h, boxes) in enumerate(images, start=1):
        img = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
        for x, y, bw, bh, _ in boxes:
            img[y:y + bh, x:x + bw] = (200, 60, 30)
        cv2.imwrite(str(root / split / name), img)
        doc["images"].append({"id": image_id, "file_name": name, "width": w, "height": h})
        doc["annotations"] += [{"id": len(doc["annotations"]) + k + 1, "image_id": image_id, "category_id": 1,
                                "bbox": [x, y, bw, bh], "iscrowd": crowd, "area": bw * bh}
                               for k, (x, y, bw, bh, crowd) in enumerate(boxes)]
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    return make_coco(tmp_path_factory.mktemp("coco"))


def test_coco_objects_become_one_frame_sequences(coco):
    sequences = read_coco(coco)  # the only split there is
    assert [s.boxes.tolist() for s in sequences] == [[[20, 30, 40, 30]], [[90, 10, 30, 50]], [[10, 10, 50, 40]]]
    assert [s.frames[0].name for s in sequences] == ["a.jpg", "a.jpg", "b.jpg"]  # crowd and zero-area left out
    assert sequences[2].resolution == (128, 96) and sequences[0].dataset == "coco"
    assert sequences[0].frame(0).shape == (120, 160, 3)
    assert [s.name for s in open_source(coco)] == [s.name for s in sequences]  # auto-detected


def test_a_coco_pair_is_cut_twice_from_one_decoded_image(coco):
    pairs = PairSampler(read_coco(coco, "train2017"), template_size=64, search_size=128, length=6)
    for index in range(6):
        pair = pairs.sample(index)
        assert pair["frames"].tolist() == [0, 0]
        assert not np.array_equal(pair["search"][:, 32:96, 32:96], pair["template"])  # independent jitter
    assert pairs.frames.misses == 2 and pairs.frames.hits == 10  # two images, decoded once each


@pytest.mark.parametrize("edit, fragment", [
    (lambda doc, root: (root / "train2017" / "a.jpg").unlink(), "image a.jpg is missing"),
    (lambda doc, root: doc["annotations"][1].update(bbox=[1, 2, 3]), "annotations[1]: expected bbox [x, y, w, h]"),
    (lambda doc, root: doc["annotations"][0].update(image_id=99), "annotations[0]: expected {image_id"),
    (lambda doc, root: doc.pop("images"), "expected an object with 'images' and 'annotations' lists"),
    (lambda doc, root: doc.update(annotations=[]), "holds no usable object box"),
])
def test_coco_errors_are_one_line_naming_the_entry(tmp_path, edit, fragment):
    root = make_coco(tmp_path / "coco")
    path = root / "annotations" / "instances_train2017.json"
    doc = json.loads(path.read_text())
    edit(doc, root)
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="^[^\n]*$") as err:
        read_coco(root, "train2017")
    assert fragment in str(err.value)
    with pytest.raises(DataError, match="split 'val2017' not found; expected one of train2017"):
        read_coco(root, "val2017")


def test_weighted_sources_are_drawn_3_to_1(tiny_data, coco):
    videos = open_sources([{"path": tiny_data, "format": "got10k", "split": "train"}, {"path": coco}])
    pairs = PairSampler(videos, weights=[3, 1], template_size=64, search_size=128, length=4000, seed=11)
    picks = [pairs.pick(i) for i in range(4000)]
    counts = np.bincount([source for source, _ in picks], minlength=2)
    assert abs(counts[0] / counts[1] - 3) <= 0.05 * 3, counts
    assert all(len(videos[0]) <= video < len(pairs.videos) for source, video in picks if source == 1)
    per_video = np.bincount([video for source, video in picks if source == 0])
    assert len(per_video) == len(videos[0]) and per_video.min() > 0  # every video of a source is used
    for index in (0, 1, 2, 3, 7):
        assert pairs.sample(index)["source"] == picks[index][0]
    assert pairs.pick(5) == PairSampler(videos, weights=[3, 1], length=10, seed=11).pick(5)  # pure function
    pairs.set_epoch(1)
    assert [pairs.pick(i) for i in range(40)] != picks[:40]  # a fresh draw per epoch


def test_a_frame_range_limits_each_video(tiny_data):
    full = open_source(tiny_data, "got10k", "train")
    ranged = open_source(tiny_data, "got10k", "train", frames=[3, 7])
    assert [len(s) for s in ranged] == [5] * len(full)
    assert ranged[0].frames == full[0].frames[2:7] and np.array_equal(ranged[0].boxes, full[0].boxes[2:7])
    with pytest.raises(DataError, match="no sequence has a frame with a visible target within frames 50..60"):
        open_source(tiny_data, "got10k", "train", frames=[50, 60])


def _config(tmp_path: Path, data) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"name": "mix", "space": str(TINY_SPACE), "seed": 0, "output": str(tmp_path / "run"),
                                    "data": data, "supernet": {"epochs": 1, "pairs_per_epoch": 16, "batch_size": 8,
                                                               "lr": 0.02, "warmup_epochs": 0, "end_lr": 0.005}}))
    return path


def test_list_form_parses_and_resolves_paths(tmp_path):
    cfg = parse_config({"name": "m", "space": "lighttrack-mobile", "data": [
        {"path": "got", "format": "got10k", "weight": 3},
        {"path": "/abs/coco", "format": "coco", "split": "train2017", "frames": [1, 1]}]},
        source="c.yaml", base=tmp_path)
    assert cfg.data.sources == [
        {"path": str(tmp_path / "got"), "format": "got10k", "split": "train", "weight": 3.0, "frames": None},
        {"path": "/abs/coco", "format": "coco", "split": "train2017", "weight": 1.0, "frames": [1, 1]}]
    assert (cfg.data.root, cfg.data.format, cfg.data.split) == (str(tmp_path / "got"), "got10k", "train")
    assert cfg.data.training_sources() == cfg.data.sources
    single = parse_config({"name": "m", "space": "lighttrack-mobile", "data": {"root": "d"}}, source="c", base=tmp_path)
    assert single.data.sources == [] and single.data.training_sources() == [
        {"path": str(tmp_path / "d"), "format": None, "split": "train", "weight": 1.0, "frames": None}]


@pytest.mark.parametrize("data, fragment", [
    ([], "data: expected at least one source"),
    (["got"], "data[0]: expected a mapping with path"),
    ([{"path": "g", "wieght": 2}], "data[0].wieght: unknown key"),
    ([{"format": "got10k"}], "data[0].path: expected the dataset's folder"),
    ([{"path": "g"}, {"path": "c", "format": "imagenet"}], "data[1].format: expected one of got10k"),
    ([{"path": "g", "weight": 0}], "data[0].weight: expected a finite number in (0, 1e+06]"),
    ([{"path": "g", "weight": "heavy"}], "data[0].weight"),
    ([{"path": "g", "frames": [5, 2]}], "data[0].frames: expected [first, last]"),
    ([{"path": "g", "frames": [0, 2]}], "data[0].frames"),
    ([{"path": "g", "split": 3}], "data[0].split: expected a split name or null"),
])
def test_list_form_errors_name_the_source(tmp_path, data, fragment):
    with pytest.raises(ConfigError) as err:
        parse_config({"name": "m", "space": "lighttrack-mobile", "data": data}, source="c.yaml", base=tmp_path)
    assert fragment in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("bad, fragment", [
    (lambda tmp: {"path": str(tmp / "nowhere")}, "data[1]: {tmp}/nowhere: dataset root is not a directory"),
    (lambda tmp: {"path": str(tmp / "empty")}, "data[1]: {tmp}/empty: cannot tell the dataset format"),
    (lambda tmp: {"path": "{data}", "frames": [500, 600]},
     "data[1]: {data}: no sequence has a frame with a visible target within frames 500..600"),
])
def test_a_missing_or_empty_source_fails_up_front_in_one_line(tmp_path, tiny_data, capsys, bad, fragment):
    (tmp_path / "empty").mkdir()
    source = {k: v.format(data=tiny_data) if isinstance(v, str) else v for k, v in bad(tmp_path).items()}
    config = _config(tmp_path, [{"path": str(tiny_data), "format": "got10k"}, source])
    assert main(["train-supernet", str(config)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and fragment.format(tmp=tmp_path, data=tiny_data) in err, err
    assert not (tmp_path / "run").exists()


def test_search_needs_a_video_source_first(tmp_path, tiny_data, coco, capsys):
    config = _config(tmp_path, [{"path": str(coco), "format": "coco", "split": "train2017"},
                                {"path": str(tiny_data), "format": "got10k"}])
    assert main(["search", str(config)]) == 2
    assert "data[0].format: the first source gives the validation videos" in capsys.readouterr().err


def test_training_on_a_mixture_and_the_one_source_list_is_the_single_form(tmp_path, tiny_data, coco):
    single = train(load_config(_config(tmp_path / "a", {"root": str(tiny_data), "split": "train"})), progress=False)
    listed = train(load_config(_config(tmp_path / "b", [{"path": str(tiny_data), "weight": 5}])), progress=False)
    assert [r["loss"] for r in single] == [r["loss"] for r in listed]
    mixed = train(load_config(_config(tmp_path / "c", [{"path": str(tiny_data), "weight": 3},
                                                       {"path": str(coco), "format": "coco", "split": "train2017"}])),
                  progress=False)
    assert len(mixed) == 1 and np.isfinite(mixed[0]["loss"]) and mixed[0]["loss"] != single[0]["loss"]


def test_resuming_a_run_tolerates_new_defaults_and_a_new_worker_count(tmp_path, tiny_data):
    from dataclasses import replace

    from nas.jobs.search import _check_run_dir

    cfg = load_config(_config(tmp_path, {"root": str(tiny_data), "split": "train"}))
    saved = cfg.to_dict()
    del saved["data"]["sources"], saved["supernet"]["data_workers"]  # a run started before these keys
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    _check_run_dir(replace(cfg, supernet=replace(cfg.supernet, data_workers=2)), resume=True)
    with pytest.raises(ConfigError, match="config differs from the one .* in supernet"):
        _check_run_dir(replace(cfg, supernet=replace(cfg.supernet, lr=0.5)), resume=True)
