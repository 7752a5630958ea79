"""`workbench import` without trained models: shapes and conventions, hand-made ONNX graphs (a
PyTorch-style channels-first one, one with external data), nested Keras models, the class order,
the app's upload checks and unfinished import folders. Fast: nothing is trained here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model import runs
from model.errors import ImportModelError, RunError
from model.importer import import_model, parse_class_order


@pytest.fixture(scope="module")
def test_set(data_dir):
    from model.data import load_raw

    raw = load_raw(data_dir, progress=False)
    return raw["test_images"], raw["test_labels"]


def test_class_order_parsing():
    assert parse_class_order(None) is None and parse_class_order("0,1,2,3,4,5,6,7,8,9") is None
    assert parse_class_order("1,0,2,3,4,5,6,7,8,9") == [1, 0, 2, 3, 4, 5, 6, 7, 8, 9]
    assert parse_class_order("Trouser,T-shirt/top,2,3,4,5,6,7,8,9")[:2] == [1, 0]
    for bad in ("0,1,2", "0,0,2,3,4,5,6,7,8,9", "Hat,1,2,3,4,5,6,7,8,9"):
        with pytest.raises(ImportModelError):
            parse_class_order(bad)


def test_nested_base_model_is_flattened_with_imagenet_preprocessing():
    """The study's shape: Sequential([ResNet-like base model, pooling, Dense softmax]) at 32 px RGB."""
    import keras
    from keras import layers

    from model.import_formats import input_convention
    from model.import_keras import gradcam_layer, wrap_keras

    base_in = keras.Input((32, 32, 3))
    base = keras.Model(base_in, layers.Conv2D(4, 3, padding="same", name="base_conv")(base_in), name="base")
    model = keras.Sequential([keras.Input((32, 32, 3)), base, layers.GlobalAveragePooling2D(),
                              layers.Dense(10, activation="softmax")])
    wrapped = wrap_keras(model, input_convention(model.input_shape, "imagenet"), "linear")
    names = [layer.name for layer in wrapped.layers]
    assert "base" not in names and "base_conv" in names and names[-1] == "predictions"
    assert not any(isinstance(layer, keras.Model) for layer in wrapped.layers)
    assert gradcam_layer(wrapped) == "base_conv"
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype("float32")
    rgb = np.repeat(images / 255, 3, axis=-1)
    expected = model.predict((np.asarray(keras.ops.image.resize(rgb, (32, 32))) - [0.485, 0.456, 0.406])
                             / [0.229, 0.224, 0.225], verbose=0)
    assert np.allclose(wrapped.predict(images, verbose=0), expected, atol=1e-5)


def torch_style_onnx(path: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A PyTorch-style ONNX model built by hand: input (N, 1, 28, 28) in 0..1, a linear layer, logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights, bias = rng.normal(0, 0.05, (784, 10)).astype("float32"), rng.normal(0, 0.1, 10).astype("float32")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "w"], ["mm"]),
         helper.make_node("Add", ["mm", "b"], ["logits"])], "torch_linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return weights, bias


def test_pytorch_style_channels_first_onnx(tmp_path, data_dir, test_set):
    images, _ = test_set
    weights, bias = torch_style_onnx(tmp_path / "torch.onnx")
    result = import_model(tmp_path / "torch.onnx", tmp_path / "runs", "torch", input_scale="0-1",
                          class_order="1,0,2,3,4,5,6,7,8,9", data_dir=data_dir)
    assert result.convention == {"layout": "chw", "height": 28, "width": 28, "channels": 1, "scale": "0-1"}
    logits = images.reshape(-1, 784) / 255 @ weights + bias
    own = logits[:, [1, 0, 2, 3, 4, 5, 6, 7, 8, 9]]  # output 0 is class 1 and output 1 class 0
    probs = runs.read_predictions(result.run_dir)[runs.PROB_COLUMNS].to_numpy()
    expected = np.exp(own - own.max(axis=1, keepdims=True))
    assert np.allclose(probs, expected / expected.sum(axis=1, keepdims=True), atol=1e-4)


@pytest.mark.parametrize("shape, layout", [((None, 28, 28), "hw"), ((None, 784), "flat"), ((None, 64, 64, 3), "hwc"),
                                           (("N", 3, 224, 224), "chw"), ((None, None, None, 1), "hwc")])
def test_input_conventions_from_shapes(shape, layout):
    from model.import_formats import input_convention

    conv = input_convention(shape)
    assert conv.layout == layout and conv.channels in (1, 3) and conv.height >= 28


@pytest.mark.parametrize("shape", [(None, 10), (None, 28, 28, 2), (None, 5, 28, 28, 1), (None, 783)])
def test_input_shapes_that_cannot_take_an_image_are_refused(shape):
    from model.import_formats import input_convention

    with pytest.raises(ImportModelError, match="cannot take a 28x28 image"):
        input_convention(shape)


def test_app_uploads_are_checked_before_an_import_starts(tmp_path, monkeypatch):
    from workbench.imports import check_upload

    (tmp_path / "taken").mkdir()
    assert check_upload(tmp_path, "../../their model.keras", 100, "new") == "their model.keras"
    monkeypatch.setenv("WORKBENCH_MAX_MODEL_BYTES", "1000")
    cases = [("notes.txt", 10, "new", "not_a_model"), ("big.onnx", 1001, "new", "too_large"),
             ("empty.h5", 0, "new", "empty"), ("ok.keras", 10, "taken", "run_exists"),
             ("ok.keras", 10, "../escape", "run_error")]
    for name, size, run_id, code in cases:
        with pytest.raises((ImportModelError, RunError)) as refused:
            check_upload(tmp_path, name, size, run_id)
        assert refused.value.code == code, (name, refused.value)


def test_an_unfinished_import_folder_is_not_a_run(tmp_path):
    hidden = tmp_path / ".import-half-abc123"
    hidden.mkdir()
    runs.write_json(hidden, runs.CONFIG, {"run_id": "half"})
    assert runs.list_runs(tmp_path) == []


def test_onnx_with_external_data_files_is_refused(tmp_path, data_dir):
    import onnx

    torch_style_onnx(tmp_path / "torch.onnx")
    model = onnx.load(str(tmp_path / "torch.onnx"))
    onnx.save_model(model, str(tmp_path / "split.onnx"), save_as_external_data=True, location="weights.bin",
                    size_threshold=0)
    with pytest.raises(ImportModelError, match="separate files") as refused:
        import_model(tmp_path / "split.onnx", tmp_path / "runs", "split", data_dir=data_dir)
    assert refused.value.code == "unsupported_model" and not (tmp_path / "runs" / "split").exists()
