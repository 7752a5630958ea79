"""Evaluate a run's model once on the test set and write its metrics, predictions and plots.

    workbench evaluate fast-default        # re-evaluate a run; rewrites metrics.json and friends

Metrics (metrics.json):
  test_accuracy, test_accuracy_ci95   accuracy and its bootstrap 95% interval (percentile method)
  per_class, macro_f1                 precision / recall / F1 / support per class (scikit-learn)
  ece, reliability                    expected calibration error over 10 equal-width confidence bins
  train_seconds, train_images_per_second, inference_images_per_second, n_test
  flip_tta_test_accuracy              for information: averaged with the mirrored image (the saved
                                      model does not do this; it is reported, never used to select)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from model import runs
from model.data import CLASS_NAMES, Split, load_splits

LOG = logging.getLogger(__name__)

BOOTSTRAP_SAMPLES = 10_000  # resamples of the test set for the accuracy interval
CALIBRATION_BINS = 10       # equal-width confidence bins for ECE and the reliability diagram


# ---------------------------------------------------------------------------------------------
# Metrics (pure functions of labels and probabilities)

def bootstrap_accuracy_ci(correct: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                          level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of a 0/1 vector.

    Resampling n items with replacement and counting the correct ones is exactly a draw from
    Binomial(n, accuracy), so the resamples are drawn that way (same distribution, no n x samples array).
    """
    n = len(correct)
    accuracy = float(np.mean(correct))
    resampled = np.random.default_rng(seed).binomial(n, accuracy, size=samples) / n
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(resampled, [tail, 100 - tail])
    return float(lo), float(hi)


def reliability_bins(labels: np.ndarray, probs: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """Accuracy, mean confidence and count of the top-1 predictions per confidence bin (None if empty)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds confidences in (edges[i], edges[i+1]]; a confidence of exactly 0 goes to bin 0.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    acc = [float(correct[which == i].mean()) if count[i] else None for i in range(bins)]
    conf = [float(confidence[which == i].mean()) if count[i] else None for i in range(bins)]
    return {"bin_edges": edges.tolist(), "bin_accuracy": acc, "bin_confidence": conf,
            "bin_count": count.tolist()}


def expected_calibration_error(reliability: dict) -> float:
    """ECE = sum over bins of (bin share of images) x |bin accuracy - bin mean confidence|."""
    counts = np.asarray(reliability["bin_count"], dtype=float)
    gaps = [abs(a - c) if n else 0.0 for a, c, n in
            zip(reliability["bin_accuracy"], reliability["bin_confidence"], counts)]
    return float(np.dot(counts / counts.sum(), gaps))


def classification_metrics(labels: np.ndarray, probs: np.ndarray,
                           class_names: list[str] = list(CLASS_NAMES)) -> dict:
    """Every test-set metric that depends only on labels and predicted probabilities."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    predicted = probs.argmax(axis=1)
    classes = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0)
    reliability = reliability_bins(labels, probs)
    correct = predicted == labels
    return {
        "test_accuracy": float(correct.mean()),
        "test_accuracy_ci95": list(bootstrap_accuracy_ci(correct)),
        "macro_f1": float(f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(class_names)},
        "ece": expected_calibration_error(reliability),
        "reliability": reliability,
        "n_test": int(len(labels)),
        "confusion": confusion_matrix(labels, predicted, labels=classes),
    }


def training_speed(history: pd.DataFrame, n_train: int) -> dict:
    """Total training seconds (all epochs, across resumes) and training images per second."""
    seconds = float(history["seconds"].sum()) if "seconds" in history else 0.0
    images = n_train * len(history)
    return {"train_seconds": round(seconds, 1), "epochs_trained": int(len(history)),
            "train_images_per_second": round(images / seconds, 1) if seconds else None}


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib, Agg backend: no display needed)

def plot_learning_curves(history: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, metric in zip(axes[:2], ("loss", "accuracy")):
        ax.plot(history["epoch"], history[metric], marker="o", label="train (augmented)")
        ax.plot(history["epoch"], history[f"val_{metric}"], marker="o", label="validation")
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[2].plot(history["epoch"], history["learning_rate"], marker="o", color="tab:green")
    axes[2].set(xlabel="epoch", ylabel="learning rate", title="learning rate (end of epoch)")
    axes[2].grid(alpha=0.3)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(8, 7))
    ConfusionMatrixDisplay(matrix, display_labels=class_names).plot(
        ax=ax, cmap="Blues", xticks_rotation=45, colorbar=False, values_format="d")
    ax.set_title("Test set: rows true class, columns predicted")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# A run

def predict(model, images: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, float]:
    """Probabilities for uint8 (N, 28, 28) images and the inference speed in images/s."""
    x = images[..., None].astype(np.float32)
    model.predict(x[:batch_size], batch_size=batch_size, verbose=0)  # warm-up: build the graph
    started = time.perf_counter()
    probs = model.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(probs, dtype=np.float64), len(x) / (time.perf_counter() - started)


class _OnnxModel:
    """An imported ONNX-only run's model.onnx behind Keras' `predict(x, batch_size, verbose)`."""

    def __init__(self, path: Path):
        from model.runtimes import OnnxPredictor

        self.predictor = OnnxPredictor(path)

    def predict(self, x: np.ndarray, batch_size: int, verbose: int = 0) -> np.ndarray:
        return np.concatenate([self.predictor.predict(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _model(run_dir: Path, config: dict):
    path = runs.model_file(run_dir, config)
    return _OnnxModel(path) if path.name == runs.ONNX_MODEL else runs.load_model(run_dir)


def readable_history(run_dir: Path):
    """The training history, or None when it is missing or damaged: the test numbers do not need it,
    only the training speed and the learning-curve plot, which are then left out."""
    try:
        return runs.read_history(run_dir)
    except runs.RunError as exc:
        LOG.warning("%s: training speed and learning curves left out", exc)
        return None


def evaluate_run(run_dir: Path, test: Split | None = None, data_dir=None) -> dict:
    """Evaluate run_dir's model (model.keras, or an imported run's model.onnx) on the test set; write
    metrics, predictions, confusion and plots (no learning curves for an imported run: no history)."""
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    history = None if runs.is_imported(config) else readable_history(run_dir)
    model = _model(run_dir, config)
    if test is None:
        test = load_splits(data_dir, val_size=0, progress=False).test
    class_names = config.get("class_names", list(CLASS_NAMES))

    probs, images_per_second = predict(model, test.images)
    metrics = classification_metrics(test.labels, probs, class_names)
    confusion = metrics.pop("confusion")
    if history is not None:
        metrics.update(training_speed(history, int(config.get("n_train", 0))))
    metrics["inference_images_per_second"] = round(images_per_second, 1)
    # For information only: averaging with the mirrored image (not part of the saved model).
    flipped, _ = predict(model, test.images[:, :, ::-1])
    metrics["flip_tta_test_accuracy"] = float(((probs + flipped).argmax(axis=1) == test.labels).mean())
    metrics["run_id"] = config.get("run_id", run_dir.name)

    runs.write_predictions(run_dir, test.labels, probs, test.indices)
    runs.write_confusion(run_dir, confusion, class_names)
    runs.write_json(run_dir, runs.METRICS, metrics)
    if history is not None:
        plot_learning_curves(history, run_dir / runs.CURVES_PNG)
    plot_confusion(confusion, class_names, run_dir / runs.CONFUSION_PNG)
    return metrics
