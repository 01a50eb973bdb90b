"""VOT short-term supervised protocol: reader, toolkit-exact overlaps, analysis parity, runner, CLI, fitness.

Reference values come from the official vot-toolkit 0.9.0 (with attributee 0.1.9, Python 3.11), in
its own venv: `/work/votref/bin/python benchmarks/vot_reference.py` writes the workspace of
`tests/vot_fixture.py`, runs `vot analysis --workspace W handmade --format json` on a local stack (the
VOT2018/2019 `baseline` experiment: supervised, 15 repetitions, skip_initialize 5; analyses
supervised_ar, supervised_average_ar, supervised_eao_score on [100, 356] and [46, 291]) and prints the
numbers below; before that it runs the toolkit's own runner on the same sequences with a do-nothing
tracker (IDENTITY_RUNS). The single-pair overlaps were printed by the toolkit's `vot.region.calculate_overlap`.
The toolkit is not needed to run these tests.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nas.cli import main
from nas.config import EAO_LOW, FITNESS_CHOICES, parse_config
from nas.data.datasets import detect_format, open_dataset
from nas.data.regions import FAILURE, INITIALIZATION, UNKNOWN, parse_region, special
from nas.errors import ConfigError, DataError, DataWarning
from nas.fitness.region_overlap import region_overlap
from nas.fitness.supernet_fitness import FitnessSpec, identity_scores, score_tracker
from nas.fitness.vot import (EAO_INTERVALS, SupervisedExperiment, analyse, read_trajectories, score_vot_results,
                             supervised_run, supervised_runs)
from nas.space import load_space
from nas.supernet import Supernet
from trackers.base import Tracker, TrackResult
from trackers.identity import IdentityTracker
from vot_fixture import TRACKER, trajectory, write_sequence, write_workspace

# vot-toolkit 0.9.0 on the fixture workspace (benchmarks/vot_reference.py)
REFERENCE = {"accuracy": 0.5638334334866012, "robustness": 1.2424242424242424, "failures": 5.0,
             "eao": {2018: 0.38129740326405415, 2019: 0.43069529705195625},
             "sequences": {"boxes": (0.6127911377188819, 0.0), "rotated": (0.5218303874027347, 2.0),
                           "nearend": (0.5200879571969905, 2.0), "pastend": (0.6197426362325755, 1.0)}}
# the toolkit's own runner (SupervisedExperiment.execute) with a do-nothing tracker (the initial region's
# bounds on every frame): (initialisation frames, failure frames) of each of its 3 identical runs, and its analysis
IDENTITY_RUNS = {
    "boxes": ([0, 37, 62, 88, 156, 181, 213, 271, 293, 369, 393], [32, 57, 83, 151, 176, 208, 266, 288, 364, 388]),
    "rotated": ([0, 31, 86, 115, 187, 209, 232, 321, 355, 398], [26, 81, 110, 182, 204, 227, 316, 350, 393]),
    "nearend": ([0, 31, 86, 115, 187, 209, 232], [26, 81, 110, 182, 204, 227]),
    "pastend": ([0, 31, 80, 107, 136, 179], [26, 75, 102, 131, 174, 199])}
IDENTITY_REFERENCE = {"accuracy": 0.17689108183715332, "robustness": 8.166666666666666, "failures": 31.0,
                      "eao": {2018: None, 2019: 0.14278955687623815}}
R = lambda *values: np.array(values, dtype=np.float32)  # noqa: E731  a region as the toolkit stores it
# (first, second, image size or None, the toolkit's calculate_overlap)
OVERLAPS = {
    "box_box": (R(10, 10, 20, 10), R(15, 12, 20, 10), None, 0.42857142857142855),
    "box_clipped": (R(-10, 5, 30, 10), R(0, 5, 10, 10), (40, 30), 0.5),
    "half_to_even": (R(10.5, 10.5, 9.5, 9.5), R(11.5, 11.5, 10, 10), None, 0.47058823529411764),
    "rotated_vs_box": (R(30, 10, 50, 30, 30, 50, 10, 30), R(10, 10, 40, 40), (64, 48), 0.5463510848126233),
    "polygon_outside": (R(70, 10, 90, 30, 70, 50, 50, 30), R(40, 10, 20, 20), (64, 48), 0.08166969147005444),
    "special_box": (special(1), R(10, 10, 5, 5), None, 0.0),
    "special_special": (special(0), special(2), None, 1.0),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return write_workspace(tmp_path_factory.mktemp("vot") / "workspace")


@pytest.fixture(scope="module")
def vot_sequences(workspace):
    return open_dataset(workspace / "sequences", "vot")


# ------------------------------------------------------------------------------------------ overlap + analysis
@pytest.mark.parametrize("name", OVERLAPS)
def test_region_overlap_is_the_toolkits(name):
    first, second, size, expected = OVERLAPS[name]
    assert region_overlap(first, second, size) == pytest.approx(expected, abs=1e-12)
    assert region_overlap(second, first, size) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("year", [2018, 2019])
def test_score_reproduces_the_vot_toolkit(workspace, vot_sequences, year):
    report = score_vot_results(vot_sequences, workspace / "results", TRACKER, year=year)
    assert report["accuracy"] == pytest.approx(REFERENCE["accuracy"], abs=1e-9)
    assert report["robustness"] == pytest.approx(REFERENCE["robustness"], abs=1e-9)
    assert report["failures"] == REFERENCE["failures"]
    assert report["eao"] == pytest.approx(REFERENCE["eao"][year], abs=1e-6)
    assert report["eao_interval"] == list(EAO_INTERVALS[year])
    for name, (accuracy, failures) in REFERENCE["sequences"].items():
        assert report["sequences"][name]["accuracy"] == pytest.approx(accuracy, abs=1e-9)
        assert report["sequences"][name]["failures"] == failures
    assert report["sequences"]["rotated"]["repetitions"] == 2 and report["sequences"]["pastend"]["repetitions"] == 1


def test_eao_is_null_when_every_run_ends_before_the_interval(vot_sequences, workspace):
    short = [seq.head(60) for seq in vot_sequences[:1]]
    runs = {short[0].name: [trajectory(short[0].regions, [], seed=1)]}
    parsed = {name: [[parse_region(line) for line in lines] for lines in reps] for name, reps in runs.items()}
    with pytest.warns(DataWarning, match=r"interval \[100, 356\] of VOT2018 starts past the longest run"):
        report = analyse(short, parsed, 2018)
    assert report["eao"] is None and len(report["eao_curve"]) == 60


# ------------------------------------------------------------------------------------------ reader
def test_reader_boxes_polygons_layouts_and_tags(workspace, vot_sequences):
    assert detect_format(workspace / "sequences") == "vot"
    by_name = {seq.name: seq for seq in vot_sequences}
    assert list(by_name) == ["boxes", "rotated", "nearend", "pastend"]
    boxes, rotated = by_name["boxes"], by_name["rotated"]
    assert len(boxes) == 400 and boxes.regions[0].size == 4 and boxes.frames[0].parent.name == "boxes"  # flat
    assert len(rotated) == 420 and rotated.regions[0].size == 8 and rotated.frames[0].parent.name == "color"
    points = rotated.regions[3].reshape(4, 2)
    assert np.allclose(rotated.boxes[3], [*points.min(0), *(points.max(0) - points.min(0))])  # init box: bounds
    tag = boxes.attrs["tags"]["occlusion"]
    assert tag.shape == (400,) and tag[4:8].all() and tag.sum() == 4  # short tag file padded with False
    assert rotated.image_size() == (96, 72) and rotated.frame(0).shape == (72, 96, 3)


def test_reader_color_without_sequence_file_nan_and_short_ground_truth(tmp_path):
    root = tmp_path / "sequences"
    write_sequence(root, "plain", [R(10, 10, 20, 20)] * 4, "color", frames=6)
    (root / "plain" / "sequence").unlink()  # color/ is found without the metadata file
    (root / "plain" / "groundtruth.txt").write_text("10,10,20,20\n10,10,20,20\nnan,nan,nan,nan\n10,10,20,20\n")
    (root / "list.txt").write_text("plain\n")
    with pytest.warns(DataWarning, match=r"1 NaN or special-code regions, 2 frames past the last line"):
        (seq,) = open_dataset(root)
    assert len(seq) == 6 and seq.frames[0].parent.name == "color"
    assert [region.size for region in seq.regions] == [4, 4, 1, 4, 1, 1] and np.isnan(seq.boxes[5]).all()


@pytest.mark.parametrize("content, match", [
    ("1,2,3\n", "line 1: expected a code"),
    ("1,2,3,4\n1,2,3,4,5,6,7,8,9\n", "line 2: expected a code"),
    ("1,2,3,4\nabc\n", "line 2: expected a code"),
])
def test_reader_bad_ground_truth_is_one_line(tmp_path, content, match):
    root = tmp_path / "sequences"
    write_sequence(root, "bad", [R(1, 2, 3, 4)] * 2, "flat")
    (root / "bad" / "groundtruth.txt").write_text(content)
    (root / "list.txt").write_text("bad\n")
    with pytest.raises(DataError, match=match) as err:
        open_dataset(root, "vot")
    assert "\n" not in str(err.value) and "groundtruth.txt" in str(err.value)


# ------------------------------------------------------------------------------------------ runner
class ScriptedTracker(Tracker):
    """Reports the ground truth's bounds, except a far-away box on the scripted frames (a failure)."""

    reads_frames = False

    def __init__(self, seq, lost_on: set[int], noise: float = 0.0) -> None:
        self.seq, self.lost_on, self.noise, self.frame, self.calls = seq, lost_on, noise, 0, []
        self.rng = np.random.default_rng()

    def initialize(self, frame, box) -> None:
        self.frame = next(i for i, b in enumerate(self.seq.boxes) if np.array_equal(b, box) and i >= self.frame)
        self.calls.append(("init", self.frame))

    def track(self, frame) -> TrackResult:
        self.frame += 1
        if self.frame in self.lost_on:
            return TrackResult(np.array([500.0, 500.0, 5.0, 5.0]), 0.0)
        return TrackResult(self.seq.boxes[self.frame] + self.noise * self.rng.random(4), 1.0)


