"""The JSON API over HTTP on 127.0.0.1, against a real `workbench serve` process (gunicorn) on the
committed default run: success, batches, every bad-input case, and the OpenAPI document, with
every answer validated against that document (schemathesis).

The server runs with small limits from the environment (4 files, 3 MB per request) so the limit
cases stay cheap; it is started once for the module and stopped at the end.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, Phase, given, settings
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from model.data import CLASS_NAMES, load_raw
from test_preprocess import encode, load_benchmark, png_header_only
from workbench.classify import PHOTO_RUN_ID, run_for_photos
from workbench.limits import ApiLimits

REPO = Path(__file__).resolve().parents[1]

MAX_FILES = 4
MAX_REQUEST_BYTES = 3_000_000
START_TIMEOUT = 180   # s: gunicorn, TensorFlow and the model on a busy 2-core machine
TIMEOUT = 60          # s per request: the first prediction of a worker loads the model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(runs_dir, default_run_dir, tmp_path_factory):
    """Base URL of a `workbench serve` process on a free port; stopped (its whole group) at the end."""
    assert (default_run_dir / "model.keras").is_file(), f"no committed model in {default_run_dir}"
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "serve.log"
    env = {**os.environ, "WORKBENCH_MAX_FILES": str(MAX_FILES),
           "WORKBENCH_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "serve", "--port", str(port), "--runs-dir", str(runs_dir)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log_path)
        yield url
    finally:
        stop(process)


def wait_until_healthy(url: str, process: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"workbench serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/api/v1/health", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # still starting, or busy warming up
            pass
        time.sleep(0.5)
    pytest.fail(f"workbench serve not healthy after {START_TIMEOUT} s:\n{log_path.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # gunicorn's master and its workers: our own group
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server}/api/v1/openapi.json")


@pytest.fixture(scope="module")
def photos(data_dir):
    """Rendered JPEG photos of test images the default model gets right, with their labels."""
    raw = load_raw(data_dir, progress=False)
    render = load_benchmark().render_photo
    rng = np.random.default_rng(1)
    picks = [int(np.flatnonzero(raw["test_labels"] == label)[0]) for label in (1, 7, 8, 5)]  # distinct shapes
    return [(render(raw["test_images"][i], rng, orientation=1), int(raw["test_labels"][i])) for i in picks]


def predict(server, **kwargs) -> requests.Response:
    return requests.post(f"{server}/api/v1/predict", timeout=TIMEOUT, **kwargs)


def check_error(response: requests.Response, status: int, error: str, api_schema) -> dict:
    """A JSON error with this status and code, conforming to the OpenAPI document."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and body["detail"], body
    api_schema["/api/v1/predict"]["POST"].validate_response(response)
    return body


# ---------------------------------------------------------------------------------------------
# success

def test_health_and_models(server, api_schema):
    health = requests.get(f"{server}/api/v1/health", timeout=TIMEOUT)
    assert health.json()["status"] == "ok" and health.json()["default_run"] == "fast-default"
    api_schema["/api/v1/health"]["GET"].validate_response(health)
    models = requests.get(f"{server}/api/v1/models", timeout=TIMEOUT)
    assert models.json()["default"] == "fast-default"
    assert models.json()["photo_run"] == health.json()["photo_run"] == "photo-default"  # one name in both
    assert models.json()["models"][0]["run_id"] == "fast-default" and models.json()["models"][0]["has_model"]
    assert all(model["problems"] == [] for model in models.json()["models"])  # the committed runs are whole
    api_schema["/api/v1/models"]["GET"].validate_response(models)


def test_the_models_list_names_what_is_wrong_with_a_damaged_run(default_run_dir, tmp_path):
    import shutil

    from model import runs
    from workbench.api import describe_run

    shutil.copytree(default_run_dir, tmp_path / "damaged", ignore=shutil.ignore_patterns("*.parquet", "*.npz"))
    (tmp_path / "damaged" / runs.METRICS).write_text("{ cut short")
    (tmp_path / "damaged" / runs.MODEL).write_bytes(b"overwritten")
    described = describe_run(tmp_path, "damaged")
    assert described["recipe"] == "fast" and described["test_accuracy"] is None and described["has_model"]
    assert [p.split(":")[1].split()[0] for p in described["problems"]] == ["metrics.json", "model.keras"]
    assert "not a Keras model archive" in described["problems"][1]


