"""(Runs after the browser tests: an app built here left later apps in the same pytest process without
the Predict page's trust callbacks; cause not found yet.) 4xx and messages instead of 500s: wrong-content run files, crafted Dash callback payloads, nested JSON,
the Predict page's ?test= link, and `workbench predict` run from another folder."""

from __future__ import annotations

import base64
import io
import json
import shutil

import pandas as pd
import pytest
from PIL import Image, ImageDraw

from model import runs
from model.runs import RunError
from workbench import cli
from workbench.app import create_app
from workbench.images import DEFAULT_OPACITY


@pytest.fixture(scope="module")
def app_runs(tmp_path_factory, default_run_dir):
    folder = tmp_path_factory.mktemp("runs")
    shutil.copytree(default_run_dir, folder / "fast-default")
    return folder


@pytest.fixture(scope="module")
def client(app_runs, data_dir):
    return create_app(app_runs, data_dir=data_dir).server.test_client()


def broken_copy(app_runs, name: str):
    target = app_runs / f"broken-{name}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(app_runs / "fast-default", target)
    return target


WRONG_CONTENT = [
    (runs.METRICS, lambda d: (d / runs.METRICS).write_text("{}"), runs.read_metrics, "lacks 'test_accuracy'"),
    (runs.METRICS, lambda d: (d / runs.METRICS).write_text('{"test_accuracy": "high", "per_class": 3}'),
     runs.read_metrics, "test_accuracy should be a number from 0 to 1, found 'high'"),
    (runs.METRICS, lambda d: (d / runs.METRICS).write_text('{"test_accuracy": NaN}'),  # Python's json reads
     runs.read_metrics, "test_accuracy should be a number from 0 to 1, found nan"),   # NaN; JSON.parse does not
    (runs.METRICS, lambda d: (d / runs.METRICS).write_text('{"test_accuracy": 0.9, "test_accuracy_ci95": [2, -1]}'),
     runs.read_metrics, "test_accuracy_ci95 should be a list of two numbers from 0 to 1, the lower first"),
    (runs.METRICS, lambda d: edit_json(d, runs.METRICS, lambda m: m["reliability"]["bin_count"].pop()),
     runs.read_metrics, "reliability should be an object with lists"),
    (runs.CONFIG, lambda d: edit_json(d, runs.CONFIG, lambda c: c.update(imported="false")), runs.read_config,
     "imported should be an object (where the model came from), found 'false'"),
    (runs.CONFUSION, lambda d: (d / runs.CONFUSION).write_text(
        "," + ",".join(map(str, range(10))) + "\n" + "".join(f"{r}," + ",".join(["-885"] * 10) + "\n" for r in range(10))),
     runs.read_confusion, "counts should be at least 0, found -885"),
    (runs.CONFIG, lambda d: runs.write_json(d, runs.CONFIG, {"class_names": ["a", "b"]}), runs.read_config,
     "class_names should be a list of 10 strings"),
    (runs.HISTORY, lambda d: (d / runs.HISTORY).write_text(
        "epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds\n1,0.5,0.8,oops,0.8,0.1,3\n"),
     runs.read_history, "column val_loss should hold numbers, found 'oops' in row 1"),
    (runs.HISTORY, lambda d: (d / runs.HISTORY).write_text("epoch,loss,accuracy,val_loss,val_accuracy\n"),
     runs.read_history, "no epochs, only its header"),
    (runs.PREDICTIONS, lambda d: shift_index(d, 10_000), runs.read_predictions,
     "index should be a whole number from 0 to 9999, found 10000"),
]


def edit_json(run_dir, name: str, change) -> None:
    data = json.loads((run_dir / name).read_text())
    change(data)
    runs.write_json(run_dir, name, data)


def shift_index(run_dir, value: int) -> None:
    frame = pd.read_parquet(run_dir / runs.PREDICTIONS)
    frame.loc[0, "index"] = value
    frame.to_parquet(run_dir / runs.PREDICTIONS, index=False)


@pytest.mark.parametrize("name, damage, reader, expected", WRONG_CONTENT,
                         ids=["metrics-empty", "metrics-types", "metrics-nan", "metrics-interval", "metrics-reliability",
                              "config-imported", "confusion-negative", "config", "history", "history-empty",
                              "predictions"])
