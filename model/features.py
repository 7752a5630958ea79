"""Penultimate-layer features: what the model "sees" just before its classifier, one vector an image.

    features = penultimate_features(model, images)      # (n, d) float32, d = the last Dense's input

The embedding map (a 2-D layout of the test set) and the train/test near-duplicate search both start
here, so both use the same layer: the input of the model's final Dense layer (for the committed
compact CNN the 96 channels after global average pooling).
"""

from __future__ import annotations

import keras
import numpy as np

from model.errors import RunError

BATCH_SIZE = 1000  # images per forward pass: 10,000 test images in ten steps, a few MB each


def feature_model(model: keras.Model) -> keras.Model:
    """A model from the same input to the input of the final Dense layer (the classifier)."""
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise RunError("the model has no final Dense layer: no penultimate features to show", "no_features")
    return keras.Model(model_input(model), dense[-1].input, name="penultimate_features")


def model_input(model: keras.Model):
    """The input to build a sub-model on: the tensor itself for a single-input model, since a
    one-item list makes Keras warn "structure of `inputs` doesn't match" on every call."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def penultimate_features(model: keras.Model, images: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """(n, d) float32 features of `images` ((n, 28, 28) or (n, 28, 28, 1), pixels 0..255)."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    features = feature_model(model).predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(features, dtype=np.float32).reshape(len(x), -1)
