"""Runtimes: a saved model behind one `predict`, whatever runs it (Keras, ONNX Runtime, LiteRT).

    predictor = KerasPredictor(run_dir)                     # the run's model.keras
    predictor = predictor_for_file(run_dir / "model.onnx")  # ONNX Runtime; .tflite -> LiteRT
    probs = predictor.predict(images)                       # (N, 28, 28) uint8 -> (N, 10) float32

The export's parity check (model.export) and serving (workbench.inference, which adds caching and
export-on-first-use) both use these classes. A file a runtime cannot read raises ExportError naming
the `workbench export` command that re-creates it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from model import runs
from model.data import IMAGE_SIZE
from model.errors import ExportError

BACKENDS = ("keras", "onnx", "tflite")
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)  # every model's input: pixels 0..255, garment bright on black


class KerasPredictor:
    backend = "keras"

    def __init__(self, run_dir: Path, model=None):
        import tensorflow as tf

        self.run_dir = Path(run_dir)
        self.run_id = self.run_dir.name
        self.model = runs.load_model(self.run_dir) if model is None else model
        # One graph for every batch size: eager model(...) costs ~6 ms per call on 2 cores, this ~1 ms.
        self._predict = tf.function(lambda batch: self.model(batch, training=False),
                                    input_signature=[tf.TensorSpec((None, *INPUT_SHAPE), tf.float32)])

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
            raise unreadable_export(self.path, exc) from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

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
            raise unreadable_export(self.path, exc) from exc
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self._batch_size = 1
        self._lock = threading.Lock()  # an interpreter holds its tensors: one call at a time

    def predict(self, images: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(as_model_input(images))
        with self._lock:
            self._resize(len(batch))
            self.interpreter.set_tensor(self.input_index, batch)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self.output_index).astype(np.float32)

    def _resize(self, batch_size: int) -> None:
        if batch_size != self._batch_size:
            self.interpreter.resize_tensor_input(self.input_index, [batch_size, *INPUT_SHAPE])
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


def export_command(run_dir: Path, fmt: str, quantize: str = "none") -> str:
    """The `workbench export` command line that (re-)creates a run's exported file."""
    options = ["--format", fmt] + (["--quantize", quantize] if quantize != "none" else [])
    return runs.run_command("workbench export", run_dir, *options)


def unreadable_export(path: Path, exc: Exception) -> ExportError:
    """The error for an exported file its runtime cannot read, naming the command that re-creates it."""
    fmt, *quantize = reversed(path.name.split(".")[1:])  # model.onnx, model.int8.tflite, ...
    return ExportError(f"run {path.parent.name!r}: {path.name} is unreadable ({type(exc).__name__}: {exc}); "
                       f"re-create it with `{export_command(path.parent, fmt, *quantize)}`")


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
    if images.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"expected images of shape (N, {IMAGE_SIZE}, {IMAGE_SIZE}), received {images.shape}")
    return images.astype(np.float32)
