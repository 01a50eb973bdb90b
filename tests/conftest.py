"""Shared fixtures: locations of the real test data shipped beside the repository."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from nas.space.lighttrack_codec import LIGHTTRACK_MOBILE  # noqa: F401  (re-exported for tests)

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """`../shared` next to the repository (CI clones main with shared/ beside it)."""
    return Path(os.environ.get("TRACKNAS_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def otb_root() -> Path:
    """Root of the real OTB-2015 sample (one sequence, `Crossing`, 120 frames)."""
    root = shared_dir() / "data" / "otb"
    if not (root / "Crossing" / "groundtruth_rect.txt").is_file():
        pytest.fail(f"real OTB sample not found at {root}; set TRACKNAS_SHARED to the shared/ folder")
    return root


@pytest.fixture(scope="session", autouse=True)
def _isolated_cost_cache(tmp_path_factory):
    """Cost tables are built fresh per test session, never read from or written to the user's cache."""
    path = tmp_path_factory.mktemp("tracknas_cache")
    old = os.environ.get("TRACKNAS_CACHE_DIR")
    os.environ["TRACKNAS_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TRACKNAS_CACHE_DIR", None)
    else:
        os.environ["TRACKNAS_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def mobile_space():
    from nas.space import load_space

    return load_space("lighttrack-mobile")


@pytest.fixture(scope="session")
def large_space():
    from nas.space import load_space

    return load_space("lighttrack-large")




TINY_SPACE = REPO / "tests" / "spaces" / "tiny.yaml"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A small synthetic GOT-10k-layout dataset (train + val) for training and search tests."""
    from nas.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("tiny_data")
    generate_dataset(root, sequences=8, frames=20, seed=0, size=(160, 120), overwrite=True)
    return root


def write_train_config(path: Path, data_root: Path, output: Path, **supernet) -> Path:
    """A run config for the tiny space; `supernet` overrides the training section."""
    import yaml

    section = {"epochs": 2, "pairs_per_epoch": 32, "batch_size": 8, "lr": 0.02, "warmup_epochs": 0,
               "end_lr": 0.005, **supernet}
    path.write_text(yaml.safe_dump({"name": "tiny", "space": str(TINY_SPACE), "seed": 0, "output": str(output),
                                    "data": {"root": str(data_root), "split": "train"}, "supernet": section}))
    return path


def write_job_config(path: Path, data: Path, out: Path, **search) -> str:
    """A `tracknas search` config for the tiny space (2 epochs, 2 generations of 6 candidates);
    `search` overrides the search section."""
    import yaml

    path.write_text(yaml.safe_dump({
        "name": "job", "space": str(TINY_SPACE), "seed": 0, "output": str(out),
        "data": {"root": str(data), "split": "train"},
        "supernet": {"epochs": 2, "pairs_per_epoch": 32, "batch_size": 8, "lr": 0.02, "warmup_epochs": 0,
                     "end_lr": 0.005},
        "fitness": {"bn_batches": 2, "bn_batch_size": 8, "max_sequences": 2, "max_frames": 10},
        "search": {"population": 6, "top_k": 3, "mutations": 3, "crossovers": 3, "generations": 2,
                   "bounds": {"flops": "9M"}, **search}}))
    return str(path)


@pytest.fixture
def one_torch_thread():
    """Torch on one intra-op thread (other engineers share the machine; float summation order fixed),
    the caller's setting restored afterwards."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
