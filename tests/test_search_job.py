"""The end-to-end `tracknas search` job, its reports, export/rebuild and evaluate on the export."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from conftest import TINY_SPACE, write_job_config
from nas.cli import main
from nas.config import load_config
from nas.cost.table import cost_table
from nas.io import torch_load
from nas.search.report import file_sha256
from nas.space import load_space
from nas.supernet import Supernet
from trackers.lighttrack.export import load_export


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_data):
    tmp = tmp_path_factory.mktemp("job")
    config = write_job_config(tmp / "job.yaml", tiny_data, tmp / "run")
    assert main(["search", config]) == 0
    return load_config(config), tmp / "run"


def test_search_job_writes_every_report(finished_run):
    cfg, run = finished_run
    for name in ("config.json", "best.json", "pareto.json", "generations.csv", "logbook.json", "search.png",
                 "supernet/last.pt", "search/state.json", "best/arch.json", "best/model.pt", "best/space.yaml"):
        assert (run / name).is_file(), name
    best = json.loads((run / "best.json").read_text())
    space = load_space(TINY_SPACE)
    assert best["space_hash"] == space.hash and best["cost"]["flops"] <= 9_000_000
    assert best["provenance"]["supernet_sha256"] == file_sha256(run / "supernet" / "last.pt")
    assert best["provenance"]["seed"] == 0 and 0.0 <= best["fitness"] <= 1.0
    state = json.loads((run / "search" / "state.json").read_text())
    fitnesses = [c["fitness"] for c in state["evaluated"].values()]
    assert len(fitnesses) == 12
    # the pick: the top-3 by search fitness re-scored on 2 BN samples x 2 validation subsets, highest mean
    final = json.loads((run / "search" / "final.json").read_text())
    assert len(final["candidates"]) == 3 and len(final["key"]["trials"]) == 4
    assert sorted(c["fitness_search"] for c in final["candidates"]) == sorted(fitnesses)[-3:]
    assert best["fitness"] == max(c["fitness"] for c in final["candidates"])
    assert best["fitness_search"] == state["evaluated"][best["arch_id"]]["fitness"]
    runs = [t["fitness"] for t in best["trials"]]
    assert len(runs) == 4 and best["fitness"] == pytest.approx(np.mean(runs))
    assert best["fitness_std"] == pytest.approx(np.std(runs)) and best["fitness_std"] > 0  # the trials differ
    refs = best["references"]
    assert set(refs) == {"identity", "reference_arch"} and refs["reference_arch"]["name"] == "tiny-ref"
    assert 0.0 < refs["identity"]["fitness"] < 1.0 and 0.0 <= refs["reference_arch"]["fitness"] <= 1.0
    table = cost_table(space)
    for record in state["evaluated"].values():  # every evaluated candidate met the bound
        assert table.flops(tuple(record["genotype"])) <= 9_000_000
    lines = (run / "generations.csv").read_text().splitlines()
    assert lines[0].startswith("gen,evals") and len(lines) == 3
    front = json.loads((run / "pareto.json").read_text())["front"]
    assert any(c["arch_id"] == best["arch_id"] for c in front)


def test_exported_model_rebuilds_and_matches_the_supernet_path(finished_run):
    cfg, run = finished_run
    arch, model = load_export(run / "best")
    assert arch.arch_id == json.loads((run / "best.json").read_text())["arch_id"]
    supernet = Supernet(load_space(TINY_SPACE))
    supernet.load_state_dict(torch_load(run / "supernet" / "last.pt")["model"])
    reference = supernet.extract(arch).eval()
    # the export carries BN statistics re-estimated on training pairs: copy them into the reference
    reference.load_state_dict({**reference.state_dict(), **{k: v for k, v in model.state_dict().items()
                                                             if "running" in k or "num_batches" in k}})
    z, x = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        a, b = model(z, x), reference(z, x)
    for key in ("cls", "reg"):
        assert torch.allclose(a[key], b[key], atol=1e-5)
    with torch.no_grad():
        c = supernet.eval()(arch, z, x)  # the path itself (its own BN statistics) differs only through BN
    assert c["cls"].shape == a["cls"].shape


def test_export_command_onnx_and_evaluate_on_export(finished_run, tmp_path, capsys, tiny_data):
    cfg, run = finished_run
    out = tmp_path / "exp"
    assert main(["export", str(run), "--onnx", "-o", str(out)]) == 0
    for name in ("arch.json", "model.pt", "space.yaml", "template.onnx", "search.onnx"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    import onnx

    graph = onnx.load(str(out / "search.onnx"))
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == ["x", "zf"]
    assert main(["evaluate", str(out), "--dataset", str(tiny_data), "--split", "val", "--results",
                 str(tmp_path / "res"), "--backend", "serial", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= report["ao"] <= 1.0 and report["num_sequences"] >= 1
    assert 0.0 < report["identity"]["ao"] < 1.0 and report["identity"]["num_sequences"] == report["num_sequences"]
    assert main(["evaluate", str(out), "--dataset", str(tiny_data), "--split", "val", "--results",
                 str(tmp_path / "res"), "--backend", "serial"]) == 0
    assert "IDENTITY (floor)" in capsys.readouterr().out


def test_rerunning_without_resume_is_refused_and_resume_is_a_no_op(finished_run, capsys):
    cfg, run = finished_run
    config = cfg.source
    assert main(["search", config]) == 2
    assert "pass --resume" in capsys.readouterr().err
    before = (run / "search" / "state.json").read_text()
    assert main(["search", config, "--resume"]) == 0
    assert json.loads((run / "search" / "state.json").read_text())["evaluated"] == json.loads(before)["evaluated"]
    # the last line states the supernet's cls loss, the best against identity (fitness subset and all trials)
    # and the reference architecture, with the numbers of best.json
    last = capsys.readouterr().out.strip().splitlines()[-1]
    best = json.loads((run / "best.json").read_text())
    refs = best["references"]
    assert last.startswith("supernet cls loss ") and "(chance 0.693)" in last
    assert f"best fitness {best['fitness_by_subset'][0]:.4f} on the fitness subset = " in last
    ratio = best["fitness_by_subset"][0] / refs["identity"]["fitness_by_subset"][0]
    assert f"{ratio:.2f}x identity {refs['identity']['fitness_by_subset'][0]:.4f}" in last
    assert f"over all 4 trials {best['fitness']:.4f} +- {best['fitness_std']:.4f}" in last
    assert f"reference tiny-ref {refs['reference_arch']['fitness_by_subset'][0]:.4f}" in last


def test_latency_objective_is_measured_by_the_fitness(finished_run):
    from dataclasses import replace

    from nas.jobs.search import fitness_spec

    cfg, run = finished_run
    latency_cfg = replace(cfg, search=replace(cfg.search, algorithm="nsga2", objectives=["fitness", "latency_ms"]))
    spec = fitness_spec(latency_cfg)
    assert spec.latency_runs > 0 and fitness_spec(cfg).latency_runs == 0
    best = json.loads((run / "best.json").read_text())
    genotype = [load_space(TINY_SPACE).genes[i].index_of(best["choices"][g.name])
                for i, g in enumerate(load_space(TINY_SPACE).genes)]
    metrics = spec().evaluate(genotype)
    assert metrics["latency_ms"] > 0 and metrics["fitness"] == pytest.approx(best["fitness_search"])


def test_resume_with_changed_search_settings_keeps_the_trained_supernet(finished_run, tmp_path, capsys, tiny_data):
    """Fixing a fitness/search setting after training must not cost the trained supernet: the resumed run
    keeps it, moves the old search aside and searches again; other changes are refused in one line."""
    import shutil

    cfg, run = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    saved = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**saved, "output": str(copy)}))
    digest = file_sha256(copy / "supernet" / "last.pt")
    changed = write_job_config(tmp_path / "changed.yaml", tiny_data, copy)
    data = yaml.safe_load(open(changed))
    data["fitness"]["max_frames"] = 8
    yaml.safe_dump(data, open(changed, "w"))
    assert main(["search", changed, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "keeping the trained supernet" in out and (copy / "search.previous-1" / "state.json").is_file()
    assert file_sha256(copy / "supernet" / "last.pt") == digest  # not retrained
    assert json.loads((copy / "config.json").read_text())["fitness"]["max_frames"] == 8
    data["supernet"]["epochs"] = 3
    yaml.safe_dump(data, open(changed, "w"))
    assert main(["search", changed, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differs" in err[0] and "supernet" in err[0]
