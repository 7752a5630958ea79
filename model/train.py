"""Train a recipe into a run folder, resumably, then evaluate it once on the test set.

    workbench train --recipe fast --run-id fast-default      # the committed default (~10 min, 2 cores)
    workbench train --recipe fast --epochs 1 --limit 2000    # a smoke run (the CLI calls train() here)

Pipeline: data (train / validation split of the 60k, test held out) -> tf.data with per-batch
augmentation (model/pipeline.py) -> model.fit with a one-cycle (or exponential) schedule -> the
epoch with the best validation accuracy is kept -> model.keras -> evaluated once on the test set.

Kill it at any point (kill -9 included) and run the same command again: `backup/` holds the weights
and optimizer state of the last two finished epochs, each written to a temp file and renamed, verified
on load (model/checkpoints.py); the data order resumes too (each epoch's shuffle and augmentation are
seeded by (seed, epoch)), so a resumed run ends with the uninterrupted run's weights, and history.csv
continues where it stopped. A finished run deletes its `backup/`.

Data-parallel on several workers: when $TF_CONFIG names more than one worker, every worker runs the
same command under tf.distribute.MultiWorkerMirroredStrategy (model/distributed.py); worker 0 (the
chief) writes the run folder, the others keep their checkpoints in a temporary folder.
"""

from __future__ import annotations

import json
import math
import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from model import distributed, runs
from model.checkpoints import BEST_WEIGHTS, Checkpointer, resume_epoch
from model.architectures import build_model, gradcam_layer
from model.data import CLASS_NAMES, load_splits
from model.precision import dtype_policy, resolve_precision
from model.pipeline import make_dataset
from model.recipes import Recipe

LOG = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Optimisation

def make_schedule(recipe: Recipe, steps_per_epoch: int):
    total = recipe.epochs * steps_per_epoch
    if recipe.schedule == "onecycle":
        warmup = max(1, int(recipe.warmup_fraction * total))
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=recipe.learning_rate / 25, decay_steps=max(1, total - warmup),
            warmup_target=recipe.learning_rate, warmup_steps=warmup, alpha=0.0)
    if recipe.schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            recipe.learning_rate, decay_steps=steps_per_epoch, decay_rate=recipe.decay_rate)
    raise ValueError(f"unknown schedule {recipe.schedule!r}; expected onecycle or exponential")


def make_optimizer(recipe: Recipe, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    schedule = make_schedule(recipe, steps_per_epoch)
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True,
                                    weight_decay=recipe.weight_decay or None)
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(schedule, weight_decay=recipe.weight_decay or None)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; expected sgd or adam")


def build_recipe_model(recipe: Recipe, training: bool = False) -> keras.Model:
    """The recipe's architecture; training=True: the copy that trains (fused batch norm kernels)."""
    if recipe.architecture == "compact_cnn":
        return build_model("compact_cnn", width=recipe.width, fused_batch_norm=training)
    return build_model("resnet50", input_size=recipe.input_size, trainable_layers=recipe.trainable_layers)


def build_and_compile(recipe: Recipe, steps_per_epoch: int) -> keras.Model:
    """The recipe's model in its training precision (variables stay float32), compiled."""
    with dtype_policy(resolve_precision(recipe.precision)):
        model = build_recipe_model(recipe, training=True)
    if recipe.architecture == "resnet50":
        from model.weights import load_resnet50_weights
        load_resnet50_weights(model, recipe.weights)
    model.compile(optimizer=make_optimizer(recipe, steps_per_epoch),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
                  metrics=["accuracy"],
                  jit_compile=False)  # XLA on CPU measured 1.5-2x slower than TF's oneDNN kernels here
    return model


def one_hot(x, y):
    return x, tf.one_hot(y, len(CLASS_NAMES))


# ---------------------------------------------------------------------------------------------
# Callbacks

