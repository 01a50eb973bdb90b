"""The onnxruntime path: exported graphs equal the eager subnet, tracking on Crossing is unchanged,
the runtime reaches evaluate, baselines and the fitness, and a missing onnxruntime is one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, TINY_SPACE
from nas.cli import main
from nas.data.datasets import open_dataset
from nas.errors import ConfigError
from nas.fitness.baselines import (
    CHECKPOINT_NAMES, IDENTITY_NAME, BaselineConfig, baseline_specs, compare, format_markdown)
from nas.fitness.results import read_sequence_result
from nas.fitness.supernet_fitness import FitnessSpec
from nas.space import arch_to_json, from_lighttrack_string, load_space
from nas.space.lighttrack_codec import LIGHTTRACK_MOBILE
from trackers.dimp.spec import DiMPSpec
from trackers.lighttrack.export import SEARCH_ONNX, TEMPLATE_ONNX, write_export
from trackers.lighttrack.model import build_subnet
from trackers.lighttrack.onnx_network import OnnxRuntimeSubnet
from trackers.lighttrack.tracker import LightTrackSpec, LightTrackTracker
from trackers.runtime import onnxruntime_session

SPACES = REPO / "tests" / "spaces"


def _seeded(space, arch, seed=0):
    """The subnet of `arch` with seeded random weights and BN statistics that are not the identity
    (so BN folding and its export are exercised), in eval mode."""
    torch.manual_seed(seed)
    model = build_subnet(space, arch)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _archs():
    mobile = load_space("lighttrack-mobile")
    rng = np.random.default_rng(3)
    return {"mobile-reference": (mobile, from_lighttrack_string(mobile, LIGHTTRACK_MOBILE)),
            "mobile-random": (mobile, mobile.sample(rng)),
            "large-random": (load_space("lighttrack-large"), load_space("lighttrack-large").sample(rng)),
            "tiny-dimp-random": (load_space(SPACES / "tiny-dimp.yaml"),
                                 load_space(SPACES / "tiny-dimp.yaml").sample(rng))}


ARCHS = _archs()


@pytest.mark.parametrize("name", list(ARCHS))
def test_onnxruntime_maps_equal_eager(name, one_torch_thread):
    space, arch = ARCHS[name]
    model = _seeded(space, arch)
    network = OnnxRuntimeSubnet(model)
    spec = space.spec
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(1, 3, spec.template_size, spec.template_size, generator=gen)
    box = torch.tensor([[spec.template_size * 0.3, spec.template_size * 0.2,
                         spec.template_size * 0.6, spec.template_size * 0.8]])
    with torch.no_grad():
        eager_state = model.template(z, box)
        state = network.template(z, box)
        assert list(state) == list(eager_state)
        for key in state:
            torch.testing.assert_close(state[key], eager_state[key], rtol=0, atol=1e-4)
        for side in (spec.search_size, spec.search_size + 2 * model.stride):  # normal and big search crops
            x = torch.randn(1, 3, side, side, generator=gen)
            eager, out = model.track(x, eager_state), network.track(x, state)
            assert list(out) == ["cls", "reg"] and out["cls"].shape == eager["cls"].shape
            for key in ("cls", "reg"):
                scale = float(eager[key].abs().max())
                assert eager[key].std() > 1e-4  # a map that varies, so the comparison means something
                torch.testing.assert_close(out[key], eager[key], rtol=0, atol=min(1e-4, 1e-3 * scale))


def test_exported_graphs_take_the_template_state_and_match_eager(tmp_path, one_torch_thread):
    space, arch = ARCHS["tiny-dimp-random"]
    model = _seeded(space, arch, seed=4)
    out = write_export(tmp_path / "export", arch_to_json(arch), model, onnx=True)
    template = onnxruntime_session((out / TEMPLATE_ONNX).read_bytes())
    search = onnxruntime_session((out / SEARCH_ONNX).read_bytes())
    z = torch.randn(1, 3, space.spec.template_size, space.spec.template_size)
    x = torch.randn(1, 3, space.spec.search_size, space.spec.search_size)
    box = torch.tensor([[16.0, 12.0, 40.0, 52.0]])
    with torch.no_grad():
        eager_state = model.template(z, box)
        eager = model.track(x, eager_state)
    assert [i.name for i in template.get_inputs()] == ["z", "box"]
    assert [i.name for i in search.get_inputs()] == ["x", *eager_state]  # zf, then the dimp filter
    state = dict(zip(eager_state, template.run(None, {"z": z.numpy(), "box": box.numpy()})))
    cls, reg = search.run(["cls", "reg"], {"x": x.numpy(), **state})
    np.testing.assert_allclose(cls, eager["cls"].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(reg, eager["reg"].numpy(), rtol=0, atol=1e-4)


def _evaluate(otb_root, results, runtime, capsys) -> dict:
    assert main(["evaluate", "lighttrack-mobile", "--dataset", str(otb_root), "--format", "otb", "--results",
                 str(results), "--backend", "serial", "--runtime", runtime, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_evaluate_on_crossing_gives_the_eager_boxes(otb_root, tmp_path, capsys, one_torch_thread):
    seq = open_dataset(otb_root, "otb")[0]
    eager = _evaluate(otb_root, tmp_path / "torch", "torch", capsys)
    ort = _evaluate(otb_root, tmp_path / "ort", "onnxruntime", capsys)
    boxes_eager, _ = read_sequence_result(tmp_path / "torch", seq.name)
    boxes_ort, _ = read_sequence_result(tmp_path / "ort", seq.name)
    assert boxes_ort.shape == (len(seq), 4)
    assert len(np.unique(boxes_eager.round(2), axis=0)) > 10  # the boxes move: not one box compared to itself
    np.testing.assert_allclose(boxes_ort, boxes_eager, rtol=0, atol=0.01)
    assert ort["auc"] == pytest.approx(eager["auc"], abs=1e-3)
    assert ort["precision"] == pytest.approx(eager["precision"], abs=1e-3)


def test_trackers_without_an_onnxruntime_path_are_one_line_errors(one_torch_thread):
    with pytest.raises(ConfigError, match=r"tracker 'dimp' cannot run under onnxruntime: DiMP optimises") as err:
        DiMPSpec(name="dimp").with_runtime("onnxruntime")
    assert "\n" not in str(err.value)
    gradnet = load_space(SPACES / "tiny-gradnet.yaml")
    arch = gradnet.sample(np.random.default_rng(0))
    with pytest.raises(ConfigError, match=f"architecture {arch.arch_id} cannot run under onnxruntime: its gradnet"):
        LightTrackTracker(build_subnet(gradnet, arch), runtime="onnxruntime")
    with pytest.raises(ConfigError, match="unknown runtime 'tensorrt'"):
        LightTrackSpec("lighttrack-mobile").with_runtime("tensorrt")
    with pytest.raises(ConfigError, match="unknown runtime"):
        FitnessSpec(space=str(TINY_SPACE), checkpoint="x.pt", data_root=".", runtime="tvm")


def test_baselines_run_the_lighttrack_rows_on_onnxruntime(otb_root, tmp_path, one_torch_thread):
    specs, notes = baseline_specs(BaselineConfig(), dict.fromkeys(CHECKPOINT_NAMES),
                                  runtime="onnxruntime")
    assert specs["lighttrack-mobile"].runtime == "onnxruntime"
    assert not hasattr(specs["siamfc-gradnet"], "runtime")  # torch-only trackers keep their own spec
    sequences = [open_dataset(otb_root, "otb")[0].head(6)]
    chosen = {name: specs[name] for name in (IDENTITY_NAME, "lighttrack-mobile", "siamfc-gradnet")}
    rows = compare(chosen, sequences, tmp_path, backend="serial", progress=False, notes=notes)
    assert [row["runtime"] for row in rows] == ["none", "onnxruntime", "torch"]
    assert "| lighttrack-mobile |" in format_markdown(rows) and "| onnxruntime |" in format_markdown(rows)


BLOCKER = '''
import sys
from pathlib import Path


class _NoOnnxRuntime:
    """Makes `import onnxruntime` fail, as on an install without the 'onnx' extra."""

    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoOnnxRuntime())
'''


@pytest.mark.parametrize("command", [
    ["evaluate", "lighttrack-mobile", "--dataset", "{data}", "--format", "otb", "--results", "{out}"],
    ["baselines", "--dataset", "{data}", "--format", "otb", "--out", "{out}"],
])
def test_without_onnxruntime_the_runtime_is_one_line_and_exit_2(command, otb_root, tmp_path):
    (tmp_path / "blocker").mkdir()
    (tmp_path / "blocker" / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "blocker"), str(REPO)]),
           "OMP_NUM_THREADS": "1"}
    argv = [a.format(data=otb_root, out=tmp_path / "out") for a in command]
    probe = subprocess.run([sys.executable, "-c", "import onnxruntime"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "onnxruntime" in probe.stderr  # the blocker works
    done = subprocess.run([sys.executable, "-m", "nas.cli", *argv, "--runtime", "onnxruntime"], env=env,
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "onnxruntime" in done.stderr and "pip install" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()  # refused before any work


def test_fitness_on_onnxruntime_scores_like_torch(tiny_data, tmp_path, one_torch_thread):
    from nas.io import atomic_torch_save
    from nas.supernet import Supernet

    space = load_space(TINY_SPACE)
    torch.manual_seed(0)
    checkpoint = tmp_path / "supernet.pt"
    atomic_torch_save({"model": Supernet(space).state_dict(), "space_hash": space.hash}, checkpoint)
    genotype = space.sample(np.random.default_rng(5)).genotype
    results = {}
    for runtime in ("torch", "onnxruntime"):
        fitness = FitnessSpec(space=str(TINY_SPACE), checkpoint=str(checkpoint), data_root=str(tiny_data),
                              bn_batches=1, bn_batch_size=4, max_sequences=2, max_frames=10, metric="ao",
                              runtime=runtime)()
        results[runtime] = fitness.evaluate(genotype)
    assert 0.0 < results["torch"]["ao"] < 1.0
    for key in ("fitness", "ao", "sr50"):
        assert results["onnxruntime"][key] == pytest.approx(results["torch"][key], abs=1e-3), key


@pytest.mark.parametrize("space, runtime, message", [
    (TINY_SPACE, "tvm", "fitness.runtime: expected one of torch, onnxruntime"),
    (SPACES / "tiny-gradnet.yaml", "onnxruntime", "fitness.runtime: onnxruntime cannot run this space: its 'update'"),
])
def test_search_config_runtime_is_checked_before_any_work(space, runtime, message, tiny_data, tmp_path, capsys):
    import yaml

    from conftest import write_job_config

    path = tmp_path / "job.yaml"
    config = yaml.safe_load(Path(write_job_config(path, tiny_data, tmp_path / "run")).read_text())
    config["space"], config["fitness"]["runtime"] = str(space), runtime
    path.write_text(yaml.safe_dump(config))
    assert main(["search", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()
