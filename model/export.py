"""Export a run's Keras model to ONNX or TFLite, then check the export in its own runtime.

    workbench export fast-default --format onnx                      # runs/fast-default/model.onnx
    workbench export fast-default --format tflite                    # .../model.tflite (float32)
    workbench export fast-default --format tflite --quantize int8    # .../model.int8.tflite

Paths: ONNX through Keras' own `model.export(path, format="onnx")` (tf2onnx underneath); TFLite through
a TF SavedModel (`model.export(dir, format="tf_saved_model")`) and `tf.lite.TFLiteConverter`.
Quantisation (TFLite only): float16 weights, or int8 weights and activations calibrated on a
representative sample of the training split; inputs and outputs stay float32, so every exported
model takes the same (N, 28, 28, 1) float32 pixels 0..255 and returns (N, 10) probabilities.

After writing, the export is run on the full test set in its runtime (ONNX Runtime, LiteRT) and
compared with the Keras model: class agreement, largest probability difference, accuracy change.
Files are written atomically (temp file, then rename), so a failed export never leaves half a model.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model import runs
from model.data import IMAGE_SIZE
from model.errors import ExportError

FORMATS = ("onnx", "tflite")
QUANTIZATIONS = ("none", "float16", "int8")


@dataclass(frozen=True)
class ExportSettings:
    representative_images: int = 500  # int8 calibration sample from the training split; ~50 per class
                                      # is plenty for a 28 px CNN and converts in seconds
    representative_seed: int = 0      # the same calibration sample every time, so exports are repeatable
    check_batch_size: int = 256       # batch for the parity check in the exported runtime
    min_agreement: float = 0.999      # float32 exports must agree with Keras on >= 99.9% of classes ...
    max_prob_diff: float = 1e-4       # ... and on every probability within 1e-4 (issue 7's parity bar)


SETTINGS = ExportSettings()


def export_filename(fmt: str, quantize: str = "none") -> str:
    """model.onnx, model.tflite, model.float16.tflite or model.int8.tflite."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if quantize not in QUANTIZATIONS:
        raise ExportError(f"unknown quantisation {quantize!r}; expected one of {QUANTIZATIONS}")
    if fmt == "onnx" and quantize != "none":
        raise ExportError(f"quantisation is for TFLite only; received --format onnx --quantize {quantize}")
    return f"model.{fmt}" if quantize == "none" else f"model.{quantize}.{fmt}"


def export_path(run_dir: Path, fmt: str, quantize: str = "none") -> Path:
    return Path(run_dir) / export_filename(fmt, quantize)


def is_stale(run_dir: Path, fmt: str, quantize: str = "none") -> bool:
    """True when the export is missing or older than the run's model.keras."""
    exported, source = export_path(run_dir, fmt, quantize), Path(run_dir) / runs.MODEL
    return not exported.is_file() or exported.stat().st_mtime < source.stat().st_mtime


# ---------------------------------------------------------------------------------------------
# Converters: Keras model -> file

def export_onnx(model, path: Path) -> Path:
    """Write the model as ONNX (input "image", dynamic batch) through Keras' own exporter."""
    _call_once(model)  # Keras refuses to export a model that has never been called
    with _atomic_output(path) as tmp:
        _convert(lambda: model.export(str(tmp), format="onnx", verbose=False), "ONNX conversion failed")
    return path


def export_tflite(model, path: Path, quantize: str = "none", representative: np.ndarray | None = None) -> Path:
    """Write the model as TFLite, optionally quantised; int8 needs representative images (N, 28, 28)."""
    import tensorflow as tf

    if quantize == "int8" and (representative is None or len(representative) == 0):
        raise ExportError("int8 quantisation needs representative images from the training split")
    _call_once(model)
    with tempfile.TemporaryDirectory(prefix="export-savedmodel-") as saved_dir:
        _convert(lambda: model.export(saved_dir, format="tf_saved_model", verbose=False), "TF SavedModel export failed")
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_dir)
        _configure_quantization(converter, quantize, representative)
        flatbuffer = _convert(converter.convert, "TFLite conversion failed")
    with _atomic_output(path) as tmp:
        tmp.write_bytes(flatbuffer)
    return path


def _configure_quantization(converter, quantize: str, representative: np.ndarray | None) -> None:
    import tensorflow as tf

    if quantize == "float16":
        # Weights stored as float16 (half the size); computation and inputs/outputs stay float32.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        # Weights and activations int8, ranges calibrated on training images; float32 in and out.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None, ..., None].astype(np.float32)]
                                                    for image in representative)


def _call_once(model) -> None:
    """Call the model on one blank image: Keras exports only called models; checks the input contract."""
    shape = (1, IMAGE_SIZE, IMAGE_SIZE, 1)
    _convert(lambda: model(np.zeros(shape, np.float32), training=False),
             f"the model does not take (N, {IMAGE_SIZE}, {IMAGE_SIZE}, 1) float32 images, so it cannot be exported")


