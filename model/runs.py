"""Run folders: the one place that knows their layout.

Training writes a run folder; the workbench, the API and the exporters only read it.

    runs/<run-id>/
      config.json              the recipe and every setting (plus "gradcam_layer", "class_names")
      history.csv              epoch, loss, accuracy, val_loss, val_accuracy, learning_rate, seconds
      model.keras              the Keras model: input (28, 28, 1) float32 pixels 0..255, output softmax 10
                               (an imported ONNX or SavedModel run has model.onnx instead, same input and
                               output, and config.json says "model_file": "model.onnx"; it has no history.csv)
      metrics.json             test accuracy with its bootstrap 95% interval, per-class scores, ECE, timing
      test_predictions.parquet index, label, predicted, prob_0 .. prob_9
      confusion_matrix.csv     10 x 10 counts, rows = true class, columns = predicted class
      embedding.npz            2-D map of the test images (x, y per image) with the settings and model hash used
      learning_curves.png, confusion_matrix.png
      backup/                  training state while a run is unfinished (resume)

Every reader raises `RunError` naming the run and the file when something is missing or corrupt, or
when its content does not match model/run_schema.py (checked here, once, as the file is read).
"""

from __future__ import annotations

import json
import shlex
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from model.data import IMAGE_SIZE, NUM_CLASSES
from model import run_schema
from model.errors import RunError

CONFIG = "config.json"
HISTORY = "history.csv"
MODEL = "model.keras"
ONNX_MODEL = "model.onnx"
METRICS = "metrics.json"
PREDICTIONS = "test_predictions.parquet"
CONFUSION = "confusion_matrix.csv"
CURVES_PNG = "learning_curves.png"
CONFUSION_PNG = "confusion_matrix.png"
FAITHFULNESS = "faithfulness.json"  # per-method deletion / insertion AUC and sanity check (workbench/trust.py)
CLASS_IMAGES = "class_images.npz"  # what the model thinks each class looks like (workbench/teaching.py)
EMBEDDING = "embedding.npz"  # 2-D UMAP map of the test set's penultimate features (model/embedding.py)
FAMILIARITY = "familiarity.npz"  # class centres, shared precision and threshold of model/familiarity.py
BACKUP_DIR = "backup"
LABEL_ISSUES_DIR = "label_issues"  # model/label_issues.py: out-of-fold training probabilities and their settings
OOF_TRAIN = "oof_train.npz"        # in LABEL_ISSUES_DIR: probs (60000, 10) float16, labels, folds
OOF_SETTINGS = "settings.json"     # in LABEL_ISSUES_DIR: the K-fold settings the probabilities came from
LABEL_ISSUES = "label_issues.parquet"  # suspects of both splits ranked by cleanlab (workbench/suspects.py)
NEAR_DUPLICATES = "near_duplicates.parquet"  # test images whose nearest training image is near-identical
LABEL_MARKS = "label_marks.json"   # the analyst's marks on suspects (workbench/suspects.py)

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"]
PROB_COLUMNS = [f"prob_{i}" for i in range(NUM_CLASSES)]
PREDICTION_COLUMNS = ["index", "label", "predicted", *PROB_COLUMNS]
DEFAULT_RUNS_DIR = Path("runs")
DEFAULT_RUN_ID = "fast-default"
PROJECT_RUNS_DIR = Path(__file__).resolve().parents[1] / "runs"  # the checkout's, holding fast-default


