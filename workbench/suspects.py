"""Suspected label errors for the pages: the ranked suspects of a split, Grad-CAM tiles, the near-
duplicate pairs, and the analyst's marks ("label wrong / label fine / unsure") with their CSV export.

    suspects(runs_dir, run_id, "test")          # DataFrame ranked by cleanlab (model/label_issues.py)
    set_mark(runs_dir, run_id, "test", 9133, "wrong")
    marks(runs_dir, run_id)                     # {"test/9133": {...record...}}
    marks_csv(runs_dir, run_id)                 # index,split,given,suggested,mark
    label_quality(runs_dir, run_id)             # cleanlab's score of every test row (the errors table's column)

The test split always works: without a cached label_issues.parquet its suspects come from the run's
test predictions alone. The training split needs `workbench label-issues RUN` (a K-fold run).

Marks live in the run folder (label_marks.json). Every change is a read-modify-write under an
exclusive fcntl lock on label_marks.json.lock, and the new file is written to a temp file and renamed
over the old one: several server workers (processes) and two browser tabs never lose a mark, and a
reader never sees half a file.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from model import runs
from model.data import NUM_CLASSES
from model.errors import RunError, SettingError
from model.label_issues import rank_label_issues, read_checked_parquet, read_label_issues, test_label_quality
from model.near_duplicates import DUPLICATE_COLUMNS, THRESHOLD as NEAR_DUPLICATE_THRESHOLD
from model.run_schema import is_whole
from workbench import artifacts
from workbench.cache import cached
from workbench.images import png_data_url

SPLITS = ("test", "train")
MARKS = {"wrong": "label wrong", "fine": "label fine", "unsure": "unsure"}  # stored value -> button text
CSV_COLUMNS = ["index", "split", "given", "suggested", "mark"]
WHOLE_FIELDS = ("index", "given", "suggested")   # a mark record's whole numbers

__all__ = ["SPLITS", "MARKS", "NEAR_DUPLICATE_THRESHOLD", "suspects", "near_duplicates", "set_mark", "marks",
           "marks_csv", "test_label_quality", "label_quality", "split_images", "tile_images", "png_data_url"]


# ---------------------------------------------------------------------------------------------
# Suspects and near-duplicates

def suspects(runs_dir: Path | str, run_id: str, split: str) -> pd.DataFrame:
    """The split's suspects, worst first; RunError "no_label_issues" for train when never computed."""
    if split not in SPLITS:
        raise SettingError(f"unknown split {split!r}; expected one of {list(SPLITS)}", "bad_split")
    run_dir = runs.run_path(runs_dir, run_id)
    path = run_dir / runs.LABEL_ISSUES
    if path.is_file():
        frame = cached("label-issues", path, lambda: read_label_issues(run_dir))
        return frame[frame["split"] == split].reset_index(drop=True)
    if split == "train":
        read_label_issues(run_dir)  # raises the "run `workbench label-issues RUN`" error
    return cached("test-suspects", run_dir / runs.PREDICTIONS, lambda: _from_predictions(runs_dir, run_id))


def _from_predictions(runs_dir: Path | str, run_id: str) -> pd.DataFrame:
    frame = artifacts.predictions(runs_dir, run_id)
    return rank_label_issues(frame["label"].to_numpy(), frame[runs.PROB_COLUMNS].to_numpy(), "test",
                             frame["index"].to_numpy())


def near_duplicates(runs_dir: Path | str, run_id: str) -> pd.DataFrame | None:
    """The train/test near-duplicate pairs, or None when `workbench label-issues` has not run."""
    path = runs.run_path(runs_dir, run_id) / runs.NEAR_DUPLICATES
    if not path.is_file():
        return None
    return cached("near-duplicates", path, lambda: _read_duplicates(path))


def _read_duplicates(path: Path) -> pd.DataFrame:
    again = f"`{runs.run_command('workbench label-issues', path.parent)}` computes it again"
    return read_checked_parquet(path, DUPLICATE_COLUMNS, again)


def label_quality(runs_dir: Path | str, run_id: str) -> np.ndarray:
    """cleanlab's label quality of every test prediction row of the run (low = suspect), cached."""
    run_dir = runs.run_path(runs_dir, run_id)
    return cached("test-label-quality", run_dir / runs.PREDICTIONS,
                  lambda: test_label_quality(artifacts.predictions(runs_dir, run_id)))


def split_images(split: str, data_dir: Path | str | None = None) -> np.ndarray:
    """All images of a split (uint8): the 10,000 test or the 60,000 training images, read once."""
    if split == "test":
        return artifacts.test_images(data_dir)
    from model.data import load_raw

    return cached("train-images", None, lambda: load_raw(data_dir, progress=False)["train_images"],
                  str(data_dir) if data_dir else None)