def test_each_wrong_content_file_is_named(app_runs, name, damage, reader, expected):
    run_dir = broken_copy(app_runs, name.split(".")[0])
    damage(run_dir)
    with pytest.raises(RunError) as caught:
        reader(run_dir)
    assert f"{name} has wrong content: {expected}" in str(caught.value)


def test_the_health_list_loads_the_model(app_runs, client):
    from workbench import artifacts

    run_dir = broken_copy(app_runs, "model")
    data = (run_dir / runs.MODEL).read_bytes()
    (run_dir / runs.MODEL).write_bytes(data[: len(data) // 2])  # truncated: present, but does not load
    status = dict(artifacts.check_run(app_runs, run_dir.name))
    assert status[runs.MODEL] and "model.keras is corrupt" in status[runs.MODEL]
    assert dict(artifacts.check_run(app_runs, "fast-default"))[runs.MODEL] is None


def callback(client, outputs: list[str], inputs: list[tuple[str, str, object]], changed: str, state=()):
    ids = [o.rsplit(".", 1) for o in outputs]
    body = {"output": "..%s.." % "...".join(outputs) if len(outputs) > 1 else outputs[0],
            "outputs": [{"id": i, "property": p} for i, p in ids] if len(outputs) > 1
            else {"id": ids[0][0], "property": ids[0][1]},
            "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
            "state": [{"id": i, "property": p, "value": v} for i, p, v in state], "changedPropIds": [changed]}
    return client.post("/_dash-update-component", json=body)


MATRIX = ["errors-matrix.figure", "errors-table.children", "errors-pairs.children", "errors-problem.children"]
GALLERY = ["errors-gallery.children", "errors-gallery-title.children", "errors-page.max_value",
           "errors-page-col.className"]


def test_crafted_callback_payloads_get_a_message_or_a_4xx(client):
    # a number where the run id belongs: the page says the id is invalid
    answer = callback(client, MATRIX, [("run-store", "data", 5), ("errors-norm", "value", "counts"),
                                       ("errors-cell", "data", None)], "run-store.data")
    assert answer.status_code == 200 and "invalid run id 5" in answer.get_data(as_text=True)
    # a matrix cell outside the 10 classes: the gallery prompt, not a crash
    answer = callback(client, GALLERY, [("errors-cell", "data", {"true": 99, "pred": 1}),
                                        ("errors-page", "active_page", "x"), ("errors-overlay", "value", False)],
                      "errors-cell.data", state=[("run-store", "data", "fast-default")])
    assert answer.status_code == 200 and "errors-prompt" in answer.get_data(as_text=True)
    # an unknown output, a body that is not a callback at all: 400, not 500
    assert client.post("/_dash-update-component", json={"output": "x.y"}).status_code == 400
    assert client.post("/_dash-update-component", json=[1, 2]).status_code == 400


def test_nested_json_is_a_400_everywhere(client):
    nested = "[" * 100_000 + "]" * 100_000
    for path in ("/api/v1/predict", "/_dash-update-component"):
        answer = client.post(path, data=nested, content_type="application/json")
        assert answer.status_code == 400, path
        assert "nested too deeply" in answer.get_json()["detail"]


def test_api_root_is_the_apis_json_404(client):
    answer = client.get("/api/v1")
    assert answer.status_code == 404 and answer.get_json()["error"] == "not_found"


def garment_png() -> bytes:
    image = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(image).rectangle((16, 8, 48, 56), fill=220)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_base64_with_line_breaks_is_accepted(client):
    text = base64.encodebytes(garment_png()).decode("ascii")  # MIME: a line break every 76 characters
    assert "\n" in text.strip()
    answer = client.post("/api/v1/predict", json={"images": [{"name": "wrapped.png", "data": text}]})
    assert answer.status_code == 200, answer.get_json()


@pytest.mark.parametrize("test, title, words", [
    ("99999", "No such test image", "test image 99999 does not exist: the test set has images 0 to 9,999"),
    ("abc", "No such test image", "?test= needs a test image number from 0 to 9,999; received 'abc'"),
    ("9" * 4300, "No such test image", "?test= needs a test image number"),
])
def test_predict_test_links_say_what_is_wrong(client, test, title, words):
    import sys

    import dash

    # The module Dash imported for /predict (importing pages.predict here would register the page a
    # second time under another module name, and every later app would refuse the duplicate path).
    predict_page = sys.modules[next(p["module"] for p in dash.page_registry.values() if p["path"] == "/predict")]

    with client.application.test_request_context("/predict"):
        store = predict_page.test_from_url(test)
        assert store["errors"] and words in store["errors"][0] and not store["items"]
        assert predict_page.message_title(store) == title
        assert predict_page.message_title({"items": [{}], "errors": ["x"]}) == "Some files were not used"
        assert predict_page.message_title({"items": [{}], "errors": ["x"], "title": "Box"}) == "Box"
        assert predict_page.valid_opacity("x") == DEFAULT_OPACITY


def test_cli_predict_finds_the_default_run_from_another_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "shirt.png").write_bytes(garment_png())
    monkeypatch.chdir(tmp_path)
    assert cli.main(["predict", "shirt.png", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["label"]
    assert cli.main(["predict", "shirt.png", "--runs-dir", str(tmp_path)]) != 0
    assert "--runs-dir" in capsys.readouterr().err


def test_the_committed_run_matches_the_schema(default_run_dir):
    for reader in (runs.read_config, runs.read_metrics, runs.read_history, runs.read_predictions):
        reader(default_run_dir)  # no RunError: the schema describes what training writes


@pytest.mark.parametrize("shape_in, classes, words", [
    ((32, 32, 3), 10, "model.keras takes (None, 32, 32, 3), a run's model takes (None, 28, 28, 1)"),
    ((28, 28, 1), 3, "model.keras gives (None, 3), a run's model gives (None, 10)"),
])
def test_a_model_of_another_shape_is_named_when_it_loads(app_runs, shape_in, classes, words):
    """A valid Keras file holding another model loaded fine and failed deep in a prediction (a 500)."""
    import keras

    run_dir = broken_copy(app_runs, "shape")
    inputs = keras.Input(shape_in)
    keras.Model(inputs, keras.layers.Dense(classes)(keras.layers.Flatten()(inputs))).save(run_dir / runs.MODEL)
    with pytest.raises(RunError) as caught:
        runs.load_model(run_dir)
    assert words in str(caught.value) and "workbench import" in str(caught.value)


def test_a_missing_onnx_model_and_a_missing_keras_model_are_named(app_runs, data_dir):
    """config.json naming a model.onnx that is not there; a deleted model.keras under the Map."""
    from model import embedding
    from workbench.inference import get_predictor

    run_dir = broken_copy(app_runs, "onnx")
    edit_json(run_dir, runs.CONFIG, lambda c: c.update(model_file=runs.ONNX_MODEL))
    with pytest.raises(RunError, match="model.onnx is missing"):
        get_predictor(app_runs, run_dir.name)
    run_dir = broken_copy(app_runs, "keras")
    (run_dir / runs.MODEL).unlink()
    with pytest.raises(RunError, match="model.keras is missing"):  # was a FileNotFoundError: "Computing..." forever
        embedding.model_key(run_dir)


def test_photos_go_to_the_default_run_when_the_photo_run_is_damaged(tmp_path, default_run_dir):
    from workbench.classify import PHOTO_RUN_ID, run_for_photos

    shutil.copytree(default_run_dir, tmp_path / PHOTO_RUN_ID)
    model = tmp_path / PHOTO_RUN_ID / runs.MODEL
    model.write_bytes(model.read_bytes()[:500_000])  # cut short: not a whole archive
    assert run_for_photos(tmp_path) == PHOTO_RUN_ID  # the only run: its error is the answer
    shutil.copytree(default_run_dir, tmp_path / default_run_dir.name)
    assert run_for_photos(tmp_path) == default_run_dir.name
    assert run_for_photos(tmp_path, PHOTO_RUN_ID) == PHOTO_RUN_ID  # asked for by name: as asked
