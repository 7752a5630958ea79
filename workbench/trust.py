"""Can a run's explanations be trusted? Faithfulness of every method and the sanity check, per run.

    table = run_table(runs_dir, "fast-default")        # computed once, then read from faithfulness.json
    method_scores(explainer, images, targets)          # {method: {"deletion": (N,), "insertion": (N,)}}
    one_image(explainer, image, target, method, layer) # map + its deletion / insertion curves

The sample is fixed (the first SAMPLE.images official test images, so every run is scored on the
same ones); each map explains the class the model predicted. "random" is a uniform-noise map: the
floor. The table is written next to the run's files and recomputed only when model.keras changes.
Run `python benchmarks/faithfulness.py --run RUN` to build it outside the app.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from model import runs
from workbench import faithfulness as fx
from workbench.artifacts import test_images
from workbench.cache import cached
from workbench.explain import METHODS, Explainer, get_explainer
from workbench.sanity import SanityConfig, randomisation_check


@dataclass(frozen=True)
class Sample:
    images: int = 100          # test images scored per method: +-0.02 AUC interval, ~1 min on 2 CPU cores
    sanity_images: int = 8     # images for the randomisation check: rho is stable across images
    sanity_steps: int = 4      # top kernel layers randomised, cascading (the output and the last conv block)


SAMPLE = Sample()
RANDOM = "random"


def predict_fn(model):
    """(N, 28, 28, 1) pixels -> probabilities, straight through the Keras model (no cache, no copy)."""
    return lambda batch: np.asarray(model(batch, training=False), dtype=np.float32)


def method_scores(explainer: Explainer, images: np.ndarray, targets: np.ndarray,
                  methods=tuple(METHODS), config: fx.FaithfulnessConfig = fx.DEFAULT) -> dict:
    """Per-image deletion / insertion AUC of each method's maps, and of random maps."""
    predict = predict_fn(explainer.model)
    images = np.asarray(images, dtype=np.float32).reshape(len(images), 28, 28, 1)
    out = {}
    for method in methods:
        maps = explainer.explain(images, targets, method)
        out[method] = fx.score_maps(predict, images, targets, maps, config)
    out[RANDOM] = fx.score_maps(predict, images, targets, fx.random_maps(len(images)), config)
    return out


def one_image(explainer: Explainer, image: np.ndarray, target: int, heatmap: np.ndarray) -> dict:
    """Deletion and insertion curves of one shown map, with the random map's for comparison."""
    predict = predict_fn(explainer.model)
    image = np.asarray(image, dtype=np.float32)
    curve = fx.curves(predict, image, target, heatmap)
    curve["random"] = fx.curves(predict, image, target, fx.random_maps(1)[0])
    return curve


def sanity_scores(explainer: Explainer, images: np.ndarray, targets: np.ndarray, methods=tuple(METHODS),
                  steps: int = SAMPLE.sanity_steps) -> dict:
    """The randomisation check per method: {method: {"steps": [...], "passed": bool}}."""
    images = np.asarray(images, dtype=np.float32).reshape(len(images), 28, 28, 1)
    out = {}
    for method in methods:
        def explain(model, x, t, method=method):
            if model is explainer.model:
                return explainer.explain(x, t, method)
            return Explainer(model, explainer.config).explain(x, t, method, explainer.default_layer)
        out[method] = randomisation_check(explainer.model, explain, images, targets, SanityConfig(max_steps=steps))
    return out


def summarise(scores: dict, targets: np.ndarray) -> dict:
    """Mean +- 95% interval per method, overall and per (predicted) class."""
    table = {}
    for method, per in scores.items():
        table[method] = {kind: fx.summary(per[kind]) for kind in ("deletion", "insertion")}
        table[method]["per_class"] = {
            int(c): {kind: float(per[kind][targets == c].mean()) for kind in ("deletion", "insertion")}
            for c in np.unique(targets)}
    return table


def compute_table(runs_dir, run_id: str, sample: Sample = SAMPLE, data_dir=None) -> dict:
    """Score every method on the fixed sample and run the sanity check (slow: minutes on CPU)."""
    explainer = get_explainer(runs_dir, run_id)
    images = test_images(data_dir)[:sample.images].astype(np.float32)
    targets = np.asarray(predict_fn(explainer.model)(images[..., None])).argmax(axis=1)
    scores = method_scores(explainer, images, targets)
    few = slice(0, sample.sanity_images)
    return {"n_images": sample.images, "baseline": "black (0) pixels", "steps": fx.DEFAULT.steps,
            "target": "predicted class", "methods": summarise(scores, targets),
            "sanity": sanity_scores(explainer, images[few], targets[few], steps=sample.sanity_steps)}


def model_digest(runs_dir, run_id: str) -> str:
    """A hash of the run's model file: the stored tables belong to exactly this model (mtimes are not
    kept by git, so a fresh checkout could make a table look older than its model)."""
    run_dir = runs.run_path(runs_dir, run_id)
    return hashlib.blake2b(runs.check_model_file(run_dir).read_bytes(), digest_size=16).hexdigest()


def read_table(runs_dir, run_id: str) -> dict | None:
    """The stored table when it was computed for the run's current model, else None."""
    path = runs.run_path(runs_dir, run_id) / runs.FAITHFULNESS
    try:
        table = json.loads(path.read_text())
        return table if table.get("model_digest") == model_digest(runs_dir, run_id) else None
    except (OSError, ValueError, AttributeError):
        return None


def run_table(runs_dir, run_id: str, sample: Sample = SAMPLE, data_dir=None) -> dict:
    """The stored table, computed and written on first use."""
    table = read_table(runs_dir, run_id)
    if table is None or table.get("n_images") != sample.images:
        table = {**compute_table(runs_dir, run_id, sample, data_dir), "model_digest": model_digest(runs_dir, run_id)}
        runs.write_json(runs.run_path(runs_dir, run_id), runs.FAITHFULNESS, table)
    return table


def class_averages(runs_dir, run_id: str, data_dir=None) -> np.ndarray:
    """class_average_maps, computed once per model file (~5 s) and kept in the one cache."""
    model_path = runs.model_file(runs.run_path(runs_dir, run_id))
    return cached("class-averages", model_path, lambda: class_average_maps(runs_dir, run_id, data_dir),
                  str(data_dir))


def class_average_maps(runs_dir, run_id: str, data_dir=None, per_group: int = 40) -> np.ndarray:
    """Mean Grad-CAM of the true class over test images of each class: (classes, 2, 28, 28),
    [:, 0] the correctly classified ones, [:, 1] the wrong ones (zeros when there are none).
    Up to `per_group` images per group (the first ones of the run's saved predictions)."""
    from workbench.artifacts import predictions

    explainer = get_explainer(runs_dir, run_id)
    frame = predictions(runs_dir, run_id)
    images = test_images(data_dir)
    classes = explainer.model.output_shape[-1]
    out = np.zeros((classes, 2, 28, 28), np.float32)
    for c in range(classes):
        rows = frame[frame["label"] == c]
        for g, group in enumerate((rows[rows["predicted"] == c], rows[rows["predicted"] != c])):
            index = group["index"].to_numpy()[:per_group]
            if len(index):
                out[c, g] = explainer.explain(images[index], c, "gradcam").mean(axis=0)
    return out
