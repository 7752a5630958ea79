"""Penultimate features: the input of the final Dense layer, so the classifier applied to them gives the model's output."""

import keras
import numpy as np
import pytest

from model.errors import RunError
from model.features import penultimate_features


def test_features_feed_the_classifier_to_the_models_output(default_run_dir):
    model = keras.saving.load_model(default_run_dir / "model.keras")
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    feats = penultimate_features(model, images)
    dense = model.get_layer("predictions")
    assert feats.shape == (5, dense.kernel.shape[0])
    np.testing.assert_allclose(np.asarray(dense(feats)), model.predict(images[..., None].astype("float32"), verbose=0),
                               atol=1e-4)


def test_a_model_without_dense_layer_is_refused():
    inputs = keras.Input((28, 28, 1))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(RunError, match="no final Dense"):
        penultimate_features(model, np.zeros((1, 28, 28)))
