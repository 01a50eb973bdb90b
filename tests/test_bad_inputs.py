"""Malformed inputs across the CLI: each is refused with exit 2, one short line, no traceback, within
seconds and before any synthesis or training (issue 16's audit, kept as a regression corpus).

Most cases call `nas.cli.main` in-process (one import of torch for the whole file); a few run the
real `tracknas` in a subprocess, where a traceback or a hang would really show.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY_SPACE
from nas.cli import main

SPACE_TEXT = TINY_SPACE.read_text()
BOMB = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'lol'] * 9)}]\n" for i in range(10))
LIGHTTRACK = "back_04502514044521042540+cls_211000022+reg_100000111_ops_32"


def _tree(root: Path) -> dict[str, str]:
    """Content hash of every file under root (to prove a folder survived untouched)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _fake_got10k(root: Path) -> Path:
    """A train-only GOT-10k copy: the folder names synthesis itself writes, and no val/list.txt."""
    for i in (1, 2):
        seq = root / "train" / f"GOT-10k_Train_{i:06d}"
        seq.mkdir(parents=True)
        (seq / "00000001.jpg").write_bytes(b"a real frame")
        (seq / "groundtruth.txt").write_text("1,2,3,4\n")
    (root / "train" / "list.txt").write_text("GOT-10k_Train_000001\nGOT-10k_Train_000002\n")
    return root


def _truncated_first_frame(data: Path, copy: Path) -> Path:
    """A copy of the tiny dataset whose first training frame is a truncated JPEG."""
    shutil.copytree(data, copy)
    first = copy / "train" / (copy / "train" / "list.txt").read_text().split()[0] / "00000001.jpg"
    first.write_bytes(first.read_bytes()[:200])
    return copy


def _config(tmp: Path, data_root: Path, **sections) -> dict:
    cfg = {"name": "bad", "space": str(TINY_SPACE), "seed": 0, "output": str(tmp / "run"),
           "data": {"root": str(data_root), "split": "train"},
           "supernet": {"epochs": 1, "pairs_per_epoch": 8, "batch_size": 4, "warmup_epochs": 0},
           "search": {"population": 4, "top_k": 2, "mutations": 2, "crossovers": 2, "generations": 1}}
    for dotted, value in sections.items():  # "supernet__lr" -> cfg["supernet"]["lr"]
        *path, last = dotted.split("__")
        node = cfg
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return cfg


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


# --- cases: id -> (make(tmp, data) -> argv, fragment of the one-line message) -----------------------

def config_case(fragment: str, command: str = "train-supernet", **sections):
    def make(tmp: Path, data: Path) -> list[str]:
        path = _write(tmp / "cfg.yaml", yaml.safe_dump(_config(tmp, data, **sections)))
        return [command, str(path)]
    return make, fragment


def config_text(text: str | bytes, fragment: str):
    return (lambda tmp, data: ["train-supernet", str(_write(tmp / "cfg.yaml", text))]), fragment


def dsl_case(old: str, new: str, fragment: str):
    assert old in SPACE_TEXT, old
    return (lambda tmp, data: ["space", "show", str(_write(tmp / "s.yaml", SPACE_TEXT.replace(old, new))),
                               "--no-cost"]), fragment


def dsl_text(text: str | bytes, fragment: str):
    return (lambda tmp, data: ["space", "show", str(_write(tmp / "s.yaml", text)), "--no-cost"]), fragment


def arch_text(text: str | bytes, fragment: str):
    return (lambda tmp, data: ["cost", str(_write(tmp / "a.json", text))]), fragment


def argv_case(argv: list[str], fragment: str):
    return (lambda tmp, data: [a.format(tmp=tmp, data=data) for a in argv]), fragment


