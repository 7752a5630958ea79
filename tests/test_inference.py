"""Predictors: the Keras, ONNX Runtime and TFLite backends behind get_predictor, on a copy of the default run."""

from __future__ import annotations

import io
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model import export, runs
from model.data import load_splits
from model.runtimes import BACKENDS, KerasPredictor, TFLitePredictor, as_model_input, predictor_for_file
from workbench.inference import exported_predictor, get_predictor


@pytest.fixture(scope="module")
def test_images(data_dir):
    split = load_splits(data_dir, progress=False).test
    return split.images[:300], split.labels[:300]


@pytest.fixture()
def runs_copy(default_run_dir, tmp_path):
    """A writable runs folder holding a copy of the default run's config and model (no exports)."""
    if not (default_run_dir / runs.MODEL).is_file():
        pytest.fail(f"the committed default model is missing: {default_run_dir / runs.MODEL}")
    folder = tmp_path / "runs" / "fast-default"
    folder.mkdir(parents=True)
    for name in (runs.CONFIG, runs.MODEL):
        shutil.copy2(default_run_dir / name, folder / name)
    return folder.parent


def test_backends_agree_through_get_predictor(runs_copy, test_images):
    images, labels = test_images
    probs = {backend: get_predictor(runs_copy, "fast-default", backend).predict(images) for backend in BACKENDS}
    for backend, p in probs.items():
        assert p.shape == (300, 10) and p.dtype == np.float32, backend
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(p, probs["keras"], atol=1e-4, err_msg=backend)
    assert np.mean(probs["onnx"].argmax(1) == labels) > 0.5  # a trained model, not noise
    assert get_predictor(runs_copy, "fast-default", "onnx").backend == "onnx"
    assert get_predictor(runs_copy, "fast-default", "onnx") is get_predictor(runs_copy, "fast-default", "onnx")


def test_onnx_backend_exports_on_first_use_and_when_stale(runs_copy, test_images):
    run_dir = runs_copy / "fast-default"
    onnx_file = run_dir / "model.onnx"
    assert not onnx_file.exists()
    get_predictor(runs_copy, "fast-default", "onnx")
    assert onnx_file.is_file()
    # a newer model.keras makes the export stale: the next predictor re-exports it
    old = (run_dir / runs.MODEL).stat().st_mtime - 100
    os.utime(onnx_file, (old, old))
    assert export.is_stale(run_dir, "onnx")
    os.utime(run_dir / runs.MODEL)
    get_predictor(runs_copy, "fast-default", "onnx").predict(test_images[0][:2])
    assert onnx_file.stat().st_mtime > old and not export.is_stale(run_dir, "onnx")


def test_concurrent_first_requests_share_one_export(runs_copy, test_images):
    images = test_images[0][:8]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda i: get_predictor(runs_copy, "fast-default", "onnx").predict(images[i:i + 1]),
                                range(6)))
    expected = KerasPredictor(runs_copy / "fast-default").predict(images[:6])
    np.testing.assert_allclose(np.concatenate(results), expected, atol=1e-4)
    assert sorted(p.name for p in (runs_copy / "fast-default").iterdir()) == [runs.CONFIG, runs.MODEL, "model.onnx"]


def test_corrupt_onnx_file_gives_clear_error(runs_copy):
    onnx_file = runs_copy / "fast-default" / "model.onnx"
    onnx_file.write_bytes(b"not an onnx model")  # newer than model.keras, so it is not re-exported
    expected = rf"model.onnx is unreadable .*`workbench export fast-default --format onnx --runs-dir {runs_copy}`"
    with pytest.raises(export.ExportError, match=expected):
        get_predictor(runs_copy, "fast-default", "onnx")


def test_corrupt_quantized_tflite_names_its_command(runs_copy):
    path = runs_copy / "fast-default" / "model.int8.tflite"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(export.ExportError, match="`workbench export fast-default --format tflite --quantize int8 "
                                                 f"--runs-dir {runs_copy}`"):  # a tmp folder: named, so it works
        exported_predictor(runs_copy / "fast-default", "tflite", "int8")


def test_missing_quantized_export_names_the_command(runs_copy):
    with pytest.raises(export.ExportError, match="workbench export fast-default --format tflite --quantize int8"):
        exported_predictor(runs_copy / "fast-default", "tflite", "int8")


