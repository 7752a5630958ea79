"""Suspected label errors: out-of-fold probabilities for the training set, then cleanlab's finder.

    workbench label-issues fast-default                  # K-fold run + cleanlab, cached in the run folder
    workbench label-issues fast-default --folds 4 --epochs 4

Confident learning (Northcutt et al. 2021, the `cleanlab` library) needs, for every image, class
probabilities from a model that never trained on it. The test set has them already: the run's own
test_predictions.parquet. For the 60,000 training images this module trains K small models by
stratified K-fold cross-validation (the compact CNN of the `fast` recipe, narrower and for a few
epochs) and keeps each model's probabilities for the fold it held out.

Cache, in the run folder:

    label_issues/settings.json    the FoldSettings used (+ number of images and a digest of the labels)
    label_issues/fold_<k>.npz     one finished fold (written to a temp file, then renamed): an
                                  interrupted run continues at the next unfinished fold
    label_issues/oof_train.npz    all folds together (float16 probabilities); the fold files go
    label_issues.parquet          the suspects of both splits (split, index, given, suggested, ...)
    near_duplicates.parquet       test images nearly identical to a training image (model/near_duplicates.py)

Different settings (or labels) than the cached ones start again from fold 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model import runs
from model.data import NUM_CLASSES
from model.errors import RunError, SettingError

Progress = Callable[[int, int], None]  # (epochs done, epochs in all), called after each epoch


@dataclass(frozen=True)
class FoldSettings:
    """The K-fold recipe. Defaults measured on a 2-core AVX512-BF16 VM (see README, "Suspected label errors")."""
    folds: int = 4              # each model trains on 45,000 images (3/4) and scores the 15,000 it never saw;
                                # cleanlab's own default is 5, 4 saves a fifth of the time
    epochs: int = 4             # 4 x 45k x 4 folds = 720k training images: ~4 minutes on 2 cores at width 16
    width: int = 16             # channels 16/32/64: ~2x faster than fast's 24, ~92 % held-out accuracy is enough
    batch_size: int = 256       # as the `fast` recipe
    learning_rate: float = 0.2  # as the `fast` recipe (one-cycle peak; the schedule fits the few epochs)
    seed: int = 0               # fold split, initial weights, shuffles and augmentation
    limit: int | None = None    # use only this many training images (tests and smoke runs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def check(self) -> FoldSettings:
        """SettingError naming the value when a setting cannot work (before any cached file is touched)."""
        for name, least in (("folds", 2), ("epochs", 1), ("width", 1), ("batch_size", 1)):
            if getattr(self, name) < least:
                raise SettingError(f"label issues need {name} >= {least}; received {name}={getattr(self, name)}",
                                   "bad_folds")
        return self


# ---------------------------------------------------------------------------------------------
# Out-of-fold probabilities, resumable per fold

def out_of_fold_probabilities(images: np.ndarray, labels: np.ndarray, cache_dir: Path | str,
                              settings: FoldSettings = FoldSettings(),
                              progress: Progress | None = None) -> np.ndarray:
    """(n, 10) float32 probabilities, each row from the fold model that did not train on that image.
    Reuses cache_dir's result when its settings and labels match; resumes at the first unfinished fold."""
    cache_dir, settings = Path(cache_dir), settings.check()
    record = _record(labels, settings)
    if _read_settings(cache_dir) != record:
        shutil.rmtree(cache_dir, ignore_errors=True)
        cache_dir.mkdir(parents=True)
        _atomic_write(cache_dir / runs.OOF_SETTINGS, lambda f: f.write(json.dumps(record, indent=2).encode()))
    total = settings.folds * settings.epochs
    done = _read_cached(cache_dir / runs.OOF_TRAIN, ("probs",))
    if done is not None:
        if progress:
            progress(total, total)
        return done["probs"].astype(np.float32)
    probs = np.zeros((len(labels), NUM_CLASSES), np.float32)
    fold_of = np.zeros(len(labels), np.uint8)
    for k, (train_idx, held_idx) in enumerate(fold_indices(labels, settings)):
        path = cache_dir / f"fold_{k}.npz"
        saved = _read_cached(path, ("held", "probs"))
        if saved is None:
            held = train_fold(images, labels, train_idx, held_idx, settings, k,
                              lambda epoch: progress and progress(k * settings.epochs + epoch, total))
            _atomic_write(path, lambda f: np.savez(f, held=held_idx, probs=held))
            saved = {"held": held_idx, "probs": held}
        probs[saved["held"]], fold_of[saved["held"]] = saved["probs"], k
        if progress:
            progress((k + 1) * settings.epochs, total)
    _atomic_write(cache_dir / runs.OOF_TRAIN, lambda f: np.savez_compressed(
        f, probs=probs.astype(np.float16), labels=labels.astype(np.uint8), fold=fold_of))
    for k in range(settings.folds):
        (cache_dir / f"fold_{k}.npz").unlink(missing_ok=True)
    return probs


