"""Weight loading: local files, Keras' download path against a server on 127.0.0.1, and failures."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import keras
import numpy as np
import pytest

from model.architectures import build_resnet50_classifier
from model.recipes import get_recipe
from model.weights import IMAGENET_FILE, WeightsError, fetch_imagenet_weights, load_resnet50_weights, resolve_weights

SIZE = 32  # the smallest ResNet50 input: quick to build


@pytest.fixture(scope="module")
def donor():
    """A ResNet50 base (no top) with random weights standing in for the ImageNet file."""
    keras.utils.set_random_seed(7)
    return keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))


@pytest.fixture(scope="module")
def legacy_file(donor, tmp_path_factory):
    """The donor saved in the legacy HDF5 layout of the official `..._notop.h5` file."""
    folder = tmp_path_factory.mktemp("served")
    path = folder / IMAGENET_FILE
    donor.save(path)  # a legacy .h5 file; load_weights reads its "model_weights" group
    return path


def assert_loaded_from(model, donor):
    for name in ("conv1_conv", "conv3_block2_2_bn", "conv5_block3_3_conv"):
        for got, want in zip(model.get_layer(name).get_weights(), donor.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)


@pytest.fixture()
def server(legacy_file):
    """A static file server on 127.0.0.1 (random port) serving the donor file; stopped after the test."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(legacy_file.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_local_legacy_file_loads_every_base_layer(donor, legacy_file):
    model = build_resnet50_classifier(input_size=SIZE)
    assert load_resnet50_weights(model, str(legacy_file)) == legacy_file
    assert_loaded_from(model, donor)


def test_local_keras_weights_file_loads(donor, tmp_path):
    path = tmp_path / "base.weights.h5"
    donor.save_weights(path)
    model = build_resnet50_classifier(input_size=SIZE)
    load_resnet50_weights(model, str(path))
    assert_loaded_from(model, donor)


def test_download_with_good_hash_then_cached(donor, legacy_file, server, tmp_path):
    cache = tmp_path / "keras-cache"
    path = fetch_imagenet_weights(base_url=server, file_hash=md5(legacy_file), cache_dir=cache)
    assert path == cache / "models" / IMAGENET_FILE
    assert md5(path) == md5(legacy_file)
    model = build_resnet50_classifier(input_size=SIZE)
    load_resnet50_weights(model, "imagenet", base_url=server, file_hash=md5(legacy_file), cache_dir=cache)
    assert_loaded_from(model, donor)
    # cached: a dead address is not contacted again
    again = fetch_imagenet_weights(base_url="http://127.0.0.1:9/", file_hash=md5(legacy_file), cache_dir=cache)
    assert again == path


def test_download_with_wrong_hash_fails_and_keeps_nothing(server, tmp_path):
    cache = tmp_path / "keras-cache"
    with pytest.raises(WeightsError, match="hash"):
        fetch_imagenet_weights(base_url=server, file_hash="0" * 32, cache_dir=cache)
    assert not (cache / "models" / IMAGENET_FILE).exists()


def test_official_hash_rejects_other_files(server, tmp_path):
    with pytest.raises(WeightsError, match="4d473c1dd8becc155b73f8504c6f6626"):
        fetch_imagenet_weights(base_url=server, cache_dir=tmp_path)


def test_missing_download_fails_clearly(server, tmp_path):
    with pytest.raises(WeightsError, match="cannot download.*--weights PATH"):
        fetch_imagenet_weights(base_url=server + "missing/", cache_dir=tmp_path)


def test_unreachable_server_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WEIGHTS_URL", "http://127.0.0.1:9/")  # discard port: refused
    with pytest.raises(WeightsError, match="127.0.0.1:9"):
        resolve_weights("imagenet", cache_dir=tmp_path)


def test_missing_and_wrong_local_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights(str(tmp_path / "nope.h5"))
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    with pytest.raises(WeightsError, match="expected a .h5"):
        resolve_weights(str(text))
    fake = tmp_path / "fake.h5"
    fake.write_bytes(b"garbage" * 100)
    with pytest.raises(WeightsError, match="does not fit"):
        load_resnet50_weights(build_resnet50_classifier(input_size=SIZE), str(fake))
    assert resolve_weights("none") is None


def test_training_never_falls_back_to_random_weights(tmp_path):
    from model.train import build_and_compile

    recipe = get_recipe("resnet50-cpu", input_size=SIZE, weights=str(tmp_path / "absent.h5"))
    with pytest.raises(WeightsError, match="not found"):
        build_and_compile(recipe, steps_per_epoch=1)