def list_runs(runs_dir: Path | str = DEFAULT_RUNS_DIR) -> list[str]:
    """Run ids (folder names holding a config.json), newest first, the default run always first.
    Hidden folders (an import being written, or one killed halfway) are not runs."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    runs = [p for p in runs_dir.iterdir() if (p / CONFIG).is_file() and not p.name.startswith(".")]
    runs.sort(key=lambda p: (p.name != DEFAULT_RUN_ID, -(p / CONFIG).stat().st_mtime))
    return [p.name for p in runs]


RUN_ID_RULE = "a run id is one folder name: not empty, no / or \\, not starting with a dot"


def check_run_id(run_id: str) -> str:
    """A run id is one folder name: refuse empty ids, ids that would escape the runs folder, and
    hidden names (a folder starting with a dot is never listed as a run, so it could not be used)."""
    if not isinstance(run_id, str) or not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
        raise RunError(f"invalid run id {run_id!r}: {RUN_ID_RULE}")
    return run_id


def run_command(command: str, run_dir: Path | str, *options: str) -> str:
    """`command RUN [options]` to suggest to the user, with `--runs-dir` when the run is not in the
    default runs folder (./runs or the project's), so that it works as written."""
    run_dir = Path(run_dir)
    words = [command, shlex.quote(run_dir.name), *options]
    if run_dir.parent.resolve() not in (DEFAULT_RUNS_DIR.resolve(), PROJECT_RUNS_DIR.resolve()):
        words += ["--runs-dir", shlex.quote(str(run_dir.parent))]
    return " ".join(words)


def run_path(runs_dir: Path | str, run_id: str) -> Path:
    """The folder of run_id inside runs_dir, refusing ids that would escape it."""
    path = Path(runs_dir) / check_run_id(run_id)
    if not path.is_dir():
        raise RunError(f"run {run_id!r}: folder {path} not found")
    return path


def locate_runs_dir(runs_dir: Path | str, run_id: str, given: bool) -> Path:
    """The runs folder to read run_id from: runs_dir, except that when none was given and ./runs lacks
    the run, the project's own runs/ (so the committed default works from any folder). An unknown run
    raises RunError naming --runs-dir."""
    runs_dir = Path(runs_dir)
    if (runs_dir / check_run_id(run_id)).is_dir():
        return runs_dir
    if not given and (PROJECT_RUNS_DIR / run_id).is_dir():
        return PROJECT_RUNS_DIR
    looked = f"{runs_dir.resolve()}" + ("" if given else f" or {PROJECT_RUNS_DIR}")
    raise RunError(f"run {run_id!r} not found in {looked}; name the folder that holds it with --runs-dir",
                   "unknown_run")


def _require(run_dir: Path, name: str) -> Path:
    path = Path(run_dir) / name
    if not path.is_file():
        raise RunError(f"run {Path(run_dir).name!r}: {name} is missing")
    return path


def _check(run_dir: Path, name: str, problems: list[str]) -> None:
    """The schema's verdict (model/run_schema.py): the first problem as a RunError naming the file."""
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise RunError(f"run {Path(run_dir).name!r}: {name} has wrong content: {problems[0]}{more}",
                       file=name)


def _corrupt(run_dir: Path, name: str, exc: Exception) -> RunError:
    return RunError(f"run {Path(run_dir).name!r}: {name} is corrupt ({type(exc).__name__}: {exc})")


# ---------------------------------------------------------------------------------------------
# Readers

def read_json(run_dir: Path, name: str) -> dict:
    path = _require(run_dir, name)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _corrupt(run_dir, name, exc) from exc
    if not isinstance(data, dict):
        raise RunError(f"run {Path(run_dir).name!r}: {name} should hold a JSON object")
    return data


def read_npz(path: Path | str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of a NumPy archive in a run folder (no pickled objects). RunError naming the
    run and the file when it is unreadable: truncated, not an archive, or without one of `keys`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in keys}
    except KeyError as exc:
        raise RunError(f"run {path.parent.name!r}: {path.name} lacks {exc}", "damaged_file", file=path.name) from exc
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # truncated, garbage, pickled data
        raise RunError(f"run {path.parent.name!r}: {path.name} is damaged (not a readable NumPy archive)",
                       "damaged_file", file=path.name) from exc


def read_config(run_dir: Path) -> dict:
    config = read_json(run_dir, CONFIG)
    _check(run_dir, CONFIG, run_schema.check_json(run_schema.CONFIG_FIELDS, config))
    return config


def read_metrics(run_dir: Path) -> dict:
    metrics = read_json(run_dir, METRICS)
    _check(run_dir, METRICS, run_schema.check_json(run_schema.METRICS_FIELDS, metrics))
    return metrics


def read_history(run_dir: Path) -> pd.DataFrame:
    path = _require(run_dir, HISTORY)
    try:
        history = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise _corrupt(run_dir, HISTORY, exc) from exc
    missing = [c for c in ("epoch", "loss", "val_loss") if c not in history.columns]
    if missing:
        raise RunError(f"run {Path(run_dir).name!r}: {HISTORY} lacks columns {missing}")
    _check(run_dir, HISTORY, run_schema.check_history(history, HISTORY_COLUMNS))
    if history.empty:  # a finished run has at least one epoch: a header alone is a damaged file
        raise RunError(f"run {Path(run_dir).name!r}: {HISTORY} has wrong content: no epochs, only its header")
    return history


def read_predictions(run_dir: Path) -> pd.DataFrame:
    path = _require(run_dir, PREDICTIONS)
    try:
        predictions = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise _corrupt(run_dir, PREDICTIONS, exc) from exc
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise RunError(f"run {Path(run_dir).name!r}: {PREDICTIONS} lacks columns {missing}")
    _check(run_dir, PREDICTIONS, run_schema.check_predictions(predictions, PROB_COLUMNS))
    return predictions


def read_confusion(run_dir: Path) -> np.ndarray:
    path = _require(run_dir, CONFUSION)
    try:
        matrix = pd.read_csv(path, index_col=0).to_numpy(dtype=np.int64)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _corrupt(run_dir, CONFUSION, exc) from exc
    if matrix.shape != (NUM_CLASSES, NUM_CLASSES):
        raise RunError(f"run {Path(run_dir).name!r}: {CONFUSION} is {matrix.shape}, "
                       f"expected ({NUM_CLASSES}, {NUM_CLASSES})")
    if (matrix < 0).any():
        raise RunError(f"run {Path(run_dir).name!r}: {CONFUSION} has wrong content: counts should be at least 0, "
                       f"found {int(matrix.min())}")
    return matrix


def model_file(run_dir: Path, config: dict | None = None) -> Path:
    """The run's model file: model.keras, or model.onnx for an imported ONNX-only run."""
    if config is None:
        try:
            config = read_config(run_dir)
        except RunError:
            config = {}
    return Path(run_dir) / (ONNX_MODEL if config.get("model_file") == ONNX_MODEL else MODEL)


def check_model_file(run_dir: Path, config: dict | None = None) -> Path:
    """The run's model file when it is there and, for model.keras, a zip archive (cheap: not loaded);
    else RunError naming it. Keras would say "File not found" of a .keras file that is not a zip."""
    path = model_file(run_dir, config)
    _require(run_dir, path.name)
    if path.name == MODEL and not zipfile.is_zipfile(path):
        raise RunError(f"run {Path(run_dir).name!r}: {MODEL} is corrupt: not a Keras model archive (cut short "
                       "or overwritten?); train the run again or import the model again", file=MODEL)
    return path


def is_imported(config: dict) -> bool:
    """Whether the run was imported (`workbench import`) rather than trained: it has no history."""
    return bool(config.get("imported"))


def load_model(run_dir: Path):
    """The run's Keras model, loaded with safe_mode on."""
    import keras

    path = check_model_file(run_dir, {})
    _register_custom_objects()
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors ... for a bad file
        raise _corrupt(run_dir, MODEL, exc) from exc
    check_model_shapes(run_dir, model)
    return model


def check_model_shapes(run_dir: Path, model) -> None:
    """RunError unless the model takes 28x28x1 images and gives one value per class: the run folder's
    contract (`workbench import` wraps a model of another shape). A model of another shape loads fine
    and fails later, deep in a prediction."""
    wanted_in, wanted_out = (None, IMAGE_SIZE, IMAGE_SIZE, 1), (None, NUM_CLASSES)
    shapes = [tuple(model.input_shape) if not isinstance(model.input_shape, list) else "several inputs",
              tuple(model.output_shape) if not isinstance(model.output_shape, list) else "several outputs"]
    for shape, wanted, what in zip(shapes, (wanted_in, wanted_out), ("takes", "gives")):
        if shape != wanted:
            raise RunError(f"run {Path(run_dir).name!r}: {MODEL} {what} {shape}, a run's model {what} {wanted} "
                           f"(28x28x1 images in, one value for each of the {NUM_CLASSES} classes out); bring a model "
                           "of another shape in with `workbench import`, which wraps it", file=MODEL)


def _register_custom_objects() -> None:
    """Import the module whose registered layers saved models may use."""
    import model.architectures  # noqa: F401  (registers serializable layers, if any)


# ---------------------------------------------------------------------------------------------
# Writers (used by training and evaluation only)

def write_json(run_dir: Path, name: str, data: dict) -> None:
    _atomic_write_text(Path(run_dir) / name, json.dumps(data, indent=2, sort_keys=True, default=_json_default))


def write_history(run_dir: Path, history: pd.DataFrame) -> None:
    _atomic_write_text(Path(run_dir) / HISTORY, history.to_csv(index=False))


def write_predictions(run_dir: Path, labels: np.ndarray, probs: np.ndarray,
                      indices: np.ndarray | None = None) -> pd.DataFrame:
    indices = np.arange(len(labels)) if indices is None else indices
    frame = pd.DataFrame({"index": indices.astype(np.int32), "label": labels.astype(np.int8),
                          "predicted": probs.argmax(axis=1).astype(np.int8)})
    for i, column in enumerate(PROB_COLUMNS):
        frame[column] = probs[:, i].astype(np.float32)
    frame.to_parquet(Path(run_dir) / PREDICTIONS, index=False)
    return frame


def write_confusion(run_dir: Path, matrix: np.ndarray, class_names: list[str]) -> None:
    frame = pd.DataFrame(matrix, index=class_names, columns=class_names)
    _atomic_write_text(Path(run_dir) / CONFUSION, frame.to_csv())


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