def _read_cached(path: Path, keys: tuple[str, ...]) -> dict | None:
    """A cached archive's arrays; None when it is missing or damaged (then it is computed again)."""
    if not path.is_file():
        return None
    try:
        return runs.read_npz(path, keys)
    except RunError:
        path.unlink(missing_ok=True)
        return None


def fold_indices(labels: np.ndarray, settings: FoldSettings) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held-out) index pairs of a stratified, shuffled K-fold split (the same for the same seed)."""
    from sklearn.model_selection import StratifiedKFold

    split = StratifiedKFold(settings.folds, shuffle=True, random_state=settings.seed)
    return list(split.split(np.zeros(len(labels)), labels))


def train_fold(images: np.ndarray, labels: np.ndarray, train_idx: np.ndarray, held_idx: np.ndarray,
               settings: FoldSettings, fold: int, on_epoch: Callable[[int], None]) -> np.ndarray:
    """Train the fold's model on train_idx, return its float32 probabilities for held_idx."""
    import keras

    from model.pipeline import make_dataset
    from model.recipes import Augment, get_recipe
    from model.train import build_and_compile, one_hot

    recipe = get_recipe("fast", epochs=settings.epochs, width=settings.width, batch_size=settings.batch_size,
                        learning_rate=settings.learning_rate, seed=settings.seed + fold,
                        augment=Augment(crop_padding=2, flip=True))  # no erasing: too few epochs to bear it
    keras.utils.set_random_seed(recipe.seed)
    steps = math.ceil(len(train_idx) / recipe.batch_size)
    data = make_dataset(images[train_idx], labels[train_idx], recipe.batch_size, recipe.augment, recipe.seed,
                        repeat=True).map(one_hot)
    model = build_and_compile(recipe, steps)
    callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1))
    model.fit(data, epochs=recipe.epochs, steps_per_epoch=steps, verbose=0, callbacks=[callback])
    held = np.asarray(model.predict(images[held_idx][..., None].astype(np.float32), batch_size=1024, verbose=0),
                      dtype=np.float32)
    return held / held.sum(axis=1, keepdims=True)  # bfloat16 outputs sum to 1 only roughly


def is_cached(cache_dir: Path | str, labels: np.ndarray, settings: FoldSettings) -> bool:
    """Whether cache_dir holds finished out-of-fold probabilities for these labels and settings."""
    cache_dir = Path(cache_dir)
    return (cache_dir / runs.OOF_TRAIN).is_file() and _read_settings(cache_dir) == _record(labels, settings)


def _record(labels: np.ndarray, settings: FoldSettings) -> dict:
    return {**settings.to_dict(), "n": int(len(labels)), "labels_sha1": _digest(labels)}


