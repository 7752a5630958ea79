"""The analyst views in headless Chromium (dash_duo): a lasso on the map opening its images, a sort and
filter on the all-errors table restored from and written to the URL, a two-run comparison, and each of
the three pages keeping the app-wide run= (and any other parameter) when it writes its own keys.

    pytest --headless -m browser tests/test_insight_browser.py

The app runs over the committed runs fast-default and photo-default (their embedding maps are
committed too, so no UMAP runs here). Expected counts come from the runs' prediction files.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from model import runs
from model.data import CLASS_NAMES
from browser_helpers import WAIT, fresh, module_app, pick_by_keyboard, screenshot, tab, text_of, until

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
RUNS = ("fast-default", "photo-default")


@pytest.fixture(scope="module")
def insight_runs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("insight-runs")
    for run_id in RUNS:
        real = REPO / "runs" / run_id
        if not (real / runs.EMBEDDING).is_file():
            pytest.fail(f"{real / runs.EMBEDDING} missing: run `workbench embed {run_id}`")
        (folder / run_id).symlink_to(real, target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def served(request, insight_runs, data_dir, tmp_path_factory):
    """The app over the committed runs, served once for the module in one browser (module_app)."""
    with module_app(request, tmp_path_factory.mktemp("download"), insight_runs, data_dir) as shared:
        yield shared


@pytest.fixture
def duo(served):
    """The served app in a new tab: the test's own page and history (the server is the module's)."""
    with tab(served) as duo:
        yield duo


def visit(duo, path: str) -> None:
    duo.driver.get(duo.server_url + path)
    duo.wait_for_element("#run-select", timeout=WAIT)


SELECT_JS = """
const gd = document.querySelector('#map-graph .js-plotly-plot');
const points = [], indices = [];
gd.data.forEach((trace, c) => {
  for (let i = 0; i < Math.min(trace.customdata.length, arguments[0]); i++) {
    points.push({curveNumber: c, pointNumber: i});
    indices.push(Number(trace.customdata[i]));
  }
});
gd.emit('plotly_selected', {points: points});
return indices;
"""


def column(duo, name: str) -> list[str]:
    return fresh(lambda: [c.text for c in duo.driver.find_elements(By.CSS_SELECTOR, f"td[data-dash-column='{name}']")])


def test_map_lasso_selection_opens_its_images(duo):
    visit(duo, "/map?colour=correct")
    entries = until(lambda: duo.driver.find_elements(By.CSS_SELECTOR, "#map-graph .legendtext"), WAIT)
    assert fresh(lambda: [e.text for e in entries]) == ["correct", "wrong"]  # the colouring came from the URL
    rects = duo.driver.execute_script(  # the legend's title clear of the tool bar (shown on hover, always on touch)
        "return ['#map-graph .legendtitletext', '#map-graph .modebar']"
        ".map(s => document.querySelector(s).getBoundingClientRect().toJSON())")
    title, bar = rects
    assert title["top"] >= bar["bottom"] or title["right"] <= bar["left"], rects
    # A selection as plotly reports a lasso: the graph emits plotly_selected with the points inside
    # (a real mouse lasso with ActionChains did not select reliably in headless Chromium); dcc.Graph
    # turns it into selectedData, the page lists those images. 30 points of each trace:
    expected = duo.driver.execute_script(SELECT_JS, 30)
    tiles = until(lambda: duo.driver.find_elements(By.CSS_SELECTOR, "#map-tiles .tile"), WAIT)
    assert text_of(duo, "#map-gallery-title") == f"Selection: {len(expected)} images"
    assert fresh(lambda: [int(t.get_attribute("data-index")) for t in tiles]) == expected[:48]
    screenshot(duo, "map")
    index = tiles[0].get_attribute("data-index")
    tiles[0].click()
    until(lambda: f"#{index}" in text_of(duo, "#map-detail-title"), WAIT)
    until(lambda: len(duo.driver.find_elements(By.CSS_SELECTOR, ".insight-detail img.big-image")) >= 2, WAIT)
    # previous / next step through the selection in the gallery's order
    until(lambda: text_of(duo, "#map-position") == f"1 of {len(expected)} in the selection", WAIT)
    assert duo.find_element("#map-prev").get_attribute("disabled")
    duo.find_element("#map-next").click()
    until(lambda: text_of(duo, "#map-detail-title") == f"Test image #{expected[1]}", WAIT)
    until(lambda: text_of(duo, "#map-position") == f"2 of {len(expected)} in the selection", WAIT)
    duo.find_element("#map-prev").click()
    until(lambda: text_of(duo, "#map-detail-title") == f"Test image #{expected[0]}", WAIT)
    # the open image is in the URL: Back steps back through the images, then closes the view
    until(lambda: query(duo).get("image") == str(expected[0]), WAIT)
    duo.driver.back()
    until(lambda: text_of(duo, "#map-detail-title") == f"Test image #{expected[1]}", WAIT)
    duo.driver.back()
    duo.driver.back()
    until(lambda: not duo.driver.find_elements(By.CSS_SELECTOR, "#map-detail.show"), WAIT)
    assert "image" not in query(duo) and query(duo).get("colour") == "correct"
    # a link opens its image; without the selection (not in a link) it has no previous / next
    visit(duo, f"/map?image={expected[2]}")
    until(lambda: text_of(duo, "#map-detail-title") == f"Test image #{expected[2]}", WAIT)
    until(lambda: text_of(duo, "#map-position") == "not in the selection", WAIT)
    assert duo.find_element("#map-next").get_attribute("disabled")


def test_table_filter_and_sort_follow_the_url(duo):
    frame = runs.read_predictions(REPO / "runs" / RUNS[0])
    shirt = CLASS_NAMES.index("Shirt")
    errors = frame[(frame["label"] == shirt) & (frame["predicted"] != shirt)]
    visit(duo, f"/all-errors?true={shirt}")
    until(lambda: text_of(duo, "#table-count").startswith(f"{len(errors):,} misclassified"), WAIT)
    assert set(column(duo, "true")) == {"Shirt"}
    # sort by confidence (ascending on the first click): the least confident Shirt error comes first
    duo.find_element("th[data-dash-column='confidence'] .column-header--sort").click()
    until(lambda: "sort=confidence%3Aasc" in duo.driver.current_url, WAIT)
    lowest = errors[runs.PROB_COLUMNS].to_numpy().max(axis=1).min()
    assert float(column(duo, "confidence")[0]) == pytest.approx(lowest, abs=1e-3)
    # then only Shirts taken for T-shirts
    duo.select_dcc_dropdown("#table-pred", "T-shirt/top")
    pair = errors[errors["predicted"] == CLASS_NAMES.index("T-shirt/top")]
    until(lambda: text_of(duo, "#table-count").startswith(f"{len(pair):,} misclassified"), WAIT)
    assert set(column(duo, "predicted")) == {"T-shirt/top"}
    assert f"pred={CLASS_NAMES.index('T-shirt/top')}" in duo.driver.current_url
    screenshot(duo, "all-errors")
    # a row opens its image; next / previous step through the rows in the table's (sorted) order
    shown = [int(i) for i in column(duo, "index")]
    duo.find_element("td[data-dash-column='true']").click()
    until(lambda: text_of(duo, "#table-detail-title") == f"Test image #{shown[0]}", WAIT)
    until(lambda: text_of(duo, "#table-position") == f"1 of {len(pair)} in the table's order", WAIT)
    assert duo.find_element("#table-prev").get_attribute("disabled") is not None
    duo.find_element("#table-next").click()
    until(lambda: text_of(duo, "#table-detail-title") == f"Test image #{shown[1]}", WAIT)
    until(lambda: len(duo.driver.find_elements(By.CSS_SELECTOR, "#table-detail-content img.big-image")) == 3, WAIT)
    assert duo.find_element("#table-prev").get_attribute("disabled") is None
    duo.find_element("#table-prev").click()
    until(lambda: text_of(duo, "#table-detail-title") == f"Test image #{shown[0]}", WAIT)
    until(lambda: query(duo).get("image") == str(shown[0]), WAIT)
    link = duo.driver.current_url  # a shared link opens the image, placed in the table once the rows load
    visit(duo, "/")
    duo.driver.get(link)
    until(lambda: text_of(duo, "#table-detail-title") == f"Test image #{shown[0]}", WAIT)
    until(lambda: text_of(duo, "#table-position") == f"1 of {len(pair)} in the table's order", WAIT)


def test_compare_two_runs_shows_counts_and_verdict(duo):
    a, b = (runs.read_predictions(REPO / "runs" / r) for r in RUNS)
    right_a = (a["label"] == a["predicted"]).to_numpy()
    right_b = (b["label"] == b["predicted"]).to_numpy()
    visit(duo, f"/compare?a={RUNS[0]}&b={RUNS[1]}")
    counts = until(lambda: text_of(duo, "#compare-counts"), WAIT)
    assert f"{int(np.sum(right_a & ~right_b)):,}" in counts and f"{int(np.sum(~right_a & right_b)):,}" in counts
    assert "MCNEMAR TEST" in counts.upper() and "significant" in text_of(duo, "#compare-verdict")
    tiles = until(lambda: duo.driver.find_elements(By.CSS_SELECTOR, "#compare-tiles .tile"), WAIT)
    assert len(tiles) == min(48, int(np.sum(right_a & ~right_b)))
    screenshot(duo, "compare")


def query(duo) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(duo.driver.current_url).query).items()}


# Each page writes its own keys into the URL and keeps the app-wide run= (and any other parameter)
# the link came with. The run in the links is not the one shown first: the URL chose it.

def test_map_group_picker_selects_a_whole_group_by_keyboard(duo):
    frame = runs.read_predictions(REPO / "runs" / RUNS[0])
    wrong = set(frame.loc[frame["label"] != frame["predicted"], "index"])
    visit(duo, "/map?colour=correct")
    until(lambda: len(duo.driver.find_elements(By.CSS_SELECTOR, "#map-graph .legendtext")) == 2, WAIT)
    duo.find_element("#map-group").send_keys(Keys.ENTER)  # the dots take a mouse; the picker takes keys
    options = until(lambda: fresh(lambda: [o.text for o in duo.find_elements("[role='option']")]), WAIT)
    assert options == [f"correct ({10_000 - len(wrong):,} images)", f"wrong ({len(wrong)} images)"]
    ActionChains(duo.driver).send_keys(Keys.ESCAPE).perform()  # closed again; the focus back on the list
    until(lambda: not duo.find_elements("[role='option']"), WAIT)
    pick_by_keyboard(duo, "#map-group", "wrong")
    title = f"Selection: wrong (correct / wrong), {len(wrong):,} images"  # the group named
    until(lambda: text_of(duo, "#map-gallery-title") == title, WAIT)
    tiles = until(lambda: duo.find_elements("#map-tiles .tile"), WAIT)
    assert {int(fresh(lambda: t.get_attribute("data-index"))) for t in tiles} <= wrong
    selected = ("return document.querySelector('#map-graph .js-plotly-plot').data"
                ".map(t => (t.selectedpoints || []).length)")
    until(lambda: duo.driver.execute_script(selected) == [0, len(wrong)], WAIT)  # drawn as a lasso leaves them
    until(lambda: query(duo).get("group") == "wrong", WAIT)  # in the URL: a reload (or Back) selects it again
    tiles[0].click()
    until(lambda: text_of(duo, "#map-position") == f"1 of {len(wrong)} in the selection", WAIT)
    duo.driver.refresh()
    until(lambda: text_of(duo, "#map-position") == f"1 of {len(wrong)} in the selection", WAIT)
    until(lambda: duo.driver.execute_script(selected) == [0, len(wrong)], WAIT)
    assert text_of(duo, "#map-gallery-title") == title
    duo.find_element("#map-detail .btn-close").click()
    until(lambda: "image" not in query(duo), WAIT)
    duo.find_element("label[for='_dbcprivate_radioitems_map-colour_input_true']").click()
    until(lambda: len(duo.driver.find_elements(By.CSS_SELECTOR, "#map-graph .legendtext")) == 10, WAIT)
    until(lambda: sum(duo.driver.execute_script(selected)) == len(wrong), WAIT)  # still drawn, in the new colours
    until(lambda: "group" not in query(duo), WAIT)  # the picked group belonged to the other colouring
    assert text_of(duo, "#map-gallery-title") == title
    duo.driver.execute_script("document.querySelector('#map-graph .js-plotly-plot').emit('plotly_selected', {points: []})")
    duo.wait_for_contains_text("#map-prompt", "No dot is inside the lasso or box you drew", timeout=WAIT)


def test_map_url_keeps_the_run_and_other_parameters(duo):
    run = RUNS[1]
    visit(duo, f"/map?run={run}&colour=correct&keep=1")
    until(lambda: duo.driver.find_elements(By.CSS_SELECTOR, "#map-graph .legendtext"), WAIT)
    until(lambda: text_of(duo, "#run-select") == run, WAIT)
    assert query(duo) == {"run": run, "colour": "correct", "keep": "1"}  # the figure is drawn: the URL written
    duo.find_element("label[for='_dbcprivate_radioitems_map-colour_input_predicted']").click()
    until(lambda: query(duo) == {"run": run, "colour": "predicted", "keep": "1"}, WAIT)


def test_table_url_keeps_the_run_and_other_parameters(duo):
    run = RUNS[1]
    visit(duo, f"/all-errors?run={run}&true=6&keep=1")
    until(lambda: text_of(duo, "#table-count").endswith("for Grad-CAM)"), WAIT)
    duo.select_dcc_dropdown("#table-pred", "T-shirt/top")
    until(lambda: query(duo) == {"run": run, "true": "6", "pred": "0", "keep": "1"}, WAIT)


def test_compare_url_keeps_the_run_and_other_parameters(duo):
    run = RUNS[1]
    visit(duo, f"/compare?run={run}")  # no runs named: the navbar's run against the default run
    until(lambda: (text_of(duo, "#compare-a"), text_of(duo, "#compare-b")) == (RUNS[1], RUNS[0]), WAIT)
    visit(duo, f"/compare?run={run}&a={RUNS[0]}&b={RUNS[1]}&keep=1")
    until(lambda: text_of(duo, "#compare-counts"), WAIT)
    assert query(duo) == {"run": run, "a": RUNS[0], "b": RUNS[1], "keep": "1"}  # opening writes nothing
    duo.find_element("label[for='_dbcprivate_radioitems_compare-side_input_b_only']").click()
    until(lambda: query(duo) == {"run": run, "a": RUNS[0], "b": RUNS[1], "side": "b_only", "keep": "1"}, WAIT)
