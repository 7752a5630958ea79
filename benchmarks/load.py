"""Load: concurrent clients against a real `workbench serve` on 127.0.0.1, per worker count.

    python benchmarks/load.py                                  # 1 and 2 workers, 16 clients x 100 requests
    python benchmarks/load.py --workers 2 --clients 8 --requests 50

For each worker count: start `workbench serve --workers N` on a free 127.0.0.1 port, wait until
/api/v1/health says ok (every worker warms its model up), then let every client send its requests
over one keep-alive connection: a mix of health (20 %), models (10 %), the app's page (20 %) and
single-photo predictions (50 %, a different small PNG each time). Printed per worker count:
requests/s, p50 and p95 latency, 5xx answers, other errors, and keep-alive connections the server
closed under a client (reconnected, counted). Bounded: 127.0.0.1 only, at most clients x requests.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
MIX = [("health", 0.2), ("models", 0.1), ("page", 0.2), ("predict", 0.5)]
MAX_REQUESTS = 5_000  # per worker count: the bound, whatever the flags say


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=100, help="per client")
    p.add_argument("--runs-dir", default=str(REPO / "runs"))
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photo(rng: random.Random) -> bytes:
    image = Image.new("RGB", (96, 128), tuple(rng.randrange(200, 256) for _ in range(3)))
    x, y = rng.randrange(10, 30), rng.randrange(10, 30)
    ImageDraw.Draw(image).rectangle((x, y, x + 50, y + 80), fill=tuple(rng.randrange(0, 120) for _ in range(3)))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def start_server(workers: int, runs_dir: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--port", str(port), "--workers",
                                str(workers), "--runs-dir", runs_dir], cwd=REPO, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, ok = time.monotonic() + 240, 0
    while time.monotonic() < deadline and ok < 5 * workers:  # oks in a row: every worker has warmed up
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/health")
            ok = ok + 1 if json.loads(conn.getresponse().read()).get("status") == "ok" else 0
            conn.close()
        except (OSError, ValueError):
            pass
        time.sleep(0.25)
    if ok < 5 * workers:
        stop_server(process)
        raise SystemExit(f"the server with {workers} workers did not get ready in 240 s")
    return process, port


def stop_server(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def client(port: int, requests: int, seed: int, out: dict, lock: threading.Lock) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies, fivexx, errors, reconnects = [], 0, 0, 0
    for _ in range(requests):
        kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        started = time.perf_counter()
        for attempt in range(2):  # a keep-alive connection the server closed: reconnect once, counted
            try:
                status = send(conn, kind, rng)
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                reconnects += 1
                status = None
            except OSError:
                status = None
                break
        latencies.append(time.perf_counter() - started)
        fivexx += status is not None and status >= 500
        errors += status is None
    conn.close()
    with lock:
        out["latencies"] += latencies
        out["5xx"] += fivexx
        out["errors"] += errors
        out["reconnects"] += reconnects


def send(conn: http.client.HTTPConnection, kind: str, rng: random.Random) -> int:
    if kind == "predict":
        body, content_type = multipart(photo(rng))
        conn.request("POST", "/api/v1/predict", body=body, headers={"Content-Type": content_type})
    else:
        conn.request("GET", {"health": "/api/v1/health", "models": "/api/v1/models", "page": "/"}[kind])
    answer = conn.getresponse()
    answer.read()
    return answer.status


def measure(workers: int, args: argparse.Namespace) -> dict:
    process, port = start_server(workers, args.runs_dir)
    out, lock = {"latencies": [], "5xx": 0, "errors": 0, "reconnects": 0}, threading.Lock()
    per_client = min(args.requests, MAX_REQUESTS // max(1, args.clients))
    threads = [threading.Thread(target=client, args=(port, per_client, args.seed * 1000 + i, out, lock))
               for i in range(args.clients)]
    started = time.perf_counter()
    try:
        [t.start() for t in threads]
        [t.join() for t in threads]
    finally:
        wall = time.perf_counter() - started
        stop_server(process)
    latencies = sorted(out["latencies"])
    return {"workers": workers, "requests": len(latencies), "per_s": len(latencies) / wall,
            "p50": statistics.median(latencies), "p95": latencies[int(0.95 * (len(latencies) - 1))],
            "5xx": out["5xx"], "errors": out["errors"], "reconnects": out["reconnects"]}


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"{args.clients} clients x {args.requests} requests, mix "
          + ", ".join(f"{k} {w:.0%}" for k, w in MIX) + f"; {os.cpu_count()} CPUs")
    print(f"{'workers':>7} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'5xx':>4} {'errors':>6} "
          f"{'reconnects':>10}")
    for workers in (int(w) for w in args.workers.split(",")):
        r = measure(workers, args)
        print(f"{r['workers']:>7} {r['requests']:>8} {r['per_s']:>7.1f} {r['p50'] * 1000:>7.0f} "
              f"{r['p95'] * 1000:>7.0f} {r['5xx']:>4} {r['errors']:>6} {r['reconnects']:>10}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
