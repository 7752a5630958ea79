"""End-to-end training on a few hundred images: the run folder, resuming, and the augmentations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from model import runs
from model.architectures import FusedBatchNormalization
from model.data import CLASS_NAMES
from model.recipes import get_recipe
from model.precision import cpu_has_bf16, dtype_policy, resolve_precision
from model.train import BEST_WEIGHTS, build_and_compile, save_best_model, train
from workbench import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONFIG_KEYS = {"run_id", "recipe", "architecture", "class_names", "gradcam_layer", "input_size", "seed",
               "val_size", "epochs", "batch_size"}
METRIC_KEYS = {"test_accuracy", "test_accuracy_ci95", "macro_f1", "ece", "per_class", "train_seconds",
               "train_images_per_second", "n_test", "reliability"}


def test_tiny_run_writes_a_complete_run_folder(tiny_run):
    config = runs.read_config(tiny_run)
    assert CONFIG_KEYS <= set(config)
    assert config["class_names"] == list(CLASS_NAMES) and config["n_train"] == 300
    history = runs.read_history(tiny_run)
    assert list(history.columns) == runs.HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    assert (history["seconds"] > 0).all() and history["learning_rate"].notna().all()
    metrics = runs.read_metrics(tiny_run)
    assert METRIC_KEYS <= set(metrics)
    assert metrics["n_test"] == 10_000
    lo, hi = metrics["test_accuracy_ci95"]
    assert lo <= metrics["test_accuracy"] <= hi
    assert set(metrics["per_class"]) == set(CLASS_NAMES)
    assert sum(metrics["reliability"]["bin_count"]) == 10_000
    predictions = runs.read_predictions(tiny_run)
    assert len(predictions) == 10_000
    probs = predictions[runs.PROB_COLUMNS].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert (predictions["predicted"] == predictions["label"]).mean() == pytest.approx(metrics["test_accuracy"])
    assert runs.read_confusion(tiny_run).sum() == 10_000
    for png in (runs.CURVES_PNG, runs.CONFUSION_PNG):
        assert (tiny_run / png).read_bytes()[:8] == PNG_MAGIC
    assert not (tiny_run / runs.BACKUP_DIR).exists(), "a finished run keeps no backup"
    model = runs.load_model(tiny_run)
    assert model.input.name == "image" and tuple(model.output.shape) == (None, 10)
    assert model.get_layer(config["gradcam_layer"]).output.shape[1] >= 7


def test_bf16_trained_model_is_saved_as_float32(tmp_path):
    """Explicit mixed bfloat16 (runs on any CPU, only slower): model.keras is a float32 model with the
    trained weights, and the global policy is float32 again afterwards."""
    recipe = get_recipe("fast", width=4, precision="mixed_bfloat16")
    trained = build_and_compile(recipe, steps_per_epoch=1)
    assert trained.get_layer("conv1_conv").compute_dtype == "bfloat16"
    assert isinstance(trained.get_layer("conv1_bn"), FusedBatchNormalization), "trains with the fused kernel"
    assert keras.config.dtype_policy().name == "float32", "building restores the global policy"
    x = np.random.default_rng(0).uniform(0, 255, (8, 28, 28, 1)).astype("float32")
    trained.fit(x, np.eye(10, dtype="float32")[np.arange(8) % 10], epochs=1, verbose=0)
    (tmp_path / runs.BACKUP_DIR).mkdir()
    trained.save_weights(str(tmp_path / runs.BACKUP_DIR / BEST_WEIGHTS))
    save_best_model(recipe, tmp_path, trained)
    saved = runs.load_model(tmp_path)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    assert type(saved.get_layer("conv1_bn")) is keras.layers.BatchNormalization, "saved with plain Keras layers"
    assert all(w.dtype == "float32" for w in saved.weights)
    for a, b in zip(saved.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(saved.predict(x, verbose=0), trained.predict(x, verbose=0), atol=0.05)


def test_run_config_records_the_precision_used(tiny_run):
    assert runs.read_config(tiny_run)["precision"] in {"float32", "mixed_bfloat16"}


def test_run_config_traces_the_run_to_its_code(tiny_run):
    """config.json names the git commit of this checkout and the library versions that trained it."""
    import subprocess
    from importlib import metadata

    import keras
    import tensorflow as tf

    config = runs.read_config(tiny_run)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True)
    assert config["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert isinstance(config["git_dirty"], bool)
    assert (config["tensorflow_version"], config["keras_version"]) == (tf.__version__, keras.__version__)
    assert config["project_version"] == metadata.version("fashion-workbench")


def test_bf16_is_chosen_only_for_cpus_with_bf16_instructions():
    assert cpu_has_bf16("processor : 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n")
    assert cpu_has_bf16("flags : fpu avx512_bf16\n")
    assert not cpu_has_bf16("flags : fpu sse2 avx2 avx512f\n")
    assert not cpu_has_bf16("")
    assert resolve_precision("float32") == "float32"
    assert resolve_precision("mixed_bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        resolve_precision("half")


def test_dtype_policy_builds_mixed_models_and_restores_the_policy():
    from model.architectures import build_compact_cnn
    with dtype_policy("mixed_bfloat16"):
        model = build_compact_cnn(width=4)
    assert keras.config.dtype_policy().name == "float32"
    assert model.get_layer("conv1_conv").compute_dtype == "bfloat16"
    assert model.get_layer("predictions").compute_dtype == "float32", "the softmax stays float32"
    assert model(np.zeros((2, 28, 28, 1), "float32")).dtype == "float32"


def test_tiny_run_learned_something(tiny_run):
    """300 images, 6 epochs: far from good, but clearly better than chance (10%)."""
    assert runs.read_metrics(tiny_run)["test_accuracy"] > 0.3


def test_finished_run_is_not_trained_again(tiny_run, data_dir):
    recipe = get_recipe("fast", epochs=6, batch_size=32, learning_rate=0.1, val_size=200, width=8)
    with pytest.raises(runs.RunError, match="already finished"):
        train(recipe, tiny_run.parent, "tiny", data_dir=data_dir, limit=300, progress=False)


def test_evaluate_command_rewrites_metrics(tiny_run, tmp_path, capsys):
    shutil.copytree(tiny_run, tmp_path / "copy")
    (tmp_path / "copy" / runs.METRICS).unlink()
    assert cli.main(["evaluate", "copy", "--runs-dir", str(tmp_path)]) == 0
    rewritten = runs.read_metrics(tmp_path / "copy")
    assert rewritten["test_accuracy"] == pytest.approx(runs.read_metrics(tiny_run)["test_accuracy"], abs=2e-4)
    assert "test accuracy" in capsys.readouterr().out
    # unreadable metrics (evaluate rewrites them) and history (only speed and curves need it) do not block it
    (tmp_path / "copy" / runs.METRICS).write_bytes(b"\xff\xfe garbage")
    (tmp_path / "copy" / runs.HISTORY).write_text("epoch,loss\n1,2,3,4\n\x00")
    assert cli.main(["evaluate", "copy", "--runs-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "metrics.json is corrupt" in err and "written anew" in err and "learning curves left out" in err
    assert runs.read_metrics(tmp_path / "copy")["test_accuracy"] == pytest.approx(rewritten["test_accuracy"])


class SimulatedKill(Exception):
    pass


class Interrupt(keras.callbacks.Callback):
    """Raises at the start of a given epoch (0-based), like a kill after the previous epoch's backup."""

    def __init__(self, at_epoch: int):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise SimulatedKill(f"killed at the start of epoch {epoch + 1}")


class EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_interrupted_run_resumes_with_continuous_history(tmp_path, data_dir):
    recipe = get_recipe("fast", epochs=3, batch_size=64, val_size=200, width=8)
    kwargs = dict(data_dir=data_dir, limit=200, progress=False)
    with pytest.raises(SimulatedKill):
        train(recipe, tmp_path, "resume", extra_callbacks=[Interrupt(at_epoch=2)], **kwargs)
    run_dir = tmp_path / "resume"
    first = runs.read_history(run_dir)
    assert first["epoch"].tolist() == [1, 2]
    assert json.loads((run_dir / runs.BACKUP_DIR / "training_metadata.json").read_text())["epoch"] == 2
    assert not (run_dir / runs.MODEL).exists()

    with pytest.raises(runs.RunError, match=r"other settings \(epochs 3, now 5\)"):
        train(get_recipe("fast", epochs=5, batch_size=64, val_size=200, width=8), tmp_path, "resume", **kwargs)
    with pytest.raises(runs.RunError, match=r"other settings \(limit 200, now 300\)"):  # other images
        train(recipe, tmp_path, "resume", **{**kwargs, "limit": 300})

    recorder = EpochRecorder()
    train(recipe, tmp_path, "resume", extra_callbacks=[recorder], **kwargs)
    assert recorder.epochs == [2], "only the missing epoch is trained"
    history = runs.read_history(run_dir)
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history.iloc[:2].equals(first), "earlier epochs are kept as they were"
    # the one-cycle schedule continued from the restored step count: zero at the very end
    assert history["learning_rate"].iloc[-1] == pytest.approx(0.0, abs=1e-6)
    assert history["learning_rate"].iloc[1] > 0
    assert (run_dir / runs.METRICS).is_file() and not (run_dir / runs.BACKUP_DIR).exists()
    assert runs.read_metrics(run_dir)["epochs_trained"] == 3


def test_train_command_flags(tmp_path, data_dir, capsys):
    args = ["train", "--recipe", "fast", "--run-id", "cli", "--runs-dir", str(tmp_path), "--data-dir",
            str(data_dir), "--epochs", "1", "--limit", "128", "--val-size", "100", "--batch-size", "64",
            "--seed", "3", "--no-progress"]
    assert cli.main(args) == 0
    config = runs.read_config(tmp_path / "cli")
    assert (config["epochs"], config["batch_size"], config["seed"], config["val_size"]) == (1, 64, 3, 100)
    assert "test accuracy" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse refuses unknown recipes
        cli.main(["train", "--recipe", "nope", "--runs-dir", str(tmp_path)])
