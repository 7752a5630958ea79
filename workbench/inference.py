"""Predictors: one run's model behind a small interface, loaded lazily and cached per process.

    predictor = get_predictor(runs_dir, "fast-default")            # Keras backend
    predictor = get_predictor(runs_dir, "fast-default", "onnx")    # ONNX Runtime backend
    probs = predictor.predict(images)                              # (N, 28, 28) uint8 -> (N, 10) float32

Backends, all with the same `predict`:
  "keras"   the run's model.keras, called through one traced tf.function (no per-call eager overhead)
  "onnx"    the run's model.onnx in ONNX Runtime
  "tflite"  the run's model.tflite in the LiteRT interpreter (ai_edge_litert, else tf.lite)
The "onnx" and "tflite" backends export the run on first use when their file is missing or older
than model.keras (about a second for the default model; see `workbench export`). When the run folder
is not writable, they fail with an ExportError that names the `workbench export` command to run.
Grad-CAM always uses the Keras model (`get_predictor(..., "keras").model`).
"""

from __future__ import annotations

import functools
import sys
import threading
from pathlib import Path

import numpy as np

from model import runs

BACKENDS = ("keras", "onnx", "tflite")
_EXPORT_LOCK = threading.Lock()  # server threads asking for the same missing export wait for one export


class KerasPredictor:
    backend = "keras"

    def __init__(self, run_dir: Path, model=None):
        import tensorflow as tf

        self.run_dir = Path(run_dir)
        self.run_id = self.run_dir.name
        self.model = runs.load_model(self.run_dir) if model is None else model
        # One graph for every batch size: eager model(...) costs ~6 ms per call on 2 cores, this ~1 ms.
        self._predict = tf.function(lambda batch: self.model(batch, training=False),
                                    input_signature=[tf.TensorSpec((None, 28, 28, 1), tf.float32)])

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self._predict(as_model_input(images)), dtype=np.float32)


class OnnxPredictor:
    backend = "onnx"

    def __init__(self, path: Path):
        import onnxruntime as ort

        self.path = Path(path)
        self.run_dir = self.path.parent
        self.run_id = self.run_dir.name
        options = ort.SessionOptions()
        # Idle threads sleep instead of spinning: on a shared 2-core machine spinning doubled the batch
        # p50 and pushed the single-image p95 from 0.5 to 8 ms; on a quiet machine it costs nothing.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf / NoSuchFile
            raise _bad_export(self.path, exc) from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    @classmethod
    def for_run(cls, run_dir: Path) -> "OnnxPredictor":
        return cls(ensure_export(run_dir, "onnx"))

    def predict(self, images: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(as_model_input(images))
        return self.session.run([self.output_name], {self.input_name: batch})[0].astype(np.float32)


class TFLitePredictor:
    backend = "tflite"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.run_dir = self.path.parent
        self.run_id = self.run_dir.name
        try:
            self.interpreter = _tflite_interpreter_class()(model_path=str(self.path))
            self.interpreter.allocate_tensors()
        except Exception as exc:  # the interpreter raises ValueError / RuntimeError for a bad file
            raise _bad_export(self.path, exc) from exc
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self._batch_size = 1
        self._lock = threading.Lock()  # an interpreter holds its tensors: one call at a time

    @classmethod
    def for_run(cls, run_dir: Path, quantize: str = "none") -> "TFLitePredictor":
        return cls(ensure_export(run_dir, "tflite", quantize))

    def predict(self, images: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(as_model_input(images))
        with self._lock:
            self._resize(len(batch))
            self.interpreter.set_tensor(self.input_index, batch)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self.output_index).astype(np.float32)

    def _resize(self, batch_size: int) -> None:
        if batch_size != self._batch_size:
            self.interpreter.resize_tensor_input(self.input_index, [batch_size, 28, 28, 1])
            self.interpreter.allocate_tensors()
            self._batch_size = batch_size


def _tflite_interpreter_class():
    """LiteRT's interpreter (TFLite's successor); tf.lite.Interpreter where it is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter


def _bad_export(path: Path, exc: Exception):
    from model.export import ExportError

    fmt, *quantize = reversed(path.name.split(".")[1:])  # model.onnx, model.int8.tflite, ...
    command = f"workbench export {path.parent.name} --format {fmt}" + "".join(f" --quantize {q}" for q in quantize)
    return ExportError(f"run {path.parent.name!r}: {path.name} is unreadable ({type(exc).__name__}: {exc}); "
                       f"re-create it with `{command}`")


def ensure_export(run_dir: Path, fmt: str, quantize: str = "none") -> Path:
    """The run's exported file, exported now when missing or older than model.keras."""
    from model.export import export_path, is_stale

    path = export_path(run_dir, fmt, quantize)
    if not (Path(run_dir) / runs.MODEL).is_file():
        raise runs.RunError(f"run {Path(run_dir).name!r}: {runs.MODEL} is missing")
    with _EXPORT_LOCK:
        if not is_stale(run_dir, fmt, quantize):
            return path
        return _export_now(run_dir, fmt, quantize, path)


def _export_now(run_dir: Path, fmt: str, quantize: str, path: Path) -> Path:
    from model.export import ExportError, export_run

    if quantize != "none":
        raise ExportError(f"run {Path(run_dir).name!r}: {path.name} is missing or older than {runs.MODEL}; "
                          f"run `workbench export {Path(run_dir).name} --format {fmt} --quantize {quantize}`")
    print(f"exporting run {Path(run_dir).name!r} to {path.name} (missing or older than {runs.MODEL})",
          file=sys.stderr)
    try:
        return export_run(run_dir, fmt)
    except (OSError, ExportError) as exc:  # e.g. a read-only run folder
        raise ExportError(f"run {Path(run_dir).name!r}: could not export {path.name} ({exc}); run "
                          f"`workbench export {Path(run_dir).name} --format {fmt}` in a writable copy") from exc


def predictor_for_file(path: Path):
    """A predictor for an exported file, chosen by its suffix (.onnx or .tflite)."""
    path = Path(path)
    if path.suffix == ".onnx":
        return OnnxPredictor(path)
    if path.suffix == ".tflite":
        return TFLitePredictor(path)
    raise ValueError(f"no runtime for {path.name}; expected a .onnx or .tflite file")


def as_model_input(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or (N, 28, 28, 1) pixels 0..255 -> float32 (N, 28, 28, 1), the models' input."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] != (28, 28, 1):
        raise ValueError(f"expected images of shape (N, 28, 28), received {images.shape}")
    return images.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _cached_predictor(run_dir: str, backend: str, mtime: float):
    if backend == "keras":
        return KerasPredictor(Path(run_dir))
    if backend == "onnx":
        return OnnxPredictor.for_run(Path(run_dir))
    if backend == "tflite":
        return TFLitePredictor.for_run(Path(run_dir))
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def get_predictor(runs_dir: Path | str, run_id: str, backend: str = "keras"):
    """The cached predictor of a run; reloaded when the run's model file changes."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    run_dir = runs.run_path(runs_dir, run_id)
    model_file = run_dir / runs.MODEL
    mtime = model_file.stat().st_mtime if model_file.exists() else 0.0
    return _cached_predictor(str(run_dir.resolve()), backend, mtime)
