"""The analyst's marks on suspected label errors (workbench/suspects.py) in a run folder made here:
concurrent writers in two processes lose nothing, bad marks are refused clearly, the CSV export
holds exactly the marks, and the training split asks for `workbench label-issues` until computed.

    python -m pytest -q tests/test_suspects.py
"""

from __future__ import annotations

import io
import json
import multiprocessing

import numpy as np
import pandas as pd
import pytest

from model import runs
from model.errors import RunError, SettingError
from workbench import suspects as sus

N_SUSPECTS = 40


@pytest.fixture
def marked_run(tmp_path):
    """A run folder whose test predictions disagree confidently with the label of 40 images."""
    rng = np.random.default_rng(0)
    labels = np.arange(1000) % 10
    probs = rng.dirichlet(np.ones(10), 1000) * 0.1
    probs[np.arange(1000), labels] += 0.9
    wrong = np.arange(0, 1000, 1000 // N_SUSPECTS)
    probs[wrong] = 0.005
    probs[wrong, (labels[wrong] + 1) % 10] = 0.955
    (tmp_path / "run").mkdir()
    runs.write_predictions(tmp_path / "run", labels, probs)
    return tmp_path, "run", wrong


def _mark_many(runs_dir, run_id, indices, mark):
    for index in indices:
        sus.set_mark(runs_dir, run_id, "test", int(index), mark)


def test_two_processes_marking_at_once_lose_no_mark(marked_run):
    runs_dir, run_id, wrong = marked_run
    found = sus.suspects(runs_dir, run_id, "test")
    assert set(wrong) <= set(found["index"])
    halves = (wrong[0::2], wrong[1::2])  # 20 marks each, interleaved indices
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_mark_many, args=(runs_dir, run_id, half, mark))
               for half, mark in zip(halves, ("wrong", "fine"))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    marks = sus.marks(runs_dir, run_id)
    assert len(marks) == N_SUSPECTS
    assert {marks[f"test/{i}"]["mark"] for i in halves[0]} == {"wrong"}
    assert {marks[f"test/{i}"]["mark"] for i in halves[1]} == {"fine"}


def test_bad_marks_are_refused_with_a_clear_error(marked_run):
    runs_dir, run_id, wrong = marked_run
    with pytest.raises(SettingError, match="unknown mark 'maybe'"):
        sus.set_mark(runs_dir, run_id, "test", int(wrong[0]), "maybe")
    with pytest.raises(SettingError, match="whole number"):
        sus.set_mark(runs_dir, run_id, "test", "abc", "wrong")
    with pytest.raises(SettingError, match="not a suspect"):
        sus.set_mark(runs_dir, run_id, "test", 1, "wrong")
    with pytest.raises(SettingError, match="unknown split"):
        sus.set_mark(runs_dir, run_id, "val", int(wrong[0]), "wrong")
    assert sus.marks(runs_dir, run_id) == {}


def test_csv_export_holds_the_marks_and_a_changed_mark_replaces_the_old(marked_run):
    runs_dir, run_id, wrong = marked_run
    sus.set_mark(runs_dir, run_id, "test", int(wrong[3]), "unsure")
    sus.set_mark(runs_dir, run_id, "test", int(wrong[1]), "wrong")
    sus.set_mark(runs_dir, run_id, "test", int(wrong[3]), "fine")
    frame = pd.read_csv(io.StringIO(sus.marks_csv(runs_dir, run_id)))
    assert list(frame.columns) == sus.CSV_COLUMNS
    given = wrong % 10
    assert frame.to_dict("records") == [
        {"index": wrong[1], "split": "test", "given": given[1], "suggested": (given[1] + 1) % 10, "mark": "wrong"},
        {"index": wrong[3], "split": "test", "given": given[3], "suggested": (given[3] + 1) % 10, "mark": "fine"}]
    named = pd.read_csv(io.StringIO(sus.marks_csv(runs_dir, run_id, [f"c{i}" for i in range(10)])))
    assert named["given"].tolist() == [f"c{given[1]}", f"c{given[3]}"]


def test_training_split_asks_for_the_label_issues_command(marked_run):
    runs_dir, run_id, _ = marked_run
    with pytest.raises(RunError, match="workbench label-issues run") as caught:
        sus.suspects(runs_dir, run_id, "train")
    assert caught.value.code == "no_label_issues"


def test_damaged_marks_lose_nothing_and_a_damaged_pairs_file_is_named(marked_run):
    """A record damaged by hand is left out of the page and the export, and kept in the file; an
    unreadable file is named, never overwritten; an unreadable near-duplicates file is named."""
    runs_dir, run_id, wrong = marked_run
    sus.set_mark(runs_dir, run_id, "test", int(wrong[0]), "wrong")
    path = runs_dir / run_id / runs.LABEL_MARKS
    data = json.loads(path.read_text())
    data.update({"test/5569": "wrong", "test/5": {"index": "x", "split": "test", "mark": "fine"}})
    path.write_text(json.dumps(data))
    assert list(sus.marks(runs_dir, run_id)) == [f"test/{wrong[0]}"]
    assert len(pd.read_csv(io.StringIO(sus.marks_csv(runs_dir, run_id)))) == 1
    sus.set_mark(runs_dir, run_id, "test", int(wrong[1]), "fine")
    kept = json.loads(path.read_text())
    assert kept["test/5569"] == "wrong" and kept["test/5"]["index"] == "x" and len(kept) == 4
    cut = path.read_text()[:-20]
    path.write_text(cut)  # cut short mid-record
    with pytest.raises(RunError, match="label_marks.json is unreadable .*kept as it is"):
        sus.marks(runs_dir, run_id)
    with pytest.raises(RunError, match="unreadable"):
        sus.set_mark(runs_dir, run_id, "test", int(wrong[2]), "fine")
    assert path.read_text() == cut
    (runs_dir / run_id / runs.NEAR_DUPLICATES).write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(RunError, match="near_duplicates.parquet is unreadable .*computes it again"):
        sus.near_duplicates(runs_dir, run_id)