def test_predict_one_photo(server, photos, api_schema):
    data, label = photos[0]
    response = predict(server, files={"file": ("trousers.jpg", data, "image/jpeg")})
    assert response.status_code == 200, response.text
    api_schema["/api/v1/predict"]["POST"].validate_response(response)
    body = response.json()
    assert body["run_id"] == run_for_photos(REPO / "runs") == PHOTO_RUN_ID  # photos: the photo-tuned run
    assert body["class_names"] == list(CLASS_NAMES)
    result = body["results"][0]
    assert result["name"] == "trousers.jpg" and result["label"] == CLASS_NAMES[label]
    assert result["inverted"] and sum(result["probabilities"]) == pytest.approx(1, abs=1e-3)
    probabilities = [c["probability"] for c in result["top"]]
    assert len(result["top"]) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert result["low_confidence"] == (result["probability"] < body["low_confidence_threshold"]
                                        or bool(result["warnings"]))
    assert Image.open(io.BytesIO(base64.b64decode(result["input_png"]))).size == (28, 28)
    assert body["timing_ms"]["total"] >= body["timing_ms"]["predict"] > 0


def test_predict_batch_multipart_and_json_agree(server, photos, api_schema):
    files = [("files", (f"photo{i}.jpg", data, "image/jpeg")) for i, (data, _) in enumerate(photos)]
    multipart = predict(server, files=files, params={"top": 10, "run": "fast-default"})
    assert multipart.status_code == 200, multipart.text
    api_schema["/api/v1/predict"]["POST"].validate_response(multipart)
    results = multipart.json()["results"]
    assert [r["name"] for r in results] == [f"photo{i}.jpg" for i in range(len(photos))]
    assert [r["label"] for r in results] == [CLASS_NAMES[label] for _, label in photos]
    assert all(len(r["top"]) == 10 for r in results)
    images = [{"name": f"photo{i}.jpg", "data": base64.b64encode(data).decode()} for i, (data, _) in enumerate(photos)]
    as_json = predict(server, json={"images": images, "top": 10, "run": "fast-default"})
    assert as_json.status_code == 200, as_json.text
    api_schema["/api/v1/predict"]["POST"].validate_response(as_json)
    assert [r["probabilities"] for r in as_json.json()["results"]] == [r["probabilities"] for r in results]


def test_predict_with_gradcam(server, photos, api_schema):
    data, _ = photos[1]
    response = predict(server, files={"file": ("sneaker.jpg", data)}, params={"gradcam": "true"})
    assert response.status_code == 200, response.text
    api_schema["/api/v1/predict"]["POST"].validate_response(response)
    overlay = Image.open(io.BytesIO(base64.b64decode(response.json()["results"][0]["gradcam_png"])))
    assert overlay.size == (112, 112) and overlay.mode == "RGB"
    assert "gradcam" in response.json()["timing_ms"]


def test_box_looks_for_the_garment_inside_it(server, photos, api_schema):
    """Two garments side by side: a box around either one gets that garment's class."""
    (left, left_label), (right, right_label) = photos[0], photos[1]
    images = [Image.open(io.BytesIO(data)).convert("RGB") for data in (left, right)]
    side = max(max(image.size) for image in images)
    pair = Image.new("RGB", (2 * side, side), "white")
    for i, image in enumerate(images):
        pair.paste(image, (i * side, 0))
    buffer = io.BytesIO()
    pair.save(buffer, format="PNG")
    for box, label in ((f"0,0,{side},{side}", left_label), (f"{side},0,{2 * side},{side}", right_label)):
        response = predict(server, files={"file": ("pair.png", buffer.getvalue())}, params={"box": box})
        assert response.status_code == 200, response.text
        api_schema["/api/v1/predict"]["POST"].validate_response(response)
        assert response.json()["results"][0]["label"] == CLASS_NAMES[label], box


def test_a_box_with_several_photos_is_refused(server, photos, api_schema):
    """A box is drawn on one photo: cutting every photo of a batch at the same place is refused."""
    files = [("file", (f"p{i}.jpg", data)) for i, (data, _) in enumerate(photos[:2])]
    response = predict(server, files=files, params={"box": "0,0,40,40"})
    detail = check_error(response, 422, "bad_box", api_schema)["detail"]
    assert "2 photos came with it" in detail and "alone" in detail
    assert predict(server, files=files[:1], params={"box": "0,0,40,40"}).status_code == 200  # one: taken


@pytest.mark.parametrize("box", ["1,2,3", "10,10,5,20", "a,b,c,d", "-1,0,5,5"])
def test_a_malformed_box_is_a_bad_parameter(server, photos, api_schema, box):
    response = predict(server, files={"file": ("p.jpg", photos[0][0])}, params={"box": box})
    assert "box must be x0,y0,x1,y1" in check_error(response, 400, "bad_parameter", api_schema)["detail"]