class HistoryWriter(keras.callbacks.Callback):
    """Writes history.csv after every epoch, continuing an interrupted run's rows (1-based epochs)."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        if (self.run_dir / runs.HISTORY).is_file():
            self.rows = runs.read_history(self.run_dir).to_dict("records")

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {"epoch": epoch + 1, "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
               "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
               "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
               "seconds": round(time.perf_counter() - self.started, 3)}
        self.rows = [r for r in self.rows if r["epoch"] < epoch + 1] + [row]
        runs.write_history(self.run_dir, pd.DataFrame(self.rows, columns=runs.HISTORY_COLUMNS))


def best_val_accuracy(run_dir: Path, upto: int) -> float | None:
    """The best validation accuracy of epochs 1..upto in history.csv (the threshold a resumed run's
    best-weights file was saved under)."""
    if not upto or not (Path(run_dir) / runs.HISTORY).is_file():
        return None
    history = runs.read_history(run_dir)
    history = history[history["epoch"] <= upto]
    return float(history["val_accuracy"].max()) if len(history) else None


def make_callbacks(run_dir: Path, start_epoch: int, extra: list | None = None) -> list:
    return [
        HistoryWriter(run_dir),
        *(extra or []),
        # Last, so an epoch counts as done only once its history row is written; it also keeps the
        # best-validation weights (model selection on the validation split only).
        Checkpointer(run_dir, start_epoch, best_val_accuracy(run_dir, start_epoch)),
    ]


# ---------------------------------------------------------------------------------------------
# A run

def run_config(recipe: Recipe, run_id: str, n_train: int, limit: int | None) -> dict:
    return {"run_id": run_id, "recipe": recipe.name, "architecture": recipe.architecture,
            "class_names": list(CLASS_NAMES), "input_size": recipe.input_size,
            "gradcam_layer": gradcam_layer(recipe.architecture, recipe.input_size),
            "seed": recipe.seed, "val_size": recipe.val_size, "epochs": recipe.epochs,
            "batch_size": recipe.batch_size, "n_train": n_train, "limit": limit,
            "precision": resolve_precision(recipe.precision),
            "settings": recipe.to_dict(), **code_versions()}


def code_versions() -> dict:
    """What a run can be traced to: the project's git commit (None outside a checkout), whether the
    checkout had uncommitted changes, and the versions of the project, TensorFlow and Keras."""
    from importlib import metadata

    try:
        project = metadata.version("fashion-workbench")
    except metadata.PackageNotFoundError:
        project = None
    return {"git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(_git("status", "--porcelain", "-uno")),
            "project_version": project, "tensorflow_version": tf.__version__, "keras_version": keras.__version__}


def _git(*args: str) -> str | None:
    """`git ARGS` in the project's folder, its output stripped; None when git or the checkout is absent."""
    try:
        done = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True,
                              text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def prepare_run_dir(runs_dir: Path, run_id: str, config: dict, write: bool = True) -> Path:
    """Create the run folder, or check that an unfinished one was started with the same settings.

    write=False (a non-chief worker) only checks: it refuses what the chief refuses, so no worker is
    left waiting for a chief that stopped, and writes nothing.
    """
    run_dir = Path(runs_dir) / runs.check_run_id(run_id)
    if (run_dir / runs.CONFIG).is_file():
        old = runs.read_config(run_dir)
        if not (run_dir / runs.BACKUP_DIR).is_dir():
            raise runs.RunError(f"run {run_id!r} is already finished; choose another --run-id "
                                f"or delete {run_dir} to train it again")
        changed = changed_settings(old, config)
        if changed:
            raise runs.RunError(f"run {run_id!r} was started with other settings ({'; '.join(changed)}); "
                                f"resume it with the same flags, choose another --run-id, or delete {run_dir} "
                                "to start it afresh")
        if write:
            LOG.info("resuming run %r from %s", run_id, run_dir / runs.BACKUP_DIR)
    if not write:
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / runs.BACKUP_DIR).mkdir(exist_ok=True)
    runs.write_json(run_dir, runs.CONFIG, config)
    return run_dir


