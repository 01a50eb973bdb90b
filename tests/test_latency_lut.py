"""Latency lookup tables on the tiny space: real timings on this machine, real cache files, real searches."""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
import torch

from conftest import TINY_SPACE
from nas.cli import main
from nas.config import parse_config
from nas.cost import lut
from nas.cost.counting import count_flops
from nas.cost.lut import LatencySetting, LatencyTable, Timing, build_latency_table, read_latency_table, table_path
from nas.cost.sampling import sample_within
from nas.cost.table import cost_table
from nas.errors import ConfigError, TrackNASError
from nas.search import LocalEvaluator, SearchSettings, run_search
from nas.search.toy import ToyFactory
from nas.space import Bounds, load_space

QUICK = Timing(runs=4, warmup=1, rounds=2, fit_archs=2)  # seconds on the tiny space
SETTING = LatencySetting("torch", threads=1)


@pytest.fixture(scope="module")
def tiny():
    return load_space(TINY_SPACE)


@pytest.fixture(scope="module")
def table(tiny):
    """A real table of the tiny space, timed on this machine and written to the (session's) cache."""
    built, _ = build_latency_table(tiny, SETTING, QUICK)
    return built


def test_build_times_every_piece_records_the_machine_and_reloads_from_the_cache(tiny, table):
    data = table.data
    assert data["pieces"] == 83 and data["setting"] == {"runtime": "torch", "threads": 1, "device": "cpu"}
    assert data["machine"] == lut.machine_fingerprint(SETTING) and data["machine"]["cpu"]
    low, high = table.range_ms()
    assert 0 < low < high
    rng = np.random.default_rng(0)
    archs = [tiny.sample(rng) for _ in range(20)]
    assert all(low <= table.predict_ms(a) <= high for a in archs)
    assert len({round(table.predict_ms(a), 6) for a in archs}) > 10  # architectures differ, so do predictions
    reloaded = read_latency_table(tiny, SETTING)
    assert reloaded is not None and reloaded.data == json.loads(table_path(tiny, SETTING).read_text())
    assert [reloaded.predict_us(a) for a in archs] == [table.predict_us(a) for a in archs]
    assert read_latency_table(tiny, LatencySetting("torch", threads=3)) is None  # keyed by threads


def test_a_table_made_on_another_machine_is_refused_in_one_line(tiny, table, tmp_path, capsys):
    path = table_path(tiny, SETTING)
    original = path.read_text()
    forged = json.loads(original)
    forged["machine"]["cpu"] = "Imaginary CPU 9000"  # a fault this machine cannot cause: fake the fingerprint
    path.write_text(json.dumps(forged))
    try:
        with pytest.raises(TrackNASError, match="another machine.*Imaginary CPU 9000") as err:
            read_latency_table(tiny, SETTING)
        assert "\n" not in str(err.value) and "tracknas latency build" in str(err.value)
        lut.latency_table.cache_clear()
        assert main(["latency", "validate", str(TINY_SPACE), "--threads", "1", "--archs", "2"]) == 2
        out = capsys.readouterr()
        assert out.out == "" and out.err.count("\n") == 1 and "another machine" in out.err
    finally:
        path.write_text(original)
        lut.latency_table.cache_clear()


def _flops_as_time(speed=lambda: 1.0, gap=lambda i: 0.0):
    """A stand-in for `lut._time_pieces_and_archs` (the one timing function): each piece "takes" its fvcore
    FLOPs and the i-th architecture its search-branch FLOPs plus `gap(i)`, all times the machine's `speed()`."""
    def timed(pieces, space, archs, setting, timing):
        flops = cost_table(space)
        return ({key: speed() * count_flops(build().eval(), tuple(torch.randn(*s) for s in shapes))
                 for key, (build, shapes) in pieces.items()},
                [speed() * (flops.flops(a) + gap(i)) for i, a in enumerate(archs)])
    return timed


