"""ONNX and TFLite exports of the committed default model, checked in their own runtimes.

Parity bar (issue 7): on the full 10,000-image test set, a float32 export and the Keras model agree on
the predicted class for >= 99.9% of images and on every probability within 1e-4.
Exports go into a temporary copy of runs/fast-default, never into the committed folder.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from model import export, runs
from model.data import load_splits
from workbench import cli
from model.runtimes import KerasPredictor, OnnxPredictor, TFLitePredictor, predictor_for_file

MIN_AGREEMENT = 0.999
MAX_PROB_DIFF = 1e-4


@pytest.fixture(scope="module")
def splits(data_dir):
    return load_splits(data_dir, progress=False)


@pytest.fixture(scope="module")
def run_copy(default_run_dir, tmp_path_factory):
    """A writable copy of the default run's config and model."""
    if not (default_run_dir / runs.MODEL).is_file():
        pytest.fail(f"the committed default model is missing: {default_run_dir / runs.MODEL}")
    folder = tmp_path_factory.mktemp("runs") / "fast-default"
    folder.mkdir()
    for name in (runs.CONFIG, runs.MODEL):
        shutil.copy2(default_run_dir / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def keras_probs(run_copy, splits):
    return export.predict_in_batches(KerasPredictor(run_copy).predict, splits.test.images, 1000)


def assert_parity(probs, keras_probs):
    agreement = np.mean(probs.argmax(axis=1) == keras_probs.argmax(axis=1))
    assert probs.shape == keras_probs.shape == (10_000, 10)
    assert agreement >= MIN_AGREEMENT, f"class agreement {agreement:.4%}"
    assert np.max(np.abs(probs - keras_probs)) <= MAX_PROB_DIFF


def test_onnx_export_matches_keras_on_full_test_set(run_copy, splits, keras_probs):
    path = export.export_run(run_copy, "onnx")
    assert path == run_copy / "model.onnx" and path.stat().st_size > 0
    predictor = OnnxPredictor(path)
    assert predictor.session.get_inputs()[0].name == "image"  # the Keras input name survives
    probs = export.predict_in_batches(predictor.predict, splits.test.images, 1000)
    assert_parity(probs, keras_probs)


def test_tflite_export_matches_keras_on_full_test_set(run_copy, splits, keras_probs):
    path = export.export_run(run_copy, "tflite")
    assert path == run_copy / "model.tflite"
    predictor = TFLitePredictor(path)
    assert predictor.interpreter.get_input_details()[0]["dtype"] == np.float32
    probs = export.predict_in_batches(predictor.predict, splits.test.images, 1000)
    assert_parity(probs, keras_probs)


def test_cli_int8_export_prints_accuracy_change(run_copy, splits, data_dir, capsys):
    code = cli.main(["export", run_copy.name, "--runs-dir", str(run_copy.parent), "--format", "tflite",
                     "--quantize", "int8", "--data-dir", str(data_dir)])
    out = capsys.readouterr().out
    path = run_copy / "model.int8.tflite"
    assert code == 0 and path.is_file()
    assert "accuracy Keras" in out and "change" in out and "10,000 test images" in out
    if (run_copy / "model.tflite").is_file():  # int8 weights: smaller than the float32 file
        assert path.stat().st_size < (run_copy / "model.tflite").stat().st_size
    # int8 still classifies like the model: within 2 points of Keras on a test slice
    images, labels = splits.test.images[:2000], splits.test.labels[:2000]
    result = export.compare(KerasPredictor(run_copy).predict(images), predictor_for_file(path).predict(images),
                            labels)
    assert abs(result.accuracy_change) < 0.02 and result.agreement > 0.95


def test_float16_export_keeps_classes(run_copy, splits):
    path = export.export_run(run_copy, "tflite", "float16")
    assert path.name == "model.float16.tflite"
    images = splits.test.images[:1000]
    result = export.compare(KerasPredictor(run_copy).predict(images), TFLitePredictor(path).predict(images),
                            splits.test.labels[:1000])
    assert result.agreement >= 0.99 and result.max_abs_diff < 0.05


def test_parity_check_catches_an_export_of_different_weights(run_copy, splits, tmp_path):
    """A model with shuffled weights, exported, must fail the parity bar against the run's model."""
    other = runs.load_model(run_copy)
    rng = np.random.default_rng(0)
    other.set_weights([rng.permutation(w.ravel()).reshape(w.shape) for w in other.get_weights()])
    path = export.export_onnx(other, tmp_path / "model.onnx")
    result = export.check_export(run_copy, path, splits.test.images[:500], splits.test.labels[:500])
    assert not result.within()
    assert result.agreement < 0.9


def test_cli_rejects_unknown_run_and_onnx_quantization(run_copy, capsys):
    assert cli.main(["export", "no-such-run", "--runs-dir", str(run_copy.parent)]) == 2
    assert "no-such-run" in capsys.readouterr().err
    assert cli.main(["export", run_copy.name, "--runs-dir", str(run_copy.parent), "--format", "onnx",
                     "--quantize", "int8"]) == 2
    assert "TFLite only" in capsys.readouterr().err


def test_corrupt_model_gives_run_error_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "broken"
    run_dir.mkdir()
    (run_dir / runs.MODEL).write_bytes(b"this is not a zip file")
    with pytest.raises(runs.RunError, match="model.keras is corrupt"):
        export.export_run(run_dir, "onnx")
    assert cli.main(["export", "broken", "--runs-dir", str(tmp_path), "--format", "tflite"]) == 2
    assert "model.keras is corrupt" in capsys.readouterr().err
    assert sorted(p.name for p in run_dir.iterdir()) == [runs.MODEL]


def test_failed_export_leaves_no_partial_file(run_copy, tmp_path):
    import keras

    with pytest.raises(export.ExportError, match="int8 quantisation needs representative images"):
        export.export_tflite(runs.load_model(run_copy), tmp_path / "model.int8.tflite", "int8", representative=None)
    inputs = keras.Input((32, 32, 3), name="image")  # breaks the model contract: not 28 x 28 x 1
    wrong = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs)))
    for fmt, convert in (("onnx", export.export_onnx), ("tflite", export.export_tflite)):
        with pytest.raises(export.ExportError, match=r"does not take \(N, 28, 28, 1\) float32 images"):
            convert(wrong, tmp_path / f"model.{fmt}")
    assert list(tmp_path.iterdir()) == []
