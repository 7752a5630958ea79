"""A real `workbench serve` (gunicorn, one worker) on 127.0.0.1: readiness, slow clients, the one
request-size limit on every route. Bounded: a handful of connections, each test under ~20 s."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIMIT = 1 << 20  # WORKBENCH_MAX_REQUEST_BYTES for this server: 1 MiB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 10) -> tuple[int, dict, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read()), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), time.monotonic() - started


@pytest.fixture(scope="module")
def server(data_dir):
    port = free_port()
    env = {**os.environ, "WORKBENCH_MAX_REQUEST_BYTES": str(LIMIT), "TF_CPP_MIN_LOG_LEVEL": "2",
           "FASHION_MNIST_DIR": str(data_dir)}
    process = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--port", str(port),
                                "--runs-dir", str(REPO / "runs")], cwd=REPO, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    statuses, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            status, body, _ = get(url + "/api/v1/health", timeout=5)
            statuses.append((status, body["status"]))
            if body["status"] == "ok":
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    yield {"url": url, "port": port, "statuses": statuses}
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_health_says_loading_until_the_default_model_answers(server):
    statuses = server["statuses"]
    assert statuses and statuses[-1] == (200, "ok"), statuses[-5:]
    assert set(statuses[:-1]) <= {(503, "loading")}, "never ok before the model is loaded"
    started = time.monotonic()
    request = urllib.request.Request(server["url"] + "/api/v1/predict", method="POST",
                                     data=json.dumps({"images": [{"name": "x.png", "data": tiny_png()}]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
    assert time.monotonic() - started < 5, "the first prediction after 'ok' does not load the model"


def raw(port: int, data: bytes) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(data)
    return conn


def test_slow_clients_do_not_stall_health(server):
    slow = [raw(server["port"], b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ") for _ in range(8)]
    try:
        time.sleep(0.5)
        for _ in range(5):
            status, body, seconds = get(server["url"] + "/api/v1/health", timeout=10)
            assert status == 200 and body["status"] == "ok"
            assert seconds < 2, f"health took {seconds:.1f} s beside 8 slow clients"
        # The server drops each one. Each read times out after 5 s idle, but in the merged tree the last
        # of 8 was measured to go after 17-19 s (queued behind the others in gthread's poller): bounded,
        # not prompt.
        for conn in slow:
            conn.settimeout(30)
            try:
                conn.recv(1024)  # b"" (closed) or an error answer, not a wait
            except ConnectionResetError:
                pass
            except TimeoutError:
                pytest.fail("a client that never finished its headers was never disconnected")
    finally:
        for conn in slow:
            conn.close()


def status_line(conn: socket.socket) -> bytes:
    conn.settimeout(10)
    return conn.recv(4096).split(b"\r\n", 1)[0]


@pytest.mark.parametrize("path", ["/_dash-update-component", "/api/v1/predict"])
def test_a_large_declared_body_is_refused_before_it_is_sent(server, path):
    conn = raw(server["port"], f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                               f"Content-Length: {200 << 20}\r\n\r\n".encode())
    with conn:
        assert b" 413 " in status_line(conn) + b" "


def test_a_chunked_body_is_refused_once_past_the_limit(server):
    conn = raw(server["port"], b"POST /_dash-update-component HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk, sent = b"[" * 65536, 0
    with conn:
        try:
            while sent < 8 * LIMIT:
                conn.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert b" 413 " in status_line(conn) + b" "
    assert sent < 8 * LIMIT, "the server read the whole oversized body"


def tiny_png() -> str:
    """A light shirt-like block on black, base64 PNG."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(image).rectangle((16, 8, 48, 56), fill=220)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