def test_a_photo_answer_carries_the_imagenet_view_and_imagenet_false_answers_with_the_run_alone(
        server, photos, api_schema):
    """Default: the answer joins an ImageNet classifier's view, named in the result with the run's
    own probabilities; imagenet=false (in the URL or the JSON body) gives exactly those."""
    data = photos[0][0]
    joined = predict(server, files={"file": ("t.jpg", data)})
    api_schema["/api/v1/predict"]["POST"].validate_response(joined)
    seen = joined.json()["results"][0]["imagenet"]
    assert seen["imagenet_class"] and 0 <= seen["garment_share"] <= 1
    for alone in (predict(server, files={"file": ("t.jpg", data)}, params={"imagenet": "false"}),
                  predict(server, json={"images": [{"name": "t.jpg", "data": base64.b64encode(data).decode()}],
                                        "imagenet": False})):
        assert alone.status_code == 200, alone.text
        result = alone.json()["results"][0]
        assert "imagenet" not in result
        np.testing.assert_allclose(result["probabilities"], seen["model_probabilities"], atol=1e-5)
    response = predict(server, files={"file": ("t.jpg", data)}, params={"imagenet": "maybe"})
    assert "imagenet must be true or false" in check_error(response, 400, "bad_parameter", api_schema)["detail"]


# ---------------------------------------------------------------------------------------------
# bad input: each a 4xx JSON error naming the problem

def frames_gif() -> bytes:
    frames = [Image.new("L", (64, 64), 255), Image.new("L", (64, 64), 255)]
    frames[1].paste(0, (16, 16, 48, 48))  # two different frames: Pillow drops repeated ones
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


@pytest.mark.parametrize("name, data, status, error", [
    ("empty.jpg", b"", 400, "empty"),
    ("notes.txt", b"these are my notes, not a photo\n" * 20, 415, "not_an_image"),
    ("photo.pcx", encode(Image.new("RGB", (64, 64), "white"), "PCX"), 415, "unsupported_format"),
    ("spinner.gif", frames_gif(), 415, "animated"),
    ("bomb.png", png_header_only(60_000, 60_000), 413, "too_many_pixels"),
    ("tiny.png", encode(Image.new("L", (4, 4))), 422, "too_small"),
    ("strip.png", encode(Image.new("L", (20000, 10), 255)), 422, "too_narrow"),
    ("blank.png", encode(Image.new("RGB", (64, 64), "white")), 422, "no_object"),
])
def test_bad_images_are_refused_by_name(server, api_schema, name, data, status, error):
    body = check_error(predict(server, files={"file": (name, data)}), status, error, api_schema)
    assert body["file"] == name and name in body["detail"]


