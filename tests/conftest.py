"""Shared fixtures: locations of the real test data shipped beside the repository."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

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
