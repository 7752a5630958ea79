"""Sanity check of an explanation method: cascading model-parameter randomisation (Adebayo et al. 2018).

    result = randomisation_check(model, explain, images, targets)
    result["steps"]   # [{"layer": "predictions", "rho": 0.12}, ...] top layer first, cascading down
    result["passed"]  # True when the maps stop resembling the trained model's once its weights are gone

`explain(model, images, targets) -> (N, H, W)` maps. Starting from the output, the weights of one
more layer with a kernel (Dense / Conv) are replaced at each step by Gaussian noise of the same
standard deviation (batch-norm scales and offsets above it too; running statistics kept so the
activations stay finite), on a copy of the model; the trained model is never touched. Each step
reports the mean Spearman rank correlation between the trained model's map and the randomised
model's map of the same image. A method whose maps do not depend on the weights (an edge
detector, the image itself) keeps rho near 1 and fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import spearmanr


@dataclass(frozen=True)
class SanityConfig:
    max_steps: int = 4       # top kernel layers randomised, cascading: enough to reach the conv blocks
    pass_below: float = 0.5  # mean rank correlation with the trained map after the last step; Adebayo
    #                          et al. call methods at ~0.9+ "insensitive", so half-way marks a clear change
    seed: int = 0            # noise seed: the same run gets the same check


DEFAULT = SanityConfig()


def kernel_layers(model) -> list[str]:
    """Layers with a kernel (Dense, Conv), output first."""
    return [layer.name for layer in reversed(model.layers)
            if any(w.path.endswith("kernel") for w in layer.weights)]


def randomised_copy(model, down_to: str, seed: int = 0):
    """A copy of `model` whose trainable weights from the output down to layer `down_to` are noise."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    rng = np.random.default_rng(seed)
    for layer in reversed(copy.layers):
        for weight in layer.trainable_weights:
            value = np.asarray(weight.numpy())
            std = float(value.std()) or 0.05
            weight.assign(rng.normal(0.0, std, value.shape).astype(value.dtype))
        if layer.name == down_to:
            break
    return copy


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rho of two maps (0 when either is constant: nothing to rank)."""
    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def randomisation_check(model, explain: Callable, images: np.ndarray, targets,
                        config: SanityConfig = DEFAULT) -> dict:
    """Rank correlation between trained and cascading-randomised maps, per randomised layer."""
    trained = np.asarray(explain(model, images, targets))
    steps = []
    for layer in kernel_layers(model)[:config.max_steps]:
        maps = np.asarray(explain(randomised_copy(model, layer, config.seed), images, targets))
        rho = float(np.mean([rank_correlation(a, b) for a, b in zip(trained, maps)]))
        steps.append({"layer": layer, "rho": rho})
    passed = bool(steps) and steps[-1]["rho"] < config.pass_below
    return {"steps": steps, "passed": passed, "pass_below": config.pass_below}
