"""Import a Fashion-MNIST classifier trained elsewhere as a run folder ("bring your own model").

    workbench import their_cnn.keras --run-id their-cnn                  # scale chosen on validation
    workbench import resnet50.h5 --run-id study --input-scale imagenet   # legacy Keras 2 .h5
    workbench import exported/ --run-id tf-model                         # a TF SavedModel folder
    workbench import torch.onnx --run-id torch --class-order 0,1,2,3,4,5,6,7,8,9

    result = import_model(path, runs_dir, run_id, input_scale=None, progress=print)

Steps: identify the format (model.import_formats), load it (Keras with safe_mode; ONNX in ONNX
Runtime), work out the input convention from the input shape, choose the pixel scale (the flag, or
the better of 0-1 and 0-255 on validation images), detect logits (rows that are not probabilities),
wrap the model into the standard input "image" (N,28,28,1) pixels 0..255 and output "predictions"
(model.import_keras / model.import_onnx), evaluate it once on the test set (model.evaluate) and
write the run folder. Everything is written into a hidden temporary folder that is renamed into
place at the end, so a failed import leaves no run folder behind.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model import runs
from model.data import CLASS_NAMES, NUM_CLASSES, load_splits
from model.errors import ImportModelError, RunError
from model.import_formats import InputConvention, ModelSource, check_outputs, identify, input_convention

SCALES = ("0-255", "0-1", "imagenet")


@dataclass(frozen=True)
class ImportSettings:
    probe_images: int = 1000   # validation images used to choose the scale and detect logits: 100 a
                               # class tells 10 % (wrong scale) from 80 % (right one) beyond doubt
    batch_size: int = 250      # prediction batch: small enough for a 224 px ResNet50 in a few GB
    probability_tolerance: float = 1e-3  # rows summing to 1 within this (and >= 0) are probabilities
    near_chance: float = 0.2   # test accuracy under this (twice chance, 10 %): say the model may be
                               # fed or read wrongly (class order, input scale, another image size)
    below_chance: float = 0.05  # under half of chance: not guessing but naming classes consistently
                                # wrong, which is what a different class order does
    close_scales: float = 0.02           # scales within 2 points on the probe images: say the choice is weak
                                         # (a ReLU net without much bias barely cares about the scale)


SETTINGS = ImportSettings()
# The two settings a user may give, named as the command line and the Import page both show them.
CLASS_ORDER = "class order (--class-order, or Class order on the Import page)"
INPUT_SCALE = "pixel scale (--input-scale, or Pixel scale on the Import page)"


@dataclass
class ImportResult:
    run_dir: Path
    convention: dict
    logits_detected: bool
    gradcam_layer: str | None
    test_accuracy: float
    notes: list[str] = field(default_factory=list)  # what was chosen and why, for the user


def parse_class_order(text: str | None) -> list[int] | None:
    """'2,0,1,...' or 'Pullover,T-shirt/top,...': the Fashion-MNIST class of each model output."""
    if not text:
        return None
    items = [t.strip() for t in text.split(",")]
    try:
        order = [int(t) if t.isdigit() else list(CLASS_NAMES).index(t) for t in items]
    except ValueError as exc:
        raise ImportModelError(f"{CLASS_ORDER}: unknown class in {text!r}; use indices 0-9 or the names "
                               f"{', '.join(CLASS_NAMES)}", "bad_class_order") from exc
    if sorted(order) != list(range(NUM_CLASSES)):
        raise ImportModelError(f"the {CLASS_ORDER} must name each of the {NUM_CLASSES} classes once, received "
                               f"{text!r}", "bad_class_order")
    return None if order == list(range(NUM_CLASSES)) else order


# ---------------------------------------------------------------------------------------------
# The two kinds of model: a Keras graph we rebuild, an ONNX graph we extend

class KerasCandidate:
    """A loaded Keras model: probe a scale, then save the wrapped flat model.keras."""

    def __init__(self, source: ModelSource, trust_code: bool):
        from model.import_formats import code_layers, keras_config, load_keras

        self.model = load_keras(source, trust_code)
        self.has_code = bool(code_layers(keras_config(source)))  # trusted Lambda / custom layers
        if len(self.model.inputs) != 1 or len(self.model.outputs) != 1:
            raise ImportModelError(f"{source.name} has {len(self.model.inputs)} inputs and "
                                   f"{len(self.model.outputs)} outputs; expected one of each", "wrong_outputs")
        check_outputs(self.model.outputs[0].shape, source.name)
        self.input_shape = self.model.inputs[0].shape

    def probe(self, conv: InputConvention, images: np.ndarray) -> np.ndarray:
        from model.import_keras import wrap_keras

        return _predict_keras(wrap_keras(self.model, conv, None), images)

    def save(self, folder: Path, conv: InputConvention, logits: bool, order: list[int] | None) -> dict:
        from model.import_keras import ends_in_softmax, gradcam_layer, move_softmax_out, wrap_keras

        softmax = "added: the model returns logits" if logits else "kept: the model returns probabilities"
        if not logits and ends_in_softmax(self.model):
            move_softmax_out(self.model)
            logits, softmax = True, "moved from the last layer into `predictions`"
        wrapped = wrap_keras(self.model, conv, "softmax" if logits else "linear", order)
        if self.has_code:  # its code ran once, trusted; the run holds only a graph the workbench can load safely
            from model.export import export_onnx

            export_onnx(wrapped, folder / runs.ONNX_MODEL)
            return {"gradcam_layer": None, "softmax": softmax, "model_file": runs.ONNX_MODEL,
                    "architecture": f"imported {wrapped.name} (with code: run as ONNX)"}
        wrapped.save(folder / runs.MODEL)
        layer = gradcam_layer(wrapped)
        return {"gradcam_layer": layer, "softmax": softmax, "model_file": runs.MODEL,
                "architecture": f"imported {wrapped.name}", "params": int(wrapped.count_params())}


class OnnxCandidate:
    """An ONNX graph (or a SavedModel converted to one), run in ONNX Runtime only."""

    def __init__(self, source: ModelSource):
        from model.import_onnx import onnx_shapes, read_onnx, saved_model_to_onnx

        self.name = source.name
        self.proto = saved_model_to_onnx(source.path) if source.format == "savedmodel" else read_onnx(source.path)
        self.input_shape, output_shape = onnx_shapes(self.proto, source.name)
        check_outputs(output_shape, source.name)

    def probe(self, conv: InputConvention, images: np.ndarray) -> np.ndarray:
        from model.import_onnx import onnx_session, wrap_onnx

        session = onnx_session(wrap_onnx(self.proto, conv, logits=False), self.name)
        try:
            return _predict_batches(lambda x: session.run(None, {"image": x})[0], images)
        except Exception as exc:  # onnxruntime's Fail / InvalidArgument: e.g. a graph fixed to a batch of 1
            raise ImportModelError(f"{self.name} fails on a batch of 28x28 images adapted to its input "
                                   f"({type(exc).__name__}: {str(exc)[:300]}); export it with a dynamic batch "
                                   "axis", "unsupported_model") from exc

    def save(self, folder: Path, conv: InputConvention, logits: bool, order: list[int] | None) -> dict:
        import onnx

        from model.import_onnx import wrap_onnx

        wrapped = wrap_onnx(self.proto, conv, logits, order)
        onnx.save(wrapped, str(folder / runs.ONNX_MODEL))
        return {"gradcam_layer": None, "model_file": runs.ONNX_MODEL, "architecture": "imported ONNX graph",
                "softmax": "added: the model returns logits" if logits else "kept: the model returns probabilities"}


def _predict_batches(predict, images: np.ndarray) -> np.ndarray:
    x = images[..., None].astype(np.float32)
    parts = [np.asarray(predict(x[i:i + SETTINGS.batch_size])) for i in range(0, len(x), SETTINGS.batch_size)]
    return np.concatenate(parts).astype(np.float64)


def _predict_keras(model, images: np.ndarray) -> np.ndarray:
    try:
        return _predict_batches(lambda x: model.predict(x, batch_size=len(x), verbose=0), images)
    except Exception as exc:  # the model's graph rejects the adapted input
        raise ImportModelError(f"the model fails on 28x28 images adapted to its input "
                               f"({type(exc).__name__}: {str(exc)[:300]})", "bad_input_shape") from exc


def load_candidate(source: ModelSource, trust_code: bool):
    if source.format in ("keras", "h5"):
        return KerasCandidate(source, trust_code)
    return OnnxCandidate(source)


# ---------------------------------------------------------------------------------------------
# Choosing the scale and detecting logits

def are_logits(outputs: np.ndarray, tolerance: float = SETTINGS.probability_tolerance) -> bool:
    """True unless every row is a probability vector (non-negative, summing to 1)."""
    return bool((outputs < -tolerance).any() or (np.abs(outputs.sum(axis=1) - 1) > tolerance).any())


def softmax(outputs: np.ndarray) -> np.ndarray:
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def choose_scale(candidate, shape_conv: InputConvention, scale: str | None, images: np.ndarray,
                 labels: np.ndarray, order: list[int] | None) -> tuple[InputConvention, bool, list[str]]:
    """The convention with the given scale, or the better of 0-1 and 0-255 on validation images;
    whether the outputs are logits; and notes saying what was tried."""
    tried, notes = {}, []
    for option in [scale] if scale else ["0-1", "0-255"]:
        conv = InputConvention(shape_conv.layout, shape_conv.height, shape_conv.width, shape_conv.channels, option)
        outputs = candidate.probe(conv, images)
        predicted = outputs.argmax(axis=1) if order is None else np.asarray(order)[outputs.argmax(axis=1)]
        tried[option] = (conv, are_logits(outputs), float((predicted == labels).mean()))
    best = max(tried, key=lambda k: tried[k][2])
    if not scale:
        scores = ", ".join(f"{k}: {v[2]:.1%}" for k, v in tried.items())
        close = abs(tried["0-1"][2] - tried["0-255"][2]) < SETTINGS.close_scales
        notes.append(f"input scale {best}: the better accuracy on {len(labels)} validation images ({scores})"
                     + (f"; the two are close, so give the {INPUT_SCALE} if you know it" if close
                        else f"; give the {INPUT_SCALE} to choose yourself"))
    else:
        notes.append(f"input scale {best} (as given): {tried[best][2]:.1%} on {len(labels)} "
                     "validation images")
    conv, logits, _ = tried[best]
    notes.append("outputs are logits (rows are not probabilities): a softmax is added" if logits
                 else "outputs are probabilities")
    return conv, logits, notes


# ---------------------------------------------------------------------------------------------
# The import

def chance_note(accuracy: float) -> str | None:
    """What a test accuracy near or below chance (10 %) suggests, or None for a working model."""
    if accuracy < SETTINGS.below_chance:
        return (f"test accuracy {accuracy:.1%} is far below chance (10 %): the model tells the classes apart "
                f"but names them differently; give its {CLASS_ORDER}")
    if accuracy < SETTINGS.near_chance:
        return (f"test accuracy {accuracy:.1%} is near chance (10 %): check that the model was trained on "
                f"Fashion-MNIST and give its {CLASS_ORDER} or {INPUT_SCALE} if they differ from the standard ones")
    return None


def import_model(path: Path | str, runs_dir: Path | str, run_id: str, input_scale: str | None = None,
                 class_order: str | None = None, trust_code: bool = False, data_dir=None,
                 progress=lambda message: None, splits=None) -> ImportResult:
    """Import the model at `path` as runs_dir/run_id; `progress(message)` hears each step.
    `splits` (model.data.Splits) saves reading the data again when importing several models."""
    started = time.perf_counter()
    run_dir = Path(runs_dir) / runs.check_run_id(run_id)
    if run_dir.exists():
        raise RunError(f"run {run_id!r} already exists in {runs_dir}; choose another run id", "run_exists")
    if input_scale is not None and input_scale not in SCALES:
        raise ImportModelError(f"the {INPUT_SCALE} must be one of {', '.join(SCALES)}, received {input_scale!r}",
                               "bad_parameter")
    order = parse_class_order(class_order)
    progress("reading the model file")
    source = identify(path)
    candidate = load_candidate(source, trust_code)
    shape_conv = input_convention(candidate.input_shape)
    progress("loading the validation and test images")
    splits = splits or load_splits(data_dir, progress=False)
    probe = slice(0, SETTINGS.probe_images)
    progress("choosing the input scale on validation images")
    conv, logits, notes = choose_scale(candidate, shape_conv, input_scale, splits.val.images[probe],
                                       splits.val.labels[probe], order)
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".import-{run_id}-", dir=runs_dir))
    tmp.chmod(0o755)  # mkdtemp makes it private; a run folder is as readable as a trained one
    try:
        progress("writing the standard model")
        saved = candidate.save(tmp, conv, logits, order)
        if saved["gradcam_layer"] is None:
            notes.append("no convolution with a spatial map of at least 4x4: explanations are off for this run")
        runs.write_json(tmp, runs.CONFIG, _config(run_id, source, conv, logits, order, trust_code, saved, notes,
                                                  time.perf_counter() - started))
        progress("evaluating on the 10,000 test images")
        from model.evaluate import evaluate_run

        metrics = evaluate_run(tmp, test=splits.test)  # metrics.json names config.json's run_id
        if run_dir.exists():
            raise RunError(f"run {run_id!r} appeared in {runs_dir} during the import; choose another run id",
                           "run_exists")
        tmp.rename(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress("done")
    note = chance_note(metrics["test_accuracy"])
    notes += [note] if note else []
    return ImportResult(run_dir, conv.record(), logits, saved["gradcam_layer"], metrics["test_accuracy"], notes)


def _config(run_id, source: ModelSource, conv: InputConvention, logits: bool, order, trust_code: bool,
            saved: dict, notes: list[str], seconds: float) -> dict:
    return {
        "run_id": run_id, "recipe": "imported", "imported": {**source.record(), "trusted_code": trust_code},
        "input_convention": conv.record(), "logits_detected": logits, "softmax": saved["softmax"],
        "class_order": order, "class_names": list(CLASS_NAMES), "gradcam_layer": saved["gradcam_layer"],
        "model_file": saved["model_file"], "architecture": saved["architecture"], "n_train": 0,
        "import_notes": notes, "import_seconds": round(seconds, 1),
    }
