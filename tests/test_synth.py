"""The synthetic default data: determinism, GOT-10k layout, label consistency, split hygiene, CLI."""
from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from nas.cli import main
from nas.data import render, synth
from nas.errors import ConfigError

SIZE = (160, 120)
ARGS = dict(sequences=8, frames=30, seed=3, val_fraction=0.25, size=SIZE)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _meta(folder: Path) -> dict[str, str]:
    lines = (folder / "meta_info.ini").read_text().splitlines()
    assert lines[0] == "[METAINFO]"
    return dict(line.split(": ", 1) for line in lines[1:])


def _labels(folder: Path) -> dict[str, np.ndarray]:
    return {
        "boxes": np.loadtxt(folder / "groundtruth.txt", delimiter=",", ndmin=2),
        "absent": np.loadtxt(folder / "absence.label", dtype=int, ndmin=1),
        "cover": np.loadtxt(folder / "cover.label", dtype=int, ndmin=1),
        "cut": np.loadtxt(folder / "cut_by_image.label", dtype=int, ndmin=1),
    }


def _sequences(root: Path) -> list[tuple[str, Path]]:
    return [(split, root / split / name) for split in ("train", "val")
            for name in (root / split / "list.txt").read_text().split()]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth") / "a"
    return root, synth.generate_dataset(root, **ARGS)


def test_same_seed_gives_identical_files(data, tmp_path):
    root, summary = data
    again = synth.generate_dataset(tmp_path / "b", **ARGS)
    first, second = _hashes(root), _hashes(tmp_path / "b")
    assert sum(name.endswith(".jpg") for name in first) == 8 * 30
    assert first == second
    assert summary["objects"] == again["objects"]


def test_different_seed_gives_different_files(data, tmp_path):
    root, _ = data
    synth.generate_dataset(tmp_path / "c", **{**ARGS, "seed": 4})
    first, other = _hashes(root), _hashes(tmp_path / "c")
    frames = [name for name in first if name.endswith(".jpg")]
    assert sum(first[name] != other[name] for name in frames) > 0.9 * len(frames)


def test_got10k_layout(data):
    root, summary = data
    assert (summary["train"], summary["val"]) == (6, 2)
    for split, label in (("train", "Train"), ("val", "Val")):
        listed = (root / split / "list.txt").read_text().split()
        assert listed == [f"GOT-10k_{label}_{i:06d}" for i in range(1, summary[split] + 1)]
        assert sorted(p.name for p in (root / split).iterdir() if p.is_dir()) == listed
    for _, folder in _sequences(root):
        jpgs = sorted(p.name for p in folder.glob("*.jpg"))
        assert jpgs == [f"{i:08d}.jpg" for i in range(1, ARGS["frames"] + 1)]
        assert {len(v) for v in _labels(folder).values()} == {ARGS["frames"]}
        meta = _meta(folder)
        assert ast.literal_eval(meta["resolution"]) == SIZE
        assert list(meta)[4:9] == ["object_class", "motion_class", "major_class", "root_class", "motion_adverb"]
        frame = cv2.imread(str(folder / jpgs[-1]))
        assert frame.shape == (SIZE[1], SIZE[0], 3)


def test_boxes_inside_image_or_absent(data):
    root, _ = data
    for _, folder in _sequences(root):
        lab = _labels(folder)
        x, y, w, h = lab["boxes"].T
        assert (w > 0).all() and (h > 0).all()
        assert (x >= 0).all() and (y >= 0).all() and (x + w <= SIZE[0]).all() and (y + h <= SIZE[1]).all()
        assert lab["absent"][0] == 0 and lab["cover"][0] == 8, "the first frame must show the whole target"
        for t in np.flatnonzero(lab["absent"]):
            np.testing.assert_array_equal(lab["boxes"][t], lab["boxes"][t - 1])  # last known box


