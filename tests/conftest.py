"""Shared fixtures: where the real data and the committed default run are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real Fashion-MNIST files: $FASHION_MNIST_DIR, else ../shared/data/fashion-mnist."""
    folder = Path(os.environ.get("FASHION_MNIST_DIR") or REPO.parent / "shared" / "data" / "fashion-mnist")
    if not folder.is_dir():
        pytest.fail(f"Fashion-MNIST data not found at {folder}; set FASHION_MNIST_DIR")
    return folder


@pytest.fixture(scope="session")
def runs_dir() -> Path:
    return REPO / "runs"


@pytest.fixture(scope="session")
def default_run_dir(runs_dir) -> Path:
    """The committed default model's run folder."""
    return runs_dir / "fast-default"
