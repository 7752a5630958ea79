"""Training checkpoints that survive a kill at any instant: write to a temp file, rename, keep the last two.

    epoch = resume_epoch(run_dir)                 # the newest checkpoint that verifies (0: a clean start)
    callback = Checkpointer(run_dir, epoch)       # loads it when fit starts; saves every epoch after

`backup/` of an unfinished run holds

    epoch-0003.weights.h5      weights + optimizer state after epoch 3 (Keras save_weights)
    epoch-0002.weights.h5      the previous one, kept in case the newest is damaged
    best.weights.h5            the best-validation epoch so far (model selection)
    training_metadata.json     {"epoch": 3}: informational, written last

Each file is written to `.<name>.tmp.weights.h5`, flushed to disk and renamed over its target: a kill leaves either
the old file or the new one, never half of one. On resume every candidate is verified (opened and read
whole with h5py) newest first; a damaged one is logged and skipped, and with none left the run starts
clean, said plainly in the log. history.csv rows after the resumed epoch are rewritten by the rerun.

WORKBENCH_CHECKPOINT_PAUSE="<epoch>:<stage>" (tests only) stops the writer at epoch <epoch> (1-based)
when the temp file is written but not renamed ("written") or renamed but the old one not yet pruned
("renamed"), after creating backup/.paused, so a test can kill the process exactly there.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

import keras

from model import runs

LOG = logging.getLogger(__name__)

BEST_WEIGHTS = "best.weights.h5"
METADATA = "training_metadata.json"
KEEP = 2                                   # checkpoints kept: the newest and one fallback
PAUSE_ENV = "WORKBENCH_CHECKPOINT_PAUSE"   # test hook, see the module docstring
_EPOCH_FILE = re.compile(r"^epoch-(\d{4,})\.weights\.h5$")


def epoch_file(epoch: int) -> str:
    return f"epoch-{epoch:04d}.weights.h5"


def saved_epochs(run_dir: Path) -> list[int]:
    """Epochs with a complete (renamed) checkpoint in run_dir/backup, newest first; not yet verified."""
    backup = Path(run_dir) / runs.BACKUP_DIR
    if not backup.is_dir():
        return []
    found = (_EPOCH_FILE.match(p.name) for p in backup.iterdir())
    return sorted((int(m.group(1)) for m in found if m), reverse=True)


def verify(path: Path) -> bool:
    """True when the HDF5 file opens and every dataset in it reads back (a truncated file does not)."""
    import h5py

    def read(_name, item):
        if isinstance(item, h5py.Dataset):
            item[()]
    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(read)
    except Exception:  # h5py raises OSError, KeyError, RuntimeError ... for damaged files
        return False
    return True


def resume_epoch(run_dir: Path) -> int:
    """The newest epoch whose checkpoint verifies; damaged ones are logged and skipped; 0 = start clean."""
    backup = Path(run_dir) / runs.BACKUP_DIR
    epochs = saved_epochs(run_dir)
    for epoch in epochs:
        if verify(backup / epoch_file(epoch)):
            return epoch
        LOG.warning("checkpoint %s is damaged; trying the previous one", backup / epoch_file(epoch))
    if epochs:
        LOG.warning("no checkpoint in %s could be read: training starts again from epoch 1", backup)
    return 0


def atomic_save(model: keras.Model, path: Path, epoch: int = 0) -> None:
    """model.save_weights to a temp file, flushed, then renamed over `path` (a kill leaves old or new)."""
    tmp = path.with_name(f".{path.name.removesuffix('.weights.h5')}.tmp.weights.h5")  # Keras wants the suffix
    model.save_weights(str(tmp))
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    _pause_for_tests(path.parent, epoch, "written")
    tmp.replace(path)


def _pause_for_tests(backup: Path, epoch: int, stage: str) -> None:
    if os.environ.get(PAUSE_ENV) == f"{epoch}:{stage}":
        (backup / ".paused").touch()
        time.sleep(3600)  # the test kills the process here


class Checkpointer(keras.callbacks.Callback):
    """Restores the checkpoint of `start_epoch` when fit begins; after every epoch saves the best
    weights (val_accuracy) and the training state, atomically, keeping the previous checkpoint."""

    def __init__(self, run_dir: Path, start_epoch: int, best_so_far: float | None):
        super().__init__()
        self.backup = Path(run_dir) / runs.BACKUP_DIR
        self.start_epoch = start_epoch
        self.best = best_so_far

    def on_train_begin(self, logs=None):
        self.backup.mkdir(parents=True, exist_ok=True)
        if not self.start_epoch:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)  # its variables must exist to load
        self.model.load_weights(str(self.backup / epoch_file(self.start_epoch)))
        LOG.info("resumed from %s", self.backup / epoch_file(self.start_epoch))

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        score = (logs or {}).get("val_accuracy")
        if score is not None and (self.best is None or score > self.best):
            self.best = float(score)
            atomic_save(self.model, self.backup / BEST_WEIGHTS)
        atomic_save(self.model, self.backup / epoch_file(done), done)
        _pause_for_tests(self.backup, done, "renamed")
        for old in saved_epochs(self.backup.parent)[KEEP:]:
            (self.backup / epoch_file(old)).unlink(missing_ok=True)
        tmp = self.backup / f".{METADATA}.tmp"
        tmp.write_text(json.dumps({"epoch": done}))
        tmp.replace(self.backup / METADATA)
