"""Explanations of a run's Keras model: Grad-CAM, Grad-CAM++, Score-CAM, Layer-CAM, saliency (tf-keras-vis).

    explainer = get_explainer(runs_dir, "fast-default")
    maps = explainer.explain(images, targets, method="gradcam")   # (N, 28, 28) float32 in [0, 1]
    explainer.layer_choices()                                       # conv-block outputs, default first
    layer_label(model, "conv3_block1_out")                          # "conv3_block1_out · 7×7"

The score is the target class's pre-softmax logit (the output activation is swapped for a linear
one on a private clone, so the shared predictor model is untouched). Heatmaps are computed in one
batch for all images not yet cached and cached per (method, layer, target, image bytes).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from model import runs
from model.data import IMAGE_SIZE
from model.errors import ExplainError
from model.runtimes import as_model_input
from workbench.cache import cached
from workbench.inference import get_predictor

METHODS = {  # key -> label shown in the app
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "scorecam": "Score-CAM",
    "layercam": "Layer-CAM",
    "saliency": "Saliency (gradients)",
    "smoothgrad": "SmoothGrad",
}
LAYER_METHODS = ("gradcam", "gradcam++", "scorecam", "layercam")  # methods that look at a conv layer
SCORECAM_BATCH = 256      # Score-CAM: masked copies per forward pass (one per channel per image)
ACTIVATIONS = ("ReLU", "Activation", "ELU", "LeakyReLU", "PReLU")  # layer types whose output ends a block
SMOOTH_SAMPLES = 16       # SmoothGrad: noisy copies per image (paper: 10-50 are enough)
SMOOTH_NOISE = 0.15       # SmoothGrad noise, as a share of the image's pixel range (paper: 10-20%)
CACHE_SIZE = 4096         # cached heatmaps per run: 4096 * 28 * 28 * 4 B ~ 13 MB


def spatial_layers(model) -> list[str]:
    """Names of the layers with a spatial (N, H, W, C) output of at least 2x2, input to output."""
    names = []
    for layer in model.layers[1:]:
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        if shape is not None and len(shape) == 4 and shape[1] and shape[1] >= 2:
            names.append(layer.name)
    return names


def useful_layers(model) -> list[str]:
    """The conv-block outputs among the spatial layers: activations (or convs with a built-in
    activation), without the inner activations of residual blocks (``*_block*_1_relu``) and without
    batch-norm, add, pooling and input-scaling outputs, which only repeat a neighbour's map."""
    spatial = set(spatial_layers(model))
    names = []
    for layer in model.layers:
        activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
        ends_block = type(layer).__name__ in ACTIVATIONS or (type(layer).__name__.startswith("Conv")
                                                             and activation != "linear")
        inner = "_block" in layer.name and not layer.name.endswith("_out")
        if layer.name in spatial and (ends_block or layer.name.endswith("_out")) and not inner:
            names.append(layer.name)
    return names or spatial_layers(model)


def layer_label(model, name: str) -> str:
    """A layer's name with its feature map's size, e.g. "conv3_block1_out · 7×7"."""
    shape = model.get_layer(name).output.shape
    return f"{name} · {shape[1]}×{shape[2]}"


def default_layer(model, config: dict | None = None) -> str:
    """config["gradcam_layer"] when the model has it, else the last spatial layer."""
    layers = spatial_layers(model)
    wanted = (config or {}).get("gradcam_layer")
    if wanted in layers:
        return wanted
    if not layers:
        raise ExplainError(f"model {model.name!r} has no layer with a spatial feature map for Grad-CAM")
    return layers[-1]


