"""The committed default model: it follows the contract and reproduces its metrics.json accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from model import runs
from model.data import CLASS_NAMES, load_splits
from model.evaluate import classification_metrics, predict

MAX_RUN_BYTES = 8 * 1024 * 1024  # "a few MB at most"


@pytest.fixture(scope="module")
def default_predictions(default_run_dir, data_dir):
    test = load_splits(data_dir, val_size=0, progress=False).test
    probs, _ = predict(runs.load_model(default_run_dir), test.images)
    return test, probs


def test_default_run_is_complete_and_small(default_run_dir):
    for name in (runs.CONFIG, runs.HISTORY, runs.MODEL, runs.METRICS, runs.PREDICTIONS, runs.CONFUSION,
                 runs.CURVES_PNG, runs.CONFUSION_PNG):
        assert (default_run_dir / name).is_file(), name
    assert not (default_run_dir / runs.BACKUP_DIR).exists()
    size = sum(p.stat().st_size for p in default_run_dir.iterdir() if p.is_file())
    assert size < MAX_RUN_BYTES
    config = runs.read_config(default_run_dir)
    assert config["recipe"] == "fast" and config["class_names"] == list(CLASS_NAMES)
    history = runs.read_history(default_run_dir)
    assert history["epoch"].tolist() == list(range(1, len(history) + 1))


def test_default_model_follows_the_contract(default_run_dir):
    model = runs.load_model(default_run_dir)
    assert model.input.name == "image"
    assert tuple(model.input.shape) == (None, 28, 28, 1)
    assert tuple(model.output.shape) == (None, 10)
    layer = model.get_layer(runs.read_config(default_run_dir)["gradcam_layer"])
    assert min(layer.output.shape[1:3]) >= 7


def test_default_model_reproduces_its_metrics(default_run_dir, default_predictions):
    test, probs = default_predictions
    recorded = runs.read_metrics(default_run_dir)
    metrics = classification_metrics(test.labels, probs)
    assert metrics["n_test"] == recorded["n_test"] == 10_000
    # float32 on another CPU may flip a near-tie: allow 2 of 10,000 images
    assert metrics["test_accuracy"] == pytest.approx(recorded["test_accuracy"], abs=2e-4)
    assert metrics["macro_f1"] == pytest.approx(recorded["macro_f1"], abs=5e-4)
    saved = runs.read_predictions(default_run_dir)
    assert (saved["predicted"].to_numpy() == probs.argmax(axis=1)).mean() > 0.999
    np.testing.assert_array_equal(saved["label"].to_numpy(), test.labels)
    assert runs.read_confusion(default_run_dir).trace() == round(recorded["test_accuracy"] * 10_000)
