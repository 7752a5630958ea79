"""Links and what the pages make of them, in headless Chromium (dash_duo): no chart offers to upload
itself to Plotly Cloud, a malformed URL value is named in a note and leaves the address bar on the
Map, Compare, All errors and Label issues pages, the All errors table scrolls in its own box in a
narrow window, and an unknown path gets a 404 page that links to the real ones.

    python -m pytest --headless tests/test_links_browser.py

The app serves the committed runs fast-default and photo-default (their maps are committed too).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser_helpers import WAIT, attribute, click_when_enabled, displayed, fresh, pick_by_keyboard, text_of, until
from model import runs
from test_insight_browser import REPO, RUNS, column, duo, insight_runs, served, visit  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def query(duo) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(duo.driver.current_url).query, keep_blank_values=True).items()}


def test_the_map_offers_no_share_chart_button(duo):
    visit(duo, "/map")
    until(lambda: duo.driver.find_elements(By.CSS_SELECTOR, "#map-graph .legendtext"), WAIT)
    titles = fresh(lambda: [b.get_attribute("data-title")
                            for b in duo.driver.find_elements(By.CSS_SELECTOR, "#map-graph .modebar-btn")])
    assert "Zoom in" in titles  # the modebar is there (shown on hover) ...
    assert not [t for t in titles if "Share" in t or "Chart Studio" in t], titles  # ... without an upload
    assert not duo.driver.find_elements(By.CSS_SELECTOR, "#map-graph .modebar-btn--logo")


SCRIPT = "<script>alert(1)</script>"
BAD_LINKS = [  # path, the note's id, what the note says, the URL afterwards (None: the key has gone)
    (f"/map?colour={SCRIPT}", "#map-url-note",
     [f"colour='{SCRIPT}' ignored: not one of true, predicted, correct"], {"colour": "true"}),
    ("/compare?a=nope&b=&side=zzz&image=abc", "#compare-url-note",
     ["a='nope' ignored: Run 'nope' not found", "b='' ignored: empty", "side='zzz' ignored",
      "image='abc' ignored: not a whole number"],
     {"a": RUNS[0], "b": RUNS[1], "side": "a_only", "image": None}),
    ("/all-errors?sort=zzz&page=99999&lo=abc&hi=0.5", "#table-url-note",
     ["sort='zzz' ignored", "page='99999' ignored: outside 1..400", "lo='abc' ignored: not a number"],
     {"sort": None, "page": None, "lo": None, "hi": "0.5"}),
    ("/all-errors?lo=0.9&hi=0.1&true=6", "#table-url-note",
     ["lo=0.9 and hi=0.1 ignored: the range's low end is above its high end"], {"lo": None, "hi": None, "true": "6"}),
    ("/errors?true=99&pred=0&page=abc&norm=rows", "#errors-url-note",
     ["true='99' ignored: outside 0..9", "page='abc' ignored: not a whole number"],
     {"true": None, "pred": None, "page": None, "norm": "rows"}),
    ("/suspects?split=zzz&page=abc", "#suspects-url-note",
     ["split='zzz' ignored: not one of test, train", "page='abc' ignored: not a whole number"],
     {"split": "test", "page": "1"}),
]


@pytest.mark.parametrize("path, note, says, after", BAD_LINKS, ids=[p[0].split("?")[0] for p in BAD_LINKS])
def test_a_malformed_link_value_is_named_and_leaves_the_url(duo, path, note, says, after):
    visit(duo, path)
    duo.wait_for_contains_text(note, "Part of the link was ignored: ", timeout=WAIT)
    for text in says:
        assert text in text_of(duo, note)
    try:
        until(lambda: all(query(duo).get(key) == value for key, value in after.items()), WAIT)
    except TimeoutError:
        raise AssertionError(f"the URL is still {duo.driver.current_url}") from None
    with pytest.raises(NoAlertPresentException):
        duo.driver.switch_to.alert  # the script in the colour was shown as text, never run


def test_the_all_errors_table_scrolls_in_its_box_not_the_page(duo):
    duo.driver.set_window_size(500, 900)
    visit(duo, "/all-errors")
    until(lambda: text_of(duo, "#table-count").endswith("for Grad-CAM)"), WAIT)
    until(lambda: duo.driver.find_elements(By.CSS_SELECTOR, "td[data-dash-column='loss']"), WAIT)
    page, window = duo.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert page <= window + 1, f"page {page} px wide in a {window} px window"


@pytest.mark.parametrize("path", ["/nope", "/label-issues"])
def test_an_unknown_path_says_so_and_links_to_the_pages(duo, path):
    visit(duo, path)
    duo.wait_for_contains_text("#notfound-path", f"There is no page at {path}", timeout=WAIT)
    assert text_of(duo, "h1.page-title") == "Page not found"
    links = {a.get_attribute("pathname"): a.text for a in duo.find_elements("#notfound-pages a")}
    navbar = {a.get_attribute("pathname") for a in duo.find_elements("a.nav-link")}
    assert set(links) == navbar and links["/suspects"] == "Label issues"  # every page, and only pages
    assert "Page not found" not in {a.text for a in duo.find_elements("a.nav-link")}  # not in the navbar
    duo.find_element("#notfound-pages a[href='/suspects']").click()
    until(lambda: urlparse(duo.driver.current_url).path == "/suspects", WAIT)


OPENED = [("/map", "#map-graph .legendtext"), ("/compare", "#compare-summary *"),
          ("/all-errors", "td[data-dash-column='index']"), ("/suspects", "#suspects-pager"),
          ("/errors", "#errors-matrix .main-svg")]


@pytest.mark.parametrize("path, ready", OPENED, ids=[p for p, _ in OPENED])
def test_opening_a_page_adds_no_history_entry_so_back_leaves_it(duo, path, ready):
    visit(duo, "/")
    duo.driver.get(duo.server_url + path)
    until(lambda: duo.driver.find_elements(By.CSS_SELECTOR, ready), WAIT)
    duo.driver.execute_script("return new Promise(done => setTimeout(done, 1500))")  # callbacks settle
    duo.driver.back()  # a page that wrote its URL as it opened would be rewritten here, trapping Back
    until(lambda: urlparse(duo.driver.current_url).path == "/", WAIT)


def test_a_table_page_past_the_last_shows_the_last_page_and_says_so(duo):
    frame = runs.read_predictions(REPO / "runs" / RUNS[0])
    errors = frame[(frame["label"] == 6) & (frame["predicted"] == 0)]  # Shirts taken for T-shirts
    last = -(-len(errors) // 25)
    visit(duo, "/all-errors?true=6&pred=0&page=300")
    duo.wait_for_contains_text("#table-count", f"the link's page 300 is past the last, so page {last} is shown",
                               timeout=WAIT)
    until(lambda: duo.driver.find_elements(By.CSS_SELECTOR, "td[data-dash-column='index']"), WAIT)  # not blank
    until(lambda: table_page(duo) == str(last), WAIT)
    assert query(duo).get("page") == "300"  # left as it was: a write here would be a history entry


def test_back_on_the_map_undoes_a_colouring(duo):
    visit(duo, "/")
    duo.driver.get(duo.server_url + "/map?colour=correct")
    legend = "#map-graph .legendtext"
    until(lambda: fresh(lambda: [e.text for e in duo.find_elements(legend)]) == ["correct", "wrong"], WAIT)
    duo.find_element("label[for='_dbcprivate_radioitems_map-colour_input_predicted']").click()
    until(lambda: query(duo).get("colour") == "predicted", WAIT)
    until(lambda: "wrong" not in fresh(lambda: [e.text for e in duo.find_elements(legend)]), WAIT)
    duo.driver.back()
    until(lambda: query(duo).get("colour") == "correct", WAIT)
    until(lambda: fresh(lambda: [e.text for e in duo.find_elements(legend)]) == ["correct", "wrong"], WAIT)
    duo.driver.back()  # and on, out of the page
    until(lambda: urlparse(duo.driver.current_url).path == "/", WAIT)


def test_back_on_compare_undoes_a_side_and_a_run_pick(duo):
    visit(duo, "/")
    duo.driver.get(duo.server_url + f"/compare?a={RUNS[0]}&b={RUNS[1]}")
    until(lambda: text_of(duo, "#compare-counts"), WAIT)
    duo.find_element("label[for='_dbcprivate_radioitems_compare-side_input_b_only']").click()
    until(lambda: query(duo).get("side") == "b_only", WAIT)
    duo.select_dcc_dropdown("#compare-b", RUNS[0])
    until(lambda: query(duo).get("b") == RUNS[0], WAIT)
    duo.driver.back()
    until(lambda: query(duo).get("b") == RUNS[1] and text_of(duo, "#compare-b") == RUNS[1], WAIT)
    duo.driver.back()
    until(lambda: "side" not in query(duo), WAIT)
    assert duo.find_element("#_dbcprivate_radioitems_compare-side_input_a_only").is_selected()
    duo.driver.back()  # and on, out of the page
    until(lambda: urlparse(duo.driver.current_url).path == "/", WAIT)


def test_back_on_all_errors_undoes_an_image_a_filter_then_a_sort(duo):
    visit(duo, "/")
    duo.driver.get(duo.server_url + "/all-errors?true=6")
    until(lambda: text_of(duo, "#table-count"), WAIT)
    count = text_of(duo, "#table-count")
    duo.find_element("th[data-dash-column='confidence'] .column-header--sort").click()
    until(lambda: query(duo).get("sort") == "confidence:asc", WAIT)
    until(lambda: text_of(duo, "#table-sort") == "sort: confidence, lowest first", WAIT)  # the list follows
    duo.select_dcc_dropdown("#table-pred", "T-shirt/top")
    until(lambda: query(duo).get("pred") == "0" and text_of(duo, "#table-count") != count, WAIT)
    duo.find_element("td[data-dash-column='true']").click()  # an image open, then the next one
    until(lambda: duo.driver.find_elements(By.CSS_SELECTOR, ".modal.show"), WAIT)
    first = query(duo).get("image")
    until(lambda: first and text_of(duo, "#table-detail-title") == f"Test image #{first}", WAIT)
    click_when_enabled(duo, "#table-next")
    until(lambda: query(duo).get("image") not in (None, first), WAIT)
    duo.driver.back()  # the previous image
    until(lambda: text_of(duo, "#table-detail-title") == f"Test image #{first}", WAIT)
    duo.driver.back()  # the view closes; the filter stays
    until(lambda: not duo.driver.find_elements(By.CSS_SELECTOR, ".modal.show"), WAIT)
    assert query(duo).get("pred") == "0" and "image" not in query(duo)
    duo.driver.back()  # the filter
    until(lambda: "pred" not in query(duo) and text_of(duo, "#table-count") == count, WAIT)
    assert query(duo).get("sort") == "confidence:asc"
    duo.driver.back()
    until(lambda: "sort" not in query(duo), WAIT)
    until(lambda: duo.find_elements("th[data-dash-column='loss'] .column-header--sort"), WAIT)
    duo.driver.back()  # and on, out of the page
    until(lambda: urlparse(duo.driver.current_url).path == "/", WAIT)


def test_skip_link_jumps_past_the_navbar_and_keyboard_focus_shows(duo):
    visit(duo, "/predict")
    focused = lambda: duo.driver.switch_to.active_element  # noqa: E731
    ActionChains(duo.driver).send_keys(Keys.TAB).perform()  # the first Tab stop
    until(lambda: focused().get_attribute("id") == "skip-link" and focused().is_displayed(), WAIT)
    focused().send_keys(Keys.ENTER)
    until(lambda: focused().get_attribute("id") == "main", WAIT)
    ActionChains(duo.driver).send_keys(Keys.TAB, Keys.TAB).perform()  # the upload's input, then the button
    until(lambda: focused().get_attribute("id") == "predict-random", WAIT)
    outline = duo.driver.execute_script("const s = getComputedStyle(document.activeElement); "
                                        "return [s.outlineStyle, parseFloat(s.outlineWidth)];")
    assert outline[0] == "solid" and outline[1] >= 2, outline  # the theme's ring was all but invisible
    assert fresh(lambda: len(duo.find_elements("h1.page-title"))) == 1


def test_the_keyboard_opens_any_cell_of_the_confusion_matrix(duo):
    visit(duo, "/errors")
    summary = "#errors-pairs details summary"  # "Every other cell: ...", folded under the top pairs
    until(lambda: duo.find_elements(summary), WAIT)
    duo.find_element(summary).send_keys(Keys.ENTER)  # opens the list
    trouser = '#errors-pairs details button[id*=\'"row":1\'][id*=\'"col":1\']'  # right answers: not in the top pairs
    until(lambda: displayed(duo, trouser), WAIT)
    duo.find_element(trouser).send_keys(Keys.ENTER)
    until(lambda: query(duo).get("true") == "1" and query(duo).get("pred") == "1", WAIT)
    until(lambda: "Trouser" in text_of(duo, "#errors-gallery-title"), WAIT)


def test_back_on_label_issues_undoes_a_split_then_a_page(duo):
    visit(duo, "/")
    duo.driver.get(duo.server_url + "/suspects")
    header = lambda: text_of(duo, "#suspects-tiles p.small")  # noqa: E731 ("N suspects in the test set; page 1 of M.")
    until(lambda: "in the test set; page 1 of" in header(), WAIT)
    fresh(lambda: [a for a in duo.find_elements("#suspects-pager a.page-link") if a.text == "2"][0]).click()
    until(lambda: query(duo).get("page") == "2" and "in the test set; page 2 of" in header(), WAIT)
    duo.find_element("label[for='_dbcprivate_radioitems_suspects-split_input_train']").click()
    until(lambda: query(duo).get("split") == "train" and "in the train set; page 1 of" in header(), WAIT)
    duo.driver.back()  # the split
    until(lambda: query(duo).get("split") != "train" and "in the test set; page 2 of" in header(), WAIT)
    duo.driver.back()  # the page
    until(lambda: "page" not in query(duo) and "in the test set; page 1 of" in header(), WAIT)
    duo.driver.back()  # and out of the page
    until(lambda: urlparse(duo.driver.current_url).path == "/", WAIT)


def test_a_label_issues_page_past_the_last_shows_the_last_says_so_and_leaves_the_url(duo):
    visit(duo, "/suspects?page=999")
    header = lambda: text_of(duo, "#suspects-tiles p.small")  # noqa: E731
    until(lambda: "past the last" in header(), WAIT)
    last = header().split(" of ")[1].split(".")[0]
    assert f"The link's page 999 is past the last, so page {last} is shown." in header()
    until(lambda: query(duo).get("page") == last, WAIT)


def test_compare_detail_steps_through_its_side_and_back_undoes_one_step_at_a_time(duo):
    visit(duo, f"/compare?a={RUNS[0]}&b={RUNS[1]}")
    until(lambda: text_of(duo, "#compare-counts"), WAIT)
    duo.find_element("label[for='_dbcprivate_radioitems_compare-side_input_b_only']").click()
    until(lambda: query(duo).get("side") == "b_only", WAIT)
    until(lambda: f"captions give {RUNS[0]}'s" in text_of(duo, "#compare-gallery"), WAIT)  # B right, A wrong
    first, second = fresh(lambda: [t.get_attribute("data-index")
                                   for t in duo.driver.find_elements(By.CSS_SELECTOR, "#compare-tiles .tile")][:2])
    duo.find_element(f"#compare-tiles .tile[data-index='{first}']").click()
    until(lambda: text_of(duo, "#compare-detail-title").startswith(f"Test image #{first}:"), WAIT)
    until(lambda: text_of(duo, "#compare-position").startswith("1 of "), WAIT)
    until(lambda: query(duo).get("image") == first, WAIT)  # the open image is in the URL: a link shows it
    click_when_enabled(duo, "#compare-next")
    until(lambda: text_of(duo, "#compare-detail-title").startswith(f"Test image #{second}:"), WAIT)
    until(lambda: query(duo).get("image") == second, WAIT)
    duo.driver.back()  # the previous image
    until(lambda: text_of(duo, "#compare-detail-title").startswith(f"Test image #{first}:"), WAIT)
    duo.driver.back()  # the side's gallery, the detail closed
    until(lambda: "image" not in query(duo) and query(duo).get("side") == "b_only", WAIT)
    until(lambda: not duo.driver.find_elements(By.CSS_SELECTOR, ".modal.show"), WAIT)
    duo.driver.back()  # to side a_only
    until(lambda: "side" not in query(duo), WAIT)
    until(lambda: f"captions give {RUNS[1]}'s" in text_of(duo, "#compare-gallery"), WAIT)
    duo.driver.forward()
    duo.driver.forward()  # a link with an image opens it at once
    until(lambda: text_of(duo, "#compare-detail-title").startswith(f"Test image #{first}:"), WAIT)


def test_compare_gallery_page_is_in_the_url_back_undoes_it_and_a_link_opens_it(duo):
    visit(duo, f"/compare?a={RUNS[0]}&b={RUNS[1]}")
    until(lambda: text_of(duo, "#compare-counts"), WAIT)
    def tiles():
        return [t.get_attribute("data-index") for t in duo.driver.find_elements(By.CSS_SELECTOR, "#compare-tiles .tile")]

    page_one = until(lambda: fresh(tiles), WAIT)
    fresh(lambda: [a for a in duo.find_elements("#compare-page a.page-link") if a.text == "2"][0]).click()
    until(lambda: query(duo).get("page") == "2" and fresh(tiles) and fresh(tiles) != page_one, WAIT)
    page_two = fresh(tiles)
    duo.driver.back()
    until(lambda: "page" not in query(duo) and fresh(tiles) == page_one, WAIT)
    duo.driver.forward()
    until(lambda: query(duo).get("page") == "2" and fresh(tiles) == page_two, WAIT)
    duo.find_element(f"#compare-tiles .tile[data-index='{page_two[0]}']").click()
    until(lambda: query(duo).get("image") == page_two[0] and query(duo).get("page") == "2", WAIT)
    link = duo.driver.current_url
    visit(duo, "/")
    duo.driver.get(link)  # the link: the detail open over the gallery's page 2
    until(lambda: text_of(duo, "#compare-detail-title").startswith(f"Test image #{page_two[0]}:"), WAIT)
    until(lambda: fresh(tiles) == page_two, WAIT)


def test_a_linked_image_outside_the_view_says_so_and_a_closed_row_reopens(duo):
    a, b = (runs.read_predictions(REPO / "runs" / r) for r in RUNS)
    both_right = int(a[(a["label"] == a["predicted"]) & (b["label"] == b["predicted"])]["index"].iloc[0])
    visit(duo, f"/compare?a={RUNS[0]}&b={RUNS[1]}&side=b_only&image={both_right}")  # on neither side
    until(lambda: text_of(duo, "#compare-detail-title").startswith(f"Test image #{both_right}:"), WAIT)
    until(lambda: text_of(duo, "#compare-position") == "not among the images with B right, A wrong", WAIT)
    not_shirt = int(a[a["label"] != 6]["index"].iloc[0])
    visit(duo, f"/all-errors?true=6&image={not_shirt}")
    until(lambda: text_of(duo, "#table-detail-title") == f"Test image #{not_shirt}", WAIT)
    until(lambda: text_of(duo, "#table-position") == "not among the table's rows (its filters leave it out)", WAIT)
    duo.find_element(".modal.show .btn-close").click()  # closed: then the same cell opens it again
    until(lambda: "image" not in query(duo) and not duo.driver.find_elements(By.CSS_SELECTOR, ".modal.show"), WAIT)
    for _ in range(2):
        duo.find_element("td[data-dash-column='true']").click()
        until(lambda: duo.driver.find_elements(By.CSS_SELECTOR, ".modal.show") and query(duo).get("image"), WAIT)
        duo.find_element(".modal.show .btn-close").click()
        until(lambda: not duo.driver.find_elements(By.CSS_SELECTOR, ".modal.show"), WAIT)


def table_page(duo) -> str:
    label = attribute(duo, "#table-pager .page-item.active", "textContent")  # "4(current)", also under a modal
    return "".join(c for c in label if c.isdigit())


def test_the_keyboard_turns_the_table_pages_leaves_the_table_and_opens_its_images(duo):
    visit(duo, "/all-errors")
    until(lambda: table_page(duo) == "1" and column(duo, "index"), WAIT)
    first = column(duo, "index")[0]
    duo.find_element("#table-export").send_keys(Keys.TAB)  # the next stop after Export: the pager's page 2
    focused = lambda: duo.driver.switch_to.active_element  # noqa: E731
    until(lambda: focused().text == "2", WAIT)
    focused().send_keys(Keys.ENTER)
    until(lambda: query(duo).get("page") == "2" and table_page(duo) == "2" and column(duo, "index")[0] != first, WAIT)
    for _ in range(12):  # DataTable's own page box kept the focus here for ever
        ActionChains(duo.driver).send_keys(Keys.TAB).perform()
        if not duo.driver.execute_script("return !!document.activeElement.closest('#table-pager, .table-grid-wrap')"):
            break
    else:
        pytest.fail("Tab did not leave the table and its pager")
    duo.driver.back()
    until(lambda: table_page(duo) == "1" and column(duo, "index")[0] == first, WAIT)
    pick_by_keyboard(duo, "#table-sort", "sort: confidence, lowest first")  # the titles sort by mouse only
    until(lambda: query(duo).get("sort") == "confidence:asc", WAIT)
    confidences = until(lambda: [float(c) for c in column(duo, "confidence")], WAIT)
    assert confidences == sorted(confidences)
    first = column(duo, "index")[0]
    second = column(duo, "index")[1]
    duo.find_element("#table-pred").send_keys(Keys.TAB)  # a row takes a mouse click; "One by one" takes a key
    for _ in range(8):  # past the confidence slider's boxes and thumbs
        if focused().get_attribute("id") == "table-first":
            break
        ActionChains(duo.driver).send_keys(Keys.TAB).perform()
    focused().send_keys(Keys.ENTER)
    until(lambda: text_of(duo, "#table-detail-title") == f"Test image #{first}", WAIT)
    assert attribute(duo, ".modal.show", "aria-labelledby") == "table-detail-title"  # a screen reader names it
    until(lambda: duo.find_element("#table-next").is_enabled(), WAIT)
    duo.find_element("#table-next").send_keys(Keys.ENTER)
    until(lambda: text_of(duo, "#table-detail-title") == f"Test image #{second}", WAIT)


def test_stepping_past_the_table_page_turns_it_and_back_turns_it_back(duo):
    visit(duo, "/all-errors?true=6")
    until(lambda: len(duo.driver.find_elements(By.CSS_SELECTOR, "td[data-dash-column='true']")) == 25, WAIT)
    last = column(duo, "index")[-1]
    duo.driver.find_elements(By.CSS_SELECTOR, "td[data-dash-column='true']")[-1].click()  # row 25 of page 1
    until(lambda: query(duo).get("image") == last, WAIT)
    click_when_enabled(duo, "#table-next")  # row 26: on page 2
    until(lambda: query(duo).get("page") == "2" and query(duo).get("image") not in (None, last), WAIT)
    shown = query(duo)["image"]
    duo.find_element(".modal.show .btn-close").click()
    until(lambda: not duo.driver.find_elements(By.CSS_SELECTOR, ".modal.show"), WAIT)
    until(lambda: table_page(duo) == "2" and column(duo, "index")[:1] == [shown], WAIT)  # the image's row
    duo.driver.back()  # the view again, then the image before, on page 1
    until(lambda: query(duo).get("image") == shown, WAIT)
    duo.driver.back()
    until(lambda: query(duo).get("image") == last and "page" not in query(duo), WAIT)
    until(lambda: table_page(duo) == "1", WAIT)