class Explainer:
    """Heatmaps of one Keras model, with the visualisers built once and results cached."""

    def __init__(self, model, config: dict | None = None):
        self.model = model
        self.config = config or {}
        self.default_layer = default_layer(model, self.config)
        self._linear_model = None
        self._visualizers: dict[str, object] = {}
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the dev server and dash_duo answer callbacks in threads

    def layer_choices(self) -> list[str]:
        """Conv-block outputs, the default first, then the rest from output back to input."""
        layers = useful_layers(self.model)
        return [self.default_layer] + [n for n in reversed(layers) if n != self.default_layer]

    def explain(self, images: np.ndarray, targets, method: str = "gradcam",
                layer: str | None = None) -> np.ndarray:
        """Heatmaps (N, 28, 28) float32 in [0, 1] of why the model would say `targets` (int or (N,))."""
        batch = as_model_input(images)
        targets = np.broadcast_to(np.asarray(targets, dtype=np.int64), (len(batch),))
        method, layer = self._check(method, layer, targets)
        keys = [(method, layer, int(t), _digest(x)) for x, t in zip(batch, targets)]
        with self._lock:
            missing = [i for i, key in enumerate(keys) if key not in self._cache]
            if missing:
                computed = self._compute(batch[missing], targets[missing], method, layer)
                for i, heatmap in zip(missing, computed):
                    self._remember(keys[i], heatmap)
            found = {key: self._cache[key] for key in keys}
        return np.stack([found[key] for key in keys]) if keys else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.float32)

    # -- internals -------------------------------------------------------------------------

    def _check(self, method: str, layer: str | None, targets: np.ndarray) -> tuple[str, str | None]:
        if method not in METHODS:
            raise ExplainError(f"unknown explanation method {method!r}; expected one of {list(METHODS)}")
        if len(targets) and (targets.min() < 0 or targets.max() >= self.model.output_shape[-1]):
            raise ExplainError(f"target classes must be in 0..{self.model.output_shape[-1] - 1}, "
                               f"received {sorted(set(targets.tolist()))}")
        if method not in LAYER_METHODS:
            return method, None
        layer = layer or self.default_layer
        if layer not in spatial_layers(self.model):
            raise ExplainError(f"layer {layer!r} has no spatial feature map; choose one of "
                               f"{self.layer_choices()}")
        return method, layer

    def _compute(self, batch: np.ndarray, targets: np.ndarray, method: str, layer: str | None) -> np.ndarray:
        from tf_keras_vis.utils.scores import CategoricalScore

        repeats = SMOOTH_SAMPLES if method == "smoothgrad" else 1  # one score per noisy copy
        score = CategoricalScore(np.repeat(targets, repeats).tolist())
        visualizer = self._visualizer(method)
        with warnings.catch_warnings():  # Saliency passes inputs as a list; Keras warns, harmlessly
            warnings.filterwarnings("ignore", message="The structure of `inputs`")
            maps = self._run(visualizer, score, batch, method, layer)
        maps = np.asarray(maps, dtype=np.float32).reshape(len(batch), *batch.shape[1:3])
        return np.clip(np.nan_to_num(maps), 0.0, 1.0)

    @staticmethod
    def _run(visualizer, score, batch: np.ndarray, method: str, layer: str | None):
        if method == "scorecam":
            with no_progress_bars():  # it calls model.predict, whose bar would land in the server's log
                return visualizer(score, batch, penultimate_layer=layer, seek_penultimate_conv_layer=False,
                                  batch_size=SCORECAM_BATCH)
        if method in LAYER_METHODS:
            return visualizer(score, batch, penultimate_layer=layer, seek_penultimate_conv_layer=False)
        if method == "smoothgrad":
            return smoothgrad(visualizer, score, batch)
        return visualizer(score, batch)

    def _visualizer(self, method: str):
        if method not in self._visualizers:
            from tf_keras_vis.gradcam import Gradcam
            from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
            from tf_keras_vis.layercam import Layercam
            from tf_keras_vis.saliency import Saliency
            from tf_keras_vis.scorecam import Scorecam

            kind = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "scorecam": Scorecam,
                    "layercam": Layercam}.get(method, Saliency)
            self._visualizers[method] = kind(self._linear(), clone=False)
        return self._visualizers[method]

    def _linear(self):
        """A clone of the model whose output layer gives logits instead of probabilities."""
        if self._linear_model is None:
            import keras
            from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

            clone = keras.models.clone_model(self.model)
            clone.set_weights(self.model.get_weights())
            ReplaceToLinear()(clone)
            self._linear_model = clone
        return self._linear_model

    def _remember(self, key: tuple, heatmap: np.ndarray) -> None:
        self._cache[key] = heatmap
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)


@contextlib.contextmanager
def no_progress_bars():
    """Keras' progress bars off for the block (as they were after it)."""
    import keras

    was = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    try:
        yield
    finally:
        if was:
            keras.config.enable_interactive_logging()


def smoothgrad(saliency, score, batch: np.ndarray) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017) in one batch: |gradients| averaged over noisy copies.

    tf-keras-vis' own smooth_samples loop runs one gradient pass per sample (~1 s for 16 here);
    the same average from one batched pass takes a tenth of that.
    """
    rng = np.random.default_rng(0)  # fixed noise: the same image always gets the same map
    span = batch.max(axis=(1, 2, 3), keepdims=True) - batch.min(axis=(1, 2, 3), keepdims=True)
    noisy = np.repeat(batch, SMOOTH_SAMPLES, axis=0)
    noisy = noisy + rng.normal(0.0, 1.0, noisy.shape).astype(np.float32) * np.repeat(span * SMOOTH_NOISE,
                                                                                      SMOOTH_SAMPLES, axis=0)
    grads = saliency(score, noisy, keepdims=True, normalize_map=False)  # |d score / d pixel|
    grads = np.asarray(grads).reshape(len(batch), SMOOTH_SAMPLES, *batch.shape[1:]).mean(axis=1).max(axis=-1)
    low = grads.min(axis=(1, 2), keepdims=True)
    return (grads - low) / np.maximum(grads.max(axis=(1, 2), keepdims=True) - low, 1e-12)


def _digest(image: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=12).hexdigest()


def get_explainer(runs_dir: Path | str, run_id: str) -> Explainer:
    """The cached explainer of a run (always on its Keras model); rebuilt when model.keras changes."""
    run_dir = runs.run_path(runs_dir, run_id)
    return cached("explainer", runs.model_file(run_dir), lambda: _build_explainer(runs_dir, run_id))


def _build_explainer(runs_dir: Path | str, run_id: str) -> Explainer:
    try:
        config = runs.read_config(runs.run_path(runs_dir, run_id))
    except runs.RunError:
        config = {}
    explanations_off(run_id, config)
    return Explainer(get_predictor(runs_dir, run_id, "keras").model, config)


def explanations_off(run_id: str, config: dict) -> None:
    """ExplainError saying why when an imported run cannot be explained (no Keras graph, no conv layer)."""
    if not runs.is_imported(config):
        return
    if config.get("model_file") == runs.ONNX_MODEL:
        raise ExplainError(f"run {run_id!r} is an imported {config['imported'].get('format', 'ONNX')} model run "
                           "in ONNX Runtime: explanations need a Keras graph, so they are off", "explanations_off")
    if not config.get("gradcam_layer"):
        raise ExplainError(f"run {run_id!r} is an imported model without a convolution output of at least "
                           "4x4 (an MLP, for example): explanations are off", "explanations_off")
