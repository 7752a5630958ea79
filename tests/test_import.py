"""`workbench import`: models trained elsewhere, built here in each format, imported as runs.

Each model is small and fitted briefly on real images (tanh units, so the wrong pixel scale
saturates them and the scale choice is decisive); each import is checked against the model's own
predictions on the test set, computed here with the model's own convention.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from model import runs
from model.errors import ImportModelError, RunError
from model.importer import import_model
from workbench import cli

pytestmark = pytest.mark.slow  # trains five tiny models and imports them (about a minute on 2 cores)

N_FIT = 1000   # training images for the tiny models: enough for well above chance in a second


def build_models(folder: Path, data_dir: Path) -> dict[str, Path]:
    """Every model the tests import, written in its format: name -> path."""
    import keras
    from keras import layers

    from model.data import load_raw

    keras.utils.set_random_seed(0)
    raw = load_raw(data_dir, progress=False)
    x, y = raw["train_images"][:N_FIT].astype("float32"), raw["train_labels"][:N_FIT]
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}

    def train(model, inputs, logits: bool):
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
        model.compile(keras.optimizers.Adam(3e-3), loss)
        model.fit(inputs, y, epochs=3, batch_size=50, verbose=0)
        return model

    # A notebook CNN on 28x28x1 pixels scaled to 0..1, softmax output, saved as Keras 3 .keras.
    inp = keras.Input((28, 28, 1))
    h = layers.Conv2D(8, 3, activation="tanh", name="conv_a")(inp)
    h = layers.Conv2D(8, 3, activation="tanh", name="conv_b")(h)
    h = layers.MaxPooling2D(4)(h)
    cnn = train(keras.Model(inp, layers.Dense(10, activation="softmax")(layers.Flatten()(h))), x[..., None] / 255, False)
    cnn.save(paths.setdefault("cnn", folder / "cnn01.keras"))

    # An MLP over 784 flattened 0..1 pixels returning logits.
    inp = keras.Input((784,))
    mlp = train(keras.Model(inp, layers.Dense(10)(layers.Dense(32, activation="tanh")(inp))),
                x.reshape(-1, 784) / 255, True)
    mlp.save(paths.setdefault("mlp", folder / "mlp.keras"))

    # A ResNet-style model on 32x32 RGB 0..1 images, logits: as .keras and exported to ONNX.
    inp = keras.Input((32, 32, 3))
    h = layers.Conv2D(8, 3, padding="same", activation="tanh", name="stem")(inp)
    r = layers.Conv2D(8, 3, padding="same", activation="tanh", name="block_conv")(h)
    h = layers.MaxPooling2D(4)(layers.Add(name="block_out")([h, r]))
    resnet = train(keras.Model(inp, layers.Dense(10)(layers.Flatten()(h))), rgb32(x), True)
    resnet.save(paths.setdefault("resnet", folder / "resnet32.keras"))
    resnet.export(str(paths.setdefault("onnx", folder / "resnet32.onnx")), format="onnx", verbose=False)
    resnet.export(str(paths.setdefault("savedmodel", folder / "resnet32_savedmodel")), format="tf_saved_model",
                  verbose=False)

    # A Keras 2 style .h5 full model (HDF5 with model_config): (28, 28) input in 0..255.
    inp = keras.Input((28, 28))
    h = layers.Dense(32, activation="tanh")(layers.Flatten()(layers.Rescaling(1 / 255)(inp)))
    legacy = train(keras.Model(inp, layers.Dense(10, activation="softmax")(h)), x, False)
    write_keras2_h5(legacy, paths.setdefault("h5", folder / "legacy.h5"))

    # A model with a Lambda layer: its code would run on load.
    inp = keras.Input((28, 28, 1))
    h = layers.Lambda(lambda t: t / 255.0, name="scale_by_lambda")(inp)
    lam = keras.Model(inp, layers.Dense(10, activation="softmax")(layers.Flatten()(h)))
    lam.save(paths.setdefault("lambda", folder / "lambda.keras"))
    return paths


def write_keras2_h5(model, path: Path) -> None:
    """The model as Keras 2.x wrote a full .h5 model: Keras 3's legacy HDF5 writer (the same weight
    layout), then model_config rewritten in Keras 2's config format and keras_version 2.8.0."""
    import json

    import h5py

    model.save(path)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = json.dumps(keras2_config(json.loads(f.attrs["model_config"])))
        f.attrs["keras_version"] = "2.8.0"


