"""The teaching view's data: what each layer sees, and what the model thinks each class looks like.

    feature_maps(runs_dir, run_id, image)   # [(label "conv2_block1_out · 14×14", [uint8 maps...]), ...]
    class_images(runs_dir, run_id)          # (10, 28, 28) uint8: activation maximisation, once per run

Feature maps: the conv-block outputs of one image, the channels that respond most, each scaled to
0..255 on its own. Class images: tf-keras-vis ActivationMaximization of each class's logit from a
black start, with total-variation and norm regularisers so the picture is smooth; computed once
per run and stored in the run folder (class_images.npz) with the model's hash, recomputed when it changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model import runs
from model.errors import RunError
from model.features import model_input
from workbench.cache import cached
from workbench.explain import get_explainer, layer_label, useful_layers


@dataclass(frozen=True)
class TeachingConfig:
    channels: int = 4          # feature maps shown per layer: the most active ones, enough to compare
    steps: int = 120           # activation-maximisation steps: the pictures stop changing by ~100
    jitter: int = 2            # pixels of random shift per step (tf-keras-vis default 4 is a lot at 28 px)


DEFAULT = TeachingConfig()


def _probe(runs_dir, run_id: str):
    """A model from the image to every conv-block output of the run's model (built once per run)."""
    import keras

    model = get_explainer(runs_dir, run_id).model
    layers = useful_layers(model)
    probe = keras.Model(model_input(model), [model.get_layer(n).output for n in layers])
    return probe, [layer_label(model, n) for n in layers]


def feature_maps(runs_dir, run_id: str, image: np.ndarray, config: TeachingConfig = DEFAULT) -> list:
    """The most active channels of each conv-block output for one image, input side first."""
    run_dir = runs.run_path(runs_dir, run_id)
    probe, labels = cached("probe", runs.model_file(run_dir), lambda: _probe(runs_dir, run_id))
    outputs = probe(np.asarray(image, np.float32).reshape(1, 28, 28, 1), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    result = []
    for label, out in zip(labels, outputs):
        maps = np.asarray(out)[0]                                  # (H, W, C)
        top = np.argsort(-maps.mean(axis=(0, 1)))[:config.channels]
        result.append((label, [to_uint8(maps[..., c]) for c in top]))
    return result


def to_uint8(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return ((values - low) / max(high - low, 1e-12) * 255).round().astype(np.uint8)


def compute_class_images(model, config: TeachingConfig | None = None) -> np.ndarray:
    """Activation maximisation of each class's logit: (classes, 28, 28) uint8."""
    config = config or DEFAULT
    import keras
    import tensorflow as tf
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.activation_maximization.input_modifiers import Jitter
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    classes = model.output_shape[-1]
    listed = keras.Model(inputs=[model.input], outputs=model.output)  # tf-keras-vis calls it with a list
    visualizer = ActivationMaximization(listed, ReplaceToLinear(), clone=True)  # (no structure warning)
    seed = tf.zeros((classes, 28, 28, 1))
    images = visualizer(CategoricalScore(list(range(classes))), seed_input=seed, steps=config.steps,
                        input_modifiers=[Jitter(jitter=config.jitter)])
    return np.stack([to_uint8(np.asarray(x)[..., 0]) for x in images])


def class_images(runs_dir, run_id: str) -> np.ndarray:
    """The stored class pictures, computed and written on first use (~17 s on 2 CPU cores for the default run)."""
    from workbench.trust import model_digest

    path = runs.run_path(runs_dir, run_id) / runs.CLASS_IMAGES
    digest = model_digest(runs_dir, run_id)
    if path.is_file():
        try:
            stored = runs.read_npz(path, ("model_digest", "images"))
        except RunError:  # damaged: computed again and rewritten
            stored = {"model_digest": None}
        if str(stored["model_digest"]) == digest:
            return stored["images"]
    images = compute_class_images(get_explainer(runs_dir, run_id).model)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, images=images, model_digest=np.array(digest))
    tmp.replace(path)
    return images
