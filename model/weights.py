"""Pretrained weights for the ResNet50 base: `--weights imagenet | none | PATH`.

  imagenet  Keras' own download: the official file and its published hash, fetched once with
            `keras.utils.get_file` into the Keras cache folder (~/.keras/models) and reused offline.
  none      random initialisation (said plainly in the run's config, never a silent fallback).
  PATH      a local weights file: the official `..._notop.h5` saved by hand, or a Keras
            `.weights.h5` of a ResNet50 base (include_top=False).

Whatever goes wrong raises `WeightsError` saying what was asked for and how to fix it.
The download address can be pointed elsewhere (a mirror, or a test server on 127.0.0.1) with the
`WORKBENCH_WEIGHTS_URL` environment variable or the `base_url` argument.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from model.errors import WeightsError

# The official ResNet50 no-top ImageNet weights, as keras.applications.resnet downloads them.
IMAGENET_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
IMAGENET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_HASH = "4d473c1dd8becc155b73f8504c6f6626"  # md5, from keras.src.applications.resnet
URL_ENV_VAR = "WORKBENCH_WEIGHTS_URL"


def fetch_imagenet_weights(base_url: str | None = None, file_hash: str = IMAGENET_HASH,
                           cache_dir: str | Path | None = None) -> Path:
    """The official no-top ResNet50 file: from the Keras cache, else downloaded and hash-checked."""
    base_url = base_url or os.environ.get(URL_ENV_VAR) or IMAGENET_BASE_URL
    url = base_url.rstrip("/") + "/" + IMAGENET_FILE
    if cache_dir is not None:  # get_file silently uses /tmp/.keras when the folder is not writable
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    try:
        path = keras.utils.get_file(IMAGENET_FILE, url, file_hash=file_hash, cache_subdir="models",
                                    cache_dir=None if cache_dir is None else str(cache_dir))
    except ValueError as exc:  # get_file's message for a file whose hash does not match
        _remove_cached(cache_dir)
        raise WeightsError(f"ImageNet weights from {url} fail their hash check (expected {file_hash}); "
                           f"the file is damaged or not the official one ({exc})") from exc
    except Exception as exc:  # get_file wraps network failures in a bare Exception
        raise WeightsError(f"cannot download ImageNet weights from {url} ({exc}); when offline, "
                           f"download {IMAGENET_FILE} elsewhere and pass --weights PATH, "
                           "or train from scratch with --weights none") from exc
    return Path(path)


def _remove_cached(cache_dir: str | Path | None) -> None:
    """Delete a downloaded file that failed its hash check, so nothing bad stays in the cache."""
    home = cache_dir or os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    (Path(home).expanduser() / "models" / IMAGENET_FILE).unlink(missing_ok=True)


def resolve_weights(weights: str, **fetch_kwargs) -> Path | None:
    """The weights file to load for a `--weights` value, or None for random initialisation."""
    if weights is None or weights == "none":
        return None
    if weights == "imagenet":
        return fetch_imagenet_weights(**fetch_kwargs)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found (--weights takes imagenet, none or a file path)")
    if not path.name.endswith((".h5", ".hdf5")):
        raise WeightsError(f"weights file {path}: expected a .h5 / .weights.h5 file, received {path.suffix!r}")
    return path


def load_resnet50_weights(model: keras.Model, weights: str, **fetch_kwargs) -> Path | None:
    """Load ResNet50 base weights into a model from `build_resnet50_classifier`, layer by layer by name.

    The file is loaded into a plain ResNet50 base of the same input size first (exactly how Keras
    loads it), then copied into the flat classifier; the head keeps its fresh initialisation.
    """
    path = resolve_weights(weights, **fetch_kwargs)
    if path is None:
        return None
    size = model.get_layer("conv1_pad").input.shape[1]
    donor = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(size, size, 3))
    try:
        donor.load_weights(str(path))
    except Exception as exc:  # h5py, ValueError for mismatched layers, ...
        raise WeightsError(f"weights file {path} does not fit a ResNet50 base without its top "
                           f"({type(exc).__name__}: {exc})") from exc
    for layer in donor.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return path