def changed_settings(old: dict, config: dict) -> list[str]:
    """What differs between an unfinished run's settings and a resume's: "epochs 3, now 5" each."""
    def recorded(c: dict) -> dict:
        return {**json.loads(json.dumps(c.get("settings") or {})), "limit": c.get("limit")}

    had, wanted = recorded(old), recorded(config)
    return [f"{key} {had.get(key)}, now {wanted.get(key)}" for key in sorted(set(had) | set(wanted))
            if had.get(key) != wanted.get(key)]


def subset(images: np.ndarray, labels: np.ndarray, limit: int | None, seed: int):
    if not limit or limit >= len(labels):
        return images, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(labels))[:limit])
    return images[keep], labels[keep]


def train(recipe: Recipe, runs_dir: Path | str = runs.DEFAULT_RUNS_DIR, run_id: str | None = None,
          data_dir=None, limit: int | None = None, progress: bool = True,
          extra_callbacks: list | None = None) -> Path:
    """Train (or resume) a run, keep the best-validation epoch, save it and evaluate it on the test set.

    With $TF_CONFIG naming several workers this is one worker of a data-parallel run
    (MultiWorkerMirroredStrategy): every worker calls it with the same arguments and executes the
    same steps, because each step, checkpoint save and metric read is a collective operation the
    workers enter together. They differ only in where they write: the chief (worker 0) into the run
    folder, the others into a temporary folder deleted at the end (the TensorFlow guides' pattern).
    """
    from model.evaluate import evaluate_run

    # First, before any other TensorFlow op: the strategy configures TensorFlow's collective ops,
    # which is only possible before the runtime starts. One worker (or none) is the plain path.
    cluster = distributed.read_tf_config()
    multi = cluster is not None and cluster.num_workers > 1
    strategy = distributed.make_strategy() if multi else tf.distribute.get_strategy()
    chief = not multi or cluster.is_chief

    if recipe.val_size <= 0:
        raise ValueError("training needs a validation split for model selection: val_size must be > 0")
    run_id = run_id or f"{recipe.name}-{recipe.seed}"
    # Seeded: repeatable runs, and on several workers identical initial weights, shuffles and
    # augmentations, which the DATA sharding below relies on to hand out disjoint slices.
    keras.utils.set_random_seed(recipe.seed)
    splits = load_splits(data_dir, val_size=recipe.val_size, seed=recipe.seed, progress=progress)
    (x_train, y_train), val_data = training_data(recipe, splits, limit)
    config = run_config(recipe, run_id, len(y_train), limit)
    if multi:
        if not cluster.num_workers <= recipe.batch_size <= len(y_train):
            raise ValueError(f"the global batch size ({recipe.batch_size}) must be at least the number of "
                             f"workers ({cluster.num_workers}) and at most the training images ({len(y_train)})")
        config["workers"] = cluster.num_workers
    run_dir = prepare_run_dir(Path(runs_dir), run_id, config, write=chief)
    work_dir = run_dir if chief else worker_copy(run_dir, cluster.index)
    try:
        start = resume_epoch(work_dir)
        if multi and not distributed.same_on_all_workers(strategy, start):
            raise runs.RunError(f"run {run_id!r}: the workers would resume from different epochs; every "
                                f"worker must see the chief's {runs.BACKUP_DIR}/ (share the runs folder)")
        init = runs.load_model(runs.run_path(runs_dir, recipe.init_from)).get_weights() if recipe.init_from else None
        model = fit_model(recipe, strategy if multi else None, (x_train, y_train), val_data, work_dir,
                          progress, extra_callbacks, init, start)

        # Every worker saves, as the multi-worker guides ask (reading distributed variables may
        # involve the other workers); a non-chief's copy lands in its temporary folder.
        save_best_model(recipe, work_dir, model)
        if chief:
            evaluate_run(run_dir, test=splits.test)  # a fresh float32 copy, outside any strategy
            shutil.rmtree(run_dir / runs.BACKUP_DIR)
    finally:
        if not chief:
            shutil.rmtree(work_dir, ignore_errors=True)
    return run_dir


