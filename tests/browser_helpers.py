"""Helpers for the browser tests (dash_duo in headless Chromium): waiting for Dash to settle, reading
elements that it re-renders, starting the app, navigating, clicking a confusion-matrix cell, and
saving screenshots. The fixtures they share (app_runs, workbench) are in conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from selenium.common.exceptions import StaleElementReferenceException

WAIT = 30  # s: the first prediction of a server loads TensorFlow and the model
PORT = 8050  # dash_duo's own default; each pytest-xdist worker (gw0, gw1, ...) serves on the next one up
MODULE_PORT = 8150  # a module's shared server (module_app), beside any test's own dash_duo server


def start(dash_duo, app, base: int = PORT) -> None:
    """dash_duo.start_server on this test worker's own port, so parallel workers never share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    dash_duo.start_server(app, port=base + int(worker.removeprefix("gw") or 0))


@contextlib.contextmanager
def module_app(request, download_dir: Path, runs_dir: Path, data_dir: Path):
    """For a module-scoped fixture: the app over runs_dir (create_app) in one threaded server and one
    Chromium, started once (each costs a few seconds per test otherwise). Tests take a new tab of it
    (new_tab), which starts with an empty history, so Back never reaches an earlier test's pages."""
    from dash.testing.application_runners import ThreadedRunner
    from dash.testing.composite import DashComposite

    from workbench.app import create_app

    option = request.config.getoption
    with ThreadedRunner() as server, DashComposite(
            server=server, browser=option("webdriver"), remote=option("remote"), remote_url=option("remote_url"),
            headless=option("headless"), options=request.config.hook.pytest_setup_options(),
            download_path=str(download_dir), percy_assets_root=option("percy_assets"),
            percy_finalize=option("nopercyfinalize"), pause=option("pause")) as duo:
        start(duo, create_app(runs_dir, data_dir=data_dir), MODULE_PORT)
        yield duo


def new_tab(duo, path: str = "/", width: int = 1440, height: int = 1100) -> None:
    """Close the browser's tab and open path in a new one, at width x height: a fresh page and history."""
    old = duo.driver.current_window_handle
    duo.driver.switch_to.new_window("tab")
    new = duo.driver.current_window_handle
    duo.driver.switch_to.window(old)
    duo.driver.close()
    duo.driver.switch_to.window(new)
    duo.driver.set_window_size(width, height)
    duo.driver.get(duo.server_url + path)
    duo.wait_for_element("#run-select", timeout=WAIT)


@contextlib.contextmanager
def tab(duo):
    """A test's own tab of a module's served app (new_tab); afterwards the browser console must be clean."""
    new_tab(duo)
    yield duo
    assert duo.get_logs() == [], "browser console errors"


def until(condition, timeout: float, poll: float = 0.1):
    """Wait until condition() is truthy. An element that Dash re-renders between finding it and
    reading it (stale) counts as "not yet", like dash.testing.wait.until otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except StaleElementReferenceException:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(poll)


def fresh(query, timeout: float = 5.0):
    """query(), run again while Dash re-renders the element it reads (stale) — for plain reads."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return query()
        except StaleElementReferenceException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def displayed(duo, selector: str) -> bool:
    return fresh(lambda: duo.find_element(selector).is_displayed())


def click_when_enabled(duo, selector: str, timeout: float = WAIT):
    """Click a button once Dash has enabled it: a step button is enabled by a callback that runs after
    the one that opened the view, and a click on a disabled button does nothing."""
    until(lambda: duo.find_element(selector).is_enabled(), timeout)
    duo.find_element(selector).click()


def pick_by_keyboard(duo, selector: str, label_start: str, max_keys: int = 24) -> None:
    """Open a dash dropdown with Enter, go down its list to the option whose text starts with
    label_start, one arrow key at a time (each once the focus has moved: it lags the key), and Enter."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    on = "const o = document.activeElement.closest('[role=option]'); return o ? o.innerText : 'none';"
    duo.find_element(selector).send_keys(Keys.ENTER)
    until(lambda: duo.find_elements("[role='option']"), WAIT)
    focused = duo.driver.execute_script(on)
    for _ in range(max_keys):
        if focused.startswith(label_start):
            break
        ActionChains(duo.driver).send_keys(Keys.ARROW_DOWN).perform()
        focused = until(lambda: (now := duo.driver.execute_script(on)) != focused and now, WAIT)
    assert focused.startswith(label_start), focused
    ActionChains(duo.driver).send_keys(Keys.ENTER).perform()


def text_of(duo, selector: str) -> str:
    return fresh(lambda: duo.find_element(selector).text)


def attribute(duo, selector: str, name: str) -> str | None:
    return fresh(lambda: duo.find_element(selector).get_attribute(name))


def serve(dash_duo, app_runs, data_dir):
    """Start the app over app_runs in dash_duo's server and browser."""
    from workbench.app import create_app

    app = create_app(app_runs, data_dir=data_dir)
    dash_duo.driver.set_window_size(1440, 1100)
    start(dash_duo, app)
    dash_duo.wait_for_element("#run-select", timeout=WAIT)


def open_page(duo, path: str) -> None:
    """Navigate inside the app (client-side, as a user clicking the navbar would)."""
    duo.find_element(f"a.nav-link[href='{path}'], a.nav-link[href^='{path}?']").click()  # links carry ?run=


def screenshot(duo, name: str, settle: float = 0.0) -> None:
    """Save the whole page as <name>.png when WORKBENCH_SCREENSHOTS names a folder."""
    folder = os.environ.get("WORKBENCH_SCREENSHOTS")
    if folder:
        time.sleep(settle)  # let an animation (the modal fading in) finish first
        Path(folder).mkdir(parents=True, exist_ok=True)
        for _ in range(2):  # the window is taller than its viewport: grow until the page fits
            height = duo.driver.execute_script("return document.documentElement.scrollHeight")
            inner = duo.driver.execute_script("return window.innerHeight")
            size = duo.driver.get_window_size()
            duo.driver.set_window_size(1440, min(size["height"] + max(height - inner, 0), 3000))
        duo.driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def click_ok(element) -> bool:
    """Click, or False while something (a modal still sliding in) covers the element."""
    from selenium.common.exceptions import ElementClickInterceptedException

    try:
        element.click()
        return True
    except ElementClickInterceptedException:
        return False


def click_cell(duo, row: int, col: int) -> None:
    """Click the centre of confusion-matrix cell (row, col) like a user does."""
    from selenium.webdriver.common.action_chains import ActionChains

    plot = duo.find_element("#errors-matrix .nsewdrag")
    width, height = plot.size["width"], plot.size["height"]
    x = (col + 0.5) * width / 10 - width / 2  # from the centre, where move_to_element puts the pointer
    y = (row + 0.5) * height / 10 - height / 2
    duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", plot)
    ActionChains(duo.driver).move_to_element(plot).move_by_offset(int(x), int(y)).click().perform()