CASES = {
    # run config: values and ranges
    "lr-nan": config_case("supernet.lr: expected a finite number", supernet__lr=float("nan")),
    "lr-negative": config_case("supernet.lr: expected a finite number in (0, 10]", supernet__lr=-0.1),
    "lr-zero": config_case("supernet.lr", supernet__lr=0),
    "lr-text": config_case("supernet.lr", supernet__lr="fast"),
    "lr-inf": config_case("supernet.lr", supernet__lr=float("inf")),
    "epochs-zero": config_case("supernet.epochs: expected an integer in 1..100000", supernet__epochs=0),
    "epochs-huge": config_case("supernet.epochs", supernet__epochs=10**12),
    "epochs-float": config_case("supernet.epochs", supernet__epochs=2.5),
    "batch-bool": config_case("supernet.batch_size", supernet__batch_size=True),
    "momentum-1.5": config_case("supernet.momentum", supernet__momentum=1.5),
    "weight-decay-nan": config_case("supernet.weight_decay", supernet__weight_decay=float("nan")),
    "sampler-typo": config_case("supernet.path_sampler: expected one of uniform, fair, sandwich",
                                supernet__path_sampler="unifrom"),
    "schedule-typo": config_case("supernet.schedule.schedule", supernet__schedule={"schedule": "sstrak"}),
    "schedule-not-mapping": config_case("supernet.schedule", supernet__schedule="sstrack"),
    "supernet-unknown-key": config_case("supernet.epoch: unknown key", supernet__epoch=3),
    "bounds-bad-quantity": config_case("supernet.bounds.flops", supernet__bounds={"flops": "lots"}),
    "bounds-nan": config_case("supernet.bounds.flops", supernet__bounds={"flops": float("nan")}),
    "top-unknown-key": config_case("trian: unknown key", trian={}),
    "name-slash": config_case("name: expected a run name", name="a/b"),
    "seed-negative": config_case("seed", seed=-1),
    "unknown-space": config_case("unknown search space 'no-such-space'", space="no-such-space"),
    "metric-typo": config_case("fitness.metric: expected one of ao_sr50, ao, auc", fitness__metric="ao_sr05"),
    "bn-batches-zero": config_case("fitness.bn_batches", fitness__bn_batches=0),
    "preset-typo": config_case("fitness.tracker_preset", fitness__tracker_preset="vot2020"),
    "max-sequences-negative": config_case("fitness.max_sequences", fitness__max_sequences=-1),
    "max-frames-zero": config_case("fitness.max_frames", fitness__max_frames=0),
    "val-split-typo": config_case("fitness.val_split", "search", fitness__val_split="vall"),
    "algorithm-typo": config_case("search.algorithm", search__algorithm="evolutoin"),
    "population-below-top-k": config_case("search.top_k: expected <= search.population", search__top_k=8),
    "mutation-prob-2": config_case("search.mutation_prob", search__mutation_prob=2),
    "objectives-not-list": config_case("search.objectives", search__objectives="fitness"),
    "bounds-preset-typo": config_case("search.bounds.preset", "search", search__bounds={"preset": "nope"}),
    "bounds-infeasible": config_case("search.bounds: infeasible bound", "search", search__bounds={"flops": "1K"}),
    "synth-sequences-text": config_case("data.synthesize.sequences: expected an integer",
                                        data__synthesize={"sequences": "abc"}),
    "synth-unknown-key": config_case("data.synthesize.sequencs: unknown key", data__synthesize={"sequencs": 5}),
    "synth-frames-3": config_case("data.synthesize.frames", data__synthesize={"frames": 3}),
    "synth-size-text": config_case("data.synthesize.size", data__synthesize={"size": "320x240"}),
    "synth-not-mapping": config_case("data.synthesize", data__synthesize=[56]),
    "checkpoint-missing": config_case("supernet.backbone_checkpoint: expected a checkpoint file",
                                      supernet__backbone_checkpoint="nope.pt"),
    "checkpoint-directory": config_case("a directory", supernet__backbone_checkpoint="."),
    "data-root-missing": config_case("data.root", data__root="/nonexistent/tracknas"),
    # run config: the file itself
    "config-alias-bomb": config_text(BOMB, "aliases"),
    "config-not-utf8": config_text(b"name: \xff\xfe\n", "expected UTF-8 text"),
    "config-deep": config_text("a: " + "[" * 500 + "]" * 500, "nested deeper than 64"),
    "config-list": config_text("- 1\n- 2\n", "expected a mapping at the top level"),
    "config-syntax": config_text("name: [unclosed\n", "not valid YAML"),
    "config-missing": argv_case(["train-supernet", "{tmp}/none.yaml"], "config file not found"),
    "config-directory": argv_case(["train-supernet", "{tmp}"], "is a directory"),
    # search-space DSL
    "dsl-alias-bomb": dsl_text(SPACE_TEXT + BOMB + "description: *l9\n", "aliases"),
    "dsl-not-utf8": dsl_text(SPACE_TEXT.encode() + b"# \xe9t\xe9\n", "expected UTF-8 text"),
    "dsl-channels-4e9": dsl_case("channels: 16, depth", "channels: 4000000000, depth", "integer in 1..4096"),
    "dsl-input-100000": dsl_case("search: 128", "search: 100000", "input.search: expected an integer in 16..2048"),
    "dsl-kernel-99999": dsl_case("ir_k5_e2", "ir_k99999_e2", "odd kernel in 1..15"),
    "dsl-expand-100000": dsl_case("ir_k5_e2", "ir_k5_e100000", "expansion in [1, 16]"),
    "dsl-expand-nan": dsl_case("ir_k5_e2", "ir_k5_enan", "expansion in [1, 16]"),
    "dsl-expand-inf": dsl_case("ir_k5_e2", "ir_k5_einf", "expansion in [1, 16]"),
    "dsl-scale-nan": dsl_case("scale: 0.1", "scale: .nan", "heads.cls.scale: expected a finite positive"),
    "dsl-scale-negative": dsl_case("scale: 16", "scale: -16", "heads.reg.scale"),
    "dsl-depth-1000": dsl_case("depth: 3", "depth: 1000", "heads.cls.depth"),
    "dsl-se-nan": dsl_case("ir_k3_e4_se0.25", "ir_k3_e4_senan", "SE ratio"),
    "dsl-stem-channels": dsl_case("conv_k3_s2_c8", "conv_k3_s2_c999999", "channels in 1..4096"),
    "dsl-constraint-nan": dsl_case("flops: 10M", "flops: .nan", "constraints.default.flops"),
    # architecture JSON
    "arch-not-utf8": arch_text(b'{"schema": "\xff"}', "expected UTF-8 text"),
    "arch-deep": arch_text("[" * 100000 + "]" * 100000, "nested at most 64"),
    "arch-nan": arch_text('{"schema": NaN}', "NaN is not allowed"),
    "arch-truncated": arch_text('{"schema": "tracknas.arch/v1", "spa', "not valid JSON"),
    "arch-directory": argv_case(["cost", "{tmp}"], "is a directory"),
    # data
    "got10k-synth-force": (lambda tmp, data: ["data", "synth", str(_fake_got10k(tmp / "got")), "--force"],
                           "not made by tracknas synthesis"),
    "list-not-utf8": (lambda tmp, data: (_write(_fake_got10k(tmp / "got") / "train" / "list.txt", b"\xff\n"),
                                         ["train-supernet", str(_write(tmp / "c.yaml", yaml.safe_dump(
                                             _config(tmp, tmp / "got"))))])[1], "expected UTF-8 text"),
    "corrupt-first-frame": (lambda tmp, data: ["train-supernet", str(_write(tmp / "c.yaml", yaml.safe_dump(
        _config(tmp, _truncated_first_frame(data, tmp / "copy")))))], "cannot read image"),
    # options and outputs
    "latency-runs-0": argv_case(["cost", "x.json", "--latency", "--runs", "0"], "--runs: expected an integer in"),
    "threads-0": argv_case(["cost", "x.json", "--threads", "0"], "--threads"),
    "output-is-directory": argv_case(["import-lighttrack", LIGHTTRACK, "-o", "{tmp}"], "is a directory"),
    "results-is-file": argv_case(["evaluate", "lighttrack-mobile", "--dataset", "{data}", "--results",
                                  "{data}/train/list.txt"], "expected a folder, got a file"),
    "score-results-missing": argv_case(["score", "--dataset", "{data}", "--results", "{tmp}/none", "--protocol",
                                        "otb"], "expected an existing folder"),
    "evaluate-workers-0": argv_case(["evaluate", "lighttrack-mobile", "--dataset", "{data}", "--results", "{tmp}/o",
                                     "--workers", "0"], "--workers"),
    "train-workers-negative": argv_case(["train-supernet", "x.yaml", "--workers", "-1"], "--workers"),
    "weights-text": (lambda tmp, data: ["evaluate", "lighttrack-mobile", "--dataset", str(data), "--results",
                                        str(tmp / "o"), "--weights", str(_write(tmp / "model.pt", "not torch"))],
                     "not a readable torch checkpoint"),
    "export-truncated-config": (lambda tmp, data: ["export", str(_write(tmp / "r" / "config.json", '{"name": ').parent)],
                                "not valid JSON"),
    "export-wrong-config": (lambda tmp, data: ["export", str(_write(tmp / "r" / "config.json", '{"x": 1}').parent)],
                            "expected the run config tracknas wrote"),
    "export-weights-wrong-shape": (lambda tmp, data: ["evaluate", str(_foreign_weights_export(tmp / "exp")),
                                                      "--dataset", str(data), "--results", str(tmp / "o")],
                                   "weights do not fit the architecture"),
}