def training_data(recipe: Recipe, splits, limit: int | None):
    """(x_train, y_train), (x_val, y_val): the (limited) training split and the validation split,
    plus photo-like copies of both for a model meant for real photos (model/photo_augment.py)."""
    x_train, y_train = subset(splits.train.images, splits.train.labels, limit, recipe.seed)
    x_val, y_val = splits.val.images, splits.val.labels
    if recipe.photo_copies:
        from model.photo_augment import expand

        x_train, y_train = expand(x_train, y_train, recipe.photo_copies, recipe.seed)
        x_val, y_val = expand(x_val, y_val, 1, recipe.seed + 1)
    return (x_train, y_train), (x_val, y_val)


def fit_model(recipe: Recipe, strategy, train_data: tuple[np.ndarray, np.ndarray],
              val_data: tuple[np.ndarray, np.ndarray], work_dir: Path, progress: bool,
              extra_callbacks: list | None, init: list | None = None, start_epoch: int = 0):
    """Build, compile and fit the recipe's model (on several workers when `strategy` is given),
    starting from the weights `init` when given (fine-tuning another run), then from the checkpoint
    of `start_epoch` on, with the batches an uninterrupted run sees from there."""
    multi = strategy is not None
    x_train, y_train = train_data
    # recipe.batch_size is the GLOBAL batch: on several workers each trains on its 1/n share of
    # every batch, so the learning rate and the steps per epoch mean what they mean on one
    # machine. There the last, partial batch of each epoch is left out (other images each epoch):
    # split n ways it can leave a worker an empty batch, which BatchNormalization cannot train on.
    train_ds = make_dataset(x_train, y_train, recipe.batch_size, recipe.augment, recipe.seed,
                            drop_remainder=multi, repeat=True, start_epoch=start_epoch).map(one_hot)
    val_ds = make_dataset(*val_data, 1024).map(one_hot)
    steps = len(y_train) // recipe.batch_size if multi else math.ceil(len(y_train) / recipe.batch_size)
    if multi:
        train_ds, val_ds = distributed.shard_by_data(train_ds), distributed.shard_by_data(val_ds)
    with (strategy or tf.distribute.get_strategy()).scope():  # several workers: variables mirrored on
        model = build_and_compile(recipe, steps)             # each; the precision policy applies
        if init is not None:
            model.set_weights(init)
    if multi:
        distributed.prepare_fit(model, strategy, train_ds)
    model.fit(train_ds, validation_data=val_ds, epochs=recipe.epochs, steps_per_epoch=steps, shuffle=False,
              initial_epoch=start_epoch, verbose=1 if progress else 2,
              callbacks=make_callbacks(work_dir, start_epoch, extra_callbacks))
    return model


def worker_copy(run_dir: Path, index: int) -> Path:
    """A non-chief worker's temporary folder, holding a copy of the chief's backup/ and history.csv:
    the one state every worker resumes from."""
    work_dir = Path(tempfile.mkdtemp(prefix=f"workbench-worker{index}-"))
    if (run_dir / runs.BACKUP_DIR).is_dir():
        shutil.copytree(run_dir / runs.BACKUP_DIR, work_dir / runs.BACKUP_DIR)
    (work_dir / runs.BACKUP_DIR).mkdir(exist_ok=True)
    if (run_dir / runs.HISTORY).is_file():
        shutil.copy2(run_dir / runs.HISTORY, work_dir / runs.HISTORY)
    return work_dir


def save_best_model(recipe: Recipe, run_dir: Path, trained: keras.Model) -> None:
    """model.keras: the best-validation weights in a fresh, uncompiled float32 copy of the architecture."""
    best = Path(run_dir) / runs.BACKUP_DIR / BEST_WEIGHTS
    trained.load_weights(str(best))
    with dtype_policy("float32"):  # served and exported in float32, whatever the training precision
        model = build_recipe_model(recipe)
    model.set_weights(trained.get_weights())
    model.save(Path(run_dir) / runs.MODEL)
