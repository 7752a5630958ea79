"""Multi-worker data-parallel training: TF_CONFIG, MultiWorkerMirroredStrategy and a local launcher.

Several machines (or processes): set TF_CONFIG on each and run the same `workbench train ...` there.

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                "task": {"type": "worker", "index": 0}}'          # index 1 on the second machine

Worker 0 is the chief: only it writes the run folder. Every worker holds a full copy of the model
and trains on its share of each global batch; the gradients are averaged across workers every step.

Trying it out on one machine: `workbench train --local-workers 2 ...` starts 2 such workers on
127.0.0.1 (free ports, one TF_CONFIG each) and stops all of them as soon as one fails.

Only tf.distribute's standard TF_CONFIG is read here; TensorFlow itself reads it again when the
strategy is created. This module imports TensorFlow only inside the functions that need it, so the
launcher and the TF_CONFIG checks stay light.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

ENV = "TF_CONFIG"
LOCALHOST = "127.0.0.1"


class DistributedError(Exception):
    """TF_CONFIG is malformed, or local workers cannot be started as asked."""


@dataclass(frozen=True)
class Cluster:
    """The workers named in TF_CONFIG and this process's place among them."""
    workers: tuple[str, ...]   # "host:port" of every worker, the same list on every worker
    index: int                 # this worker's position in `workers`

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    @property
    def is_chief(self) -> bool:
        return self.index == 0  # tf.distribute's convention when the cluster has no "chief" task


