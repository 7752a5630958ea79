"""Run data for the pages, loaded lazily and cached; a changed file is read again.

    config(runs_dir, run_id)          # dict          (config.json)
    metrics(runs_dir, run_id)         # dict          (metrics.json)
    history(runs_dir, run_id)         # DataFrame     (history.csv)
    predictions(runs_dir, run_id)     # DataFrame     (test_predictions.parquet), read-only
    confusion(runs_dir, run_id)       # (10, 10) int  (confusion_matrix.csv)
    check_run(runs_dir, run_id)       # [(file, problem or None)] for a health list
    test_images(data_dir)             # (10000, 28, 28) uint8, the official test set

Everything is cached in workbench.cache, keyed by the file's path, modification time and size,
so a retrained or re-evaluated run shows its new files without a restart. Readers raise `model.runs.RunError`
naming the run and the file; pages show that message for the selected run instead of crashing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from model import runs
from model.data import CLASS_NAMES, NUM_CLASSES
from workbench.cache import cached
from workbench.inference import get_predictor

READERS = {  # file -> reader, in the order a health list shows them
    runs.CONFIG: runs.read_config,
    runs.METRICS: runs.read_metrics,
    runs.HISTORY: runs.read_history,
    runs.PREDICTIONS: runs.read_predictions,
    runs.CONFUSION: runs.read_confusion,
}


def _load(runs_dir: Path | str, run_id: str, name: str):
    run_dir = runs.run_path(runs_dir, run_id)
    return cached("run-file", run_dir / name, lambda: READERS[name](run_dir))


def config(runs_dir: Path | str, run_id: str) -> dict:
    return _load(runs_dir, run_id, runs.CONFIG)


def metrics(runs_dir: Path | str, run_id: str) -> dict:
    return _load(runs_dir, run_id, runs.METRICS)


def history(runs_dir: Path | str, run_id: str) -> pd.DataFrame:
    """The training history; RunError "imported model: no training history" for an imported run."""
    if _imported(runs_dir, run_id):
        raise runs.RunError(f"run {run_id!r} is an imported model: no training history", "no_history")
    return _load(runs_dir, run_id, runs.HISTORY)


def _imported(runs_dir: Path | str, run_id: str) -> bool:
    try:
        return runs.is_imported(config(runs_dir, run_id))
    except runs.RunError:
        return False


def predictions(runs_dir: Path | str, run_id: str) -> pd.DataFrame:
    """The saved test predictions (shared between callers: do not modify)."""
    return _load(runs_dir, run_id, runs.PREDICTIONS)


def confusion(runs_dir: Path | str, run_id: str) -> np.ndarray:
    return _load(runs_dir, run_id, runs.CONFUSION)


def command_line(runs_dir: Path | str, run_id: str, command: str, *options: str) -> str:
    """A command line to suggest for the run that works as written (with --runs-dir when needed)."""
    return runs.run_command(command, Path(runs_dir) / runs.check_run_id(run_id), *options)


def class_names(runs_dir: Path | str, run_id: str) -> list[str]:
    """The run's class names, else the Fashion-MNIST ones (a run with a broken config still shows)."""
    try:
        names = config(runs_dir, run_id).get("class_names")
    except runs.RunError:
        names = None
    return list(names) if isinstance(names, list) and len(names) == NUM_CLASSES else list(CLASS_NAMES)


def check_run(runs_dir: Path | str, run_id: str) -> list[tuple[str, str | None]]:
    """Each run file with None when it reads fine, else the problem (missing, corrupt ...)."""
    status = []
    imported = _imported(runs_dir, run_id)
    for name in READERS:
        if imported and name == runs.HISTORY:
            continue  # an imported model was never trained here
        try:
            _load(runs_dir, run_id, name)
            status.append((name, None))
        except runs.RunError as exc:
            status.append((name, str(exc)))
    model_file = runs.model_file(runs.run_path(runs_dir, run_id))
    try:  # a real load (the serving cache's, so the Predict page reuses it): a truncated file fails here
        get_predictor(runs_dir, run_id, "keras")
        status.append((model_file.name, None))
    except runs.RunError as exc:
        status.append((model_file.name, str(exc)))
    return status


def cell_predictions(runs_dir: Path | str, run_id: str, true: int, predicted: int) -> pd.DataFrame:
    """Test predictions with label == true and predicted == predicted, most confident first."""
    frame = predictions(runs_dir, run_id)
    cell = frame[(frame["label"] == true) & (frame["predicted"] == predicted)]
    confidence = cell[runs.PROB_COLUMNS].to_numpy().max(axis=1)
    return cell.assign(confidence=confidence).sort_values("confidence", ascending=False, kind="stable")


def probabilities(row: pd.Series) -> np.ndarray:
    return row[runs.PROB_COLUMNS].to_numpy(dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Test images and the model's architecture

def _test_split(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    from model.data import load_raw

    def read():
        raw = load_raw(data_dir, progress=False)
        return raw["test_images"], raw["test_labels"]

    return cached("test-split", None, read, data_dir)


def test_images(data_dir: Path | str | None = None) -> np.ndarray:
    """The 10,000 official test images (uint8), read once per process; DataError when unavailable."""
    return _test_split(str(data_dir) if data_dir else None)[0]


def test_labels(data_dir: Path | str | None = None) -> np.ndarray:
    return _test_split(str(data_dir) if data_dir else None)[1]


def layer_rows(model) -> list[dict]:
    """One row per layer: name, type, output shape and parameter count (the report's table)."""
    rows = []
    for layer in model.layers:
        shape = getattr(getattr(layer, "output", None), "shape", None)
        rows.append({"layer": layer.name, "type": type(layer).__name__,
                     "output": str(tuple(shape)) if shape is not None else "",
                     "params": f"{int(layer.count_params()):,}"})
    return rows


def parameter_counts(model) -> dict:
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    total = int(model.count_params())
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}