def test_truncated_photo_is_refused(server, photos, api_schema):
    data, _ = photos[0]
    check_error(predict(server, files={"file": ("cut.jpg", data[: len(data) // 2])}), 422, "truncated", api_schema)


def test_one_bad_image_in_a_batch_is_named(server, photos, api_schema):
    files = [("files", ("good.jpg", photos[0][0])), ("files", ("bad.txt", b"not an image at all"))]
    body = check_error(predict(server, files=files), 415, "not_an_image", api_schema)
    assert body["file"] == "bad.txt" and body["index"] == 1


def test_request_and_batch_limits(server, photos, api_schema):
    big = predict(server, files={"file": ("huge.jpg", b"\xff" * (MAX_REQUEST_BYTES + 1))})
    check_error(big, 413, "request_too_large", api_schema)
    many = [("files", (f"p{i}.jpg", photos[0][0])) for i in range(MAX_FILES + 1)]
    check_error(predict(server, files=many), 413, "too_many_files", api_schema)


@pytest.mark.parametrize("kwargs, status, error", [
    ({"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400, "bad_json"),
    ({"json": {"images": "nope"}}, 400, "bad_json"),
    ({"json": {"images": [{"name": "x.png", "data": "%%% not base64 %%%"}]}}, 400, "bad_base64"),
    ({"json": {"images": []}}, 400, "no_images"),
    ({"files": {"other": ("", b"")}, "data": {"top": "3"}}, 400, "no_images"),
    ({"data": "file=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415,
     "unsupported_media_type"),
    ({"json": {"images": [], "top": 0}}, 400, "bad_parameter"),
    ({"json": {"images": [], "gradcam": "maybe"}}, 400, "bad_parameter"),
])
def test_bad_requests(server, api_schema, kwargs, status, error):
    check_error(predict(server, **kwargs), status, error, api_schema)


def test_json_cut_short_is_named_as_such(server, api_schema):
    cut = predict(server, data='{"images":', headers={"Content-Type": "application/json"})
    assert "not valid JSON (cut short or malformed)" in check_error(cut, 400, "bad_json", api_schema)["detail"]
    listed = predict(server, json=[1, 2])
    assert "not a JSON object" in check_error(listed, 400, "bad_json", api_schema)["detail"]
    null = predict(server, data="null", headers={"Content-Type": "application/json"})
    assert "not a JSON object" in check_error(null, 400, "bad_json", api_schema)["detail"]  # valid, not an object


@pytest.mark.parametrize("top", ["Infinity", "-Infinity", "1e400", "NaN", "2.0"])
def test_a_top_that_is_no_whole_number_is_a_400_even_infinite(server, photos, api_schema, top):
    body = '{"images": [{"name": "a.jpg", "data": "%s"}], "top": %s}' % (
        base64.b64encode(photos[0][0]).decode(), top)
    check_error(predict(server, data=body, headers={"Content-Type": "application/json"}), 400, "bad_parameter",
                api_schema)


def test_a_run_named_twice_must_agree_and_a_long_name_is_cut(server, photos, api_schema):
    image = {"name": "x" * 5000, "data": base64.b64encode(photos[0][0]).decode()}
    clash = predict(server, params={"run": "fast-default"}, json={"images": [image], "run": "photo-default"})
    assert "run is given twice" in check_error(clash, 400, "bad_parameter", api_schema)["detail"]
    same = predict(server, params={"run": "fast-default", "top": "2"},
                   json={"images": [image], "run": "fast-default", "top": 2})
    assert same.status_code == 200, same.text
    name = same.json()["results"][0]["name"]
    assert len(name) == ApiLimits().max_name_chars and name.endswith("…")
    twice = predict(server, params=[("top", "2"), ("top", "5")], files={"file": ("a.jpg", photos[0][0])})
    assert "top is given twice" in check_error(twice, 400, "bad_parameter", api_schema)["detail"]  # one URL


def test_gradcam_takes_json_booleans_and_0_or_1(server, photos, api_schema):
    image = {"name": "a.jpg", "data": base64.b64encode(photos[0][0]).decode()}
    for flag, drawn in ((1, True), (0, False), (True, True)):
        answer = predict(server, json={"images": [image], "gradcam": flag})
        assert answer.status_code == 200, answer.text
        assert ("gradcam_png" in answer.json()["results"][0]) == drawn, flag
    check_error(predict(server, json={"images": [image], "gradcam": 2}), 400, "bad_parameter", api_schema)


def test_unknown_run_is_404(server, photos, api_schema):
    body = check_error(predict(server, files={"file": ("a.jpg", photos[0][0])}, params={"run": "no-such-run"}),
                       404, "unknown_run", api_schema)
    assert "fast-default" in body["detail"]  # names what is available
    check_error(predict(server, files={"file": ("a.jpg", photos[0][0])}, params={"run": "../runs"}),
                404, "unknown_run", api_schema)
    long = check_error(predict(server, files={"file": ("a.jpg", photos[0][0])}, params={"run": "x" * 5000}),
                       404, "unknown_run", api_schema)
    assert len(long["detail"]) < 1000 and "x" * 64 + "…" in long["detail"]  # not echoed whole


def test_unknown_paths_and_methods_answer_json(server):
    missing = requests.get(f"{server}/api/v1/nothing-here", timeout=TIMEOUT)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = requests.get(f"{server}/api/v1/predict", timeout=TIMEOUT)
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    for guessed in ("/api", "/api/", "/api/openapi.json", "/api/v2/predict"):  # not the app's HTML page
        answer = requests.get(f"{server}{guessed}", timeout=TIMEOUT)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found", guessed
        assert "/api/v1/openapi.json" in answer.json()["detail"], guessed


def test_server_is_still_healthy_after_bad_input(server):
    assert requests.get(f"{server}/api/v1/health", timeout=TIMEOUT).json()["status"] == "ok"


# ---------------------------------------------------------------------------------------------
# the OpenAPI document, against generated requests

def test_openapi_document_describes_the_limits(server):
    document = requests.get(f"{server}/api/v1/openapi.json", timeout=TIMEOUT).json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {"/api/v1/health", "/api/v1/models", "/api/v1/openapi.json",
                                      "/api/v1/predict"}
    body = document["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["properties"]["images"]["maxItems"] == MAX_FILES
    assert f"{MAX_REQUEST_BYTES:,} bytes per request" in document["paths"]["/api/v1/predict"]["post"]["description"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_generated_requests_conform(server, api_schema, mode):
    """Requests generated from the document (bounded: 30 per mode, fixed seed) get documented
    statuses, content types and bodies, and never a server error. (schemathesis' pytest plugin
    does not run on pytest 9 yet, so its Hypothesis strategy is driven directly.)"""
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

    @given(case=api_schema.as_strategy(generation_mode=mode))
    @settings(max_examples=30, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def call(case):
        case.call_and_validate(base_url=server, timeout=TIMEOUT, checks=checks)

    call()
