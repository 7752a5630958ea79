"""Explanations you can trust, in headless Chromium: the bar-row click, the faithfulness curve, the
methods side by side, the teaching view's guess / reveal, and every page at 400 px and 1280×720.

    python -m pytest --headless tests/test_explain_browser.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.action_chains import ActionChains

from model.data import CLASS_NAMES
from browser_helpers import WAIT, displayed, screenshot, tab, text_of, until
from workbench.explain import METHODS

pytestmark = pytest.mark.browser

PAGES = ("/", "/predict?test=0", "/errors", "/training", "/report", "/teach", "/import")
PHONE_PAGES = ("/all-errors", "/map", "/compare", "/suspects")  # checked at 400 px only (CI time: ~10 s a pass)


@pytest.fixture
def duo(served_app_runs):
    with tab(served_app_runs) as duo:
        yield duo


def visit(duo, path: str) -> None:
    duo.driver.get(duo.server_url + path)
    duo.wait_for_element("#run-select", timeout=WAIT)


def save_view(duo, name: str) -> None:
    """A screenshot of exactly what the window shows, when WORKBENCH_SCREENSHOTS names a folder."""
    folder = os.environ.get("WORKBENCH_SCREENSHOTS")
    if folder:
        time.sleep(1.0)  # let the figures draw
        Path(folder).mkdir(parents=True, exist_ok=True)
        duo.driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def click_row(duo, row: int) -> None:
    """Click the bar chart far right of the bars, at the height of class `row`."""
    area = duo.find_element("#predict-bars .nsewdrag")
    width, height = area.size["width"], area.size["height"]
    y = (row + 0.5) * height / len(CLASS_NAMES) - height / 2  # offsets count from the element's centre
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", area)
    ActionChains(duo.driver).move_to_element(area).move_by_offset(int(width * 0.4), int(y)).click().perform()


def test_row_click_colour_bar_faithfulness_curve_and_methods_side_by_side(duo):
    visit(duo, "/predict?test=0")
    duo.wait_for_contains_text("#predict-cam-caption", "(predicted)", timeout=WAIT)
    predicted = text_of(duo, "#predict-cam-caption").removeprefix("Grad-CAM for ").removesuffix(" (predicted)")
    assert displayed(duo, "#predict-colour-bar")
    assert " · " in text_of(duo, "#predict-layer") and "×" in text_of(duo, "#predict-layer")
    until(lambda: "AUC" in text_of(duo, "#predict-faith"), timeout=WAIT)
    row = next(i for i in (9, 0) if CLASS_NAMES[i] != predicted)  # a (likely tiny) bar, not the top one
    click_row(duo, row)
    duo.wait_for_text_to_equal("#predict-cam-caption", f"Grad-CAM for {CLASS_NAMES[row]}", timeout=WAIT)
    button = duo.find_element("#predict-compare-button")
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    until(lambda: "AUC" in text_of(duo, "#predict-faith"), timeout=WAIT)  # the curve's spinner has gone
    button.click()
    until(lambda: len(duo.find_elements("#predict-compare .method-tile")) == len(METHODS), timeout=2 * WAIT)
    tiles = text_of(duo, "#predict-compare")
    assert all(label in tiles for label in METHODS.values()) and tiles.count("deletion") == len(METHODS)
    screenshot(duo, "predict-trust")


def query(duo) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(duo.driver.current_url).query).items()}


def test_teaching_view_hides_the_answer_until_reveal(duo):
    visit(duo, "/teach")
    first = until(lambda: query(duo).get("image"), timeout=WAIT)  # the image it opened with, in the URL
    duo.wait_for_text_to_equal("#teach-truth", f"test image {first}", timeout=WAIT)
    duo.find_element("#teach-next").click()
    second = until(lambda: query(duo).get("image", first) != first and query(duo)["image"], timeout=WAIT)
    duo.wait_for_text_to_equal("#teach-truth", f"test image {second}", timeout=WAIT)
    duo.wait_for_element("#teach-hidden", timeout=WAIT)
    duo.wait_for_element("#teach-image[src^='data:image/png']", timeout=WAIT)
    assert not duo.find_elements("#teach-predicted")
    until(lambda: len(duo.find_elements("#teach-layers img.teach-map")) >= 8, timeout=WAIT)
    duo.find_element("#teach-reveal").click()
    duo.wait_for_element("#teach-predicted", timeout=WAIT)
    assert text_of(duo, "#teach-predicted") in CLASS_NAMES
    duo.find_element("#teach-next").click()  # a new image: hidden again
    duo.wait_for_element("#teach-hidden", timeout=WAIT)
    duo.driver.back()  # the class goes back to the image before
    duo.wait_for_text_to_equal("#teach-truth", f"test image {second}", timeout=WAIT)
    visit(duo, "/teach?image=99999")  # a mistyped link says so, and shows a random image instead
    duo.wait_for_contains_text("#teach-url-note", "image='99999' ignored", timeout=WAIT)
    until(lambda: query(duo).get("image") not in (None, "99999"), timeout=WAIT)
    visit(duo, "/teach?image=123")  # the teacher's link: every phone shows the same image
    duo.wait_for_text_to_equal("#teach-truth", "test image 123", timeout=WAIT)
    duo.find_element("#teach-next").click()
    until(lambda: query(duo).get("image") != "123", timeout=WAIT)
    duo.driver.back()  # to the link's image, the URL the page opened with
    duo.wait_for_text_to_equal("#teach-truth", "test image 123", timeout=WAIT)
    depth = duo.driver.execute_script("return history.length")
    duo.find_element("#teach-guess").click()  # guess first off: the answer at once, guess=0 in place
    duo.wait_for_element("#teach-predicted", timeout=WAIT)
    until(lambda: not duo.find_element("#teach-reveal").is_displayed(), timeout=WAIT)  # nothing to reveal
    until(lambda: query(duo).get("guess") == "0", timeout=WAIT)
    assert duo.driver.execute_script("return history.length") == depth and query(duo)["image"] == "123"
    duo.driver.refresh()  # the link alone: the same image, answered at once
    duo.wait_for_element("#teach-predicted", timeout=WAIT)
    duo.wait_for_text_to_equal("#teach-truth", "test image 123", timeout=WAIT)
    assert not duo.find_element("#teach-guess").is_selected()
    duo.find_element("#teach-next").click()  # Next keeps the switch
    until(lambda: query(duo).get("image") != "123", timeout=WAIT)
    assert query(duo).get("guess") == "0"
    duo.driver.set_window_size(1280, 720)  # a projector: the pictures come into view, captions and all
    duo.find_element("#teach-classes").click()
    until(lambda: len(duo.find_elements("#teach-class-images img")) == 10, timeout=WAIT)
    until(lambda: duo.driver.execute_script(
        "return document.getElementById('teach-class-images').getBoundingClientRect().bottom <= innerHeight"), WAIT)
    duo.select_dcc_dropdown("#run-select", "tiny-a")  # another run: no pictures of the previous one
    until(lambda: not duo.find_elements("#teach-class-images img"), timeout=WAIT)


@pytest.mark.parametrize("width, height", [(400, 800), (1280, 720)])
def test_no_page_scrolls_sideways_on_a_phone_or_a_projector(duo, width, height):
    duo.driver.set_window_size(width, height)
    for path in PAGES + (PHONE_PAGES if width == 400 else ()):
        visit(duo, path)
        until(lambda: duo.driver.execute_script("return document.readyState") == "complete", timeout=WAIT)
        until(lambda: not duo.find_elements("._dash-loading-callback"), timeout=WAIT)
        scroll = duo.driver.execute_script(  # clientWidth: the visible width, without a scrollbar
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert scroll[0] <= scroll[1], f"{path} at {width}px: page {scroll[0]} px wide in a {scroll[1]} px window"
        if path.startswith("/predict") and width == 1280:  # the explanation controls above the fold
            duo.wait_for_element("#predict-cam[src^='data:image/png']", timeout=WAIT)
            bottom, inner = duo.driver.execute_script(
                "return [document.getElementById('predict-method').getBoundingClientRect().bottom, innerHeight]")
            assert bottom <= inner, f"method choice at {bottom:.0f} px, below a {inner} px viewport"
        if path == "/report":  # the faithfulness table and sanity check are what this issue added
            trust = duo.wait_for_element("#report-trust", timeout=WAIT)
            duo.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", trust)
        save_view(duo, f"{path.strip('/').split('?')[0] or 'overview'}-{width}x{height}")
    if width in (400, 1280):  # one line: folded behind its toggler on a phone, every link on a laptop
        navbar = duo.find_element(".navbar")
        assert navbar.size["height"] < 80, f"navbar {navbar.size['height']} px tall at {width} px"
