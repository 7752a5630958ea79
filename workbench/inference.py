"""Serving predictors: one run's model behind `predict`, loaded lazily, cached, exported on first use.

    predictor = get_predictor(runs_dir, "fast-default")            # Keras backend
    predictor = get_predictor(runs_dir, "fast-default", "onnx")    # ONNX Runtime backend
    probs = predictor.predict(images)                              # (N, 28, 28) uint8 -> (N, 10) float32

The runtimes themselves live in model.runtimes. The "onnx" and "tflite" backends export the run on
first use when their file is missing or older than model.keras (about a second for the default
model; see `workbench export`). When the run folder is not writable, they fail with an ExportError
that names the `workbench export` command to run. Grad-CAM always uses the Keras model
(`get_predictor(..., "keras").model`). An imported ONNX-only run (`workbench import model.onnx`) has
no Keras model: every backend serves its model.onnx in ONNX Runtime (the predictor has no `.model`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from model import runs
from model.errors import ExportError
from model.export import export_path, export_run, is_stale
from model.runtimes import BACKENDS, KerasPredictor, export_command, predictor_for_file
from workbench.cache import cached

LOG = logging.getLogger(__name__)
_EXPORT_LOCK = threading.Lock()  # server threads asking for the same missing export wait for one export


def get_predictor(runs_dir: Path | str, run_id: str, backend: str = "keras"):
    """The cached predictor of a run; reloaded when the run's model file changes."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    run_dir = runs.run_path(runs_dir, run_id)
    model_file = cached("model-file", run_dir / runs.CONFIG, lambda: runs.model_file(run_dir))  # no JSON per request
    if model_file.name == runs.ONNX_MODEL:  # an imported ONNX-only run: ONNX Runtime whatever the backend
        runs.check_model_file(run_dir)      # "model.onnx is missing", not ONNX Runtime's NoSuchFile and a path
        return cached("predictor", model_file, lambda: predictor_for_file(model_file), "imported-onnx")
    return cached("predictor", run_dir / runs.MODEL, lambda: _load(run_dir, backend), backend)


def _load(run_dir: Path, backend: str):
    if backend == "keras":
        return KerasPredictor(run_dir)
    return exported_predictor(run_dir, backend)


def exported_predictor(run_dir: Path, fmt: str, quantize: str = "none"):
    """A predictor for the run's exported file (ONNX or TFLite), exported now when needed."""
    return predictor_for_file(ensure_export(run_dir, fmt, quantize))


def ensure_export(run_dir: Path, fmt: str, quantize: str = "none") -> Path:
    """The run's exported file, exported now when missing or older than model.keras."""
    path = export_path(run_dir, fmt, quantize)
    if not (Path(run_dir) / runs.MODEL).is_file():
        raise runs.RunError(f"run {Path(run_dir).name!r}: {runs.MODEL} is missing")
    with _EXPORT_LOCK:
        if not is_stale(run_dir, fmt, quantize):
            return path
        return _export_now(run_dir, fmt, quantize, path)


def _export_now(run_dir: Path, fmt: str, quantize: str, path: Path) -> Path:
    run_id = Path(run_dir).name
    command = export_command(run_dir, fmt, quantize)
    if quantize != "none":
        raise ExportError(f"run {run_id!r}: {path.name} is missing or older than {runs.MODEL}; run `{command}`")
    LOG.warning("exporting run %r to %s (missing or older than %s)", run_id, path.name, runs.MODEL)
    try:
        return export_run(run_dir, fmt)
    except (OSError, ExportError) as exc:  # e.g. a read-only run folder
        raise ExportError(f"run {run_id!r}: could not export {path.name} ({exc}); run "
                          f"`{command}` in a writable copy") from exc
