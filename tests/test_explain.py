"""Grad-CAM, Grad-CAM++ and saliency on a tiny real model (trained for seconds on real images).

`build_tiny_run` also serves the browser tests: it writes a complete run folder with the
model/runs.py writers, so the app can be tested without the committed default run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model import runs
from model.data import CLASS_NAMES

N_TRAIN = 2000   # 1600 train + 400 val: ~4 s of training gives ~65% test accuracy
N_TEST = 400     # test images with saved predictions (the first ones of the official test set)


def build_tiny_model(seed: int = 0):
    """A flat functional CNN following the model contract: input "image" (28, 28, 1) 0..255."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1), name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny_cnn")


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict:
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    acc = np.bincount(which, correct, minlength=bins) / np.maximum(count, 1)
    conf = np.bincount(which, confidence, minlength=bins) / np.maximum(count, 1)
    ece = float(np.sum(count * np.abs(acc - conf)) / len(labels))
    return {"bin_edges": edges, "bin_accuracy": acc, "bin_confidence": conf, "bin_count": count}, ece


def build_tiny_run(run_dir: Path, data_dir: Path, seed: int = 0, epochs: int = 3) -> Path:
    """Train the tiny CNN briefly and write every file of a run folder."""
    import keras
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    from model.data import load_raw

    raw = load_raw(data_dir, progress=False)
    x, y = raw["train_images"][:N_TRAIN, ..., None].astype("float32"), raw["train_labels"][:N_TRAIN]
    model = build_tiny_model(seed)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    fit = model.fit(x[:1600], y[:1600], validation_data=(x[1600:], y[1600:]), epochs=epochs,
                    batch_size=32, verbose=0)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / runs.MODEL)
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history["learning_rate"], history["seconds"] = 3e-3, 1.0
    runs.write_history(run_dir, history)
    test_x, test_y = raw["test_images"][:N_TEST], raw["test_labels"][:N_TEST]
    probs = model.predict(test_x[..., None].astype("float32"), verbose=0)
    runs.write_predictions(run_dir, test_y, probs)
    predicted = probs.argmax(axis=1)
    runs.write_confusion(run_dir, confusion_matrix(test_y, predicted, labels=range(10)), list(CLASS_NAMES))
    p, r, f, s = precision_recall_fscore_support(test_y, predicted, labels=range(10), zero_division=0)
    bins, ece = reliability(probs, test_y)
    accuracy = float((predicted == test_y).mean())
    runs.write_json(run_dir, runs.METRICS, {
        "test_accuracy": accuracy, "test_accuracy_ci95": [accuracy - 0.04, accuracy + 0.04],
        "macro_f1": float(f1_score(test_y, predicted, average="macro")), "ece": ece,
        "per_class": {n: {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]}
                      for i, n in enumerate(CLASS_NAMES)},
        "train_seconds": 3.0, "train_images_per_second": 1000.0, "n_test": N_TEST, "reliability": bins})
    runs.write_json(run_dir, runs.CONFIG, {
        "run_id": run_dir.name, "recipe": "tiny-test", "architecture": "tiny_cnn",
        "class_names": list(CLASS_NAMES), "gradcam_layer": "conv3", "input_size": 28, "seed": seed,
        "val_size": 400, "epochs": epochs, "batch_size": 32})
    return run_dir


# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, data_dir) -> Path:
    runs_dir = tmp_path_factory.mktemp("runs")
    build_tiny_run(runs_dir / "tiny", data_dir)
    return runs_dir


@pytest.fixture(scope="module")
def explainer(tiny_runs):
    from workbench.explain import get_explainer

    return get_explainer(tiny_runs, "tiny")


@pytest.fixture(scope="module")
def images(data_dir) -> np.ndarray:
    from model.data import load_raw

    return load_raw(data_dir, progress=False)["test_images"][:6]


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "saliency", "smoothgrad"])
def test_heatmaps_have_image_shape_and_unit_range(explainer, images, method):
    predicted = np.asarray(explainer.model(images[..., None].astype("float32"))).argmax(axis=1)
    maps = explainer.explain(images, predicted, method=method)
    assert maps.shape == (len(images), 28, 28)
    assert maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert np.all(maps.reshape(len(images), -1).max(axis=1) > 0.5), "each map is normalised to reach ~1"
    assert np.all(maps.reshape(len(images), -1).std(axis=1) > 0.01), "a map, not a constant"


