"""TensorBoard event files of a run (issue 15): what the supernet and the search write, and `--no-tb`."""
from __future__ import annotations

import json

import pytest

from conftest import write_job_config, write_train_config
from nas.cli import main
from nas.search.state import SearchState
from tbevents import read_events


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory, tiny_data):
    tmp = tmp_path_factory.mktemp("tb")
    assert main(["search", write_job_config(tmp / "job.yaml", tiny_data, tmp / "run")]) == 0
    return tmp / "run"


def test_supernet_training_writes_losses_and_lr_per_step_and_epoch(tb_run):
    scalars, _ = read_events(tb_run / "tb" / "supernet")
    history = json.loads((tb_run / "supernet" / "history.json").read_text())
    steps = sum(record["steps"] for record in history)
    for part in ("loss", "cls", "reg", "lr"):
        assert [step for step, _ in scalars[f"step/{part}"]] == list(range(steps)), part
        assert [step for step, _ in scalars[f"epoch/{part}"]] == [1, 2], part
        assert [value for _, value in scalars[f"epoch/{part}"]] == pytest.approx([r[part] for r in history]), part
    assert not any(tag.startswith("sstrack/") for tag in scalars)  # the uniform schedule has no q/Gamma/p


def test_search_writes_each_candidate_and_each_generation(tb_run):
    scalars, texts = read_events(tb_run / "tb" / "search")
    state = SearchState.load(tb_run / "search" / "state.json")
    fitness = [record["fitness"] for record in state.evaluated.values()]  # insertion = evaluation order
    assert [step for step, _ in scalars["candidate/fitness"]] == list(range(len(fitness))) == list(range(12))
    assert [value for _, value in scalars["candidate/fitness"]] == pytest.approx(fitness)
    for key in ("best", "mean", "median", "best_so_far"):
        assert [step for step, _ in scalars[f"generation/{key}"]] == [0, 1], key
        assert [value for _, value in scalars[f"generation/{key}"]] == pytest.approx(
            [entry[key] for entry in state.logbook]), key
    tables = texts["generation/candidates/text_summary"]
    assert [step for step, _ in tables] == [0, 1]
    header, rule, *rows = tables[0][1].splitlines()
    genes = header.split(" | ")
    assert genes[0] == "arch_id" and genes[-1] == "fitness" and len(genes) == 2 + len(state.evaluated[
        next(iter(state.evaluated))]["genotype"])
    assert len(rows) == 6 and rows[0].split(" | ")[0] in state.evaluated


def test_sstrack_schedule_is_logged_and_no_tb_writes_nothing(tmp_path, tiny_data):
    schedule = {"schedule": "sstrack", "epochs": 2, "max_interval": 10, "bin_width": 5}
    config = write_train_config(tmp_path / "a.yaml", tiny_data, tmp_path / "a", epochs=2, schedule=schedule)
    assert main(["train-supernet", str(config)]) == 0
    scalars, _ = read_events(tmp_path / "a" / "tb" / "supernet")
    history = json.loads((tmp_path / "a" / "supernet" / "history.json").read_text())
    bins = len(history[0]["schedule"]["q"])
    for key in ("q", "gamma", "p"):
        for i in range(bins):
            assert [v for _, v in scalars[f"sstrack/{key}/bin{i}"]] == pytest.approx(
                [r["schedule"][key][i] for r in history]), (key, i)
    assert [v for _, v in scalars["sstrack/tau"]] == pytest.approx([r["schedule"]["tau"] for r in history])
    quiet = write_train_config(tmp_path / "b.yaml", tiny_data, tmp_path / "b", epochs=2, schedule=schedule)
    assert main(["train-supernet", str(quiet), "--no-tb"]) == 0
    assert not (tmp_path / "b" / "tb").exists()
    # event files change no result: the same training without them gives the same history
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in history]
    again = json.loads((tmp_path / "b" / "supernet" / "history.json").read_text())
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in again] == strip


def test_search_events_change_no_result(tmp_path):
    """The same toy search with and without event files: the same state, candidate for candidate."""
    from conftest import TINY_SPACE
    from nas.search import LocalEvaluator, SearchSettings, run_search
    from nas.search.toy import ToyFactory
    from nas.space import load_space

    space = load_space(TINY_SPACE)
    settings = SearchSettings(population=8, top_k=3, mutations=4, crossovers=4, generations=3)
    states = []
    for name, events in (("with", tmp_path / "tb"), ("without", None)):
        result = run_search(space, settings, LocalEvaluator(ToyFactory(str(TINY_SPACE))), tmp_path / f"{name}.json",
                            progress=False, events=events)
        state = SearchState.load(result.state_path)
        states.append((state.logbook, state.evaluated, state.parents))
    assert states[0] == states[1]
    scalars, texts = read_events(tmp_path / "tb")
    assert len(scalars["candidate/fitness"]) == len(states[0][1]) == 24
    assert [step for step, _ in texts["generation/candidates/text_summary"]] == [0, 1, 2]
