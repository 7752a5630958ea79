"""The training benchmark script runs end to end on a tiny budget and honours its overrides."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from model import runs

REPO = Path(__file__).resolve().parents[1]


def test_train_benchmark_prints_its_numbers_and_applies_width_and_epochs(tmp_path, data_dir):
    result = subprocess.run(
        [sys.executable, "benchmarks/train.py", "--recipe", "fast", "--epochs", "1", "--limit", "300",
         "--width", "4", "--runs-dir", str(tmp_path), "--run-id", "bench", "--data-dir", str(data_dir),
         "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"^test accuracy\s+([0-9.]+)", result.stdout, re.M).group(1))
    run_dir = tmp_path / "bench"
    assert accuracy == runs.read_metrics(run_dir)["test_accuracy"]
    assert re.search(r"^epochs\s+1 of 1 ", result.stdout, re.M)
    assert re.search(r"^training images/s\s+\d+", result.stdout, re.M)
    assert runs.read_config(run_dir)["settings"]["width"] == 4
    assert runs.load_model(run_dir).get_layer("conv1_conv").filters == 4


def test_load_benchmark_prints_its_table_without_server_errors():
    result = subprocess.run([sys.executable, "benchmarks/load.py", "--workers", "1", "--clients", "2",
                             "--requests", "5"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    row = re.search(r"^\s+1\s+(\d+)\s+([0-9.]+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", result.stdout, re.M)
    assert row, result.stdout
    requests, per_s, _, _, fivexx, errors, _ = row.groups()
    assert int(requests) == 10 and float(per_s) > 0 and int(fivexx) == 0 and int(errors) == 0
