"""The Label issues page in headless Chromium: open a page of test suspects from the URL, mark one,
see the mark, export the marks as CSV; the training split asks for `workbench label-issues`.

    python -m pytest --headless tests/test_suspects_browser.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from model import runs
from browser_helpers import WAIT, serve, text_of, until
from test_explain_browser import save_view

pytestmark = pytest.mark.browser

FILES = (runs.CONFIG, runs.MODEL, runs.METRICS, runs.PREDICTIONS, runs.CONFUSION, runs.HISTORY, runs.NEAR_DUPLICATES)


@pytest.fixture
def suspect_runs(tmp_path, default_run_dir) -> Path:
    """The committed default run without label_issues.parquet: the test split comes from predictions."""
    run = tmp_path / "runs" / runs.DEFAULT_RUN_ID
    run.mkdir(parents=True)
    for name in FILES:
        shutil.copy2(default_run_dir / name, run / name)
    return tmp_path / "runs"


def test_mark_a_suspect_see_the_mark_and_export_it(dash_duo, suspect_runs, data_dir):
    serve(dash_duo, suspect_runs, data_dir)
    dash_duo.driver.get(dash_duo.server_url + "/suspects?split=test&page=2")
    dash_duo.wait_for_contains_text("#suspects-tiles", "page 2 of", timeout=WAIT)
    first = dash_duo.find_elements(".suspect-tile")[0]
    title = first.find_element("css selector", ".fw-bold").text  # "#13 · test image 1234"
    index = int(title.rsplit(" ", 1)[1])
    assert title.startswith("#13 ")  # page 2 starts at rank 13 (12 a page)
    assert len(first.find_elements("css selector", "img")) == 3  # image + Grad-CAM given + suggested
    first.find_element("css selector", "button.suspects-mark").click()  # "label wrong"
    until(lambda: "label wrong" in text_of(dash_duo, ".suspect-tile span[id*='suspects-current']"), WAIT)

    pairs = pd.read_parquet(suspect_runs / runs.DEFAULT_RUN_ID / runs.NEAR_DUPLICATES)
    assert len(dash_duo.find_elements("#suspects-duplicate-pairs img")) == 2 * min(len(pairs), 30)
    save_view(dash_duo, "label_issues_page")
    marks = runs.read_json(suspect_runs / runs.DEFAULT_RUN_ID, runs.LABEL_MARKS)
    assert [(m["index"], m["mark"]) for m in marks.values()] == [(index, "wrong")]
    dash_duo.find_element("#suspects-export").click()
    csv = Path(dash_duo.download_path) / f"label_marks_{runs.DEFAULT_RUN_ID}.csv"
    until(csv.is_file, WAIT)
    exported = pd.read_csv(csv)
    assert exported[["index", "split", "mark"]].values.tolist() == [[index, "test", "wrong"]]

    dash_duo.find_element("label[for='_dbcprivate_radioitems_suspects-split_input_train']").click()
    dash_duo.wait_for_contains_text("#suspects-tiles", "workbench label-issues", timeout=WAIT)
    assert "split=train" in dash_duo.driver.current_url
    dash_duo.driver.back()  # Back returns to the test split's page 2
    dash_duo.wait_for_contains_text("#suspects-tiles", "in the test set; page 2 of", timeout=WAIT)
    assert dash_duo.get_logs() == [], "browser console errors"