def keras2_config(value):
    """A Keras 3 model config in Keras 2's format: no module / registered_name, dtypes as strings,
    inbound_nodes as [[[layer, node, tensor, {}]]], InputLayer's batch_input_shape."""
    if isinstance(value, list):
        return [keras2_config(v) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get("class_name") == "DTypePolicy":
        return value["config"]["name"]
    dropped = ("module", "registered_name", "build_config", "compile_config", "optional")
    out = {("batch_input_shape" if k == "batch_shape" else k): keras2_config(v)
           for k, v in value.items() if k not in dropped}
    if "inbound_nodes" in value:
        out["inbound_nodes"] = [[[*arg["config"]["keras_history"], {}] for arg in node["args"]]
                                for node in value["inbound_nodes"]]
    return out


def rgb32(images: np.ndarray) -> np.ndarray:
    """28x28 0..255 images as the ResNet-style model takes them: 32x32 RGB 0..1 (bilinear)."""
    import keras

    rgb = np.repeat(images[..., None].astype("float32") / 255, 3, axis=-1)
    return np.asarray(keras.ops.image.resize(rgb, (32, 32)))


@pytest.fixture(scope="module")
def models(tmp_path_factory, data_dir) -> dict[str, Path]:
    return build_models(tmp_path_factory.mktemp("their-models"), data_dir)


@pytest.fixture(scope="module")
def imported(models, tmp_path_factory, data_dir) -> Path:
    """A runs folder with the CNN, MLP, ResNet-style (.keras and ONNX) and .h5 models imported."""
    from model.data import load_splits

    folder, splits = tmp_path_factory.mktemp("imported-runs"), load_splits(data_dir, progress=False)
    import_model(models["cnn"], folder, "cnn", splits=splits)
    import_model(models["mlp"], folder, "mlp", splits=splits)
    import_model(models["resnet"], folder, "resnet", input_scale="0-1", splits=splits)
    import_model(models["onnx"], folder, "onnx", input_scale="0-1", splits=splits)
    import_model(models["h5"], folder, "h5", splits=splits)
    return folder


@pytest.fixture(scope="module")
def test_set(data_dir):
    from model.data import load_raw

    raw = load_raw(data_dir, progress=False)
    return raw["test_images"], raw["test_labels"]


def own_predictions(path: Path, inputs: np.ndarray) -> np.ndarray:
    import keras

    return keras.saving.load_model(path, compile=False).predict(inputs, batch_size=1000, verbose=0).argmax(axis=1)


def check_against_own(run_dir: Path, own: np.ndarray, labels: np.ndarray) -> None:
    """The run's test predictions are the model's own; its accuracy is theirs."""
    frame = runs.read_predictions(run_dir)
    assert (frame["predicted"].to_numpy() == own).mean() >= 0.999
    accuracy = runs.read_metrics(run_dir)["test_accuracy"]
    assert accuracy == pytest.approx((own == labels).mean(), abs=1e-3)
    assert accuracy > 0.3  # the tiny models did learn, so the comparison means something


def check_complete(run_dir: Path, source: Path, model_file: str = runs.MODEL) -> dict:
    expected = {runs.CONFIG, runs.METRICS, runs.PREDICTIONS, runs.CONFUSION, runs.CONFUSION_PNG, model_file}
    assert {p.name for p in run_dir.iterdir()} == expected  # no history.csv: never trained here
    config = runs.read_config(run_dir)
    assert config["imported"]["source"] == source.name
    assert config["imported"]["size"] == source.stat().st_size
    assert config["imported"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert config["model_file"] == model_file and config["recipe"] == "imported"
    assert not [p for p in run_dir.parent.iterdir() if p.name.startswith(".import-")]
    return config


def load_standard(run_dir: Path):
    """model.keras with safe_mode, checked to be the standard flat model."""
    import keras

    model = keras.saving.load_model(run_dir / runs.MODEL, compile=False, safe_mode=True)
    assert model.input_shape == (None, 28, 28, 1) and model.inputs[0].name == "image"
    assert model.layers[-1].name == "predictions" and model.output_shape == (None, 10)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)  # flat
    return model


# ---------------------------------------------------------------------------------------------

def test_keras_cnn_on_0_1_pixels(imported, models, test_set):
    images, labels = test_set
    config = check_complete(imported / "cnn", models["cnn"])
    assert config["input_convention"] == {"layout": "hwc", "height": 28, "width": 28, "channels": 1, "scale": "0-1"}
    assert "0-1" in config["import_notes"][0] and "0-255" in config["import_notes"][0]  # both tried, reported
    assert config["logits_detected"] is False and config["softmax"].startswith("moved")
    assert config["gradcam_layer"] == "conv_b"
    load_standard(imported / "cnn")
    check_against_own(imported / "cnn", own_predictions(models["cnn"], images[..., None] / 255), labels)
    from workbench.explain import get_explainer

    heatmap = get_explainer(imported, "cnn").explain(images[:2], [0, 1])
    assert heatmap.shape == (2, 28, 28) and heatmap.max() > 0


def test_mlp_over_784_pixels_returning_logits(imported, models, test_set):
    images, labels = test_set
    config = check_complete(imported / "mlp", models["mlp"])
    assert config["input_convention"]["layout"] == "flat" and config["input_convention"]["scale"] == "0-1"
    assert config["logits_detected"] is True and config["gradcam_layer"] is None
    model = load_standard(imported / "mlp")
    probs = model.predict(images[:50, ..., None].astype("float32"), verbose=0)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)  # the softmax was added
    check_against_own(imported / "mlp", own_predictions(models["mlp"], images.reshape(-1, 784) / 255), labels)
    from model.errors import ExplainError
    from workbench.explain import get_explainer

    with pytest.raises(ExplainError, match="explanations are off"):
        get_explainer(imported, "mlp")


