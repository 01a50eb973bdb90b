"""GPU readiness on a CPU machine: mixed precision, channels-last, Ray Train's GPU workers and fitness actors
that share a GPU, each exercised through its real code path (Ray schedules a declared GPU count on a CPU box)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

import nas.raytools  # noqa: F401  (loopback-only Ray must be configured before ray is imported)
import ray.cloudpickle
from conftest import REPO, write_train_config
from nas.config import load_config
from nas.errors import ConfigError
from nas.train.precision import Precision, check_amp
from nas.train.supernet_trainer import check_devices, train, train_scaling

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers need not import the tests folder


def _config(tmp_path, tiny_data, *, supernet: dict | None = None, search: dict | None = None):
    path = write_train_config(tmp_path / "c.yaml", tiny_data, tmp_path / "run", **(supernet or {}))
    if search is not None:
        data = yaml.safe_load(path.read_text())
        data["search"] = search
        path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("section, key, value, expected", [
    ("supernet", "amp", "fp8", "supernet.amp: expected one of off, bf16, fp16, got 'fp8'"),
    ("supernet", "channels_last", "yes", "supernet.channels_last: expected true or false, got 'yes'"),
    ("search", "gpus_per_worker", 1.5, "search.gpus_per_worker: expected a finite number in [0, 1], got 1.5"),
    ("search", "gpus_per_worker", -0.25, "search.gpus_per_worker: expected a finite number in [0, 1], got -0.25"),
])
def test_bad_device_settings_are_one_line_config_errors(tmp_path, tiny_data, section, key, value, expected):
    path = _config(tmp_path, tiny_data, **({"supernet": {key: value}} if section == "supernet" else
                                           {"search": {key: value}}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {expected}"


def test_amp_off_parses_from_a_bare_yaml_off(tmp_path, tiny_data):
    path = tmp_path / "c.yaml"
    path.write_text(_config(tmp_path, tiny_data).read_text().replace("supernet:\n", "supernet:\n  amp: off\n"))
    assert load_config(path).supernet.amp == "off"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without CUDA refuses")
def test_a_cpu_machine_refuses_fp16_and_gpu_fractions_up_front(tmp_path, tiny_data):
    cfg = load_config(_config(tmp_path, tiny_data, supernet={"amp": "fp16"}))
    with pytest.raises(ConfigError, match="supernet.amp: fp16 needs a CUDA device"):
        check_devices(cfg, workers=0, address=None)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        Precision("fp16", torch.device("cpu"))
    check_amp("bf16", cuda=False)  # bf16 is the CPU's reduced precision
    cfg = load_config(_config(tmp_path, tiny_data, search={"gpus_per_worker": 0.25}))
    check_devices(cfg, workers=2, address=None)  # training does not use the fitness's GPUs
    with pytest.raises(ConfigError, match="search.gpus_per_worker: expected 0 on a machine without CUDA"):
        check_devices(cfg, workers=2, address=None, search=True)
    check_devices(cfg, workers=2, address="10.0.0.1:6379", search=True)  # a cluster's nodes may hold GPUs
    # the CLI: exit 2, one line, before any work (no run directory is created)
    proc = subprocess.run([sys.executable, "-m", "nas.cli", "search", str(tmp_path / "c.yaml"), "--workers", "2"],
                          capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "search.gpus_per_worker" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_bf16_autocast_channels_last_training_on_cpu_learns(tmp_path, tiny_data):
    cfg = load_config(_config(tmp_path, tiny_data, supernet={"amp": "bf16", "channels_last": True, "epochs": 3,
                                                             "pairs_per_epoch": 32, "optimizer": "adamw",
                                                             "lr": 0.003, "end_lr": 0.001}))
    precision = Precision("bf16", torch.device("cpu"), channels_last=True)
    conv = precision.prepare(torch.nn.Conv2d(3, 4, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with precision.autocast():
        out = conv(precision.input(torch.randn(2, 3, 8, 8)))
    assert out.dtype == torch.bfloat16 and conv.weight.dtype == torch.float32  # fp32 master weights
    history = train(cfg, progress=False)
    losses = [h["loss"] for h in history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses


def test_ray_train_gives_each_worker_one_gpu():
    scaling = train_scaling(4, gpus=True)
    assert scaling.use_gpu and scaling.num_workers == 4
    assert scaling.num_gpus_per_worker == 1 and scaling.num_cpus_per_worker == 1
    assert train_scaling(2, gpus=False).num_gpus_per_worker == 0


class _DeviceProbe:
    """A fitness that reports which GPU Ray gave its actor (and holds it until `evaluate` is called)."""

    def __call__(self):
        return self

    def evaluate(self, genotype):
        import os

        import ray

        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        return {"fitness": float(genotype[0]), "gpu_ids": float(len(ray.get_gpu_ids())),
                "visible": float(visible) if visible else -1.0}


@pytest.mark.slow
def test_fitness_actors_share_one_gpu_four_at_a_time():
    """Ray with one declared GPU: four actors at 0.25 GPU run at once, each seeing GPU 0; a fifth waits."""
    import shutil
    import tempfile

    from nas.raytools import init_ray, shutdown_ray
    import ray

    from nas.search.evaluators import RayPoolEvaluator

    temp_dir = tempfile.mkdtemp(prefix="tn-ray-")  # AF_UNIX paths must stay short
    assert init_ray(num_cpus=5, num_gpus=1, temp_dir=temp_dir)  # logical CPUs: the actors only sleep
    try:
        pool = RayPoolEvaluator(_DeviceProbe(), 4, num_gpus=0.25)
        assert pool._actor_class._default_options["num_gpus"] == 0.25
        outcomes = list(pool.evaluate([(i,) for i in range(8)]))
        assert sorted(o.fitness for o in outcomes) == list(range(8))
        assert {o.metrics["gpu_ids"] for o in outcomes} == {1.0} and {o.metrics["visible"] for o in outcomes} == {0.0}
        fifth = pool._actor_class.remote(_DeviceProbe())
        ready, _ = ray.wait([fifth.evaluate.remote([9])], timeout=3)
        assert not ready  # no GPU share left: Ray keeps it pending
        assert ray.available_resources().get("GPU", 0) == 0
        pool.close()  # frees the four shares: the fifth now starts
        (done,), _ = ray.wait([fifth.evaluate.remote([9])], timeout=60)
        assert ray.get(done)[0] == 9.0
    finally:
        shutdown_ray()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_fitness_actors_run_on_the_gpu_they_reserved(tmp_path, tiny_data):
    from nas.jobs.search import actor_device, fitness_spec

    gpu = load_config(_config(tmp_path, tiny_data, search={"gpus_per_worker": 0.25}))
    cpu = load_config(_config(tmp_path, tiny_data))
    assert actor_device(gpu) == "cuda" and actor_device(cpu) == "cpu"
    assert fitness_spec(gpu, device=actor_device(gpu)).device == "cuda"
    assert fitness_spec(cpu).device is None  # in-process: CUDA when present (pick_device)


def test_gpu_check_runs_its_code_paths_on_cpu_and_its_script_refuses_without_cuda(tmp_path):
    env = {"PYTHONPATH": str(REPO), "PATH": os.environ["PATH"], "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--smoke"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["train"]) == {"off", "bf16"} and all(r["pairs_per_s"] > 0 for r in result["train"].values())
    assert all(np.isfinite(r["loss"]) for r in result["train"].values()) and "bf16" in result["amp_speedup"]
    assert result["search"]["candidates"] == 2 and result["search"]["failed"] == 0
    assert result["search"]["candidates_per_s"] > 0
    if not torch.cuda.is_available():
        script = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                                cwd=tmp_path, env=env)
        assert script.returncode == 1 and script.stdout == ""
        assert script.stderr.startswith("gpu_check: no CUDA device visible to torch")


def test_a_run_started_before_the_device_keys_existed_still_resumes(tmp_path, tiny_data):
    from nas.jobs.search import _check_run_dir

    cfg = load_config(_config(tmp_path, tiny_data))
    old = cfg.to_dict()
    for section, key in (("supernet", "amp"), ("supernet", "channels_last"), ("search", "gpus_per_worker")):
        del old[section][key]
    del old["pretrain"]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(old))
    assert _check_run_dir(cfg, resume=True) == tmp_path / "run"
    old["supernet"]["epochs"] += 1  # a real change to the supernet is still refused
    (tmp_path / "run" / "config.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="config differs from the one .* in supernet"):
        _check_run_dir(cfg, resume=True)
