"""The "Import a model" page in headless Chromium, then every page and the API on the imported run.

    pytest --headless tests/test_import_browser.py

A small MLP (784 flattened 0..1 pixels, logits) is trained here, uploaded through the form and
imported in the background; the run selector then shows it, and the pages work on it: overview,
errors, training (no history), predict (explanations off, saying why), and the JSON API.
"""

from __future__ import annotations

import io
import time

import pytest
import requests
from PIL import Image

from model import runs
from browser_helpers import WAIT, fresh, open_page, start, text_of, until

pytestmark = pytest.mark.browser

IMPORT_WAIT = 180  # s: the import evaluates 10,000 test images on a busy 2-core machine


def their_mlp(folder, data_dir):
    """An MLP trained elsewhere: 784 pixels scaled to 0..1, logits, saved as .keras."""
    import keras
    from keras import layers

    from model.data import load_raw

    keras.utils.set_random_seed(0)
    raw = load_raw(data_dir, progress=False)
    inp = keras.Input((784,))
    model = keras.Model(inp, layers.Dense(10)(layers.Dense(32, activation="tanh")(inp)))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(raw["train_images"][:1000].reshape(-1, 784) / 255, raw["train_labels"][:1000], epochs=3, verbose=0)
    model.save(folder / "their_mlp.keras")
    return folder / "their_mlp.keras"


def png_bytes(data_dir) -> bytes:
    from model.data import load_raw

    buffer = io.BytesIO()
    Image.fromarray(load_raw(data_dir, progress=False)["test_images"][0]).save(buffer, format="PNG")
    return buffer.getvalue()


def upload_and_import(duo, path, run_id: str) -> None:
    duo.wait_for_element("#import-upload input[type=file]", timeout=WAIT).send_keys(str(path))
    duo.wait_for_contains_text("#import-file", path.name, timeout=WAIT)
    field = duo.find_element("#import-run-id")
    field.clear()
    field.send_keys(run_id)
    duo.find_element("#import-start").click()


def test_import_form_then_every_page_and_the_api(dash_duo, tmp_path, data_dir):
    from workbench.app import create_app

    runs_dir, sources = tmp_path / "runs", tmp_path / "sources"
    runs_dir.mkdir()
    sources.mkdir()
    model_path = their_mlp(sources, data_dir)
    (sources / "notes.txt").write_text("not a model")
    dash_duo.driver.set_window_size(1440, 1100)
    start(dash_duo, create_app(runs_dir, data_dir=data_dir))
    open_page(dash_duo, "/import")
    time.sleep(3 * 0.7)  # a few poll intervals: a page just opened has no import to report on
    assert text_of(dash_duo, "#import-status") == "", "the status speaks before any import"

    upload_and_import(dash_duo, sources / "notes.txt", "notes")  # refused at once, by name
    dash_duo.wait_for_contains_text("#import-status .problem", "notes.txt is not a model file", timeout=WAIT)
    upload_and_import(dash_duo, model_path, "their-mlp")
    until(lambda: dash_duo.find_elements("#import-done") or dash_duo.find_elements("#import-failed"),
          timeout=IMPORT_WAIT)
    status = text_of(dash_duo, "#import-status")
    assert "Imported" in status and "logits" in status and "explanations are off" in status, status
    until(lambda: "their-mlp" in text_of(dash_duo, "#run-select"), timeout=WAIT)
    assert runs.list_runs(runs_dir) == ["their-mlp"]
    assert dash_duo.find_element("#import-done a").get_attribute("href").endswith("/?run=their-mlp")  # a link alone
    run_dir = runs_dir / "their-mlp"

    open_page(dash_duo, "/")
    accuracy = runs.read_metrics(run_dir)["test_accuracy"]
    dash_duo.wait_for_contains_text("#overview-body", f"{accuracy:.2%}", timeout=WAIT)
    assert not dash_duo.find_elements(".run-problems")  # a complete run: no missing history.csv alarm
    assert "their_mlp.keras" in text_of(dash_duo, "#overview-body")

    open_page(dash_duo, "/training")
    dash_duo.wait_for_contains_text("#training-problem", "imported model: no training history", timeout=WAIT)

    open_page(dash_duo, "/errors")
    dash_duo.wait_for_element("#errors-matrix .nsewdrag", timeout=WAIT)
    dash_duo.wait_for_element("#errors-table table", timeout=WAIT)

    open_page(dash_duo, "/predict")
    dash_duo.wait_for_element("#predict-random", timeout=WAIT).click()
    dash_duo.wait_for_contains_text("#predict-cam-caption", "explanations are off", timeout=WAIT)
    until(lambda: len(dash_duo.find_elements("#predict-bars .bars .point")) == 20, timeout=WAIT)  # 10 bars + 10 invisible row hit areas

    open_page(dash_duo, "/report")
    dash_duo.wait_for_contains_text("#report-body", "input_convention", timeout=WAIT)
    assert "imported\ntheir_mlp.keras" in text_of(dash_duo, "#report-body")  # the training card: not "0 img/s"
    assert "explanations are off" in text_of(dash_duo, "#report-trust")  # not a command that cannot work

    api = f"{dash_duo.server_url}/api/v1/predict?run=their-mlp"
    answer = requests.post(api, files={"file": ("shoe.png", png_bytes(data_dir))}, timeout=60)
    assert answer.status_code == 200 and len(answer.json()["results"][0]["probabilities"]) == 10, answer.text
    refused = requests.post(api + "&gradcam=true", files={"file": ("shoe.png", png_bytes(data_dir))}, timeout=60)
    assert refused.status_code == 422 and refused.json()["error"] == "explanations_off", refused.text
    assert fresh(lambda: dash_duo.get_logs()) == [], "browser console errors"