def test_prediction_is_the_sum_of_the_search_branch_pieces_plus_the_fitted_overhead(tiny, monkeypatch):
    """With each piece "timed" as its fvcore FLOPs, the sum over an architecture's entries must be exactly
    its search-branch FLOPs: the table sums the pieces `measure_latency` runs, each once."""
    monkeypatch.setattr(lut, "_time_pieces_and_archs", _flops_as_time(gap=lambda i: 100.0 + 10.0 * i))
    counted = LatencyTable.build(tiny, SETTING, Timing(runs=1, warmup=0, rounds=1, fit_archs=3))
    assert counted.overhead_us == pytest.approx(110.0)  # median of the gaps 100, 110, 120
    flops = cost_table(tiny)
    rng = np.random.default_rng(1)
    for _ in range(30):
        arch = tiny.sample(rng)
        assert counted.predict_us(arch) == pytest.approx(flops.flops(arch) + 110.0)


def test_validate_json_has_the_error_measures(tiny, table, capsys):
    assert main(["latency", "validate", str(TINY_SPACE), "--threads", "1", "--archs", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"mape", "max_error", "kendall_tau", "archs", "load_average", "machine", "mape_refit", "drift"} <= set(result)
    assert 0 < result["drift"]["min"] <= result["drift"]["median"] <= result["drift"]["max"]
    assert result["archs"] == 3 and 0 <= result["mape"] <= result["max_error"]
    assert -1.0 <= result["kendall_tau"] <= 1.0 and result["runtime"] == "torch" and result["threads"] == 1


def test_validate_reports_how_far_the_machine_drifted_since_the_build(tiny, monkeypatch):
    """Each "timing" is an architecture's FLOPs times the machine's speed of the moment: built at speed 1 and
    validated at 1.5, every prediction is 1/1.5 of the measurement (ranking intact) and the table's own fit
    architectures, re-timed beside the validation's, report the drift as exactly 1.5."""
    speed = {"now": 1.0}
    monkeypatch.setattr(lut, "_time_pieces_and_archs", _flops_as_time(speed=lambda: speed["now"]))
    setting = LatencySetting("torch", threads=5)  # a cache key of its own: the real tables stay untouched
    lut.latency_table.cache_clear()
    try:
        built, _ = build_latency_table(tiny, setting, Timing(runs=1, warmup=0, rounds=1, fit_archs=4), progress=False)
        assert len(built.fit) == 4 and built.overhead_us == pytest.approx(0.0, abs=1e-6)
        speed["now"] = 1.5
        result = lut.validate_table(tiny, setting, archs=20)
    finally:
        table_path(tiny, setting).unlink(missing_ok=True)
        lut.latency_table.cache_clear()
    assert result["drift"] == pytest.approx({"median": 1.5, "min": 1.5, "max": 1.5})
    assert result["kendall_tau"] == pytest.approx(1.0) and result["mape"] == pytest.approx(100 / 3)
    assert result["mape_refit"] < result["mape"]


def test_timing_goes_on_past_its_rounds_until_its_window_has_passed():
    """A table's medians span minutes (`TABLE_TIMING`): rounds go on until `window_s` is over, however few
    `rounds` ask for; without a window, exactly `rounds` visits (one untimed + runs // rounds timed each)."""
    visits = []

    def call():
        visits.append(time.monotonic())
        time.sleep(0.005)

    lut.median_times_us([call], Timing(runs=2, warmup=0, rounds=2, window_s=0.0))
    assert len(visits) == 2 * (1 + 1)
    visits.clear()
    start = time.monotonic()
    lut.median_times_us([call], Timing(runs=2, warmup=0, rounds=2, window_s=0.3))
    assert time.monotonic() - start >= 0.3 and len(visits) > 4 and len(visits) % 2 == 0
    assert lut.TABLE_TIMING.window_s >= 60 and lut.TABLE_TIMING.rounds == Timing().rounds


def test_kendall_tau_matches_its_definition():
    assert lut.kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert lut.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert lut.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)


