"""The Errors page in headless Chromium (dash_duo): a click on a confusion-matrix cell shows exactly that
cell's images, the Grad-CAM overlay, the detail view and its link to Predict, Back, the confused pairs.

    python -m pytest --headless tests/test_errors_browser.py

The app runs over conftest's app_runs; the URL state of this page is tested in test_errors_url_browser.py.
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.keys import Keys

from browser_helpers import WAIT, attribute, click_cell, click_ok, displayed, fresh, open_page, screenshot, \
    text_of, until
from model import runs

pytestmark = pytest.mark.browser


def test_errors_cell_click_shows_exactly_that_cells_images(workbench, app_runs):
    duo, run_id = workbench
    from workbench import figures

    matrix = runs.read_confusion(app_runs / run_id)
    pair = figures.top_confused_pairs(matrix, list(runs.read_config(app_runs / run_id)["class_names"]))[0]
    frame = runs.read_predictions(app_runs / run_id)
    cell = frame[(frame["label"] == pair["row"]) & (frame["predicted"] == pair["col"])]
    expected = cell.assign(c=cell[runs.PROB_COLUMNS].max(axis=1)).sort_values("c", ascending=False, kind="stable")
    open_page(duo, "/errors")
    duo.wait_for_element("#errors-matrix .nsewdrag", timeout=WAIT)
    duo.wait_for_contains_text("#errors-gallery", "Click a cell of the matrix", timeout=WAIT)
    assert not displayed(duo, "#errors-page-col")  # no page count before a cell is chosen
    click_cell(duo, pair["row"], pair["col"])
    duo.wait_for_contains_text("#errors-gallery-title", f"{pair['count']} images", timeout=WAIT)
    title = text_of(duo, "#errors-gallery-title")
    assert f"true {pair['true']} → predicted {pair['predicted']}" in title
    assert displayed(duo, "#errors-page-col") == (pair["count"] > 50)  # pages only when several
    tiles = duo.find_elements("#errors-tiles .tile-button")
    shown = fresh(lambda: [int(t.get_attribute("data-index")) for t in duo.find_elements("#errors-tiles .tile-button")])
    assert shown == expected["index"].tolist()[:50]
    captions = duo.find_elements("#errors-tiles .tile-button div")
    cut = [c.text for c in captions if duo.driver.execute_script(
        "return arguments[0].scrollWidth > arguments[0].clientWidth", c)]
    assert len(captions) == 2 * len(tiles) and cut == [], f"gallery labels cut off: {cut}"
    assert all(c.text in tiles[0].get_attribute("title") for c in captions[:2])  # and in the tooltip
    plain = attribute(duo, "#errors-tiles img.thumb", "src")
    duo.find_element("label[for='errors-overlay']").click()
    until(lambda: attribute(duo, "#errors-tiles img.thumb", "src") != plain, timeout=WAIT)
    duo.find_element(".page-title").click()  # move the pointer off the matrix (no hover label)
    screenshot(duo, "errors")
    duo.find_elements("#errors-tiles .tile-button")[0].click()
    duo.wait_for_text_to_equal("#errors-detail-title", f"Test image #{shown[0]}", timeout=WAIT)
    duo.wait_for_element("#errors-detail-content img.big-image", timeout=WAIT)
    screenshot(duo, "errors-detail", settle=1.0)
    explore = duo.find_element("#errors-detail-content a").get_attribute("href")  # "Explore in Predict"
    assert explore.endswith(f"/predict?run={run_id}&test={shown[0]}")  # the run too: the link stands alone
    until(lambda: click_ok(duo.find_element("#errors-detail-content a")), timeout=WAIT)
    duo.wait_for_contains_text("#predict-hint", f"true class: {pair['true']}", timeout=WAIT)
    duo.wait_for_contains_text("#predict-cam-caption", f"for {pair['predicted']} (predicted)", timeout=WAIT)
    duo.driver.back()  # the URL kept the view: the same cell, with the detail view open again
    duo.wait_for_text_to_equal("#errors-detail-title", f"Test image #{shown[0]}", timeout=WAIT)
    until(lambda: click_ok(duo.find_element("#errors-detail .btn-close")), timeout=WAIT)
    until(lambda: not duo.find_elements("#errors-detail.show"), timeout=WAIT)
    duo.wait_for_element("#errors-matrix .nsewdrag", timeout=WAIT)
    click_cell(duo, pair["row"], pair["col"])
    duo.wait_for_contains_text("#errors-gallery-title", f"{pair['count']} images", timeout=WAIT)
    pairs = figures.top_confused_pairs(matrix, list(runs.read_config(app_runs / run_id)["class_names"]))
    if len(pairs) > 1:  # a confused pair in the list opens its gallery too, from the keyboard as well
        duo.find_elements(".pair-list .list-group-item")[1].send_keys(Keys.ENTER)
        duo.wait_for_contains_text("#errors-gallery-title", f"true {pairs[1]['true']} → predicted "
                                   f"{pairs[1]['predicted']}: {pairs[1]['count']} images", timeout=WAIT)
