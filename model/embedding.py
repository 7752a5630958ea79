"""The embedding map: the test set's penultimate-layer features laid out in 2-D, computed once per run.

    coords = run_embedding(run_dir, test_images)       # (10000, 2) float32, cached in run_dir/embedding.npz
    workbench embed fast-default                       # the same from the command line

Why UMAP (umap-learn) and not t-SNE or PCA: PCA is linear, and ten classes in a 96-d ReLU feature space
do not separate on two linear axes (the footwear and the top-wear classes pile up on each other);
t-SNE keeps neighbourhoods as well as UMAP but is slower on 10,000 points on 2 cores, and its global
layout (where the clusters sit relative to each other) is arbitrary, while UMAP keeps more of it
(Sneaker lands beside Sandal and Ankle boot, Shirt between T-shirt/top and Pullover). UMAP also has a
fixed `random_state` that makes the map reproducible, so a shared link shows the same picture.

The file stores the coordinates with the settings and a hash of the model file that made them; a map
made with other settings or by another model is recomputed (model mtimes are not kept by git).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from model import runs
from model.errors import RunError


@dataclass(frozen=True)
class MapSettings:
    n_neighbors: int = 15     # UMAP's default: neighbourhoods of a few dozen garments keep classes apart
    min_dist: float = 0.1     # UMAP's default: tight clusters with visible gaps between them
    metric: str = "cosine"    # post-ReLU pooled features: their direction matters more than their length
    random_state: int = 0     # fixed, so the same run always gives the same map (UMAP then uses one thread)


DEFAULT_SETTINGS = MapSettings()
ESTIMATED_SECONDS = 120  # first computation for 10,000 images: 116 s measured on 2 busy CPU cores (mostly UMAP)


def reduce_2d(features: np.ndarray, settings: MapSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """(n, 2) float32 UMAP coordinates of (n, d) features."""
    import umap  # numba compiles on first use (~15 s): imported only when a map is computed

    reducer = umap.UMAP(n_components=2, **asdict(settings))
    return np.asarray(reducer.fit_transform(np.asarray(features, dtype=np.float32)), dtype=np.float32)


def model_key(run_dir: Path) -> str:
    """A hash of the run's model file: the map belongs to exactly this model."""
    return hashlib.blake2b(runs.check_model_file(Path(run_dir)).read_bytes(), digest_size=16).hexdigest()


def read_embedding(path: Path, settings: MapSettings, key: str) -> np.ndarray | None:
    """The stored coordinates when made with these settings for this key, else None (missing, stale, damaged)."""
    if not path.is_file():
        return None
    try:
        stored = runs.read_npz(path, ("settings", "key", "coords"))
        same = json.loads(str(stored["settings"])) == asdict(settings) and str(stored["key"]) == key
    except (RunError, ValueError):  # damaged: computed again
        return None
    return stored["coords"] if same else None


def write_embedding(path: Path, coords: np.ndarray, settings: MapSettings, key: str, seconds: float) -> None:
    """Write atomically: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, coords=np.asarray(coords, dtype=np.float32), key=np.array(key),
                        settings=np.array(json.dumps(asdict(settings), sort_keys=True)),
                        seconds=np.array(float(seconds)))
    tmp.replace(path)


def cached_embedding(path: Path, features: Callable[[], np.ndarray], key: str,
                     settings: MapSettings = DEFAULT_SETTINGS) -> tuple[np.ndarray, bool]:
    """(coords, computed): the stored map when still valid, else features() reduced to 2-D and stored."""
    coords = read_embedding(path, settings, key)
    if coords is not None:
        return coords, False
    start = time.perf_counter()
    coords = reduce_2d(features(), settings)
    write_embedding(path, coords, settings, key, time.perf_counter() - start)
    return coords, True


def run_embedding(run_dir: Path, images: np.ndarray,
                  settings: MapSettings = DEFAULT_SETTINGS) -> tuple[np.ndarray, bool]:
    """(coords, computed) of the run's test images: read from run_dir/embedding.npz or computed and stored."""
    run_dir = Path(run_dir)
    if runs.model_file(run_dir).name != runs.MODEL:
        raise RunError(f"run {run_dir.name!r} has no Keras model: no features for an embedding map", "no_features")

    def features() -> np.ndarray:
        from model.features import penultimate_features

        return penultimate_features(runs.load_model(run_dir), images)

    key = f"{model_key(run_dir)}:{len(images)}"  # another test set length is another map
    return cached_embedding(run_dir / runs.EMBEDDING, features, key, settings)