# ---------------------------------------------------------------------------------------------
# Marks

@contextmanager
def _locked(run_dir: Path):
    """An exclusive lock on the run's marks (across processes and threads) while the block runs."""
    with open(run_dir / (runs.LABEL_MARKS + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(run_dir: Path) -> dict:
    """The marks file as stored (records a reader cannot use included: a change keeps them); RunError
    when it cannot be read at all, which set_mark then never overwrites."""
    path = run_dir / runs.LABEL_MARKS
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"run {run_dir.name!r}: {runs.LABEL_MARKS} is unreadable ({exc}); it is kept as it is: "
                       "repair it, or move it away to start marking afresh") from exc
    if not isinstance(data, dict):
        raise RunError(f"run {run_dir.name!r}: {runs.LABEL_MARKS} should hold an object of marks, found "
                       f"{type(data).__name__}; it is kept as it is: repair it, or move it away to start afresh")
    return data


def is_mark(record) -> bool:
    """A record as set_mark writes it: whole index, split and mark by name, labels 0..9."""
    return (isinstance(record, dict) and record.get("split") in SPLITS and record.get("mark") in MARKS and
            all(is_whole(record.get(k)) for k in WHOLE_FIELDS)
            and all(0 <= record[k] < NUM_CLASSES for k in ("given", "suggested")))


def marks(runs_dir: Path | str, run_id: str) -> dict[str, dict]:
    """Every usable mark of the run: "split/index" -> {index, split, given, suggested, mark}. A record
    damaged by hand is left out here (and kept in the file)."""
    return {key: record for key, record in _read(runs.run_path(runs_dir, run_id)).items() if is_mark(record)}


def set_mark(runs_dir: Path | str, run_id: str, split: str, index, mark: str) -> dict:
    """Record the analyst's mark on one suspect (SettingError for a bad mark, split or index)."""
    if mark not in MARKS:
        raise SettingError(f"unknown mark {mark!r}; expected one of {list(MARKS)}", "bad_mark")
    try:
        index = int(index)
    except (TypeError, ValueError):
        raise SettingError(f"the image index must be a whole number; received {index!r}", "bad_mark") from None
    found = suspects(runs_dir, run_id, split)
    row = found[found["index"] == index]
    if row.empty:
        raise SettingError(f"{split} image #{index} is not a suspect of run {run_id!r}", "bad_mark")
    record = {"index": index, "split": split, "given": int(row["given"].iloc[0]),
              "suggested": int(row["suggested"].iloc[0]), "mark": mark}
    run_dir = runs.run_path(runs_dir, run_id)
    with _locked(run_dir):
        data = _read(run_dir)
        data[f"{split}/{index}"] = record
        temp = run_dir / f".{runs.LABEL_MARKS}.{os.getpid()}.tmp"
        temp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(temp, run_dir / runs.LABEL_MARKS)
    return record


def marks_csv(runs_dir: Path | str, run_id: str, class_names: list[str] | None = None) -> str:
    """The marks as CSV (index, split, given, suggested, mark), labels as class names when given."""
    frame = pd.DataFrame(list(marks(runs_dir, run_id).values()), columns=CSV_COLUMNS)
    frame = frame.sort_values(["split", "index"], kind="stable")
    if class_names:
        for column in ("given", "suggested"):
            frame[column] = [class_names[int(i)] for i in frame[column]]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Tiles

def tile_images(runs_dir: Path | str, run_id: str, images: np.ndarray, given: np.ndarray,
                suggested: np.ndarray) -> tuple[list[str], list[str] | None, list[str] | None, str | None]:
    """PNG data URLs of the images and of Grad-CAM overlays for the given and for the suggested class,
    two batched (and cached) Grad-CAM calls; (urls, None, None, why) when the run cannot explain."""
    from model.errors import ExplainError
    from workbench.explain import get_explainer
    from workbench.images import overlay

    plain = [png_data_url(image) for image in images]
    try:
        explainer = get_explainer(runs_dir, run_id)
        heat_given = explainer.explain(images, np.asarray(given), "gradcam")
        heat_suggested = explainer.explain(images, np.asarray(suggested), "gradcam")
    except (ExplainError, RunError) as exc:
        return plain, None, None, str(exc)
    return (plain, [png_data_url(overlay(x, h)) for x, h in zip(images, heat_given)],
            [png_data_url(overlay(x, h)) for x, h in zip(images, heat_suggested)], None)
