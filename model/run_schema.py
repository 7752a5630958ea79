"""What the content of each run file must be: checked once, when model/runs.py reads the file.

    problems = check_json(METRICS_FIELDS, data)     # ["test_accuracy should be a number, found 'x'", ...]
    problems = check_history(frame)                  # non-numeric columns
    problems = check_predictions(frame)              # indices outside the test set, classes outside 0..9

A reader turns the first problem into a RunError naming the run and the file, so a page shows that
message instead of failing somewhere later with a KeyError. Fields a page can do without are optional;
the schema only says what a present field must look like (an optional field may be null: an imported
model has no training time).
"""

from __future__ import annotations

import math

import pandas as pd

from model.data import FILES, NUM_CLASSES

NUM_TEST = FILES["test_images"].count  # 10,000: the indices test_predictions.parquet may hold


def is_number(value) -> bool:  # finite: a NaN would also make the API's JSON invalid
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_share(value) -> bool:  # an accuracy, F1 or calibration error: 0..1
    return is_number(value) and 0 <= value <= 1


def is_count(value) -> bool:
    return is_whole(value) and value >= 1


def is_amount(value) -> bool:  # seconds, images per second
    return is_number(value) and value >= 0


def is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_numbers(value) -> bool:
    return isinstance(value, list) and all(is_number(v) for v in value)


def is_pair(value) -> bool:
    return is_numbers(value) and len(value) == 2


def is_interval(value) -> bool:  # a confidence interval of a share: 0 <= low <= high <= 1
    return is_pair(value) and 0 <= value[0] <= value[1] <= 1


def is_class_names(value) -> bool:
    return isinstance(value, list) and len(value) == NUM_CLASSES and all(isinstance(v, str) for v in value)


def is_per_class(value) -> bool:
    return isinstance(value, dict) and all(
        isinstance(scores, dict) and all(is_number(v) for v in scores.values()) for scores in value.values())


RELIABILITY_KEYS = ("bin_accuracy", "bin_confidence", "bin_count", "bin_edges")


def is_reliability(value) -> bool:  # an empty bin's accuracy and confidence are null; n bins have n + 1 edges
    if not isinstance(value, dict) or not all(
            isinstance(value.get(k), list) and all(v is None or is_number(v) for v in value[k]) for k in RELIABILITY_KEYS):
        return False
    bins = len(value["bin_count"])
    return len(value["bin_accuracy"]) == len(value["bin_confidence"]) == bins and len(value["bin_edges"]) == bins + 1


# field -> (check, what it should be, required)
METRICS_FIELDS = {
    "test_accuracy": (is_share, "a number from 0 to 1", True),
    "test_accuracy_ci95": (is_interval, "a list of two numbers from 0 to 1, the lower first", False),
    "macro_f1": (is_share, "a number from 0 to 1", False),
    "ece": (is_share, "a number from 0 to 1", False),
    "n_test": (is_count, "a whole number of at least 1", False),
    "train_seconds": (is_amount, "a number of at least 0", False),
    "train_images_per_second": (is_amount, "a number of at least 0", False),
    "per_class": (is_per_class, "an object of per-class objects of numbers", False),
    "reliability": (is_reliability, f"an object with lists of numbers (or null) {', '.join(RELIABILITY_KEYS)} "
                    "(as many of each as bins, one edge more)", False),
}
CONFIG_FIELDS = {
    "run_id": (lambda v: isinstance(v, str), "a string", False),
    "recipe": (lambda v: isinstance(v, str), "a string", False),
    "architecture": (lambda v: isinstance(v, str), "a string", False),
    "class_names": (is_class_names, f"a list of {NUM_CLASSES} strings", False),
    "gradcam_layer": (lambda v: v is None or isinstance(v, str), "a string or null (no conv layer)", False),
    "input_size": (is_whole, "a whole number", False),
    "epochs": (is_whole, "a whole number", False),
    "batch_size": (is_whole, "a whole number", False),
    "seed": (is_whole, "a whole number", False),
    "settings": (lambda v: isinstance(v, dict), "an object", False),
    "imported": (lambda v: isinstance(v, dict), "an object (where the model came from)", False),
}


def check_json(fields: dict, data: dict) -> list[str]:
    """Problems of a JSON object against a field table: missing required fields, wrong types."""
    problems = []
    for name, (check, expected, required) in fields.items():
        if name not in data or (data[name] is None and not required):
            if required:
                problems.append(f"lacks {name!r}")
        elif not check(data[name]):
            problems.append(f"{name} should be {expected}, found {_show(data[name])}")
    return problems


def check_history(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """Columns of history.csv that should hold numbers but hold something else."""
    problems = []
    for column in (c for c in columns if c in frame.columns):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            problems.append(f"column {column} should hold numbers, found {_show(frame[column].iloc[row])} "
                            f"in row {row + 1}")
    return problems


def check_predictions(frame: pd.DataFrame, prob_columns: list[str]) -> list[str]:
    """Indices outside the test set, classes outside 0..9, non-numeric probabilities."""
    problems = []
    for column, high in (("index", NUM_TEST), ("label", NUM_CLASSES), ("predicted", NUM_CLASSES)):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = ~values.between(0, high - 1) | (values != values.round())
        if bad.any():
            problems.append(f"{column} should be a whole number from 0 to {high - 1}, found "
                            f"{_show(frame[column].iloc[int(bad.to_numpy().argmax())])}")
    if not all(pd.api.types.is_numeric_dtype(frame[c]) for c in prob_columns):
        problems.append("the probability columns should hold numbers")
    return problems


def _show(value) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)  # numpy scalars as plain numbers
    return (text[:40] + "...") if len(text) > 43 else text