def _convert(step, failure: str):
    """step(), with any converter exception turned into an ExportError starting with `failure`."""
    try:
        return step()
    except ExportError:
        raise
    except Exception as exc:  # converters raise many unrelated types (ConverterError, ValueError, ...)
        raise ExportError(f"{failure} ({type(exc).__name__}: {exc})") from exc


@contextlib.contextmanager
def _atomic_output(path: Path):
    """Yield a temp path beside `path`; rename it onto `path` only when the block wrote a file."""
    path = Path(path)
    # unique per process and thread; keeps the suffix, which the exporters look at
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise ExportError(f"the exporter wrote nothing to {path.name}")
        tmp.replace(path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        tmp.unlink(missing_ok=True)


def export_run(run_dir: Path, fmt: str, quantize: str = "none",
               representative: np.ndarray | None = None, model=None) -> Path:
    """Export the run's model into its folder; returns the written file."""
    path = export_path(run_dir, fmt, quantize)
    model = runs.load_model(run_dir) if model is None else model
    if fmt == "onnx":
        return export_onnx(model, path)
    return export_tflite(model, path, quantize, representative)


def representative_images(train_images: np.ndarray, settings: ExportSettings = SETTINGS) -> np.ndarray:
    """A fixed random sample of training images for int8 calibration."""
    rng = np.random.default_rng(settings.representative_seed)
    count = min(settings.representative_images, len(train_images))
    return train_images[rng.choice(len(train_images), size=count, replace=False)]


# ---------------------------------------------------------------------------------------------
# Parity check: the export in its own runtime against Keras

@dataclass(frozen=True)
class Comparison:
    n: int
    agreement: float       # fraction of images with the same predicted class
    max_abs_diff: float    # largest probability difference over all images and classes
    keras_accuracy: float
    export_accuracy: float

    @property
    def accuracy_change(self) -> float:
        return self.export_accuracy - self.keras_accuracy

    def within(self, settings: ExportSettings = SETTINGS) -> bool:
        """Whether a float32 export meets the parity bar."""
        return self.agreement >= settings.min_agreement and self.max_abs_diff <= settings.max_prob_diff

    def summary(self) -> str:
        return (f"on {self.n:,} test images: class agreement {self.agreement:.4%}, "
                f"max |prob difference| {self.max_abs_diff:.2e}; accuracy Keras {self.keras_accuracy:.4%}, "
                f"export {self.export_accuracy:.4%} (change {self.accuracy_change * 100:+.2f} points)")


def compare(keras_probs: np.ndarray, export_probs: np.ndarray, labels: np.ndarray) -> Comparison:
    keras_class, export_class = keras_probs.argmax(axis=1), export_probs.argmax(axis=1)
    return Comparison(n=len(labels), agreement=float(np.mean(keras_class == export_class)),
                      max_abs_diff=float(np.max(np.abs(keras_probs - export_probs))),
                      keras_accuracy=float(np.mean(keras_class == labels)),
                      export_accuracy=float(np.mean(export_class == labels)))


def predict_in_batches(predict, images: np.ndarray, batch_size: int = SETTINGS.check_batch_size) -> np.ndarray:
    return np.concatenate([predict(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def check_export(run_dir: Path, path: Path, images: np.ndarray, labels: np.ndarray, model=None) -> Comparison:
    """Run the exported file in its runtime and the Keras model on the same images; compare."""
    from model.runtimes import KerasPredictor, predictor_for_file

    keras_predictor = KerasPredictor(run_dir, model=model)
    exported = predictor_for_file(path)
    return compare(predict_in_batches(keras_predictor.predict, images),
                   predict_in_batches(exported.predict, images), labels)


def export_and_check(run_dir: Path, fmt: str, quantize: str = "none", data_dir=None) -> tuple[Path, Comparison]:
    """Export the run (int8 calibrated on training images), then run the parity check on the test set.
    A float32 export that misses the parity bar is deleted and raises ExportError."""
    from model.data import load_splits

    export_filename(fmt, quantize)  # validate the combination before any slow work
    if runs.model_file(run_dir).name == runs.ONNX_MODEL:
        raise ExportError(f"run {Path(run_dir).name!r} was imported as an ONNX graph: {runs.ONNX_MODEL} is already "
                          "its model (standard input and output); TFLite export needs a Keras model")
    model = runs.load_model(run_dir)
    splits = load_splits(data_dir, progress=False)
    representative = representative_images(splits.train.images) if quantize == "int8" else None
    path = export_run(run_dir, fmt, quantize, representative, model=model)
    result = check_export(run_dir, path, splits.test.images, splits.test.labels, model=model)
    if quantize == "none" and not result.within(SETTINGS):
        path.unlink(missing_ok=True)
        raise ExportError(f"{path.name} does not match the Keras model ({result.summary()}); removed it")
    return path, result