def test_resnet_style_rgb_32px(imported, models, test_set):
    images, labels = test_set
    config = check_complete(imported / "resnet", models["resnet"])
    assert config["input_convention"] == {"layout": "hwc", "height": 32, "width": 32, "channels": 3, "scale": "0-1"}
    assert config["logits_detected"] is True
    assert config["gradcam_layer"] == "block_out"  # the last conv output of at least 4x4 (32x32 here)
    load_standard(imported / "resnet")
    check_against_own(imported / "resnet", own_predictions(models["resnet"], rgb32(images)), labels)


def test_keras2_style_h5(imported, models, test_set):
    images, labels = test_set
    import h5py

    with h5py.File(models["h5"], "r") as f:  # the Keras 2 full-model layout
        assert f.attrs["keras_version"] == "2.8.0" and '"module"' not in f.attrs["model_config"]
    config = check_complete(imported / "h5", models["h5"])
    assert config["imported"]["format"] == "h5"
    assert config["input_convention"]["layout"] == "hw" and config["input_convention"]["scale"] == "0-255"
    check_against_own(imported / "h5", own_predictions(models["h5"], images.astype("float32")), labels)


def test_onnx_export_with_logits_runs_in_onnx_runtime(imported, models, test_set, data_dir):
    images, labels = test_set
    config = check_complete(imported / "onnx", models["onnx"], runs.ONNX_MODEL)
    assert config["imported"]["format"] == "onnx" and config["logits_detected"] is True
    assert config["input_convention"]["height"] == 32 and config["gradcam_layer"] is None
    check_against_own(imported / "onnx", own_predictions(models["resnet"], rgb32(images)), labels)
    from model.errors import ExplainError
    from workbench.explain import get_explainer
    from workbench.inference import get_predictor

    predictor = get_predictor(imported, "onnx", "keras")
    assert predictor.backend == "onnx"
    probs = predictor.predict(images[:20])
    assert probs.shape == (20, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    with pytest.raises(ExplainError, match="ONNX Runtime"):
        get_explainer(imported, "onnx")
    from model.errors import ExportError
    from model.export import export_and_check

    with pytest.raises(ExportError, match="already its model"):
        export_and_check(imported / "onnx", "tflite", data_dir=data_dir)


def test_export_works_on_an_imported_keras_run(imported, data_dir):
    from model.export import export_and_check

    path, result = export_and_check(imported / "mlp", "onnx", data_dir=data_dir)
    assert path.name == runs.ONNX_MODEL and result.within()


def test_tf_saved_model_folder_becomes_onnx(models, tmp_path, data_dir, test_set):
    images, labels = test_set
    result = import_model(models["savedmodel"], tmp_path, "tf", input_scale="0-1", data_dir=data_dir)
    config = runs.read_config(result.run_dir)
    assert config["imported"]["format"] == "savedmodel" and config["model_file"] == runs.ONNX_MODEL
    assert config["imported"]["sha256"] == hashlib.sha256((models["savedmodel"] / "saved_model.pb").read_bytes()).hexdigest()
    check_against_own(result.run_dir, own_predictions(models["resnet"], rgb32(images)), labels)


def test_lambda_layer_refused_by_name_unless_trusted(models, tmp_path, data_dir):
    with pytest.raises(ImportModelError, match="scale_by_lambda") as refused:
        import_model(models["lambda"], tmp_path, "lam", data_dir=data_dir)
    assert refused.value.code == "unsafe_model" and "--trust-model-code" in str(refused.value)
    assert list(tmp_path.iterdir()) == []
    result = import_model(models["lambda"], tmp_path, "lam", trust_code=True, input_scale="0-255", data_dir=data_dir)
    config = runs.read_config(result.run_dir)
    assert config["imported"]["trusted_code"] is True
    assert config["model_file"] == runs.ONNX_MODEL  # the code ran once; the run keeps a graph only
    assert not (result.run_dir / runs.MODEL).exists()


def write_bad_inputs(folder: Path, models: dict) -> dict:
    import keras
    from keras import layers

    (folder / "notes.txt").write_text("not a model")
    (folder / "broken.keras").write_bytes(models["cnn"].read_bytes()[:5000])  # a truncated zip
    (folder / "garbage.onnx").write_bytes(os.urandom(2000))
    inp = keras.Input((28, 28, 1))
    keras.Model(inp, layers.Dense(5)(layers.Flatten()(inp))).save(folder / "five.keras")
    inp = keras.Input((10,))
    keras.Model(inp, layers.Dense(10)(inp)).save(folder / "tabular.keras")
    return {"notes.txt": "not_a_model", "broken.keras": "corrupt_model", "garbage.onnx": "corrupt_model",
            "five.keras": "wrong_outputs", "tabular.keras": "bad_input_shape"}


def test_bad_inputs_give_one_clear_error_and_no_run_folder(models, tmp_path, data_dir):
    sources, target = tmp_path / "sources", tmp_path / "runs"
    sources.mkdir()
    target.mkdir()
    for name, code in write_bad_inputs(sources, models).items():
        with pytest.raises(ImportModelError) as failed:
            import_model(sources / name, target, "new", data_dir=data_dir)
        assert failed.value.code == code, (name, failed.value)
        assert list(target.iterdir()) == [], name
    with pytest.raises(RunError, match="not starting with a dot"):  # a hidden folder is never listed as a run
        import_model(models["cnn"], target, ".mine", data_dir=data_dir)
    assert list(target.iterdir()) == []
    (target / "taken").mkdir()
    with pytest.raises(RunError, match="already exists") as taken:
        import_model(models["cnn"], target, "taken", data_dir=data_dir)
    assert taken.value.code == "run_exists"


def test_class_order_swaps_outputs(models, imported, tmp_path, data_dir):
    order = "1,0,2,3,4,5,6,7,8,9"
    result = import_model(models["cnn"], tmp_path, "swapped", input_scale="0-1", class_order=order, data_dir=data_dir)
    plain = runs.read_predictions(imported / "cnn")[runs.PROB_COLUMNS].to_numpy()
    swapped = runs.read_predictions(result.run_dir)[runs.PROB_COLUMNS].to_numpy()
    assert np.allclose(swapped[:, [1, 0]], plain[:, [0, 1]], atol=1e-5)
    assert not [note for note in result.notes if "near chance" in note]
    shifted = import_model(models["cnn"], tmp_path, "shifted", input_scale="0-1", class_order="1,2,3,4,5,6,7,8,9,0",
                           data_dir=data_dir)  # every class read as another: accuracy near zero, and said so
    assert shifted.test_accuracy < 0.05 and any("far below chance (10 %)" in note and "class order" in note
                                                for note in shifted.notes)


def test_cli_import_prints_the_convention_and_refuses_a_taken_id(models, tmp_path, data_dir, capsys):
    args = ["import", str(models["h5"]), "--run-id", "legacy", "--runs-dir", str(tmp_path),
            "--data-dir", str(data_dir)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "imported legacy.h5 as run legacy" in out and "pixels 0-255" in out and "test accuracy" in out
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "already exists" in err


def test_a_model_trained_with_the_workbench_imports_as_itself(tmp_path, data_dir):
    """Its last layer is already named "predictions", the name the wrapper gives its output."""
    own = runs.PROJECT_RUNS_DIR / runs.DEFAULT_RUN_ID
    if not (own / runs.MODEL).is_file():
        pytest.skip("the committed default run is not here")
    result = import_model(own / runs.MODEL, tmp_path, "again", data_dir=data_dir)
    assert result.test_accuracy == pytest.approx(runs.read_metrics(own)["test_accuracy"], abs=1e-4)
    assert result.gradcam_layer == runs.read_config(own)["gradcam_layer"]
