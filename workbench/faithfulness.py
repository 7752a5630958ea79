"""Is an explanation faithful to the model? Deletion / insertion curves, their AUC, a random baseline.

    curve = curves(predict, image, target, heatmap)        # {"fraction", "deletion", "insertion"}
    scores = score_maps(predict, images, targets, maps)     # per-image deletion / insertion AUC
    random_maps(n, seed=0)                                  # the random-map baseline

RISE-style (Petsiuk et al. 2018): pixels are ranked by the map, most important first.
Deletion starts from the image and replaces pixels, in that order, with the baseline value
(0 = black, the Fashion-MNIST background), recording the target class's probability after each
step; a faithful map makes the probability fall fast, so a LOW deletion AUC is good. Insertion
starts from the baseline image and puts the original pixels back in the same order; a HIGH
insertion AUC is good. AUC is the trapezoid area under probability vs share of pixels changed (0..1).
A random map (uniform noise) is the floor every method should beat.
Implemented plainly here (Quantus and Xplique were not adopted: Xplique needs TensorFlow <= 2.15).
`predict` is any callable (N, 28, 28, 1) float32 -> (N, classes) probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FaithfulnessConfig:
    steps: int = 28          # 28 steps of 28 pixels each: fine enough for a smooth curve, one batch of 58
    baseline: float = 0.0    # what a deleted pixel becomes: black, the background every garment sits on
    batch_size: int = 512    # images per predict call (58 per explained image)


DEFAULT = FaithfulnessConfig()


def ranking(heatmap: np.ndarray) -> np.ndarray:
    """Flat pixel indices, most important first (stable, so ties keep reading order)."""
    return np.argsort(-np.asarray(heatmap, dtype=np.float64).ravel(), kind="stable")


def fractions(config: FaithfulnessConfig = DEFAULT) -> np.ndarray:
    """Share of pixels changed at each point of a curve: 0, 1/steps, ..., 1."""
    return np.linspace(0.0, 1.0, config.steps + 1)


def perturbed(image: np.ndarray, heatmap: np.ndarray, config: FaithfulnessConfig = DEFAULT):
    """The deletion and insertion image sequences, each (steps + 1, H, W, 1)."""
    image = np.asarray(image, dtype=np.float32).reshape(heatmap.shape[0], heatmap.shape[1])
    order = ranking(heatmap)
    counts = np.round(fractions(config) * order.size).astype(int)
    changed = np.zeros((len(counts), order.size), dtype=bool)
    for i, count in enumerate(counts):
        changed[i, order[:count]] = True
    changed = changed.reshape(len(counts), *image.shape)
    deletion = np.where(changed, np.float32(config.baseline), image[None])
    insertion = np.where(changed, image[None], np.float32(config.baseline))
    return deletion[..., None].astype(np.float32), insertion[..., None].astype(np.float32)


def auc(curve: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at equal steps from 0 to 1."""
    curve = np.asarray(curve, dtype=np.float64)
    return float(((curve[1:] + curve[:-1]) / 2).sum() / (len(curve) - 1))


def curves(predict: Predict, image: np.ndarray, target: int, heatmap: np.ndarray,
           config: FaithfulnessConfig = DEFAULT) -> dict:
    """Deletion and insertion curves of one image's map, with their AUC."""
    result = score_maps(predict, np.asarray(image)[None], [target], np.asarray(heatmap)[None], config,
                        keep_curves=True)
    return {"fraction": fractions(config), "deletion": result["deletion_curves"][0],
            "insertion": result["insertion_curves"][0], "deletion_auc": float(result["deletion"][0]),
            "insertion_auc": float(result["insertion"][0])}


def score_maps(predict: Predict, images: np.ndarray, targets, maps: np.ndarray,
               config: FaithfulnessConfig = DEFAULT, keep_curves: bool = False) -> dict:
    """Per-image deletion and insertion AUC ({"deletion": (N,), "insertion": (N,)}), batched."""
    images, maps = np.asarray(images, dtype=np.float32), np.asarray(maps, dtype=np.float32)
    targets = np.broadcast_to(np.asarray(targets, dtype=np.int64), (len(images),))
    points = config.steps + 1
    sequences = [np.concatenate(perturbed(x, m, config)) for x, m in zip(images, maps)]
    batch = np.concatenate(sequences) if sequences else np.zeros((0, *maps.shape[1:], 1), np.float32)
    probs = np.concatenate([np.asarray(predict(batch[i:i + config.batch_size]))
                            for i in range(0, len(batch), config.batch_size)] or [np.zeros((0, 1))])
    wanted = probs[np.arange(len(batch)), np.repeat(targets, 2 * points)] if len(batch) else probs[:, 0]
    wanted = wanted.reshape(len(images), 2, points)
    result = {"deletion": np.array([auc(c) for c in wanted[:, 0]]),
              "insertion": np.array([auc(c) for c in wanted[:, 1]])}
    if keep_curves:
        result["deletion_curves"], result["insertion_curves"] = wanted[:, 0], wanted[:, 1]
    return result


def random_maps(n: int, size: tuple[int, int] = (28, 28), seed: int = 0) -> np.ndarray:
    """Uniform-noise maps: the baseline a real explanation must beat."""
    return np.random.default_rng(seed).random((n, *size)).astype(np.float32)


def summary(values: np.ndarray) -> dict:
    """Mean with a 95% normal interval (1.96 standard errors) and the count."""
    values = np.asarray(values, dtype=np.float64)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return {"mean": float(values.mean()), "ci95": float(half), "n": int(len(values))}