def test_unknown_backend_and_missing_run(runs_copy):
    with pytest.raises(ValueError, match="unknown backend 'torch'"):
        get_predictor(runs_copy, "fast-default", "torch")
    with pytest.raises(runs.RunError, match="not found"):
        get_predictor(runs_copy, "no-such-run", "onnx")
    with pytest.raises(ValueError, match="no runtime for model.keras"):
        predictor_for_file(runs_copy / "fast-default" / runs.MODEL)


def test_inputs_are_checked_and_single_images_accepted(runs_copy, test_images):
    predictor = get_predictor(runs_copy, "fast-default", "onnx")
    image = test_images[0][0]
    np.testing.assert_allclose(predictor.predict(image), predictor.predict(image[None, ..., None]), atol=1e-6)
    with pytest.raises(ValueError, match=r"received \(1, 32, 32"):
        predictor.predict(np.zeros((1, 32, 32), np.uint8))
    assert as_model_input(np.full((2, 28, 28), 255, np.uint8)).max() == 255.0  # raw pixels, no scaling


def test_keras_backend_traces_once_for_all_batch_sizes(runs_copy, test_images):
    predictor = KerasPredictor(runs_copy / "fast-default")
    images = test_images[0]
    for n in (1, 7, 64, 1):
        np.testing.assert_allclose(predictor.predict(images[:n]),
                                   np.asarray(predictor.model(as_model_input(images[:n]))), atol=1e-5)
    assert predictor._predict.experimental_get_tracing_count() == 1


def test_tflite_predictor_is_safe_across_threads_and_batch_sizes(runs_copy, test_images):
    run_dir = runs_copy / "fast-default"
    predictor = exported_predictor(run_dir, "tflite")
    images = test_images[0]
    expected = KerasPredictor(run_dir).predict(images)
    jobs = [(i % 50, 1 + (i * 7) % 64) for i in range(60)]  # (start, batch size) pairs, sizes vary
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: predictor.predict(images[job[0]:job[0] + job[1]]), jobs))
    for (start, size), probs in zip(jobs, results):
        np.testing.assert_allclose(probs, expected[start:start + size], atol=1e-4)


@pytest.fixture()
def serve(runs_copy):
    """Start the app (Dash + /api/v1) with a backend on a free 127.0.0.1 port; stopped after the test."""
    from werkzeug.serving import make_server

    from workbench.app import create_app

    servers = []

    def start(backend: str) -> str:
        server = make_server("127.0.0.1", 0, create_app(runs_copy, backend).server, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()


def test_api_serves_the_onnx_backend_over_http(serve, test_images):
    """Same answers from --backend keras and --backend onnx; Grad-CAM still works with onnx."""
    import requests
    from PIL import Image

    bodies = []
    for image in test_images[0][:4]:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        bodies.append(buffer.getvalue())
    answers = {}
    for backend in ("keras", "onnx"):
        url = serve(backend)
        files = [("files", (f"{i}.png", body, "image/png")) for i, body in enumerate(bodies)]
        response = requests.post(f"{url}/api/v1/predict", files=files, data={"gradcam": "true"}, timeout=60)
        assert response.status_code == 200, response.text
        answers[backend] = response.json()
        assert answers[backend]["backend"] == backend
        assert all(r["gradcam_png"] for r in answers[backend]["results"])
    keras_probs, onnx_probs = ([r["probabilities"] for r in answers[b]["results"]] for b in ("keras", "onnx"))
    np.testing.assert_allclose(onnx_probs, keras_probs, atol=1e-4)


def test_tflite_falls_back_to_tf_lite_without_litert(runs_copy, test_images, monkeypatch):
    """Where ai_edge_litert is not installed, tf.lite's interpreter runs the same file."""
    import sys

    import tensorflow as tf

    run_dir = runs_copy / "fast-default"
    litert = exported_predictor(run_dir, "tflite")
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # makes the import fail
    fallback = TFLitePredictor(litert.path)
    assert isinstance(fallback.interpreter, tf.lite.Interpreter)
    np.testing.assert_allclose(fallback.predict(test_images[0][:32]), litert.predict(test_images[0][:32]), atol=1e-5)
