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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, data_dir) -> Path:
    """A real but tiny training run (300 images, 6 epochs, a narrow CNN): a complete run folder."""
    from model.recipes import get_recipe
    from model.train import train

    recipe = get_recipe("fast", epochs=6, batch_size=32, learning_rate=0.1, val_size=200, width=8)
    runs = tmp_path_factory.mktemp("runs")
    return train(recipe, runs, "tiny", data_dir=data_dir, limit=300, progress=False)
