"""Run-folder readers: invalid ids, missing and corrupt files each give a RunError naming run and file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model import runs
from model.runs import RunError


@pytest.fixture
def run_dir(tmp_path):
    folder = tmp_path / "r1"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("run_id", ["", ".", "..", "a/b", "..\\x", ".mine"])
def test_invalid_run_ids_are_refused(tmp_path, run_id):
    with pytest.raises(RunError, match="invalid run id"):
        runs.run_path(tmp_path, run_id)


def test_missing_run_folder(tmp_path):
    with pytest.raises(RunError, match=r"run 'nope': folder .* not found"):
        runs.run_path(tmp_path, "nope")


def test_missing_file_is_named(run_dir):
    with pytest.raises(RunError, match=r"run 'r1': metrics.json is missing"):
        runs.read_metrics(run_dir)


def test_corrupt_json_is_named(run_dir):
    (run_dir / runs.METRICS).write_text('{"test_accuracy": 0.9')
    with pytest.raises(RunError, match=r"run 'r1': metrics.json is corrupt"):
        runs.read_metrics(run_dir)


def test_history_without_its_columns(run_dir):
    (run_dir / runs.HISTORY).write_text("a,b\n1,2\n")
    with pytest.raises(RunError, match=r"history.csv lacks columns \['epoch', 'loss', 'val_loss'\]"):
        runs.read_history(run_dir)


def test_corrupt_parquet_is_named(run_dir):
    (run_dir / runs.PREDICTIONS).write_bytes(b"PAR1 not really")
    with pytest.raises(RunError, match=r"test_predictions.parquet is corrupt"):
        runs.read_predictions(run_dir)


def test_predictions_round_trip(run_dir):
    probs = np.eye(10, dtype=np.float32)[[3, 1, 4]]
    runs.write_predictions(run_dir, np.array([3, 1, 5]), probs)
    frame = runs.read_predictions(run_dir)
    assert frame["predicted"].tolist() == [3, 1, 4] and frame["label"].tolist() == [3, 1, 5]


def test_confusion_of_wrong_shape(run_dir):
    pd.DataFrame(np.zeros((3, 3), int)).to_csv(run_dir / runs.CONFUSION)
    with pytest.raises(RunError, match=r"confusion_matrix.csv is \(3, 3\), expected \(10, 10\)"):
        runs.read_confusion(run_dir)


def test_corrupt_model_is_named(run_dir):
    (run_dir / runs.MODEL).write_bytes(b"not a zip")
    with pytest.raises(RunError, match=r"run 'r1': model.keras is corrupt: not a Keras model archive") as caught:
        runs.load_model(run_dir)
    assert "not found" not in str(caught.value).lower()  # Keras's own words for a file that is not a zip


def test_list_runs_puts_the_default_first(tmp_path):
    for name in ("b-run", runs.DEFAULT_RUN_ID, "a-run", "no-config"):
        (tmp_path / name).mkdir()
        if name != "no-config":
            (tmp_path / name / runs.CONFIG).write_text("{}")
    listed = runs.list_runs(tmp_path)
    assert listed[0] == runs.DEFAULT_RUN_ID and sorted(listed[1:]) == ["a-run", "b-run"]


def test_suggested_commands_name_the_runs_folder_only_when_it_is_not_a_default(tmp_path):
    assert runs.run_command("workbench embed", runs.PROJECT_RUNS_DIR / "fast-default") == "workbench embed fast-default"
    in_default = runs.run_command("workbench embed", runs.DEFAULT_RUNS_DIR / "mine", "--x", "1")
    assert in_default == "workbench embed mine --x 1"
    elsewhere = tmp_path / "my runs"
    assert runs.run_command("workbench label-issues", elsewhere / "a b") == \
        f"workbench label-issues 'a b' --runs-dir '{elsewhere}'"


def test_an_unknown_run_names_every_folder_looked_in(tmp_path):
    with pytest.raises(RunError) as default:  # no --runs-dir: ./runs, then the project's runs/
        runs.locate_runs_dir(tmp_path / "runs", "nope", given=False)
    assert f"{tmp_path / 'runs'} or {runs.PROJECT_RUNS_DIR}" in str(default.value)
    with pytest.raises(RunError) as given:
        runs.locate_runs_dir(tmp_path, "nope", given=True)
    assert f"not found in {tmp_path};" in str(given.value)
    assert runs.locate_runs_dir(tmp_path, runs.DEFAULT_RUN_ID, given=False) == runs.PROJECT_RUNS_DIR
