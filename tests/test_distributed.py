"""Multi-worker training: TF_CONFIG checks, the local launcher, and real 2-worker runs on 127.0.0.1.

The real runs start worker processes; every one of them is bounded by a hard timeout and stopped in
a `finally`, so a hanging collective fails the test instead of the test session.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from model import distributed, runs
from model.distributed import DistributedError, read_tf_config
from workbench import cli
from workbench.cli import launch
from workbench.cli.launch import launch_local_workers

HARD_TIMEOUT = 300  # seconds for any real 2-worker run: 20-40 s on 2 idle cores, 2-3 min on busy ones
REPO = Path(__file__).resolve().parents[1]


def tf_config(workers=("127.0.0.1:2222", "127.0.0.1:2223"), index=0, task_type="worker") -> str:
    return json.dumps({"cluster": {"worker": list(workers)}, "task": {"type": task_type, "index": index}})


# ---------------------------------------------------------------------------------------------
# TF_CONFIG

def test_tf_config_unset_or_empty_means_single_process(monkeypatch):
    assert read_tf_config({}) is None
    assert read_tf_config({"TF_CONFIG": "  "}) is None
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distributed.is_chief(), "a single process writes its run folder"


def test_tf_config_names_the_workers_and_the_chief():
    cluster = read_tf_config({"TF_CONFIG": tf_config(index=1)})
    assert cluster.workers == ("127.0.0.1:2222", "127.0.0.1:2223") and cluster.index == 1
    assert cluster.num_workers == 2 and not cluster.is_chief
    assert not distributed.is_chief(cluster)
    assert distributed.is_chief(read_tf_config({"TF_CONFIG": tf_config(index=0)}))


@pytest.mark.parametrize("raw, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"task": {"type": "worker", "index": 0}}), "no 'cluster'"),
    (json.dumps({"cluster": {"worker": ["a:1"]}}), "no 'task'"),
    (json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}),
     "only 'worker' tasks"),
    (json.dumps({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}), "host:port"),
    (json.dumps({"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}), "host:port"),
    (tf_config(task_type="chief"), "task type must be 'worker'"),
    (tf_config(index=2), "index must be an integer from 0 to 1"),
    (tf_config(index=-1), "index must be an integer from 0 to 1"),
    (tf_config(index="0"), "index must be an integer"),
    (tf_config(index=True), "index must be an integer"),
])
def test_malformed_tf_config_is_a_clear_error(raw, message):
    with pytest.raises(DistributedError, match=message):
        read_tf_config({"TF_CONFIG": raw})


def test_train_command_reports_a_bad_tf_config_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TF_CONFIG", tf_config(index=5))
    assert cli.main(["train", "--runs-dir", str(tmp_path), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: TF_CONFIG task index") and "\n" not in err
    assert not any(tmp_path.iterdir()), "nothing is written"


# ---------------------------------------------------------------------------------------------
# The command line

def test_train_help_documents_local_workers(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--local-workers N" in out and "TF_CONFIG" in out


def test_local_workers_needs_two_and_no_tf_config(monkeypatch, tmp_path, capsys):
    assert cli.main(["train", "--runs-dir", str(tmp_path), "--local-workers", "1"]) == 2
    assert "at least 2 workers" in capsys.readouterr().err
    monkeypatch.setenv("TF_CONFIG", tf_config())
    assert cli.main(["train", "--runs-dir", str(tmp_path), "--local-workers", "2"]) == 2
    assert "TF_CONFIG is already set" in capsys.readouterr().err


def test_workers_get_the_same_command_without_local_workers():
    from workbench.cli.launch import worker_argv

    argv = ["train", "--recipe", "fast", "--run-id", "x", "--epochs", "2", "--learning-rate", "0.05",
            "--limit", "256", "--width", "8", "--no-progress", "--local-workers", "3"]
    args = cli.build_parser().parse_args(argv)
    again = cli.build_parser().parse_args(worker_argv(args))
    assert "--local-workers" not in worker_argv(args)
    assert {**vars(again), "local_workers": 3} == vars(args)


def test_free_ports_are_distinct_and_each_worker_gets_its_index():
    ports = launch.free_ports(4)
    assert len(set(ports)) == 4
    configs = [json.loads(c) for c in launch.local_tf_configs(ports)]
    assert [c["task"]["index"] for c in configs] == [0, 1, 2, 3]
    assert all(c["cluster"]["worker"] == [f"127.0.0.1:{p}" for p in ports] for c in configs)
    assert all(read_tf_config({"TF_CONFIG": json.dumps(c)}) for c in configs)


# ---------------------------------------------------------------------------------------------
# The launcher, with stand-in workers (no TensorFlow): it never leaves a worker behind

STAND_IN = textwrap.dedent("""
    import json, os, signal, sys, time
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    open(os.path.join(sys.argv[1], f"pid{index}"), "w").write(str(os.getpid()))
    mode = sys.argv[2]
    if mode == "worker 1 fails" and index == 1:
        time.sleep(0.5)
        sys.exit(3)
    if mode == "deaf":  # like a worker stuck in a collective: only SIGKILL stops it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)
