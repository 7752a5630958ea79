"""Resume that survives kill -9 at any instant: real SIGKILLs of `workbench train` at several points
(inside the checkpoint write among them), reruns that finish with the uninterrupted run's result, and
damaged checkpoints skipped on load."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from model import checkpoints, runs

REPO = Path(__file__).resolve().parents[1]
TINY = ["--recipe", "fast", "--epochs", "3", "--limit", "600", "--width", "4", "--val-size", "500",
        "--batch-size", "64", "--seed", "5", "--no-progress"]
DEADLINE = 120  # s: one tiny run takes ~20 s here


def start(runs_dir: Path, run_id: str, data_dir, pause: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "FASHION_MNIST_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONUNBUFFERED": "1"}
    env.pop(checkpoints.PAUSE_ENV, None)
    if pause:
        env[checkpoints.PAUSE_ENV] = pause
    return subprocess.Popen([sys.executable, "-m", "workbench.cli", "train", *TINY, "--run-id", run_id,
                             "--runs-dir", str(runs_dir), "--data-dir", str(data_dir)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            # a shell's background job ignores SIGINT, and so would the run: not here
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert process.poll() is None, f"the run ended before {what}: {process.stdout.read()[-2000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def kill9(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL


def finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=DEADLINE)
    assert process.returncode == 0, out[-3000:]
    return out


def history_rows(run_dir: Path) -> int:
    try:
        return len(pd.read_csv(run_dir / runs.HISTORY))
    except (OSError, ValueError):
        return 0


def assert_same_run(run_dir: Path, reference: Path) -> None:
    got, want = runs.read_history(run_dir), runs.read_history(reference)
    columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    pd.testing.assert_frame_equal(got[columns], want[columns], rtol=1e-5)
    assert runs.read_metrics(run_dir)["test_accuracy"] == runs.read_metrics(reference)["test_accuracy"]
    for a, b in zip(runs.load_model(run_dir).get_weights(), runs.load_model(reference).get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not (run_dir / runs.BACKUP_DIR).exists()


@pytest.mark.slow
def test_kill_9_anywhere_then_rerun_gives_the_uninterrupted_result(tmp_path, data_dir):
    reference = start(tmp_path, "whole", data_dir)  # runs alongside the killed chain
    run_dir, paused = tmp_path / "killed", tmp_path / "killed" / runs.BACKUP_DIR / ".paused"

    # 1. inside epoch 1's checkpoint write: the temp file is complete, not yet renamed
    process = start(tmp_path, "killed", data_dir, pause="1:written")
    wait_for(paused.exists, process, "the paused write of epoch 1")
    kill9(process)
    assert checkpoints.saved_epochs(run_dir) == [] and history_rows(run_dir) == 1
    paused.unlink()

    # 2. after epoch 2's checkpoint is renamed, before the older one is pruned (resumed from scratch)
    process = start(tmp_path, "killed", data_dir, pause="2:renamed")
    wait_for(paused.exists, process, "the paused prune of epoch 2")
    kill9(process)
    assert checkpoints.saved_epochs(run_dir) == [2, 1]
    paused.unlink()

    # 3. at an ordinary instant in the middle of epoch 3's training
    process = start(tmp_path, "killed", data_dir)
    wait_for(lambda: (run_dir / runs.BACKUP_DIR / "epoch-0002.weights.h5").exists() and
             "Epoch 3/3" in _peek(process), process, "epoch 3")
    time.sleep(0.1)
    kill9(process)

    out = finish(start(tmp_path, "killed", data_dir))
    assert "resuming run 'killed'" in out and "Epoch 1/3" not in out and "Epoch 2/3" not in out
    finish(reference)
    assert_same_run(run_dir, tmp_path / "whole")


@pytest.mark.slow
@pytest.mark.parametrize("stop, code, says", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                              (signal.SIGINT, 130, "interrupted")])
def test_sigterm_or_ctrl_c_says_what_was_kept_and_keeps_it(tmp_path, data_dir, stop, code, says):
    run_dir = tmp_path / "stopped"
    process = start(tmp_path, "stopped", data_dir, pause="1:renamed")  # held after epoch 1's checkpoint: the
    wait_for((run_dir / runs.BACKUP_DIR / ".paused").exists, process, "epoch 1's checkpoint")  # signal lands
    process.send_signal(stop)                                                              # mid-run
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # the signal did nothing: do not leave the run asleep
        process.kill()
        raise
    assert process.returncode == code, out[-2000:]
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"{says}: finished epochs are kept in ") and "the same command resumes" in last
    assert str(run_dir / runs.BACKUP_DIR) in last and checkpoints.saved_epochs(run_dir)


def _peek(process: subprocess.Popen) -> str:
    """Lines the process printed so far (read without blocking past what is there)."""
    import select

    text = getattr(process, "seen", "")
    while select.select([process.stdout], [], [], 0)[0]:
        line = process.stdout.readline()
        if not line:
            break
        text += line
    process.seen = text
    return text


def tiny_model() -> keras.Model:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer="adam", loss="mse")
    return model


def test_a_damaged_checkpoint_falls_back_to_the_previous_then_to_a_clean_start(tmp_path, caplog):
    backup = tmp_path / runs.BACKUP_DIR
    backup.mkdir()
    model = tiny_model()
    for epoch in (1, 2):
        checkpoints.atomic_save(model, backup / checkpoints.epoch_file(epoch), epoch)
    assert checkpoints.resume_epoch(tmp_path) == 2
    newest = backup / checkpoints.epoch_file(2)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # half-written
    with caplog.at_level(logging.WARNING):
        assert checkpoints.resume_epoch(tmp_path) == 1
    assert "epoch-0002.weights.h5 is damaged" in caplog.text
    oldest = backup / checkpoints.epoch_file(1)
    oldest.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with caplog.at_level(logging.WARNING):
        assert checkpoints.resume_epoch(tmp_path) == 0
    assert "training starts again from epoch 1" in caplog.text
    assert not list(backup.glob(".*.tmp.weights.h5")), "no temp file is left after a finished write"
