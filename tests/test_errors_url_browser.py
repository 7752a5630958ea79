"""The Errors page's state in the URL, in headless Chromium: a link reproduces a drill-down, Back
returns to the previous cell / page / run, and the detail view steps through a cell.

    python -m pytest --headless tests/test_errors_url_browser.py

The app serves the committed runs (no training); expected images are read from the run's files.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.action_chains import ActionChains

from model import runs
from browser_helpers import WAIT, click_cell, text_of, until
from test_insight_browser import duo, insight_runs, served  # noqa: F401 (fixtures: the committed runs, served)

pytestmark = pytest.mark.browser

RUNS = Path(__file__).resolve().parents[1] / "runs"
RUN = runs.DEFAULT_RUN_ID
SHIRT, TSHIRT = 6, 0  # the largest confusion of the default run: two gallery pages


def cell_indices(true: int, pred: int) -> list[int]:
    frame = runs.read_predictions(RUNS / RUN)
    cell = frame[(frame["label"] == true) & (frame["predicted"] == pred)]
    order = cell.assign(c=cell[runs.PROB_COLUMNS].max(axis=1)).sort_values("c", ascending=False, kind="stable")
    return order["index"].tolist()


def visit(duo, path: str) -> None:
    duo.driver.get(duo.server_url + path)
    duo.wait_for_element("#errors-matrix .nsewdrag", timeout=WAIT)


def query(duo) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(duo.driver.current_url).query).items()}


def shown(duo) -> list[int]:
    return [int(t.get_attribute("data-index")) for t in duo.find_elements("#errors-tiles .tile-button")]


def card_top(duo) -> float:
    return duo.driver.execute_script("return document.getElementById('errors-gallery-card').getBoundingClientRect().top")


def gallery_is(duo, title: str, page: int, indices: list[int]) -> bool:
    return (title in text_of(duo, "#errors-gallery-title") and shown(duo) == indices
            and text_of(duo, "#errors-page .page-item.active").split()[0] == str(page))  # "2 (current)"


def test_a_link_reproduces_the_drill_down_and_bad_links_say_what_was_ignored(duo):
    indices = cell_indices(SHIRT, TSHIRT)
    visit(duo, f"/errors?run={RUN}&true={SHIRT}&pred={TSHIRT}&page=2")
    until(lambda: gallery_is(duo, f"true Shirt → predicted T-shirt/top: {len(indices)} images", 2, indices[50:100]),
          timeout=WAIT)
    assert text_of(duo, "#run-select") == RUN
    assert duo.find_element(f"a.nav-link[href='/training?run={RUN}']")  # the run goes along to other pages
    visit(duo, f"/errors?run={RUN}&true=99&pred=abc&page=-3")
    duo.wait_for_contains_text("#errors-url-note", "true='99' ignored: outside 0..9", timeout=WAIT)
    assert "pred='abc' ignored: not a whole number" in text_of(duo, "#errors-url-note")
    duo.wait_for_contains_text("#errors-gallery", "Click a cell of the matrix", timeout=WAIT)
    visit(duo, f"/errors?run=no-such-run&true={SHIRT}&pred={TSHIRT}")
    duo.wait_for_contains_text("#run-note", "Run 'no-such-run' not found: showing run", timeout=WAIT)
    duo.wait_for_contains_text("#errors-gallery-title", "true Shirt → predicted T-shirt/top", timeout=WAIT)


def test_b_cell_click_and_pages_go_in_the_url_and_back_returns(duo):
    indices = cell_indices(SHIRT, TSHIRT)
    visit(duo, f"/errors?run={RUN}")
    duo.wait_for_contains_text("#errors-gallery", "Click a cell of the matrix", timeout=WAIT)
    assert card_top(duo) > 600  # below the matrix
    click_cell(duo, SHIRT, TSHIRT)
    until(lambda: query(duo) == {"run": RUN, "true": str(SHIRT), "pred": str(TSHIRT)}, timeout=WAIT)
    until(lambda: gallery_is(duo, "true Shirt", 1, indices[:50]), timeout=WAIT)
    until(lambda: -5 < card_top(duo) < 300, timeout=WAIT)  # scrolled into view (it starts ~750 px down)
    next(a for a in duo.find_elements("#errors-page .page-link") if a.text == "2").click()
    until(lambda: query(duo).get("page") == "2" and gallery_is(duo, "true Shirt", 2, indices[50:100]), timeout=WAIT)
    other = next(r for r in runs.list_runs(RUNS) if r != RUN)
    duo.driver.execute_script("window.scrollTo(0, 0)")  # the navbar
    until(lambda: duo.driver.execute_script("return window.scrollY") == 0, timeout=WAIT)
    duo.select_dcc_dropdown("#run-select", other)  # the run changes, the rest of the URL stays
    until(lambda: query(duo) == {"run": other, "true": str(SHIRT), "pred": str(TSHIRT), "page": "2"}, timeout=WAIT)
    duo.driver.back()
    until(lambda: query(duo).get("run") == RUN and text_of(duo, "#run-select") == RUN, timeout=WAIT)
    duo.driver.back()
    until(lambda: "page" not in query(duo) and gallery_is(duo, "true Shirt", 1, indices[:50]), timeout=WAIT)
    duo.driver.back()
    until(lambda: "true" not in query(duo), timeout=WAIT)
    duo.wait_for_contains_text("#errors-gallery", "Click a cell of the matrix", timeout=WAIT)
    visit(duo, f"/errors?true={SHIRT}&pred={TSHIRT}")  # an address without run=: the default run ...
    duo.select_dcc_dropdown("#run-select", other)
    until(lambda: query(duo).get("run") == other, timeout=WAIT)
    duo.driver.back()  # ... so Back to it undoes the pick (a fresh tab would show the default too)
    until(lambda: "run" not in query(duo) and text_of(duo, "#run-select") == RUN, timeout=WAIT)


def test_c_detail_view_steps_through_the_cell_with_both_grad_cams(duo):
    indices = cell_indices(SHIRT, TSHIRT)
    visit(duo, f"/errors?run={RUN}&true={SHIRT}&pred={TSHIRT}&image={indices[0]}")
    duo.wait_for_text_to_equal("#errors-detail-title", f"Test image #{indices[0]}", timeout=WAIT)
    duo.wait_for_text_to_equal("#errors-position", f"1 of {len(indices)} in this cell", timeout=WAIT)
    duo.wait_for_element("#errors-detail-content img.big-image", timeout=WAIT)
    until(lambda: duo.find_element("#errors-next").is_enabled(), timeout=WAIT)
    duo.find_element("#errors-next").click()
    duo.wait_for_text_to_equal("#errors-detail-title", f"Test image #{indices[1]}", timeout=WAIT)
    until(lambda: query(duo).get("image") == str(indices[1]), timeout=WAIT)
    captions = until(lambda: [c.text for c in duo.find_elements("#errors-detail-content figcaption")
                              if "Grad-CAM" in c.text], timeout=WAIT)
    assert captions == ["Grad-CAM for T-shirt/top (predicted)", "Grad-CAM for Shirt (true)"]
    ActionChains(duo.driver).double_click(duo.find_element("#errors-next")).perform()  # two steps, not one
    duo.wait_for_text_to_equal("#errors-position", f"4 of {len(indices)} in this cell", timeout=WAIT)
    until(lambda: query(duo).get("image") == str(indices[3]), timeout=WAIT)
    duo.find_element("#errors-prev").click()
    duo.wait_for_text_to_equal("#errors-detail-title", f"Test image #{indices[2]}", timeout=WAIT)
    duo.find_element("#errors-detail .btn-close").click()
    until(lambda: "image" not in query(duo), timeout=WAIT)
