"""Evaluation metrics on a hand-made example, every expected value worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model.evaluate import (bootstrap_accuracy_ci, classification_metrics, expected_calibration_error,
                            reliability_bins, training_speed)

NAMES = [f"c{i}" for i in range(10)]


def hand_example():
    """Four images. Predicted (confidence): 0 (0.95) right, 1 (0.65) wrong, 1 (0.75) right, 2 (0.55) right."""
    labels = np.array([0, 0, 1, 2])
    probs = np.zeros((4, 10))
    probs[0, [0, 1]] = [0.95, 0.05]
    probs[1, [1, 0]] = [0.65, 0.35]
    probs[2, [1, 2]] = [0.75, 0.25]
    probs[3, [2, 0]] = [0.55, 0.45]
    return labels, probs


def test_accuracy_and_per_class_scores_by_hand():
    labels, probs = hand_example()
    m = classification_metrics(labels, probs, NAMES)
    assert m["test_accuracy"] == pytest.approx(3 / 4)
    assert m["n_test"] == 4
    # class 0: 1 of its 2 images found, no false alarm -> P 1, R 1/2, F1 2/3
    assert m["per_class"]["c0"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    # class 1: its image found, plus one false alarm -> P 1/2, R 1, F1 2/3
    assert m["per_class"]["c1"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert m["per_class"]["c2"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1})
    assert m["per_class"]["c9"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # macro F1 averages all 10 classes: (2/3 + 2/3 + 1) / 10
    assert m["macro_f1"] == pytest.approx(7 / 30)
    expected_confusion = np.zeros((10, 10), dtype=int)
    expected_confusion[0, 0] = expected_confusion[0, 1] = expected_confusion[1, 1] = expected_confusion[2, 2] = 1
    np.testing.assert_array_equal(m["confusion"], expected_confusion)


def test_reliability_bins_and_ece_by_hand():
    labels, probs = hand_example()
    rel = reliability_bins(labels, probs)
    assert rel["bin_edges"] == pytest.approx([i / 10 for i in range(11)])
    # confidences 0.95, 0.65, 0.75, 0.55 fall in bins 9, 6, 7, 5
    assert rel["bin_count"] == [0, 0, 0, 0, 0, 1, 1, 1, 0, 1]
    assert rel["bin_accuracy"][5:] == [1.0, 0.0, 1.0, None, 1.0]
    assert rel["bin_confidence"][5] == pytest.approx(0.55)
    assert rel["bin_confidence"][6] == pytest.approx(0.65)
    assert rel["bin_confidence"][:5] == [None] * 5
    # ECE = (|1 - 0.95| + |0 - 0.65| + |1 - 0.75| + |1 - 0.55|) / 4 = 1.4 / 4
    assert expected_calibration_error(rel) == pytest.approx(0.35)
    assert classification_metrics(labels, probs, NAMES)["ece"] == pytest.approx(0.35)


def test_perfectly_calibrated_bin_has_zero_ece():
    labels = np.array([0, 0, 0, 1])
    probs = np.zeros((4, 10))
    probs[:, 0], probs[:, 1] = 0.75, 0.25  # all predict class 0 at 0.75; 3 of 4 right
    assert expected_calibration_error(reliability_bins(labels, probs)) == pytest.approx(0.0)


def test_bootstrap_interval_matches_normal_approximation_and_plain_resampling():
    correct = np.zeros(10_000)
    correct[:9_000] = 1
    lo, hi = bootstrap_accuracy_ci(correct)
    half = 1.96 * np.sqrt(0.9 * 0.1 / 10_000)  # 0.00588
    assert lo == pytest.approx(0.9 - half, abs=5e-4)
    assert hi == pytest.approx(0.9 + half, abs=5e-4)
    # the binomial shortcut equals resampling the vector itself
    small = np.r_[np.ones(400), np.zeros(100)]
    rng = np.random.default_rng(1)
    plain = small[rng.integers(0, 500, size=(4000, 500))].mean(axis=1)
    assert bootstrap_accuracy_ci(small) == pytest.approx(tuple(np.percentile(plain, [2.5, 97.5])), abs=4e-3)
    assert bootstrap_accuracy_ci(np.ones(50)) == (1.0, 1.0)


def test_training_speed_sums_epochs():
    history = pd.DataFrame({"epoch": [1, 2], "seconds": [10.0, 20.0]})
    speed = training_speed(history, n_train=300)
    assert speed == {"train_seconds": 30.0, "epochs_trained": 2, "train_images_per_second": 20.0}