def test_score_cam_prints_no_progress_bar_and_leaves_keras_logging_as_it_was(explainer, images, capfd):
    import keras

    assert keras.config.is_interactive_logging_enabled()
    maps = explainer.explain(images[:1], [0], method="scorecam")
    assert maps.shape == (1, 28, 28) and maps.max() > 0.5
    assert "step" not in capfd.readouterr().out  # no "1/1 ━━━━ 0s 206ms/step" in a server's log
    assert keras.config.is_interactive_logging_enabled()


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "saliency"])
def test_heatmap_changes_with_target_class(explainer, images, method):
    trouser = explainer.explain(images[:1], 1, method=method)[0]
    bag = explainer.explain(images[:1], 8, method=method)[0]
    assert np.abs(trouser - bag).mean() > 0.02


def test_heatmap_changes_with_layer(explainer, images):
    assert explainer.layer_choices()[0] == "conv3", "config's gradcam_layer is the default"
    deep = explainer.explain(images[:2], 0, layer="conv3")
    shallow = explainer.explain(images[:2], 0, layer="conv1")
    assert not np.allclose(deep, shallow)


def test_batch_equals_one_by_one_and_cache_returns_same(explainer, images):
    targets = np.arange(len(images)) % 10
    batch = explainer.explain(images, targets, method="gradcam++")
    singles = np.stack([explainer._compute(im[None, ..., None].astype("float32"), np.array([t]),
                                           "gradcam++", "conv3")[0] for im, t in zip(images, targets)])
    np.testing.assert_allclose(batch, singles, atol=1e-4)
    np.testing.assert_array_equal(explainer.explain(images, targets, method="gradcam++"), batch)


def test_explaining_leaves_the_prediction_model_untouched(explainer, images):
    explainer.explain(images[:1], 3)
    probs = np.asarray(explainer.model(images[:1, ..., None].astype("float32")))
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "lime"}, "unknown explanation method"),
    ({"layer": "gap"}, "no spatial feature map"),
    ({"layer": "nope"}, "no spatial feature map"),
])
def test_bad_requests_say_what_is_wrong(explainer, images, kwargs, message):
    from workbench.explain import ExplainError

    with pytest.raises(ExplainError, match=message):
        explainer.explain(images[:1], 0, **kwargs)


def test_bad_target_is_refused(explainer, images):
    from workbench.explain import ExplainError

    with pytest.raises(ExplainError, match="target classes"):
        explainer.explain(images[:1], 10)


# ---------------------------------------------------------------------------------------------
# Run data for the pages (workbench/artifacts.py), on copies of the tiny run

def test_run_data_is_cached_and_reloaded_when_a_file_changes(tiny_runs, tmp_path):
    import os
    import shutil

    from workbench import artifacts

    shutil.copytree(tiny_runs / "tiny", tmp_path / "copy")
    first = artifacts.metrics(tmp_path, "copy")
    assert artifacts.metrics(tmp_path, "copy") is first, "second read comes from the cache"
    runs.write_json(tmp_path / "copy", runs.METRICS, {**first, "test_accuracy": 0.5, "note": "re-evaluated"})
    os.utime(tmp_path / "copy" / runs.METRICS, ns=(1, 1))  # a different stamp even within one mtime tick
    assert artifacts.metrics(tmp_path, "copy")["note"] == "re-evaluated"


def test_check_run_names_each_missing_or_corrupt_file(tiny_runs, tmp_path):
    import shutil

    from workbench import artifacts

    shutil.copytree(tiny_runs / "tiny", tmp_path / "bad")
    (tmp_path / "bad" / runs.PREDICTIONS).write_bytes(b"PAR1 truncated")
    (tmp_path / "bad" / runs.HISTORY).unlink()
    status = dict(artifacts.check_run(tmp_path, "bad"))
    assert "corrupt" in status[runs.PREDICTIONS] and "'bad'" in status[runs.PREDICTIONS]
    assert "missing" in status[runs.HISTORY]
    assert status[runs.CONFIG] is None and status[runs.CONFUSION] is None and status[runs.MODEL] is None
    with pytest.raises(runs.RunError, match="history.csv is missing"):
        artifacts.history(tmp_path, "bad")


def test_cell_predictions_are_exactly_that_cell_most_confident_first(tiny_runs):
    from workbench import artifacts

    frame = runs.read_predictions(tiny_runs / "tiny")
    true, pred = map(int, frame[["label", "predicted"]].value_counts().index[0])
    cell = artifacts.cell_predictions(tiny_runs, "tiny", true, pred)
    assert len(cell) == ((frame["label"] == true) & (frame["predicted"] == pred)).sum()
    assert (cell["label"] == true).all() and (cell["predicted"] == pred).all()
    assert cell["confidence"].is_monotonic_decreasing