def test_latency_bounded_sampling_and_search_never_exceed_the_predicted_bound(tiny, table, tmp_path):
    low, high = table.range_ms()
    bound = low + 0.3 * (high - low)
    rng = np.random.default_rng(0)
    unbounded = [table.predict_ms(tiny.sample(rng)) for _ in range(200)]
    assert sum(v > bound for v in unbounded) > 50  # the bound really cuts the space
    assert all(table.predict_ms(sample_within(tiny, rng, Bounds(latency_ms=bound), table)) <= bound
               for _ in range(50))
    with pytest.raises(TrackNASError, match="latency table"):
        sample_within(tiny, rng, Bounds(latency_ms=bound))  # never silently unchecked

    lut.latency_table.cache_clear()  # the search loads the cached table the fixture wrote
    settings = SearchSettings(population=10, top_k=4, mutations=6, crossovers=6, generations=4, seed=2,
                              bounds=Bounds(latency_ms=bound), algorithm="nsga2",
                              objectives=("fitness", "latency_ms"), latency=SETTING)
    asked = []

    class Recording(LocalEvaluator):
        def evaluate(self, genotypes):
            asked.extend(tuple(g) for g in genotypes)
            yield from super().evaluate(genotypes)

    result = run_search(tiny, settings, Recording(ToyFactory(str(TINY_SPACE), 2)), tmp_path / "state.json",
                        progress=False)
    assert len(asked) == len(result.evaluated) >= 10 + 3 * 12 - 5
    assert max(table.predict_ms(g) for g in asked) <= bound
    for record in result.evaluated.values():  # predicted latency is the objective: carried, never timed
        assert record["cost"]["latency_ms"] == record["metrics"]["latency_ms"] == pytest.approx(
            table.predict_ms(tuple(record["genotype"])))
    assert SearchSettings.from_json(json.loads((tmp_path / "state.json").read_text())["settings"]) == settings
    with pytest.raises(ConfigError, match="latency table"):
        SearchSettings(bounds=Bounds(latency_ms=bound))


def test_infeasible_latency_bound_and_bad_options_are_one_line_exits(tiny, table, capsys):
    low, _ = table.range_ms()
    cases = [["space", "sample", str(TINY_SPACE), "--latency-max", f"{low / 2:.4f}", "--threads", "1"],
             ["space", "sample", str(TINY_SPACE), "--latency-max", "fast"],
             ["space", "sample", str(TINY_SPACE), "--latency-max", "-3"],
             ["latency", "build", str(TINY_SPACE), "--runtime", "tensorrt"],
             ["latency", "validate", str(TINY_SPACE), "--threads", "0"],
             ["latency", "validate", str(TINY_SPACE), "--archs", "1"],
             ["latency", "build", str(TINY_SPACE), "--window", "-1"],
             ["latency", "build", str(TINY_SPACE), "--quantile", "nan"]]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, argv
    assert main(cases[0]) == 2 and "fastest architecture" in capsys.readouterr().err
    sampled = ["space", "sample", str(TINY_SPACE), "-n", "3", "--latency-max", f"{low * 1.2:.4f}", "--threads", "1"]
    assert main(sampled) == 0
    for line in capsys.readouterr().out.splitlines():
        arch = json.loads(line)
        assert arch["cost"]["latency_ms"] <= low * 1.2 and arch["provenance"]["latency"]["threads"] == 1


@pytest.mark.parametrize("search, message", [
    ({"bounds": {"latency_ms": "fast"}}, "search.bounds.latency_ms: expected a finite number"),
    ({"bounds": {"latency_ms": 0}}, "search.bounds.latency_ms: expected a finite number in (0"),
    ({"bounds": {"latency": 20}}, "search.bounds: expected {preset: NAME}"),
    ({"latency": {"runtime": "tensorrt"}}, "search.latency.runtime: expected one of torch, onnxruntime"),
    ({"latency": {"threads": 0}}, "search.latency.threads: expected an integer in 1..1024"),
    ({"latency": {"device": "tpu"}}, "search.latency.device: expected one of cpu, cuda"),
    ({"latency": {"cores": 2}}, "search.latency: expected a mapping like"),
    ({"latency": "torch"}, "search.latency: expected dict"),
])
def test_latency_config_errors_name_the_key(tmp_path, search, message):
    with pytest.raises(ConfigError) as err:
        parse_config({"name": "x", "space": "lighttrack-mobile", "data": {"root": "d"}, "search": search},
                     source="run.yaml", base=tmp_path)
    assert message in str(err.value) and str(err.value).startswith("run.yaml: ")