def _codes(run) -> list:
    return [int(r[0]) if r.size == 1 else "box" for r in run]


def test_runner_fails_skips_and_reinitialises_like_the_toolkit(tmp_path):
    root = tmp_path / "sequences"
    write_sequence(root, "walk", [R(10 + i, 10, 20, 15) for i in range(30)], "flat")
    (root / "list.txt").write_text("walk\n")
    (seq,) = open_dataset(root)
    tracker = ScriptedTracker(seq, lost_on={6, 20, 27})
    run, _ = supervised_run(tracker, seq)
    codes = _codes(run)
    assert codes[:6] == [INITIALIZATION] + ["box"] * 5
    assert codes[6:12] == [FAILURE, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, INITIALIZATION]  # re-init 5 after
    assert codes[12:20] == ["box"] * 8 and codes[20:26] == [FAILURE] + [UNKNOWN] * 4 + [INITIALIZATION]
    assert codes[26:] == ["box", FAILURE, UNKNOWN, UNKNOWN]  # the re-init would be past the last frame
    assert [frame for _, frame in tracker.calls] == [0, 11, 25]


def test_runner_reproduces_the_toolkits_runner(vot_sequences, tmp_path):
    runs = SupervisedExperiment(str(tmp_path), "identity").run(IdentityTracker, vot_sequences)
    for name, (inits, failures) in IDENTITY_RUNS.items():
        assert len(runs[name]) == 3  # deterministic: the toolkit stops after three identical runs
        for run in runs[name]:
            assert [i for i, r in enumerate(run) if r.size == 1 and r[0] == INITIALIZATION] == inits
            assert [i for i, r in enumerate(run) if r.size == 1 and r[0] == FAILURE] == failures
    for year in (2018, 2019):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # VOT2018: no identity run reaches length 100
            report = score_vot_results(vot_sequences, tmp_path, "identity", year=year)
        assert report["accuracy"] == pytest.approx(IDENTITY_REFERENCE["accuracy"], abs=1e-9)
        assert report["robustness"] == pytest.approx(IDENTITY_REFERENCE["robustness"], abs=1e-9)
        assert report["failures"] == IDENTITY_REFERENCE["failures"]
        assert report["eao"] == pytest.approx(IDENTITY_REFERENCE["eao"][year], abs=1e-6)


