"""UAV123 layout: official frame ranges (split sequences share a folder), NaN rows, OTB-protocol scoring.

The reference numbers come from the got10k toolkit (PyPI `got10k==0.1.3`): `ExperimentUAV123.report`
on the tree and results `build_uav123` writes (`benchmarks/got10k_reference.py`). Its rule, which
pytracking shares: NaN ground-truth rows are left out of the success and precision curves.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nas.cli import main
from nas.data.datasets import detect_format, open_dataset
from nas.data.uav123_ranges import UAV123_RANGES
from nas.errors import DataError, DataWarning
from nas.fitness.results import write_sequence_result

# name -> rows of NaN ground truth (0-based, within the sequence's range)
UAV_CASE = {"bird1_1": (), "bird1_2": (3, 4, 5, 400), "bike3": (10,)}
# got10k 0.1.3 ExperimentUAV123 on build_uav123's tree: (success_score, precision_score)
UAV_REFERENCE = {"OVERALL": (0.5606771508136814, 0.9858519809653417),
                 "bike3": (0.5667989417989419, 0.9930555555555556),
                 "bird1_1": (0.5567476002258611, 0.9802371541501976),
                 "bird1_2": (0.5584849104162409, 0.9842632331902719)}


def build_uav123(root: Path) -> tuple[Path, Path]:
    """A UAV123 tree (empty frame files, the real ranges of UAV_CASE) and noisy predictions."""
    rng = np.random.default_rng(3)
    folders: dict[str, int] = {}
    for name, nan_rows in UAV_CASE.items():
        folder, first, last = UAV123_RANGES[name]
        folders[folder] = max(folders.get(folder, 0), last)
        n = last - first + 1
        gt = np.round(np.column_stack([rng.uniform(100, 300, n), rng.uniform(50, 200, n),
                                       rng.uniform(20, 60, n), rng.uniform(20, 60, n)]), 1)
        pred = np.round(gt + rng.normal(0, 6, gt.shape), 1)
        gt[list(nan_rows)] = np.nan
        anno = root / "data" / "anno" / "UAV123" / f"{name}.txt"
        anno.parent.mkdir(parents=True, exist_ok=True)
        anno.write_text("".join(",".join(f"{v:g}" for v in row) + "\n" for row in gt))
        write_sequence_result(root / "results", name, pred, np.full(n, 0.02))
    for folder, last in folders.items():
        images = root / "data" / "data_seq" / "UAV123" / folder
        images.mkdir(parents=True)
        for i in range(1, last + 1):
            (images / f"{i:06d}.jpg").touch()
    return root / "data", root / "results"


def test_split_sequences_read_their_official_range_and_nan_rows_are_absent(tmp_path: Path):
    dataset, _ = build_uav123(tmp_path)
    assert detect_format(dataset) == "uav123"
    with pytest.warns(DataWarning) as caught:
        sequences = {seq.name: seq for seq in open_dataset(dataset, "uav123")}
    assert len(caught) == 2 and any("bird1_2: 4 NaN boxes where the target is absent" in str(w.message) for w in caught)
    assert set(sequences) == set(UAV_CASE)
    second = sequences["bird1_2"]
    assert len(second) == 1477 - 775 + 1 and len(second.boxes) == len(second)
    assert (second.frames[0].name, second.frames[-1].name) == ("000775.jpg", "001477.jpg")
    assert second.frames[0].parent.name == "bird1" == sequences["bird1_1"].frames[0].parent.name
    assert np.flatnonzero(~second.visible).tolist() == [3, 4, 5, 400]
    assert second.scored.tolist() == second.visible.tolist()
    assert len(sequences["bird1_1"]) == 253


def test_a_missing_frame_of_the_range_and_a_wrong_row_count_are_one_line_errors(tmp_path: Path):
    dataset, _ = build_uav123(tmp_path)
    (dataset / "data_seq" / "UAV123" / "bird1" / "001477.jpg").unlink()
    with pytest.raises(DataError, match=r"bird1_2: 1 of 703 frames missing, first 001477.jpg"), \
            pytest.warns(DataWarning):
        open_dataset(dataset)
    anno = dataset / "anno" / "UAV123" / "bike3.txt"
    anno.write_text("".join(anno.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(DataError, match=r"bike3.txt: sequence bike3: has 432 boxes but frames 1..433 of bike3 need"):
        open_dataset(dataset, "uav123")


def test_score_format_uav123_leaves_nan_frames_out_as_the_toolkit_does(tmp_path: Path, capsys):
    dataset, results = build_uav123(tmp_path)
    assert main(["score", "--dataset", str(dataset), "--results", str(results), "--format", "uav123",
                 "--protocol", "otb", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {"OVERALL": report, **report["per_sequence"]}
    for name, (auc, precision) in UAV_REFERENCE.items():
        assert rows[name]["auc"] == pytest.approx(auc, abs=1e-6), name
        assert rows[name]["precision"] == pytest.approx(precision, abs=1e-6), name