""")


def stand_in_pids(folder: Path, n: int, wait: float = 20.0) -> list[int]:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not all((folder / f"pid{i}").is_file() for i in range(n)):
        time.sleep(0.05)
    return [int((folder / f"pid{i}").read_text()) for i in range(n)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run_stand_ins(tmp_path, mode, n, timeout):
    out = io.StringIO()
    started = time.monotonic()
    code = launch_local_workers(n, [str(tmp_path), mode], timeout=timeout, out=out,
                                command=[sys.executable, "-c", STAND_IN])
    return code, time.monotonic() - started, out.getvalue(), stand_in_pids(tmp_path, n, wait=0)


def test_launcher_stops_every_worker_when_one_fails(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code, seconds, out, pids = run_stand_ins(tmp_path, "worker 1 fails", 3, timeout=60)
    assert code == 3 and "worker 1 exited with code 3" in out
    assert seconds < 30, "the others are stopped at once, not when the timeout passes"
    assert not any(alive(pid) for pid in pids)


def test_launcher_kills_workers_that_outlive_the_timeout(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code, seconds, out, pids = run_stand_ins(tmp_path, "deaf", 2, timeout=1)
    assert code == 124 and "still running after 1 s" in out
    assert seconds < 20, "SIGTERM is ignored, SIGKILL follows after a short grace period"
    assert not any(alive(pid) for pid in pids)


# ---------------------------------------------------------------------------------------------
# Real 2-worker runs on 127.0.0.1 (tiny: 257 images, width 8, 201 validation images)

# 257 = 4 global batches of 64 + 1 image: split between 2 workers that last image would leave one
# of them an empty batch, so it must be left out; 201 validation images split unevenly too.
TINY = ["--recipe", "fast", "--epochs", "2", "--limit", "257", "--batch-size", "64", "--width", "8",
        "--val-size", "201", "--seed", "1", "--no-progress"]


def scratch_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("workbench-worker*")}


def assert_complete_two_worker_run(run_dir: Path, epochs: int) -> None:
    config = runs.read_config(run_dir)
    assert config["workers"] == 2 and config["batch_size"] == 64 and config["n_train"] == 257
    history = runs.read_history(run_dir)
    assert history["epoch"].tolist() == list(range(1, epochs + 1))
    assert history[["loss", "accuracy", "val_loss", "val_accuracy"]].notna().all().all()
    assert history["learning_rate"].iloc[-1] == pytest.approx(0.0, abs=1e-6), "one-cycle ran to its end"
    metrics = runs.read_metrics(run_dir)
    assert metrics["n_test"] == 10_000 and metrics["epochs_trained"] == epochs
    model = runs.load_model(run_dir)
    assert model.input.name == "image" and tuple(model.output.shape) == (None, 10)
    assert not (run_dir / runs.BACKUP_DIR).exists(), "a finished run keeps no backup"


@pytest.mark.slow
def test_two_local_workers_write_one_complete_run_folder(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    before = scratch_folders()
    command = [sys.executable, "-m", "workbench.cli", "train", "--local-workers", "2", "--run-id", "two",
               "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(data_dir), *TINY]
    # Its own process group: the finally below kills the launcher and its workers whatever happens.
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=HARD_TIMEOUT)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    assert process.returncode == 0, out[-3000:]
    assert "[worker 0] run two: test accuracy" in out and "[worker 1] worker 1 of 2 done" in out
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["two"], "exactly one run folder"
    assert_complete_two_worker_run(tmp_path / "runs" / "two", epochs=2)
    assert scratch_folders() <= before, "no worker's temporary folder is left"


# A stand-in for `python -m workbench.cli`: worker 1 crashes at the start of epoch 2, once the chief
# has backed up epoch 1, like a machine lost in the middle of a run.
CRASHING_WORKER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    import keras
    from model import train
    from workbench import cli

    metadata = Path(sys.argv[1]) / "backup" / "training_metadata.json"
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]

    def backed_up_epochs():
        try:
            return json.loads(metadata.read_text())["epoch"]
        except (OSError, ValueError, KeyError):
            return 0

    class Crash(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1 and index == 1:
                deadline = time.monotonic() + 120
                while backed_up_epochs() < 1 and time.monotonic() < deadline:
                    time.sleep(0.1)
                os._exit(3)

    make_callbacks = train.make_callbacks
    train.make_callbacks = lambda run_dir, start, extra=None: make_callbacks(run_dir, start, [*(extra or []), Crash()])
    sys.exit(cli.main(sys.argv[2:]))
""")


class FailureClock(io.StringIO):
    """Launcher output that notes when the launcher reported a failed worker."""

    def write(self, text):
        if "exited with code" in text and not hasattr(self, "failed_at"):
            self.failed_at = time.monotonic()
        return super().write(text)


@pytest.mark.slow
def test_a_failing_worker_stops_the_run_and_the_run_resumes(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    run_dir = tmp_path / "runs" / "resume"
    argv = ["train", "--run-id", "resume", "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(data_dir),
            *TINY]

    out = FailureClock()
    code = launch_local_workers(2, [str(run_dir), *argv], timeout=HARD_TIMEOUT, out=out,
                                command=[sys.executable, "-c", CRASHING_WORKER])
    assert code == 3, out.getvalue()[-3000:]
    assert "worker 1 exited with code 3; stopping the other workers" in out.getvalue()
    # The chief, blocked in a collective with its peer gone (TensorFlow catches its SIGTERM), is
    # killed after the launcher's grace period instead of waiting for the timeout.
    assert time.monotonic() - out.failed_at < 20
    assert runs.read_history(run_dir)["epoch"].tolist() == [1]
    assert not (run_dir / runs.MODEL).exists()

    out = io.StringIO()
    assert launch_local_workers(2, argv, timeout=HARD_TIMEOUT, out=out) == 0, out.getvalue()[-3000:]
    assert "[worker 0] resuming run 'resume'" in out.getvalue()
    assert out.getvalue().count("Epoch 2/2") == 2 and "Epoch 1/2" not in out.getvalue(), "only epoch 2 ran"
    assert_complete_two_worker_run(run_dir, epochs=2)
