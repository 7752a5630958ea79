"""Model shapes, layer names and the model contract, for the compact CNN and the ResNet50 classifier."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from model import runs
from model.architectures import (build_compact_cnn, build_model, build_resnet50_classifier, gradcam_layer,
                                 resnet50_gradcam_layer)
from model.recipes import RECIPES, get_recipe


def assert_contract(model: keras.Model) -> None:
    """Input "image" (None, 28, 28, 1) float32, softmax (None, 10), flat, no Lambda layers."""
    assert model.input.name == "image" or model.inputs[0].name == "image"
    assert tuple(model.input.shape) == (None, 28, 28, 1)
    assert model.input.dtype == "float32"
    assert tuple(model.output.shape) == (None, 10)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "nested model"
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    probs = np.asarray(model(np.random.default_rng(0).uniform(0, 255, (3, 28, 28, 1)).astype("float32")))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def feature_map_side(model: keras.Model, layer_name: str) -> int:
    return model.get_layer(layer_name).output.shape[1]


def test_compact_cnn_contract_and_gradcam_layer():
    model = build_compact_cnn(width=8)
    assert_contract(model)
    target = gradcam_layer("compact_cnn")
    assert feature_map_side(model, target) == 7
    assert model.get_layer(target).output.shape[-1] == 32  # 4 x width
    assert model.layers[1].name == "normalize"  # normalisation inside the model
    for name in ("conv1_conv", "conv2_down_conv", "conv2_block1_out", "conv3_block1_add", "avg_pool"):
        model.get_layer(name)


def test_compact_cnn_saves_and_loads_in_safe_mode(tmp_path):
    model = build_compact_cnn(width=8)
    x = np.random.default_rng(0).uniform(0, 255, (2, 28, 28, 1)).astype("float32")
    model.save(tmp_path / runs.MODEL)
    loaded = runs.load_model(tmp_path)  # safe_mode=True: would refuse Lambda layers
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_normalisation_maps_pixel_scale():
    model = build_compact_cnn(width=8)
    normalize = model.get_layer("normalize")
    mean_pixel = np.full((1, 28, 28, 1), 0.2860 * 255, dtype="float32")
    assert np.abs(np.asarray(normalize(mean_pixel))).max() < 1e-4


@pytest.fixture(scope="module")
def resnet64():
    return build_resnet50_classifier(input_size=64, trainable_layers=10)


def test_resnet50_classifier_is_flat_with_the_study_head(resnet64):
    assert_contract(resnet64)
    names = [layer.name for layer in resnet64.layers]
    assert names[:2] == ["image", "resize"]
    assert names[-4:] == ["avg_pool", "fc1", "fc2", "predictions"]
    assert resnet64.get_layer("fc1").units == 256 and resnet64.get_layer("fc2").units == 128
    assert resnet64.get_layer("fc1").activation.__name__ == "relu"
    assert resnet64.get_layer("predictions").activation.__name__ == "softmax"
    assert tuple(resnet64.get_layer("gray_to_bgr").output.shape) == (None, 64, 64, 3)
    assert tuple(resnet64.get_layer("conv5_block3_out").output.shape) == (None, 2, 2, 2048)


def test_resnet50_preprocessing_is_caffe(resnet64):
    sub = keras.Model(resnet64.input, resnet64.get_layer("gray_to_bgr").output)
    out = np.asarray(sub(np.full((1, 28, 28, 1), 200.0, dtype="float32")))
    np.testing.assert_allclose(out[0, 10, 10], [200 - 103.939, 200 - 116.779, 200 - 123.68], atol=1e-3)


def test_resnet50_only_last_n_base_layers_train(resnet64):
    names = [layer.name for layer in resnet64.layers]
    base = resnet64.layers[names.index("conv1_pad"):names.index("avg_pool")]
    assert [layer.trainable for layer in base[-10:]] == [True] * 10
    assert not any(layer.trainable for layer in base[:-10])
    assert all(resnet64.get_layer(n).trainable for n in ("fc1", "fc2", "predictions"))


def test_resnet50_gradcam_layer_leaves_a_usable_map(resnet64):
    assert resnet50_gradcam_layer(224) == "conv5_block3_out"
    assert resnet50_gradcam_layer(64) == "conv3_block4_out"
    assert feature_map_side(resnet64, resnet50_gradcam_layer(64)) >= 7
    cpu = RECIPES["resnet50-cpu"]
    assert feature_map_side(resnet64, gradcam_layer("resnet50", cpu.input_size)) >= 7


def test_study_recipe_builds_compiles_and_takes_a_step():
    """The study recipe (224 px, last 10 layers trainable) runs one real training step on 4 images."""
    from model.train import build_and_compile

    recipe = get_recipe("study", weights="none")
    model = build_and_compile(recipe, steps_per_epoch=10)
    assert tuple(model.get_layer("conv5_block3_out").output.shape) == (None, 7, 7, 2048)
    x = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
    y = np.eye(10)[[0, 1, 2, 3]]
    before = model.get_layer("fc2").get_weights()[0].copy()
    frozen_before = model.get_layer("conv1_conv").get_weights()[0].copy()
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss).all()
    assert not np.allclose(model.get_layer("fc2").get_weights()[0], before)
    np.testing.assert_array_equal(model.get_layer("conv1_conv").get_weights()[0], frozen_before)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg")
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("slow")
    with pytest.raises(ValueError, match="input size"):
        build_resnet50_classifier(input_size=16)


@pytest.mark.parametrize("shape", [(16, 5, 5, 6), (3, 2, 2, 4)])
def test_fused_batch_norm_trains_and_predicts_like_the_plain_layer(shape):
    """Same outputs, gradients and moving statistics as keras' BatchNormalization, in training and inference."""
    import tensorflow as tf

    from model.architectures import FusedBatchNormalization

    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(3.0, 2.0, shape).astype("float32"))
    upstream = tf.constant(rng.normal(size=shape).astype("float32"))
    plain = keras.layers.BatchNormalization(momentum=0.9)
    fused = FusedBatchNormalization(momentum=0.9)
    plain.build(shape), fused.build(shape)
    plain.set_weights([rng.uniform(0.5, 2, shape[-1]), rng.normal(size=shape[-1]),
                       rng.normal(size=shape[-1]), rng.uniform(0.5, 2, shape[-1])])
    fused.set_weights(plain.get_weights())

    results = []
    for layer in (plain, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y, *grads, layer.moving_mean, layer.moving_variance, layer(x, training=False)])
    for ours, theirs in zip(results[1], results[0]):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-4, atol=1e-4)
    graph = tf.function(lambda t: fused(t, training=True)).get_concrete_function(x).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}, "the fused kernel is used"


def test_fused_batch_norm_keeps_the_mixed_precision_compute_dtype():
    from model.architectures import FusedBatchNormalization

    layer = FusedBatchNormalization(dtype="mixed_bfloat16")
    y = layer(np.ones((4, 3, 3, 2), "float32") * np.arange(4).reshape(4, 1, 1, 1), training=True)
    assert y.dtype == "bfloat16" and layer.moving_mean.dtype == "float32"