def _digest(labels: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()


def _read_settings(cache_dir: Path) -> dict | None:
    try:
        return json.loads((cache_dir / runs.OOF_SETTINGS).read_text())
    except (OSError, ValueError):
        return None


def _atomic_write(path: Path, write: Callable) -> None:
    """write(file) into a temp file beside `path`, then rename it over `path` (no half-written file)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "wb") as handle:
        write(handle)
    os.replace(temp, path)


# ---------------------------------------------------------------------------------------------
# cleanlab

ISSUE_COLUMNS = ["split", "index", "given", "suggested", "label_quality", "p_given", "p_suggested", "rank"]


def rank_label_issues(labels: np.ndarray, probs: np.ndarray, split: str,
                      indices: np.ndarray | None = None) -> pd.DataFrame:
    """cleanlab's suspects, worst first: given label, suggested label (the likeliest other class),
    label quality (self-confidence, 0..1, low = suspect) and both probabilities."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels, probs = np.asarray(labels, dtype=np.int64), np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)  # float16 storage: rows sum to 1 only roughly
    found = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -1.0
    suggested = others.argmax(axis=1)
    indices = np.arange(len(labels)) if indices is None else np.asarray(indices)
    return pd.DataFrame({
        "split": split, "index": indices[found].astype(np.int32), "given": labels[found].astype(np.int8),
        "suggested": suggested[found].astype(np.int8), "label_quality": quality[found].astype(np.float32),
        "p_given": probs[found, labels[found]].astype(np.float32),
        "p_suggested": probs[found, suggested[found]].astype(np.float32),
        "rank": np.arange(1, len(found) + 1, dtype=np.int32)}, columns=ISSUE_COLUMNS)


def test_label_quality(predictions: pd.DataFrame) -> np.ndarray:
    """cleanlab's label quality (self-confidence) of every row of a test_predictions table: low = suspect."""
    from cleanlab.rank import get_label_quality_scores

    probs = predictions[runs.PROB_COLUMNS].to_numpy(dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    labels = predictions["label"].to_numpy(dtype=np.int64)
    return get_label_quality_scores(labels, probs, method="self_confidence").astype(np.float32)


test_label_quality.__test__ = False  # a test file importing it by name must not collect it as a test


# ---------------------------------------------------------------------------------------------
# A run's label issues, end to end

def compute_label_issues(run_dir: Path | str, data_dir=None, settings: FoldSettings = FoldSettings(),
                         progress: Progress | None = None) -> dict:
    """K-fold probabilities for the training set (cached), cleanlab on both splits, near-duplicates;
    writes label_issues.parquet and near_duplicates.parquet into the run folder. Returns a summary."""
    from model.data import load_raw
    from model.near_duplicates import find_near_duplicates

    run_dir, settings = Path(run_dir), settings.check()
    test = runs.read_predictions(run_dir)  # first: a run without test predictions fails at once
    raw = load_raw(data_dir, progress=False)
    keep = np.arange(len(raw["train_labels"]))
    if settings.limit and settings.limit < len(keep):
        keep = np.sort(np.random.default_rng(settings.seed).permutation(len(keep))[:settings.limit])
    images, labels = raw["train_images"][keep], raw["train_labels"][keep]
    cache_dir = run_dir / runs.LABEL_ISSUES_DIR
    reused, started = is_cached(cache_dir, labels, settings), time.perf_counter()
    oof = out_of_fold_probabilities(images, labels, cache_dir, settings, progress)
    seconds = time.perf_counter() - started
    issues = pd.concat([rank_label_issues(test["label"].to_numpy(), test[runs.PROB_COLUMNS].to_numpy(), "test",
                                          test["index"].to_numpy()),
                        rank_label_issues(labels, oof, "train", keep)], ignore_index=True)
    write_parquet(run_dir / runs.LABEL_ISSUES, issues)
    duplicates = None
    if (run_dir / runs.MODEL).is_file():  # an imported ONNX run has no Keras model to take features from
        duplicates = find_near_duplicates(runs.load_model(run_dir), raw["test_images"], raw["test_labels"],
                                          images, labels, keep)
        write_parquet(run_dir / runs.NEAR_DUPLICATES, duplicates)
    return {"train_suspects": int((issues["split"] == "train").sum()),
            "test_suspects": int((issues["split"] == "test").sum()),
            "oof_accuracy": float((oof.argmax(axis=1) == labels).mean()), "n_train": int(len(labels)),
            "near_duplicates": None if duplicates is None else int(len(duplicates)),
            "seconds": seconds, "reused": reused}


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    _atomic_write(Path(path), lambda f: frame.to_parquet(f, index=False))


def read_label_issues(run_dir: Path | str) -> pd.DataFrame:
    """label_issues.parquet; RunError with code "no_label_issues" when it was never computed."""
    path = Path(run_dir) / runs.LABEL_ISSUES
    if not path.is_file():
        raise RunError(f"run {Path(run_dir).name!r} has no {runs.LABEL_ISSUES}: run "
                       f"`{runs.run_command('workbench label-issues', run_dir)}` to compute it", "no_label_issues")
    return read_checked_parquet(path, ISSUE_COLUMNS)


def read_checked_parquet(path: Path, columns: list[str], again: str = "") -> pd.DataFrame:
    """One of this module's tables, with its columns; RunError naming the run and file when it cannot be
    read or lacks a column (`again`: what computes it again, added to the message)."""
    after = f"; {again}" if again else ""
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise RunError(f"run {path.parent.name!r}: {path.name} is unreadable ({exc}){after}") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RunError(f"run {path.parent.name!r}: {path.name} lacks columns {missing}{after}")
    return frame