def test_config_latency_setting_defaults_when_latency_is_bounded(tmp_path):
    from nas.jobs.search import fitness_spec, search_settings

    space = load_space("lighttrack-mobile")
    cfg = parse_config({"name": "x", "space": "lighttrack-mobile", "data": {"root": "d"},
                        "search": {"bounds": {"latency_ms": 20}}}, source="run.yaml", base=tmp_path)
    assert search_settings(cfg, space).latency == LatencySetting("torch", 2, "cpu")
    cfg = parse_config({"name": "x", "space": "lighttrack-mobile", "data": {"root": "d"},
                        "search": {"latency": {"threads": 1}, "algorithm": "nsga2",
                                   "objectives": ["fitness", "latency_ms"]}}, source="run.yaml", base=tmp_path)
    assert search_settings(cfg, space).latency == LatencySetting("torch", 1, "cpu")
    assert fitness_spec(cfg).latency_runs == 0  # predicted from the table, not timed per candidate


def test_the_run_check_loads_the_table_up_front_and_checks_the_latency_bound(tiny, table, tmp_path):
    from nas.jobs.validate import validate_run

    low, _ = table.range_ms()

    def config(search: dict):
        return parse_config({"name": "x", "space": str(TINY_SPACE), "search": search,
                             "data": {"root": str(tmp_path / "data"), "synthesize": {"sequences": 4, "frames": 10}}},
                            source="run.yaml", base=tmp_path)

    lut.latency_table.cache_clear()
    validate_run(config({"bounds": {"latency_ms": low * 1.5}, "latency": {"threads": 1}}), search=True)
    with pytest.raises(ConfigError, match=r"run.yaml: search.bounds: infeasible bound: latency_ms .* fastest"):
        validate_run(config({"bounds": {"latency_ms": low / 2}, "latency": {"threads": 1}}), search=True)
    path = table_path(tiny, SETTING)
    original = path.read_text()
    path.write_text(original.replace(json.dumps(lut.cpu_model()), json.dumps("Imaginary CPU 9000")))
    lut.latency_table.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"run.yaml: search.latency: .*another machine"):
            validate_run(config({"bounds": {"latency_ms": low * 1.5}, "latency": {"threads": 1}}), search=True)
    finally:
        path.write_text(original)
        lut.latency_table.cache_clear()


def test_best_json_carries_predicted_and_measured_latency(tiny, table, tmp_path):
    from nas.jobs.search import stamp_latency
    from nas.space import arch_to_json

    arch = tiny.sample(np.random.default_rng(5))
    best = tmp_path / "best.json"
    best.write_text(json.dumps(arch_to_json(arch, cost=cost_table(tiny).cost(arch))))
    lut.latency_table.cache_clear()
    stamped = stamp_latency(best, tiny, SETTING)
    saved = json.loads(best.read_text())["latency"]
    assert saved == stamped and saved["runtime"] == "torch" and saved["threads"] == 1 and saved["device"] == "cpu"
    assert saved["predicted_ms"] == pytest.approx(table.predict_ms(arch)) and saved["measured_ms"] > 0


def test_onnxruntime_table_times_the_pieces_as_onnx_graphs(tiny):
    setting = LatencySetting("onnxruntime", threads=1)
    ort_table, path = build_latency_table(tiny, setting, Timing(runs=1, warmup=0, rounds=1, fit_archs=1))
    assert path == table_path(tiny, setting) and path != table_path(tiny, SETTING)
    assert ort_table.data["machine"]["onnxruntime"] and ort_table.data["pieces"] == 83
    low, high = ort_table.costs.extremes()["flops"]  # the timed pieces alone (the overhead may be negative:
    assert 0 < low < high  # one session call per piece costs more than the fused whole graph's one)


def test_onnxruntime_missing_is_a_one_line_exit(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an install without the extra looks like
    assert main(["latency", "build", str(TINY_SPACE), "--runtime", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'tracknas[onnx]'" in err
