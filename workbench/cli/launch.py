"""`workbench train --local-workers N`: N training workers on 127.0.0.1, one TF_CONFIG each.

    workbench train --local-workers 2 --epochs 1 --limit 5000

Each worker is `python -m workbench.cli train ...` (the same command line without --local-workers)
with its own TF_CONFIG naming every worker on a free 127.0.0.1 port; their output is relayed with
a `[worker i]` prefix. As soon as one fails the others are stopped (they would otherwise wait for
it forever inside a collective), and no worker outlives the launcher.
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

from model.distributed import ENV, LOCALHOST
from model.errors import DistributedError


def worker_argv(args) -> list[str]:
    """The `workbench train` command line that args came from, without --local-workers."""
    argv = ["train"]
    for name, value in vars(args).items():
        if name in ("command", "handler", "local_workers") or value is None or value is False:
            continue
        argv += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return argv



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
def sigterm_raises(error):
    """While the block runs, SIGTERM raises error(signum) in the main thread (else the process would
    die without running `finally` blocks or saying a word); the previous handler comes back after.
    Off in other threads, where Python cannot install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise error(signum)
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
        with sigterm_raises(lambda signum: SystemExit(128 + signum)):  # `finally` stops the workers
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
