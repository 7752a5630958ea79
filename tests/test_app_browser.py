"""The workbench in headless Chromium (dash_duo): every page, real uploads, real clicks.

    DASH_TEST_CHROMEPATH=/usr/bin/chromium pytest --headless -m browser tests/test_app_browser.py
    WORKBENCH_SCREENSHOTS=docs/screenshots ...   # also save a screenshot of each page there

The app runs over a temporary runs folder: two tiny runs trained in seconds, a broken run, and the
committed default run when it exists (then the app shows it first, as users see it). Expected values
are read from the run files, never hard-coded. The fixtures are in conftest.py, the helpers in
browser_helpers.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from browser_helpers import WAIT, attribute, click_cell, click_ok, displayed, fresh, open_page, screenshot, \
    serve, text_of, until
from model import runs
from model.data import CLASS_NAMES
from workbench.classify import LOW_CONFIDENCE

pytestmark = pytest.mark.browser


def garment_photo(tmp_path: Path, data_dir: Path, index: int = 2, name: str = "garment.png") -> Path:
    """A 'product photo' made from a real test image: dark garment on a light background, 168 px."""
    from model.data import load_raw

    image = load_raw(data_dir, progress=False)["test_images"][index]
    photo = Image.fromarray(255 - image).resize((120, 120), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (168, 168), 255)
    canvas.paste(photo, (24, 24))
    path = tmp_path / name
    canvas.convert("RGB").save(path)
    return path


# ---------------------------------------------------------------------------------------------

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


def test_predict_upload_shows_bars_overlay_and_why_not(workbench, tmp_path, data_dir):
    duo, _ = workbench
    open_page(duo, "/predict")
    duo.wait_for_contains_text("#predict-empty", "Upload a photo or pick a random test image", timeout=WAIT)
    for result in ("#predict-input", "#predict-cam", "#predict-bars"):  # no empty (black) placeholders
        until(lambda: not displayed(duo, result), timeout=WAIT)
    upload = duo.wait_for_element("#predict-upload input[type=file]", timeout=WAIT)
    upload.send_keys(str(garment_photo(tmp_path, data_dir)))
    duo.wait_for_element("#predict-cam[src^='data:image/png']", timeout=WAIT)
    duo.wait_for_element("#predict-input[src^='data:image/png']", timeout=WAIT)
    assert displayed(duo, "#predict-input") and displayed(duo, "#predict-bars")
    assert not displayed(duo, "#predict-empty")
    assert len(duo.find_elements("#predict-bars .bars .point")) == 20  # 10 bars + 10 invisible row hit areas
    assert len(duo.find_elements("#predict-steps img.step-image")) >= 3
    duo.wait_for_contains_text("#predict-cam-caption", "(predicted)", timeout=WAIT)
    why_not = text_of(duo, "#predict-whynot")  # "Why not Shirt?"
    runner_up = why_not.removeprefix("Why not ").removesuffix("?")
    before = attribute(duo, "#predict-cam", "src")
    duo.find_element("#predict-whynot").click()
    duo.wait_for_text_to_equal("#predict-cam-caption", f"Grad-CAM for {runner_up}", timeout=WAIT)
    assert attribute(duo, "#predict-cam", "src") != before
    duo.find_element("label[for='_dbcprivate_radioitems_predict-method_input_gradcam++']").click()
    duo.wait_for_text_to_equal("#predict-cam-caption", f"Grad-CAM++ for {runner_up}", timeout=WAIT)
    screenshot(duo, "predict")


def test_bad_uploads_show_specific_errors_and_app_keeps_working(workbench, tmp_path, data_dir):
    duo, _ = workbench
    open_page(duo, "/predict")
    (tmp_path / "notes.png").write_text("this is not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    frames = [Image.new("L", (40, 40), v) for v in (0, 128, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    Image.new("1", (12000, 12000)).save(tmp_path / "bomb.png")
    good = garment_photo(tmp_path, data_dir, index=0)
    second = garment_photo(tmp_path, data_dir, index=1, name="second.png")
    files = [tmp_path / n for n in ("notes.png", "empty.png", "anim.gif", "bomb.png")] + [good, second]
    upload = duo.wait_for_element("#predict-upload input[type=file]", timeout=WAIT)
    upload.send_keys("\n".join(str(f) for f in files))
    duo.wait_for_element("#predict-message .problem", timeout=WAIT)
    alerts = fresh(lambda: [a.text for a in duo.find_elements("#predict-message .problem")])
    assert len(alerts) == 4, alerts
    for name in ("notes.png", "empty.png", "anim.gif", "bomb.png"):  # files may arrive in any order
        assert sum(name in alert for alert in alerts) == 1, (name, alerts)
    assert len({a.split(": ", 2)[-1] for a in alerts}) == 4, "each problem has its own message"
    duo.wait_for_element("#predict-cam[src^='data:image/png']", timeout=WAIT)  # the good ones still work
    assert len(duo.find_elements("#predict-bars .bars .point")) == 20  # 10 bars + 10 invisible row hit areas
    assert len(duo.find_elements("#predict-item input")) == 2  # one entry per good upload
    first = attribute(duo, "#predict-input", "src")
    duo.find_elements("#predict-item label")[1].click()
    until(lambda: attribute(duo, "#predict-input", "src") != first, timeout=WAIT)
    screenshot(duo, "predict-bad-upload")


def test_threshold_override_reaches_the_page_and_a_rejected_upload_keeps_the_result(
        dash_duo, app_runs, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_LOW_CONFIDENCE", "1.01")  # read once, when the app is created
    serve(dash_duo, app_runs, data_dir)
    duo, run_id = dash_duo, runs.list_runs(app_runs)[0]
    frame = runs.read_predictions(app_runs / run_id)
    confident = frame.assign(c=frame[runs.PROB_COLUMNS].max(axis=1)).sort_values("c", kind="stable").iloc[-1]
    assert confident["c"] >= LOW_CONFIDENCE  # so only the override can flag it
    index, label = int(confident["index"]), CLASS_NAMES[int(confident["label"])]
    duo.wait_for_page(url=f"{duo.server_url}/predict?test={index}", timeout=WAIT)
    duo.wait_for_element("#predict-cam[src^='data:image/png']", timeout=WAIT)
    duo.wait_for_element("#predict-hint .low-confidence", timeout=WAIT)
    assert text_of(duo, "#predict-caption") == f"test image #{index} · true class: {label}"
    assert "photo" not in text_of(duo, "#predict-hint .low-confidence")  # a test image is no photo
    shown = attribute(duo, "#predict-input", "src")
    (tmp_path / "notes.png").write_text("this is not an image")
    duo.find_element("#predict-upload input[type=file]").send_keys(str(tmp_path / "notes.png"))
    duo.wait_for_contains_text("#predict-message .problem", "notes.png", timeout=WAIT)
    assert attribute(duo, "#predict-input", "src") == shown  # the earlier result stays
    assert displayed(duo, "#predict-bars") and not displayed(duo, "#predict-empty")
    assert text_of(duo, "#predict-caption") == f"test image #{index} · true class: {label}"


def test_photo_shows_the_found_outline_and_a_drawn_box_reruns_the_finder(workbench, tmp_path, data_dir):
    """The photo with the finder's outline; a box drawn on it looks again inside; the whole photo back."""
    duo, _ = workbench
    open_page(duo, "/predict")
    left = Image.open(garment_photo(tmp_path, data_dir, index=0, name="left.png"))
    right = Image.open(garment_photo(tmp_path, data_dir, index=1, name="right.png"))
    pair = Image.new("RGB", (336, 168), "white")
    pair.paste(left, (0, 0))
    pair.paste(right, (168, 0))
    pair.save(tmp_path / "pair.png")
    duo.wait_for_element("#predict-upload input[type=file]", timeout=WAIT).send_keys(str(tmp_path / "pair.png"))
    duo.wait_for_element("#predict-photo .scatterlayer .trace", timeout=WAIT)  # the found outline
    duo.wait_for_element("#predict-input[src^='data:image/png']", timeout=WAIT)
    whole = attribute(duo, "#predict-input", "src")
    # Draw a box around the right garment, as plotly's drawrect does (in the displayed photo's pixels);
    # drawn again if the photo was still being redrawn when the first one landed.
    draw = ("Plotly.relayout(document.querySelector('#predict-photo .js-plotly-plot'), "
            "{shapes: [{type: 'rect', x0: 135, y0: 5, x1: 252, y1: 123}]});")
    for _ in range(3):
        duo.driver.execute_script(draw)
        try:
            until(lambda: "inside your box" in text_of(duo, "#predict-caption"), timeout=10)
            break
        except TimeoutError:
            continue
    assert "inside your box" in text_of(duo, "#predict-caption")
    until(lambda: attribute(duo, "#predict-input", "src") != whole, timeout=WAIT)
    duo.find_element("#predict-whole").click()
    until(lambda: "inside your box" not in text_of(duo, "#predict-caption"), timeout=WAIT)
    until(lambda: attribute(duo, "#predict-input", "src") == whole, timeout=WAIT)


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
    until(lambda: click_ok(duo.find_element("#errors-detail-content a")), timeout=WAIT)  # "Explore in Predict"
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
    if len(pairs) > 1:  # a confused pair in the list opens its gallery too
        duo.find_elements(".pair-list .list-group-item")[1].click()
        duo.wait_for_contains_text("#errors-gallery-title", f"true {pairs[1]['true']} → predicted "
                                   f"{pairs[1]['predicted']}: {pairs[1]['count']} images", timeout=WAIT)


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
