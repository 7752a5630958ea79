"""Predictors: one run's model behind a small interface, loaded lazily and cached per process.

    predictor = get_predictor(runs_dir, "fast-default")        # Keras backend
    probs = predictor.predict(images)                          # (N, 28, 28) uint8 -> (N, 10) float32

Backends: "keras" (the run's model.keras). Grad-CAM always uses the Keras model.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from model import runs

BACKENDS = ("keras",)


class KerasPredictor:
    backend = "keras"

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.run_id = self.run_dir.name
        self.model = runs.load_model(self.run_dir)

    def predict(self, images: np.ndarray) -> np.ndarray:
        batch = as_model_input(images)
        return np.asarray(self.model(batch, training=False), dtype=np.float32)


def as_model_input(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or (N, 28, 28, 1) pixels 0..255 -> float32 (N, 28, 28, 1), the models' input."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] != (28, 28, 1):
        raise ValueError(f"expected images of shape (N, 28, 28), received {images.shape}")
    return images.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _cached_predictor(run_dir: str, backend: str, mtime: float):
    if backend == "keras":
        return KerasPredictor(Path(run_dir))
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def get_predictor(runs_dir: Path | str, run_id: str, backend: str = "keras"):
    """The cached predictor of a run; reloaded when the run's model file changes."""
    run_dir = runs.run_path(runs_dir, run_id)
    model_file = run_dir / runs.MODEL
    mtime = model_file.stat().st_mtime if model_file.exists() else 0.0
    return _cached_predictor(str(run_dir.resolve()), backend, mtime)