def test_cover_absence_and_cut_are_consistent(data):
    root, _ = data
    all_cover, all_absent, n_cut = [], [], 0
    for _, folder in _sequences(root):
        lab = _labels(folder)
        assert set(np.unique(lab["absent"])) <= {0, 1} and set(np.unique(lab["cut"])) <= {0, 1}
        assert ((lab["cover"] >= 0) & (lab["cover"] <= 8)).all()
        np.testing.assert_array_equal(lab["absent"] == 1, lab["cover"] == 0)
        cut_visible = (lab["cut"] == 1) & (lab["absent"] == 0)
        assert (lab["cover"][cut_visible] < 8).all()
        x, y, w, h = lab["boxes"][cut_visible].T
        touches = (x == 0) | (y == 0) | (np.isclose(x + w, SIZE[0])) | (np.isclose(y + h, SIZE[1]))
        assert touches.all(), "a target cut by the image must have a box touching the border"
        n_cut += int(cut_visible.sum())
        all_cover.append(lab["cover"])
        all_absent.append(lab["absent"])
    cover = np.concatenate(all_cover)
    assert np.concatenate(all_absent).any(), "no absent frame: occlusion/out-of-view never happened"
    assert ((cover > 0) & (cover < 8)).any(), "no partially visible frame"
    assert n_cut > 0, "no frame with the target partly outside the image"


def test_cover_bins_follow_got10k():
    ratios = [0.0, 0.1, 0.15, 0.16, 0.3, 0.5, 0.75, 0.9, 0.95, 1.0]
    assert [render.cover_bin(r) for r in ratios] == [0, 1, 1, 2, 2, 4, 5, 6, 7, 8]


def test_train_and_val_objects_are_disjoint(data):
    root, _ = data
    ids: dict[str, set[str]] = {"train": set(), "val": set()}
    rects: dict[str, list[tuple[str, tuple]]] = {"train": [], "val": []}
    readme = (root / "README.md").read_text()
    for split, folder in _sequences(root):
        meta = _meta(folder)
        assert meta["object_id"].startswith(meta["object_source"] + "/")
        assert meta["object_licence"] == render.LICENCES[meta["object_source"]]
        assert meta["background_source"] in readme and meta["object_source"] in readme
        distractors = [] if meta["distractor_ids"] == "none" else meta["distractor_ids"].split(",")
        assert all(d.split("/")[0] == meta["object_source"] for d in distractors)
        ids[split] |= {meta["object_id"], *distractors}
        rects[split].append((meta["object_source"], ast.literal_eval(meta["object_region"])))
    assert ids["train"] and ids["val"] and not ids["train"] & ids["val"]
    for src_t, (ax0, ay0, ax1, ay1) in rects["train"]:
        for src_v, (bx0, by0, bx1, by1) in rects["val"]:
            overlap = src_t == src_v and min(ax1, bx1) > max(ax0, bx0) and min(ay1, by1) > max(ay0, by0)
            assert not overlap


def test_split_regions_cover_each_image_once():
    pools = render.split_regions(0, 0.3)
    ids = [r.id for split in pools.values() for r in split]
    assert len(ids) == len(set(ids)) == len(render.OBJECT_SOURCES) * render.REGION_GRID ** 2
    assert {r.source for r in pools["val"]} == {s.name for s in render.OBJECT_SOURCES}


def test_interrupted_sequence_leaves_nothing_listed(tmp_path):
    seq = render.SyntheticSequence([np.zeros((0, 0, 3), np.uint8)], np.zeros((1, 4)), np.zeros(1), np.zeros(1),
                                  np.zeros(1), {})
    with pytest.raises(cv2.error):
        synth._write_sequence(tmp_path, "GOT-10k_Train_000001", seq, 0)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="frames"):
        synth.generate_dataset(tmp_path, sequences=4, frames=3, seed=0)
    with pytest.raises(ConfigError, match="sequences"):
        synth.generate_dataset(tmp_path, sequences=1, frames=12, seed=0, val_fraction=0.5)


