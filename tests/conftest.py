"""Shared fixtures: where the real data and the committed default run are, and the app the browser
tests serve (a temporary runs folder of tiny runs; the helpers are in browser_helpers.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The longest test files, longest first (--durations=0, 2026-12-07): they start first, so the two
# xdist workers (--no-loadscope-reorder in pyproject.toml) end together on the many short ones
# instead of one waiting while the other runs a long file that came last.
LONGEST_FIRST = ("test_links_browser.py", "test_distributed.py", "test_resume.py", "test_train.py",
                 "test_import.py", "test_explain_browser.py", "test_app_browser.py", "test_insight_browser.py",
                 "test_export.py", "test_photo_augment.py")


def pytest_collection_modifyitems(items):
    """The longest files first (LONGEST_FIRST), the rest in collection order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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


@pytest.fixture(scope="session")
def tiny_app_runs(tmp_path_factory, data_dir) -> Path:
    """tiny-a and tiny-b, trained once per test process; each module's app_runs gets its own copy."""
    from test_explain import build_tiny_run

    folder = tmp_path_factory.mktemp("tiny-app-runs")
    build_tiny_run(folder / "tiny-a", data_dir, seed=0, epochs=3)
    build_tiny_run(folder / "tiny-b", data_dir, seed=1, epochs=2)
    return folder


@pytest.fixture(scope="module")
def app_runs(tmp_path_factory, tiny_app_runs) -> Path:
    """The browser tests' runs folder: tiny-a and tiny-b (trained in seconds), broken (a corrupt
    metrics.json, no confusion matrix) and the committed default run when it is here (shown first)."""
    from model import runs

    folder = tmp_path_factory.mktemp("app-runs")
    for name in ("tiny-a", "tiny-b"):
        shutil.copytree(tiny_app_runs / name, folder / name)
    broken = folder / "broken"
    shutil.copytree(folder / "tiny-b", broken)
    (broken / runs.METRICS).write_text("{ not json")
    (broken / runs.CONFUSION).unlink()
    runs.write_json(broken, runs.CONFIG, {**runs.read_config(broken), "run_id": "broken"})
    for age, name in enumerate(("tiny-a", "tiny-b", "broken")):  # list_runs: newest first
        os.utime(folder / name / runs.CONFIG, (1e9 - age * 1e3, 1e9 - age * 1e3))
    real = REPO / "runs" / runs.DEFAULT_RUN_ID
    if (real / runs.MODEL).is_file() and (real / runs.PREDICTIONS).is_file():
        (folder / runs.DEFAULT_RUN_ID).symlink_to(real, target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def served_app_runs(request, tmp_path_factory, app_runs, data_dir):
    """The app over app_runs, served once per module in one browser (browser_helpers.module_app)."""
    from browser_helpers import module_app

    with module_app(request, tmp_path_factory.mktemp("download"), app_runs, data_dir) as duo:
        yield duo


@pytest.fixture
def workbench(served_app_runs, app_runs):
    """The served app over app_runs in the test's own new tab; yields (duo, id of the run shown first)."""
    from browser_helpers import tab
    from model import runs

    with tab(served_app_runs) as duo:
        yield duo, runs.list_runs(app_runs)[0]