def _foreign_weights_export(folder: Path) -> Path:
    """An export folder whose model.pt is a real checkpoint of something else (wrong keys and shapes)."""
    import numpy as np
    import torch

    from nas.space import load_space, save_arch

    _write(folder / "space.yaml", SPACE_TEXT)
    save_arch(folder / "arch.json", load_space(folder / "space.yaml").sample(np.random.default_rng(0)))
    torch.save({"stem.0.weight": torch.zeros(3, 3)}, folder / "model.pt")
    return folder


@pytest.fixture
def world(tmp_path, tiny_data):
    """A scratch folder; the shared tiny dataset is checked to survive every case unchanged."""
    before = _tree(tiny_data)
    yield tmp_path
    assert _tree(tiny_data) == before


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_one_line_exit_2(case, world, tiny_data, capsys, monkeypatch):
    monkeypatch.chdir(world)
    make, fragment = CASES[case]
    argv = make(world, tiny_data)
    snapshot = _tree(world)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert 1 <= len(err.splitlines()) <= 2 and "Traceback" not in err, err
    assert fragment in err, err
    assert _tree(world) == snapshot and not (world / "run").exists()  # nothing synthesised, trained or written


def _cli(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, **kwargs)


def test_real_cli_refuses_to_synthesise_over_a_got10k_copy(tmp_path):
    """The data-loss case, end to end: a train-only GOT-10k copy and the quickstart's `synthesize:`."""
    root = _fake_got10k(tmp_path / "GOT-10k")
    before = _tree(root)
    cfg = _config(tmp_path, root, data__synthesize={"sequences": 8, "frames": 20, "seed": 0})
    result = _cli(["train-supernet", str(_write(tmp_path / "c.yaml", yaml.safe_dump(cfg)))], tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "not made by tracknas synthesis" in result.stderr and "Traceback" not in result.stderr
    assert _tree(root) == before and not (tmp_path / "run").exists()


def test_real_cli_alias_bomb_fails_fast(tmp_path):
    path = _write(tmp_path / "bomb.yaml", SPACE_TEXT + BOMB + "description: *l9\n")
    result = _cli(["space", "show", str(path)], tmp_path)  # expanded, the bomb would not end within _cli's timeout
    assert result.returncode == 2 and "aliases" in result.stderr and len(result.stderr.splitlines()) == 1


def test_real_cli_config_typo_reported_before_any_work(tmp_path, tiny_data):
    cfg = _config(tmp_path, tiny_data, fitness__metric="ao_sr05", supernet__lr=float("nan"))
    result = _cli(["search", str(_write(tmp_path / "c.yaml", yaml.safe_dump(cfg)))], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "supernet.lr" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_real_cli_broken_pipe_is_one_line(tmp_path):
    """`tracknas ... | head -1`: the reader leaves early; no BrokenPipeError traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nas.cli", "space", "sample", str(TINY_SPACE), "-n", "200"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 2 and "Traceback" not in err and len(err.splitlines()) <= 1, err