def read_tf_config(environ=None) -> Cluster | None:
    """The cluster described by $TF_CONFIG, or None when it is unset or empty.

    Only worker clusters are accepted ({"cluster": {"worker": [...]}, "task": {"type": "worker",
    "index": i}}): MultiWorkerMirroredStrategy needs nothing else, and refusing parameter servers
    or evaluators here gives one clear error instead of a hang later.
    """
    raw = (os.environ if environ is None else environ).get(ENV, "")
    if not raw.strip():
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DistributedError(f"{ENV} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise DistributedError(f"{ENV} must be a JSON object with 'cluster' and 'task'")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise DistributedError(f"{ENV} has no 'cluster' object (expected {{\"worker\": [\"host:port\", ...]}})")
    if not isinstance(task, dict):
        raise DistributedError(f"{ENV} has no 'task' object (expected {{\"type\": \"worker\", \"index\": N}})")
    other = sorted(set(cluster) - {"worker"})
    if other:
        raise DistributedError(f"{ENV} cluster has {other}: only 'worker' tasks are supported "
                               f"(worker 0 is the chief)")
    workers = cluster["worker"]
    if (not isinstance(workers, list) or not workers
            or not all(isinstance(w, str) and w.rpartition(":")[2].isdigit() for w in workers)):
        raise DistributedError(f"{ENV} cluster 'worker' must be a non-empty list of \"host:port\" strings")
    if task.get("type") != "worker":
        raise DistributedError(f"{ENV} task type must be 'worker', not {task.get('type')!r}")
    index = task.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(workers):
        raise DistributedError(f"{ENV} task index must be an integer from 0 to {len(workers) - 1}, "
                               f"not {index!r}")
    return Cluster(tuple(workers), index)


def is_chief(cluster: Cluster | None = None) -> bool:
    """True for the process that writes the run folder: worker 0, or any single-process run."""
    cluster = cluster if cluster is not None else read_tf_config()
    return cluster is None or cluster.is_chief


def make_strategy():
    """MultiWorkerMirroredStrategy from $TF_CONFIG.

    Create it before any other TensorFlow op: it configures the collective ops of the TensorFlow
    runtime, which can only happen before that runtime starts. AUTO communication picks NCCL for
    GPUs and the ring all-reduce (gRPC) on CPUs.
    """
    import tensorflow as tf

    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def shard_by_data(dataset):
    """Shard a dataset between the workers by element (tf.data's DATA auto-shard policy).

    The default (FILE) cannot apply to in-memory arrays. With DATA every worker builds the same
    seeded pipeline and keeps its own slice of each global batch, so the shuffles must match: they
    do, every worker uses the recipe's seed.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def same_on_all_workers(strategy, value: int) -> bool:
    """True when every worker passed the same integer. A collective: every worker must call it."""
    import tensorflow as tf

    # Sums of value, value² and 1 over all replicas: equal values iff n·Σv² == (Σv)², and every
    # worker reaches the same verdict (a mean alone would let the worker holding it carry on).
    local = tf.constant([value, value * value, 1], tf.float64)
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(local)), axis=None)
    s, s2, n = (float(v) for v in total.numpy())
    return n * s2 == s * s


def prepare_fit(model, strategy, dataset) -> None:
    """Get a compiled model ready for fit under MultiWorkerMirroredStrategy with Keras 3.

    Keras 3 (3.15 here) has two gaps on this strategy, both known upstream (keras-team/keras#20585,
    tensorflow/tensorflow#72388); fit fails without these work-arounds:

    1. fit first builds the optimizer and metric state from one batch that it all-reduces with
       strategy.reduce, which fails for an (x, y) tuple ("Attempt to convert a value (PerReplica
       ...)"). The batch only supplies shapes and dtypes: build from the dataset's element spec
       under the strategy here, and make fit's own attempt a no-op on this model.
    2. every step averages the replicas' losses and metrics with strategy.reduce(..., axis=0),
       which fails for scalars ("Invalid reduction dimension 0 for input with 0 dimensions"):
       average them over the replicas instead (axis=None), as intended. See _mean_over_workers.
    """
    with strategy.scope():
        model._symbolic_build(data_batch=dataset.element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    _mean_over_workers()


def _mean_over_workers() -> None:
    """Make Keras average per-replica logs over all workers (work-around 2 of prepare_fit).

    Replaces Keras' reduce_per_replica for multi-worker strategies only ("auto" means "mean" there);
    every other strategy, and the single-process path, still gets Keras' own function.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    keras_reduce = trainer.reduce_per_replica
    if getattr(keras_reduce, "mean_over_workers", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica.mean_over_workers = True
    trainer.reduce_per_replica = reduce_per_replica


# ---------------------------------------------------------------------------------------------
# Local workers on 127.0.0.1

def free_ports(n: int, host: str = LOCALHOST) -> list[int]:
    """n distinct free TCP ports (all sockets held open together, so none is picked twice)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_tf_configs(ports: list[int], host: str = LOCALHOST) -> list[str]:
    workers = [f"{host}:{port}" for port in ports]
    return [json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
            for i in range(len(workers))]


def _relay(stream, prefix: str, out) -> None:
    """Copy a worker's output line by line, prefixed with its name, so interleaved lines stay readable."""
    for line in stream:
        out.write(f"{prefix}{line}")
        out.flush()


def _stop(processes: list[subprocess.Popen], grace: float = 5.0) -> None:
    """Terminate every worker still running, then kill those that did not stop within `grace` s.

    TensorFlow's preemption notifier catches SIGTERM in multi-worker processes, and a worker blocked
    inside a collective operation would not act on it anyway; SIGKILL always works.
    """
    for p in processes:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in processes:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextlib.contextmanager
def _sigterm_as_exit():
    """SIGTERM to the launcher raises SystemExit, so its `finally` stops the workers (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def launch_local_workers(n: int, argv: list[str], timeout: float | None = None, out=None,
                         command: list[str] | None = None, poll: float = 0.2) -> int:
    """Run `python -m workbench.cli *argv` as n workers on 127.0.0.1, each with its own TF_CONFIG.

    Returns 0 when every worker succeeded. As soon as one exits non-zero the others are stopped
    (they would otherwise wait for it forever inside a collective) and its exit code is returned;
    after `timeout` seconds all are stopped and 124 is returned. No worker outlives this call: the
    workers also share the launcher's process group, so killing that group kills them all.
    `command` replaces `python -m workbench.cli` (tests use it to run stand-in workers).
    """
    if n < 2:
        raise DistributedError(f"--local-workers needs at least 2 workers, not {n}")
    if os.environ.get(ENV, "").strip():
        raise DistributedError(f"{ENV} is already set; --local-workers sets it for each worker itself")
    out = out or sys.stdout
    command = command or [sys.executable, "-m", "workbench.cli"]
    # The workers' temporary folders (non-chief checkpoints) go into one scratch folder removed at
    # the end, so even a worker killed mid-epoch leaves nothing behind.
    scratch = tempfile.mkdtemp(prefix="workbench-workers-")
    processes: list[subprocess.Popen] = []
    relays: list[threading.Thread] = []
    started = time.monotonic()
    try:
        with _sigterm_as_exit():
            for index, tf_config in enumerate(local_tf_configs(free_ports(n))):
                env = {**os.environ, ENV: tf_config, "TMPDIR": scratch, "PYTHONUNBUFFERED": "1"}
                process = subprocess.Popen([*command, *argv], env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True)
                processes.append(process)
                relay = threading.Thread(target=_relay, args=(process.stdout, f"[worker {index}] ", out),
                                         daemon=True)
                relay.start()
                relays.append(relay)
            while True:
                codes = [p.poll() for p in processes]
                failed = [(i, code) for i, code in enumerate(codes) if code not in (None, 0)]
                if failed:
                    index, code = failed[0]
                    relays[index].join(timeout=5)  # its last words first
                    out.write(f"worker {index} exited with code {code}; stopping the other workers\n")
                    return code if code > 0 else 128 - code  # killed by signal N: the shell's 128+N
                if all(code == 0 for code in codes):
                    return 0
                if timeout is not None and time.monotonic() - started > timeout:
                    out.write(f"workers still running after {timeout:g} s; stopping them\n")
                    return 124
                time.sleep(poll)
    finally:
        _stop(processes)
        for relay in relays:
            relay.join(timeout=5)
        shutil.rmtree(scratch, ignore_errors=True)