def test_deterministic_tracker_stops_after_three_identical_runs_stochastic_runs_all(tmp_path):
    root = tmp_path / "sequences"
    write_sequence(root, "walk", [R(10 + i, 10, 20, 15) for i in range(12)], "flat")
    (root / "list.txt").write_text("walk\n")
    (seq,) = open_dataset(root)
    assert len(supervised_runs(lambda: ScriptedTracker(seq, {4}), seq, repetitions=15)) == 3
    assert len(supervised_runs(lambda: ScriptedTracker(seq, {4}, noise=3.0), seq, repetitions=5)) == 5
    experiment = SupervisedExperiment(str(tmp_path / "results"), "scripted", repetitions=4)
    experiment.run(lambda: ScriptedTracker(seq, {4}, noise=3.0), [seq])
    files = sorted(p.name for p in (tmp_path / "results" / "scripted" / "baseline" / "walk").iterdir())
    assert files == [f"walk_{i:03d}.txt" for i in (1, 2, 3, 4)]
    lines = (tmp_path / "results" / "scripted" / "baseline" / "walk" / "walk_001.txt").read_text().splitlines()
    assert lines[0] == "1" and lines[4] == "2" and lines[5:9] == ["0"] * 4 and lines[9] == "1"
    assert len(read_trajectories(tmp_path / "results", "scripted", "baseline", seq)) == 4


