"""The workbench in headless Chromium (dash_duo): the overview, training and report pages, a broken run
saying what is wrong on each page, and the app served by gunicorn with two workers.

    DASH_TEST_CHROMEPATH=/usr/bin/chromium pytest --headless -m browser tests/test_app_browser.py
    WORKBENCH_SCREENSHOTS=docs/screenshots ...   # also save a screenshot of each page there

The app runs over conftest's app_runs, a temporary runs folder: two tiny runs trained in seconds, a
broken run, and the committed default run when it exists (then the app shows it first, as users see
it). Expected values are read from the run files, never hard-coded. The Predict and Errors pages have
their own files (test_predict_browser.py, test_errors_browser.py); the helpers are in browser_helpers.py.
"""

from __future__ import annotations

import time

import pytest

from browser_helpers import WAIT, open_page, screenshot, text_of, until
from model import runs

pytestmark = pytest.mark.browser


def test_overview_shows_metrics_gallery_and_links(workbench, app_runs):
    duo, run_id = workbench
    accuracy = runs.read_metrics(app_runs / run_id)["test_accuracy"]
    duo.wait_for_contains_text("#overview-body", f"{accuracy:.2%}", timeout=WAIT)
    duo.wait_for_element("#overview-gallery img.thumb", timeout=WAIT)
    assert len(duo.find_elements("#overview-gallery .gallery-row")) == 10
    assert {a.get_attribute("pathname") for a in duo.find_elements("a.nav-link")} == \
        {"/", "/predict", "/errors", "/map", "/all-errors", "/compare", "/suspects", "/training", "/report",
         "/teach", "/import"}
    screenshot(duo, "overview")



def test_training_page_draws_curves_from_history_and_overlays_runs(workbench, app_runs):
    duo, run_id = workbench
    epochs = len(runs.read_history(app_runs / run_id))
    open_page(duo, "/training")
    duo.wait_for_element("#training-curves .scatterlayer .trace", timeout=WAIT)
    traces = duo.find_elements("#training-curves .scatterlayer .trace")
    assert len(traces) == 5  # loss, val_loss, accuracy, val_accuracy, learning rate
    assert len(traces[0].find_elements("css selector", ".points path")) == epochs
    other = "tiny-b" if run_id != "tiny-b" else "tiny-a"
    duo.select_dcc_dropdown("#training-runs", other)
    until(lambda: len(duo.find_elements("#training-curves .scatterlayer .trace")) == 10, timeout=WAIT)
    assert other in text_of(duo, "#training-summary")
    duo.find_element(".page-title").click()  # close the dropdown
    screenshot(duo, "training")


def test_report_shows_parameters_config_and_reliability(workbench, app_runs):
    duo, run_id = workbench
    config = runs.read_config(app_runs / run_id)
    open_page(duo, "/report")
    duo.wait_for_contains_text("#report-params", "parameters", timeout=WAIT)
    duo.wait_for_element("#report-reliability .bars .point", timeout=WAIT)
    assert config["gradcam_layer"] in text_of(duo, "#report-body")
    screenshot(duo, "report")


def test_broken_run_says_what_is_wrong_per_page(workbench):
    duo, _ = workbench
    duo.select_dcc_dropdown("#run-select", "broken")
    duo.wait_for_contains_text(".run-problems", "metrics.json is corrupt", timeout=WAIT)
    assert "confusion_matrix.csv is missing" in text_of(duo, ".run-problems")
    open_page(duo, "/errors")
    duo.wait_for_contains_text("#errors-problem", "confusion_matrix.csv is missing", timeout=WAIT)
    open_page(duo, "/report")
    duo.wait_for_contains_text("#report-body", "metrics.json is corrupt", timeout=WAIT)
    open_page(duo, "/training")  # this run's history is fine: its curves still show
    duo.wait_for_element("#training-curves .scatterlayer .trace", timeout=WAIT)


def test_an_error_no_page_caught_is_said_above_the_page_and_goes_with_it(workbench, monkeypatch):
    """A failure inside a callback (here a history reader that breaks as a file damaged in an unforeseen
    way would) shows a message above the page, never a silently blank part; another page clears it."""
    from workbench import artifacts

    duo, _ = workbench

    def broken(*_args, **_kwargs):
        raise ValueError("a damage no check foresaw")

    monkeypatch.setattr(artifacts, "history", broken)  # the app runs in this process (a thread)
    open_page(duo, "/training")
    duo.wait_for_contains_text("#app-error", "Part of this page could not be shown", timeout=WAIT)
    assert "ValueError: a damage no check foresaw" in text_of(duo, "#app-error")
    open_page(duo, "/report")
    until(lambda: not duo.find_elements("#app-error"), timeout=WAIT)  # closed: dbc takes it out of the page


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_served_by_gunicorn_with_two_workers(dash_duo, app_runs, data_dir, tmp_path):
    """`workbench serve --workers 2`: a real WSGI server answers the pages and their callbacks."""
    import signal
    import subprocess
    import sys
    import urllib.request

    port = free_port()
    log = tmp_path / "server.log"
    server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--runs-dir", str(app_runs),
                               "--data-dir", str(data_dir), "--port", str(port), "--workers", "2"],
                              stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.5)
        dash_duo.wait_for_page(url=url + "predict", timeout=WAIT)
        dash_duo.wait_for_element("#predict-random", timeout=2 * WAIT).click()
        dash_duo.wait_for_element("#predict-cam[src^='data:image/png']", timeout=2 * WAIT)
        assert len(dash_duo.find_elements("#predict-bars .bars .point")) == 20  # bars + invisible row hit areas
        text = log.read_text()
        assert dash_duo.get_logs() == [], text[text.find("Traceback"):][:4000]
    finally:
        server.send_signal(signal.SIGTERM)  # gunicorn's master stops its workers
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