def test_cli_writes_data_and_refuses_non_empty_dir(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["data", "synth", str(out), "--sequences", "3", "--frames", "12", "--size", "96x72", "--seed", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "synth: 3/3" in captured.err and "2 train + 1 val" in captured.out
    listed = (out / "train" / "list.txt").read_text().split()
    assert len(listed) == 2 and (out / "val" / "list.txt").read_text().split() == ["GOT-10k_Val_000001"]
    before = _hashes(out)

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and re.match(r"tracknas: error: .*not empty.*--force", err)
    assert _hashes(out) == before

    assert main(argv + ["--force"]) == 0
    assert _hashes(out) == before  # same seed, same bytes, nothing left over
    fewer = ["data", "synth", str(out), "--sequences", "2", "--frames", "12", "--size", "96x72", "--force"]
    assert main(fewer) == 0  # 1 train + 1 val: the stale second train sequence is removed
    assert [p.name for p in (out / "train").iterdir() if p.is_dir()] == ["GOT-10k_Train_000001"]
    capsys.readouterr()

    assert main(["data", "synth", str(tmp_path / "bad"), "--size", "96by72"]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def _fake_got10k(root: Path) -> dict[str, str]:
    """A train-only GOT-10k copy: the folder names synthesis itself would write."""
    for i in (1, 2):
        seq = root / "train" / f"GOT-10k_Train_{i:06d}"
        seq.mkdir(parents=True)
        (seq / "00000001.jpg").write_bytes(b"real frame %d" % i)
        (seq / "groundtruth.txt").write_text("1,2,3,4\n")
    (root / "train" / "list.txt").write_text("GOT-10k_Train_000001\nGOT-10k_Train_000002\n")
    (root / "README.md").write_text("the user's own notes\n")
    return _hashes(root)


@pytest.mark.parametrize("force", [False, True])
def test_synthesis_never_writes_into_foreign_data(tmp_path, capsys, force):
    """Why: synthesising over a real GOT-10k copy once deleted its sequences (issue 16)."""
    before = _fake_got10k(tmp_path)
    argv = ["data", "synth", str(tmp_path), "--sequences", "2", "--frames", "10", "--size", "96x72"]
    assert main(argv + (["--force"] if force else [])) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "not made by tracknas synthesis" in err
    assert _hashes(tmp_path) == before and not (tmp_path / synth.MANIFEST).exists()


def test_force_replaces_only_what_the_manifest_lists(tmp_path):
    out = tmp_path / "d"
    synth.generate_dataset(out, sequences=3, frames=10, seed=0, size=(96, 72))
    assert "train/GOT-10k_Train_000002" in synth.read_manifest(out)
    (out / "train" / "notes").mkdir()
    (out / "train" / "notes" / "keep.txt").write_text("mine")
    synth.generate_dataset(out, sequences=2, frames=10, seed=0, size=(96, 72), overwrite=True)
    assert (out / "train" / "notes" / "keep.txt").read_text() == "mine"  # not ours: kept
    assert not (out / "train" / "GOT-10k_Train_000002").exists()  # ours and stale: removed
    assert synth.read_manifest(out) == {"README.md", "train", "train/list.txt", "train/GOT-10k_Train_000001",
                                        "val", "val/list.txt", "val/GOT-10k_Val_000001"}
    # a sequence folder the user put where a bigger synthesis would write is refused before any work
    (out / "train" / "GOT-10k_Train_000002").mkdir()
    (out / "train" / "GOT-10k_Train_000002" / "f.jpg").write_bytes(b"user")
    before = _hashes(out)
    with pytest.raises(ConfigError, match="GOT-10k_Train_000002 was not made by tracknas synthesis"):
        synth.generate_dataset(out, sequences=4, frames=10, seed=0, size=(96, 72), overwrite=True)
    assert _hashes(out) == before