# ------------------------------------------------------------------------------------------ CLI
def _score(workspace, *extra) -> list[str]:
    return ["score", "--protocol", "vot", "--dataset", str(workspace / "sequences"),
            "--results", str(workspace / "results"), *extra]


def test_score_cli_json(workspace, capsys):
    assert main(_score(workspace, "--tracker", TRACKER, "--year", "2018", "--json")) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"accuracy", "robustness", "failures", "eao", "sequences"} <= set(report)
    assert report["eao"] == pytest.approx(REFERENCE["eao"][2018], abs=1e-6) and report["year"] == 2018
    assert report["accuracy"] == pytest.approx(REFERENCE["accuracy"], abs=1e-9)
    assert report["robustness"] == pytest.approx(REFERENCE["robustness"], abs=1e-9)
    assert report["failures"] == REFERENCE["failures"] and set(report["sequences"]) == set(REFERENCE["sequences"])
    assert main(_score(workspace, "--tracker", TRACKER)) == 0
    table = capsys.readouterr().out
    assert "EAO(VOT2019) 0.4307" in table and table.splitlines()[2].startswith("rotated")


@pytest.mark.parametrize("extra, message", [
    (["--tracker", TRACKER, "--year", "2017"], "argument --year: invalid choice"),
    (["--tracker", "nobody"], "no results for tracker 'nobody'"),
    ([], "--protocol vot needs --tracker NAME"),
    (["--tracker", TRACKER, "--experiment", "realtime"], "no result files boxes_NNN.txt"),
])
def test_score_cli_errors_are_one_line(workspace, capsys, extra, message):
    assert main(_score(workspace, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_score_cli_missing_results_folder(workspace, tmp_path, capsys):
    argv = _score(workspace, "--tracker", TRACKER)
    argv[argv.index("--results") + 1] = str(tmp_path / "missing")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--results" in err and "expected an existing folder" in err and len(err.strip().splitlines()) == 1


def test_wrong_trajectory_length_is_one_line(workspace, tmp_path, capsys):
    broken = tmp_path / "results" / TRACKER / "baseline"
    for name in ("boxes", "rotated", "nearend", "pastend"):
        (broken / name).mkdir(parents=True)
        source = workspace / "results" / TRACKER / "baseline" / name / f"{name}_001.txt"
        (broken / name / f"{name}_001.txt").write_text(source.read_text())
    (broken / "pastend" / "pastend_001.txt").write_text("1\n")
    argv = _score(workspace, "--tracker", TRACKER)
    argv[argv.index("--results") + 1] = str(tmp_path / "results")
    assert main(argv) == 2
    assert "pastend_001.txt: sequence pastend: has 1 lines but the sequence has 200 frames" in capsys.readouterr().err


def _tiny_vot(root: Path, frames: int = 50) -> Path:
    """Two sequences of a slowly moving box / rotated square on 160x120 frames."""
    sequences = root / "sequences"
    write_sequence(sequences, "slide", [R(40 + i * 0.5, 30, 40, 30) for i in range(frames)], "flat", size=(160, 120))
    write_sequence(sequences, "turn", [R(60, 30, 90, 40, 80, 80, 50, 70) for _ in range(frames)], "color",
                   size=(160, 120))
    (sequences / "list.txt").write_text("slide\nturn\n")
    return sequences


def test_evaluate_protocol_vot_runs_and_scores(tmp_path, capsys, one_torch_thread):
    sequences = _tiny_vot(tmp_path, frames=12)
    rc = main(["evaluate", "lighttrack-mobile", "--dataset", str(sequences), "--results", str(tmp_path / "out"),
               "--protocol", "vot", "--tracker", "mobile", "--repetitions", "2", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    folder = tmp_path / "out" / "mobile" / "baseline"
    assert sorted(p.name for p in (folder / "slide").iterdir()) == ["slide_001.txt", "slide_002.txt"]
    assert (folder / "metrics.json").is_file() and set(report["sequences"]) == {"slide", "turn"}
    # the same numbers as scoring the files it wrote
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # 12 frames: the EAO interval is out of reach
        again = score_vot_results(open_dataset(sequences), tmp_path / "out", "mobile")
    assert again["accuracy"] == report["accuracy"] and again["failures"] == report["failures"]


# ------------------------------------------------------------------------------------------ fitness
def test_fitness_eao_is_the_score_commands_eao(tmp_path):
    sequences = open_dataset(_tiny_vot(tmp_path))
    fitness = score_tracker(IdentityTracker(), sequences, metric="eao", eao_year=2019)
    SupervisedExperiment(str(tmp_path / "results"), "identity", repetitions=1).run(IdentityTracker, sequences)
    report = score_vot_results(sequences, tmp_path / "results", "identity", year=2019)
    assert fitness["fitness"] == report["eao"] == fitness["eao"] and fitness["failures"] == report["failures"]
    assert 0 < fitness["eao"] < 1


def test_supernet_fitness_eao_on_a_vot_validation_set(tmp_path, tiny_data, mobile_space, one_torch_thread):
    torch.manual_seed(0)
    checkpoint = tmp_path / "supernet.pt"
    torch.save({"model": Supernet(mobile_space).state_dict(), "space_hash": mobile_space.hash,
                "weight_sharing": "none"}, checkpoint)
    # targets covering the whole frame (a box, a diamond around it): an untrained subnet's boxes, kept
    # inside the image, never lose them, so runs reach VOT2019's interval [46, 291] and the EAO is defined
    sequences = tmp_path / "val"
    write_sequence(sequences, "wide", [R(0, 0, 160, 120)] * 48, "flat", size=(160, 120))
    write_sequence(sequences, "tilted", [R(-80, 60, 80, -100, 240, 60, 80, 220)] * 48, "color", size=(160, 120))
    (sequences / "list.txt").write_text("wide\ntilted\n")
    spec = FitnessSpec(space="lighttrack-mobile", checkpoint=str(checkpoint), data_root=str(tiny_data),
                       data_format="got10k", bn_batches=1, bn_batch_size=4, metric="eao",
                       val_root=str(sequences), val_format="vot", eao_year=2019)
    result = spec().evaluate(load_space("lighttrack-mobile").sample(np.random.default_rng(0)).genotype)
    assert result["eao"] is not None and 0 < result["eao"] <= 1 and result["fitness"] == result["eao"]
    assert 0 < result["accuracy"] <= 1 and result["failures"] == 0 and result["fps"] > 0
    (floor,) = identity_scores(spec)  # the do-nothing floor on the same VOT frames, same scoring
    identity = score_tracker(IdentityTracker(), open_dataset(sequences), metric="eao")
    assert floor == {**identity, "fps": floor["fps"]} and floor["failures"] == 0
    with pytest.raises(ConfigError, match="eao needs a VOT-layout validation set"):
        FitnessSpec(space="lighttrack-mobile", checkpoint=str(checkpoint), data_root=str(tiny_data), metric="eao")


def _config(tmp_path, fitness: dict) -> dict:
    return {"name": "vot", "space": "lighttrack-mobile", "data": {"root": str(tmp_path)}, "fitness": fitness}


@pytest.mark.parametrize("fitness, key, message", [
    ({"metric": "eao"}, "fitness.metric", "eao needs a VOT-layout validation set"),
    ({"metric": "eao", "val_root": "v", "val_format": "got10k"}, "fitness.metric", "fitness.val_format: vot"),
    ({"metric": "eao", "val_root": "v", "val_format": "vot", "max_frames": 40}, "fitness.max_frames",
     "expected more than 46 frames"),
    ({"metric": "eao", "val_root": "v", "val_format": "vot", "eao_year": 2017}, "fitness.eao_year",
     "expected one of 2018, 2019"),
    ({"val_format": "vott"}, "fitness.val_format", "expected one of None, got10k"),
    ({"val_format": "vot"}, "fitness.val_format", "applies to fitness.val_root, which is not set"),
])
def test_config_eao_errors_are_one_line(tmp_path, fitness, key, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(_config(tmp_path, fitness), source="run.yaml", base=tmp_path)
    assert err.value.key == key and "\n" not in str(err.value)


def test_config_eao_accepted_and_years_match_the_protocol(tmp_path):
    cfg = parse_config(_config(tmp_path, {"metric": "eao", "val_root": "vot/sequences", "val_format": "vot",
                                          "eao_year": 2018, "max_frames": 120}), source="run.yaml", base=tmp_path)
    assert cfg.fitness.val_root == str(tmp_path / "vot" / "sequences") and cfg.fitness.eao_year == 2018
    assert set(FITNESS_CHOICES["eao_year"]) == set(EAO_INTERVALS)
    assert all(EAO_LOW[year] == EAO_INTERVALS[year][0] for year in EAO_INTERVALS)
    assert yaml.safe_dump(cfg.to_dict())  # serialisable as the run's config.json


def test_validate_run_opens_the_vot_validation_set(tmp_path, tiny_data):
    from nas.jobs.validate import validate_run

    vot_root = _tiny_vot(tmp_path, frames=3)
    fitness = {"metric": "eao", "val_root": str(vot_root), "val_format": "vot"}
    cfg = parse_config({**_config(tiny_data, fitness), "data": {"root": str(tiny_data), "split": "train"}},
                       source="run.yaml", base=tmp_path)
    validate_run(cfg, search=True)  # GOT-10k training data, VOT validation: both open
    broken = parse_config({**_config(tiny_data, {**fitness, "val_root": str(tmp_path / "nothing")}),
                           "data": {"root": str(tiny_data), "split": "train"}}, source="run.yaml", base=tmp_path)
    with pytest.raises(ConfigError, match=r"run.yaml: fitness.val_root: .*nothing: dataset root is not a directory"):
        validate_run(broken, search=True)


def test_vot_protocol_on_another_layout_is_one_line(tiny_data, tmp_path, capsys):
    rc = main(["score", "--protocol", "vot", "--dataset", str(tiny_data), "--split", "val", "--results", str(tmp_path),
               "--tracker", "x"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "the VOT protocol needs a VOT-layout dataset (--format vot), got got10k" in err
    assert len(err.strip().splitlines()) == 1
