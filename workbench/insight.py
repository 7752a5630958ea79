"""Pure functions behind the analyst views: every error in one table, and one run against another.

    rows = error_rows(predictions, names)                # one row per test image: loss, margin, label quality
    shown = filter_rows(rows, true=3, pred=6, confidence=(0.5, 1.0), errors_only=True)
    result = mcnemar(correct_a, correct_b)              # paired test: is A's accuracy different from B's?
    report = compare_runs(predictions_a, predictions_b, names)

Everything here works on the saved test predictions (test_predictions.parquet): no model, no images.
The suspected-label score is cleanlab's label quality (`cleanlab.rank.get_label_quality_scores`,
self-confidence: the probability the model gives the given label): low = the label looks wrong.
The test set's probabilities are out-of-sample (the model never trained on it), as cleanlab needs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from model import runs
from model.errors import RunError
from model.label_issues import test_label_quality
from model.runs import PROB_COLUMNS
from workbench import artifacts
from workbench.cache import cached, file_stamp

EXACT_BELOW = 25      # discordant pairs: below this McNemar uses the exact binomial test (the usual rule,
                      # e.g. Fagerland et al. 2013), from it on the chi-squared test with continuity correction
ALPHA = 0.05          # significance level of the one-line verdict
EPS = 1e-12           # floor of p_true in the loss, so a probability of exactly 0 gives a finite loss
ROW_COLUMNS = ["index", "true", "predicted", "confidence", "margin", "loss", "label_quality"]


def error_rows(predictions: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """One row per test image: index, true and predicted class names (plus their ids), confidence (top
    probability), margin (top-1 minus top-2 probability), loss (-log p_true), label_quality, correct."""
    probs = predictions[PROB_COLUMNS].to_numpy(dtype=np.float64)
    labels = predictions["label"].to_numpy(dtype=np.int64)
    predicted = predictions["predicted"].to_numpy(dtype=np.int64)
    top2 = np.sort(probs, axis=1)[:, -2:]
    p_true = probs[np.arange(len(probs)), labels]
    return pd.DataFrame({
        "index": predictions["index"].to_numpy(dtype=np.int64),
        "true": [names[i] for i in labels], "predicted": [names[i] for i in predicted],
        "confidence": top2[:, 1], "margin": top2[:, 1] - top2[:, 0],
        "loss": -np.log(np.maximum(p_true, EPS)),
        "label_quality": test_label_quality(predictions) if len(probs) else np.zeros(0),
        "true_id": labels, "pred_id": predicted, "correct": labels == predicted,
    })


def filter_rows(rows: pd.DataFrame, true: int | None = None, pred: int | None = None,
                confidence: tuple[float, float] = (0.0, 1.0), errors_only: bool = True) -> pd.DataFrame:
    """The rows of one class pair (None = any class) within a confidence range, errors only or all,
    highest loss first (the view's default order before the user sorts)."""
    keep = rows["confidence"].between(*confidence)
    if errors_only:
        keep &= ~rows["correct"]
    if true is not None:
        keep &= rows["true_id"] == true
    if pred is not None:
        keep &= rows["pred_id"] == pred
    return rows[keep].sort_values("loss", ascending=False, kind="stable")


def rows_csv(rows: list[dict]) -> str:
    """CSV of table rows as shown (the DataTable's filtered, sorted records), the view's columns only."""
    return pd.DataFrame(list(rows), columns=ROW_COLUMNS).to_csv(index=False, float_format="%.6g")


def run_rows(runs_dir, run_id: str) -> pd.DataFrame:
    """error_rows of a run's saved predictions, computed once per predictions file."""
    path = runs.run_path(runs_dir, run_id) / runs.PREDICTIONS
    return cached("error-rows", path, lambda: error_rows(artifacts.predictions(runs_dir, run_id),
                                                          artifacts.class_names(runs_dir, run_id)))


# ---------------------------------------------------------------------------------------------
# Run vs run

def mcnemar(correct_a, correct_b) -> dict:
    """McNemar's test on paired right/wrong answers of two models on the same images.

    b = A right and B wrong, c = A wrong and B right. Exact two-sided binomial test of b out of b + c
    at p = 0.5 when b + c < EXACT_BELOW (scipy.stats.binomtest), else chi2 = (|b - c| - 1)^2 / (b + c)
    with 1 degree of freedom. Returns the 2x2 counts, both accuracies, the method, statistic, p-value
    and a one-line verdict."""
    a, b_ = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape or a.ndim != 1:
        raise RunError(f"McNemar needs paired answers on the same images: got {a.shape} and {b_.shape}",
                       "unpaired")
    b, c = int(np.sum(a & ~b_)), int(np.sum(~a & b_))
    if b + c == 0:
        method, statistic, p = "none (no discordant pairs)", 0.0, 1.0
    elif b + c < EXACT_BELOW:
        method, statistic, p = "exact binomial", float(b), float(stats.binomtest(b, b + c, 0.5).pvalue)
    else:
        statistic = (abs(b - c) - 1) ** 2 / (b + c)
        method, p = "chi-squared with continuity correction", float(stats.chi2.sf(statistic, 1))
    n = len(a)
    result = {"n": n, "both_right": int(np.sum(a & b_)), "a_only": b, "b_only": c,
              "both_wrong": int(np.sum(~a & ~b_)), "accuracy_a": float(a.mean()) if n else 0.0,
              "accuracy_b": float(b_.mean()) if n else 0.0, "method": method,
              "statistic": float(statistic), "p_value": p}
    return {**result, "verdict": verdict(result)}


def p_text(p: float) -> str:
    """A p-value as people read it: "p = 0.032", and "p < 0.0001" rather than p = 0 or 1e-30."""
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"


def verdict(result: dict) -> str:
    """One line a reader can act on."""
    if result["a_only"] + result["b_only"] == 0:
        return "The runs agree on every image: each one is right (or wrong) on the same images."
    diff = result["accuracy_b"] - result["accuracy_a"]
    if result["p_value"] < ALPHA:
        better = "B" if diff > 0 else "A"
        return f"{better} is significantly more accurate ({abs(diff):.2%} points, {p_text(result['p_value'])})."
    return (f"No significant difference ({diff:+.2%} points B - A, {p_text(result['p_value'])}, not under {ALPHA}): "
            f"the runs disagree on {result['a_only'] + result['b_only']} images, but not one-sidedly enough.")


def check_paired(pred_a: pd.DataFrame, pred_b: pd.DataFrame, run_a: str = "A", run_b: str = "B") -> None:
    """RunError unless both runs predicted the same test images, in the same order, with the same labels."""
    if len(pred_a) != len(pred_b):
        raise RunError(f"runs {run_a!r} and {run_b!r} were evaluated on different test sets "
                       f"({len(pred_a)} vs {len(pred_b)} images): they cannot be compared image by image",
                       "different_test_sets")
    same = (np.array_equal(pred_a["index"].to_numpy(), pred_b["index"].to_numpy())
            and np.array_equal(pred_a["label"].to_numpy(), pred_b["label"].to_numpy()))
    if not same:
        raise RunError(f"runs {run_a!r} and {run_b!r} were evaluated on different test images or labels: "
                       "they cannot be compared image by image", "different_test_sets")


def per_class_delta(pred_a: pd.DataFrame, pred_b: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Per true class: images, accuracy of A, of B, and B - A (most changed first)."""
    labels = pred_a["label"].to_numpy()
    right_a = labels == pred_a["predicted"].to_numpy()
    right_b = labels == pred_b["predicted"].to_numpy()
    rows = []
    for k, name in enumerate(names):
        mask = labels == k
        if mask.any():
            acc_a, acc_b = float(right_a[mask].mean()), float(right_b[mask].mean())
            rows.append({"class": name, "images": int(mask.sum()), "accuracy A": acc_a, "accuracy B": acc_b,
                         "delta (B - A)": acc_b - acc_a})
    frame = pd.DataFrame(rows)
    return frame.sort_values("delta (B - A)", key=np.abs, ascending=False, kind="stable") if rows else frame


def run_comparison(runs_dir, run_a: str, run_b: str) -> dict:
    """compare_runs of two runs' saved predictions, computed once per pair of predictions files
    (the Compare page asks for it in each callback: summary, gallery, each step of the detail view)."""
    path_a, path_b = (runs.run_path(runs_dir, run) / runs.PREDICTIONS for run in (run_a, run_b))
    return cached("comparison", path_a,
                  lambda: compare_runs(artifacts.predictions(runs_dir, run_a), artifacts.predictions(runs_dir, run_b),
                                       artifacts.class_names(runs_dir, run_a), run_a, run_b),
                  str(path_b.resolve()), file_stamp(path_b))


def compare_runs(pred_a: pd.DataFrame, pred_b: pd.DataFrame, names: list[str],
                 run_a: str = "A", run_b: str = "B") -> dict:
    """McNemar's result, the per-class delta table, and the test indices A gets right and B wrong
    ("a_only") and the other way round ("b_only"), the most confident wrong answer first."""
    check_paired(pred_a, pred_b, run_a, run_b)
    labels = pred_a["label"].to_numpy()
    right_a = labels == pred_a["predicted"].to_numpy()
    right_b = labels == pred_b["predicted"].to_numpy()
    index = pred_a["index"].to_numpy()

    def wrong_first(mask: np.ndarray, wrong: pd.DataFrame) -> list[int]:
        confidence = wrong[PROB_COLUMNS].to_numpy().max(axis=1)[mask]
        return [int(i) for i in index[mask][np.argsort(-confidence, kind="stable")]]

    return {"mcnemar": mcnemar(right_a, right_b), "per_class": per_class_delta(pred_a, pred_b, names),
            "a_only": wrong_first(right_a & ~right_b, pred_b), "b_only": wrong_first(~right_a & right_b, pred_a)}
