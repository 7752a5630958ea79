"""Inference latency of a run's model: Keras vs ONNX Runtime vs TFLite, Grad-CAM, and the HTTP API.

    .venv/bin/python benchmarks/latency.py                      # runs/fast-default, about 1-2 minutes
    .venv/bin/python benchmarks/latency.py --quick              # fewer calls, under a minute (a smoke run)
    .venv/bin/python benchmarks/latency.py --run my-run --runs-dir runs --data-dir ../shared/data/fashion-mnist

What it measures, on test-set images, after warm-up calls:
  1. runtimes   single-image and batch-of-64 `predictor.predict` latency (p50 / p95) and throughput,
                for the "keras", "onnx" and "tflite" backends of workbench.inference, and int8 TFLite;
  2. Grad-CAM   one image: Keras predict + Grad-CAM heatmap (workbench.explain), distinct images so the
                explainer's cache never answers;
  3. API        `workbench serve --backend keras|onnx` started as a subprocess on a free 127.0.0.1 port;
                POST /api/v1/predict with one PNG per request from 1, 8 and 32 concurrent clients.
                Every level is bounded in requests and seconds; the server is stopped at the end.
The run is copied (config + model) into a temporary folder and exported there, so the committed run
folder is never written. Numbers depend on load: the `uptime` load average is printed with them.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model import runs  # noqa: E402
from model.data import load_splits  # noqa: E402


@dataclass(frozen=True)
class Config:
    warmup: int = 20               # calls before timing: first calls build graphs, sessions and caches
    single_calls: int = 500        # single-image calls per runtime: enough for a stable p95
    batch_calls: int = 60          # batch calls per runtime
    batch_size: int = 64           # the batch size
    gradcam_calls: int = 60        # predict + Grad-CAM calls (each ~10-30 ms)
    api_concurrency: tuple = (1, 8, 32)  # concurrent HTTP clients, the levels
    api_requests: int = 300        # requests per concurrency level (bounded count) ...
    api_seconds: float = 30.0      # ... and at most this long per level (bounded time)
    api_timeout: float = 30.0      # seconds one HTTP request may take before it counts as an error
    server_start_seconds: float = 180.0  # the server must answer /api/v1/health within this


QUICK = Config(warmup=5, single_calls=100, batch_calls=15, gradcam_calls=15, api_requests=60, api_seconds=10.0)


# ---------------------------------------------------------------------------------------------
# Timing helpers

@dataclass(frozen=True)
class Stats:
    label: str
    p50_ms: float
    p95_ms: float
    per_second: float   # images/s (runtimes) or requests/s (API)
    n: int
    errors: int = 0

    def row(self, unit: str) -> str:
        errors = f"{self.errors}" if self.errors else "0"
        return (f"| {self.label:<34} | {self.p50_ms:>8.2f} | {self.p95_ms:>8.2f} | "
                f"{self.per_second:>9,.0f} {unit:<5} | {self.n:>5} | {errors:>6} |")


def stats(label: str, seconds: list[float], items_per_call: int = 1, wall: float | None = None,
          errors: int = 0) -> Stats:
    """Percentiles of per-call latencies; throughput from the wall time (or the summed calls)."""
    ms = np.asarray(seconds) * 1000
    total = wall if wall is not None else float(np.sum(seconds))
    per_second = len(seconds) * items_per_call / total if total > 0 else 0.0
    return Stats(label, float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), per_second, len(seconds), errors)


def time_calls(call, inputs: list, warmup: int) -> list[float]:
    """Wall time of call(x) for every x in inputs, after `warmup` untimed calls."""
    for x in inputs[:warmup]:
        call(x)
    times = []
    for x in inputs:
        started = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - started)
    return times


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


# ---------------------------------------------------------------------------------------------
# 1-2. Runtimes and Grad-CAM, in this process

def copy_run(runs_dir: Path, run_id: str, dest_runs: Path) -> Path:
    """config.json and model.keras of the run, copied into dest_runs/<run_id>."""
    source = runs.run_path(runs_dir, run_id)
    dest = dest_runs / run_id
    dest.mkdir(parents=True)
    for name in (runs.CONFIG, runs.MODEL):
        shutil.copy2(source / name, dest / name)
    return dest


def export_all(run_dir: Path, train_images: np.ndarray) -> list[str]:
    """model.onnx, model.tflite and model.int8.tflite (calibrated on training images) in run_dir."""
    from model.export import export_run, representative_images

    lines = []
    for fmt, quantize in (("onnx", "none"), ("tflite", "none"), ("tflite", "int8")):
        started = time.perf_counter()
        calibration = representative_images(train_images) if quantize == "int8" else None
        path = export_run(run_dir, fmt, quantize, calibration)
        seconds = time.perf_counter() - started
        lines.append(f"exported {path.name}: {path.stat().st_size / 1e6:.2f} MB in {seconds:.1f} s")
    return lines


def bench_runtimes(runs_dir: Path, run_id: str, images: np.ndarray, cfg: Config) -> list[Stats]:
    """The three backends of get_predictor, plus the int8 TFLite export for comparison."""
    from model.runtimes import BACKENDS
    from workbench.inference import exported_predictor, get_predictor

    predictors = [(backend, get_predictor(runs_dir, run_id, backend)) for backend in BACKENDS]
    predictors.append(("tflite int8", exported_predictor(runs_dir / run_id, "tflite", "int8")))
    singles = [images[i % len(images)][None] for i in range(cfg.single_calls)]
    batches = [images[(i * cfg.batch_size) % (len(images) - cfg.batch_size):][:cfg.batch_size]
               for i in range(cfg.batch_calls)]
    rows = []
    for label, predictor in predictors:
        rows.append(stats(f"{label}: 1 image", time_calls(predictor.predict, singles, cfg.warmup)))
        rows.append(stats(f"{label}: batch of {cfg.batch_size}",
                          time_calls(predictor.predict, batches, cfg.warmup // 4), cfg.batch_size))
    return rows


def bench_gradcam(runs_dir: Path, run_id: str, images: np.ndarray, cfg: Config) -> list[Stats]:
    """Keras predict + Grad-CAM of the predicted class for one image; every image is new to the cache."""
    from workbench.explain import get_explainer
    from workbench.inference import get_predictor

    predictor = get_predictor(runs_dir, run_id, "keras")
    explainer = get_explainer(runs_dir, run_id)

    def predict_and_explain(image):
        probs = predictor.predict(image)
        return explainer.explain(image, probs.argmax(axis=1), method="gradcam")

    inputs = [images[-(i + 1)][None] for i in range(cfg.warmup + cfg.gradcam_calls)]
    for image in inputs[:cfg.warmup]:  # untimed: builds the Grad-CAM graph
        predict_and_explain(image)
    return [stats("keras: predict + Grad-CAM, 1 image", time_calls(predict_and_explain, inputs[cfg.warmup:], 0))]


# ---------------------------------------------------------------------------------------------
# 3. The HTTP API, `workbench serve` in a subprocess

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def png_bodies(images: np.ndarray) -> list[bytes]:
    from PIL import Image

    bodies = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        bodies.append(buffer.getvalue())
    return bodies


class Server:
    """`workbench serve` on 127.0.0.1:<free port> in its own process group; stopped on exit."""

    def __init__(self, runs_dir: Path, backend: str, cfg: Config, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cfg = cfg
        self.log = open(log, "wb")
        command = [sys.executable, "-m", "workbench.cli", "serve", "--runs-dir", str(runs_dir),
                   "--host", "127.0.0.1", "--port", str(self.port), "--backend", backend]
        self.process = subprocess.Popen(command, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def __enter__(self) -> "Server":
        import requests

        deadline = time.monotonic() + self.cfg.server_start_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"workbench serve exited with {self.process.returncode}; see {self.log.name}")
            try:
                if requests.get(f"{self.url}/api/v1/health", timeout=2).ok:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # still starting, or busy warming up
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"workbench serve did not answer within {self.cfg.server_start_seconds:.0f} s")

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def post_image(session, url: str, body: bytes, timeout: float) -> tuple[float, bool, float | None]:
    """(seconds, ok, server-side predict ms) of one POST /api/v1/predict with one PNG."""
    started = time.perf_counter()
    try:
        response = session.post(f"{url}/api/v1/predict", files={"file": ("image.png", body, "image/png")},
                                timeout=timeout)
        ok = response.status_code == 200
        predict_ms = response.json().get("timing_ms", {}).get("predict") if ok else None
    except Exception:  # a refused, reset or timed-out request is an error in the table, not a crash
        ok, predict_ms = False, None
    return time.perf_counter() - started, ok, predict_ms


def load_level(url: str, bodies: list[bytes], clients: int, cfg: Config) -> tuple[list[float], int, float, list]:
    """`clients` threads post until cfg.api_requests are sent or cfg.api_seconds pass."""
    import requests

    lock, counter = threading.Lock(), iter(range(cfg.api_requests))
    times, predict_ms, errors = [], [], [0]
    deadline = time.monotonic() + cfg.api_seconds

    def client() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                seconds, ok, server_ms = post_image(session, url, bodies[i % len(bodies)], cfg.api_timeout)
                with lock:
                    if ok:
                        times.append(seconds)
                        predict_ms.append(server_ms)
                    else:
                        errors[0] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return times, errors[0], time.perf_counter() - started, predict_ms


def bench_api(runs_dir: Path, images: np.ndarray, cfg: Config, log_dir: Path) -> tuple[list[Stats], list[str]]:
    import requests

    rows, notes = [], []
    bodies = png_bodies(images[:256])
    for backend in ("keras", "onnx"):
        with Server(runs_dir, backend, cfg, log_dir / f"serve-{backend}.log") as server:
            with requests.Session() as session:  # warm-up: the first requests load TensorFlow and the model
                for body in bodies[:cfg.warmup]:
                    post_image(session, server.url, body, cfg.server_start_seconds)
            for clients in cfg.api_concurrency:
                times, errors, wall, predict_ms = load_level(server.url, bodies, clients, cfg)
                if not times:
                    notes.append(f"API {backend} x{clients}: every request failed ({errors})")
                    continue
                rows.append(stats(f"API {backend}: {clients} client(s)", times, 1, wall, errors))
                server_ms = [m for m in predict_ms if m is not None]
                if server_ms:
                    notes.append(f"API {backend} x{clients}: server-side predict p50 {np.median(server_ms):.2f} ms")
    return rows, notes


# ---------------------------------------------------------------------------------------------
# The report

HEADER = ("| what                               | p50 (ms) | p95 (ms) | throughput      |     n | errors |\n"
          "|------------------------------------|---------:|---------:|----------------:|------:|-------:|")


def print_table(title: str, rows: list[Stats], unit: str) -> None:
    print(f"\n{title}\n{HEADER}")
    for row in rows:
        print(row.row(unit))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=runs.DEFAULT_RUN_ID, help="run id (default: fast-default)")
    parser.add_argument("--runs-dir", default=str(REPO / runs.DEFAULT_RUNS_DIR), help="folder of run folders")
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (else $FASHION_MNIST_DIR)")
    parser.add_argument("--quick", action="store_true", help="fewer calls: a smoke run of under a minute")
    parser.add_argument("--no-api", action="store_true", help="skip the HTTP API part")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = QUICK if args.quick else Config()
    splits = load_splits(args.data_dir, progress=False)
    images = splits.test.images
    print(f"# latency benchmark: run {args.run!r}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# before: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="latency-bench-") as tmp:
        tmp_runs = Path(tmp) / "runs"
        run_dir = copy_run(Path(args.runs_dir), args.run, tmp_runs)
        for line in export_all(run_dir, splits.train.images):
            print(f"# {line}")
        print_table("## Runtimes (predictor.predict, in process)", bench_runtimes(tmp_runs, args.run, images, cfg),
                    "img/s")
        print_table("## Predict + Grad-CAM", bench_gradcam(tmp_runs, args.run, images, cfg), "img/s")
        if not args.no_api:
            rows, notes = bench_api(tmp_runs, images, cfg, Path(tmp))
            print_table("## API over HTTP on 127.0.0.1 (POST /api/v1/predict, one PNG per request)", rows, "req/s")
            for note in notes:
                print(f"# {note}")
    print(f"\n# after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
