"""The Predict page in headless Chromium (dash_duo): real uploads (good, broken and several at once), the
Grad-CAM overlay and "why not", the low-confidence threshold, and the garment finder on a photo.

    python -m pytest --headless tests/test_predict_browser.py
    WORKBENCH_SCREENSHOTS=docs/screenshots ...   # also save a screenshot of the page there

The app runs over conftest's app_runs (tiny runs trained in seconds, and the committed default run when
it exists). Expected values are read from the run files, never hard-coded.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from browser_helpers import WAIT, attribute, displayed, fresh, new_tab, open_page, screenshot, serve, text_of, until
from model import runs
from model.data import CLASS_NAMES
from workbench.classify import LOW_CONFIDENCE, RUNNER_UP_SHARE
from workbench.explain import get_explainer

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
    assert text_of(duo, "#predict-whynot").startswith("← Back to ")  # and a way back to the answer
    duo.find_element("#predict-whynot").click()
    until(lambda: text_of(duo, "#predict-cam-caption").endswith("(predicted)"), timeout=WAIT)
    assert text_of(duo, "#predict-whynot") == why_not


def test_bad_uploads_show_specific_errors_and_app_keeps_working(workbench, tmp_path, data_dir):
    duo, _ = workbench
    open_page(duo, "/predict")
    (tmp_path / "notes.png").write_text("this is not an image")
    (tmp_path / "notes.txt").write_text("a text file: the upload zone must not drop it unseen")
    (tmp_path / "empty.png").write_bytes(b"")
    frames = [Image.new("L", (40, 40), v) for v in (0, 128, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    Image.new("1", (12000, 12000)).save(tmp_path / "bomb.png")
    good = garment_photo(tmp_path, data_dir, index=0)
    second = garment_photo(tmp_path, data_dir, index=1, name="my_holiday_photo_of_the_red_dress_" * 3 + "2.png")
    files = [tmp_path / n for n in ("notes.png", "notes.txt", "empty.png", "anim.gif", "bomb.png")] + [second, good]
    upload = duo.wait_for_element("#predict-upload input[type=file]", timeout=WAIT)
    upload.send_keys(str(tmp_path / "empty.png"))  # refused alone: the result area is not left "working"
    duo.wait_for_contains_text("#predict-message .problem", "empty.png", timeout=WAIT)
    duo.wait_for_contains_text("#predict-empty-hint", "Upload a photo or pick a random test image", timeout=WAIT)
    new_tab(duo, "/predict")  # a new page: chromedriver adds files to the input's earlier ones (a person's pick
    # in the file dialog replaces them)
    upload = duo.wait_for_element("#predict-upload input[type=file]", timeout=WAIT)
    upload.send_keys("\n".join(str(f) for f in files))
    duo.wait_for_element("#predict-message .problem", timeout=WAIT)
    alerts = fresh(lambda: [a.text for a in duo.find_elements("#predict-message .problem")])
    assert len(alerts) == 5, alerts
    for name in ("notes.png", "notes.txt", "empty.png", "anim.gif", "bomb.png"):
        assert sum(name in alert for alert in alerts) == 1, (name, alerts)
    assert len({a.split(": ", 2)[-1] for a in alerts}) >= 4, "each kind of problem has its own message"
    duo.wait_for_element("#predict-cam[src^='data:image/png']", timeout=WAIT)  # the good ones still work
    assert len(duo.find_elements("#predict-bars .bars .point")) == 20  # 10 bars + 10 invisible row hit areas
    assert len(duo.find_elements("#predict-item input")) == 2  # one entry per good upload, by file name
    assert [label.text for label in duo.find_elements("#predict-item label")] == sorted([good.name, second.name])
    column = duo.find_element(".predict-left").rect
    for element in duo.find_elements("#predict-item label") + [duo.find_element("#predict-photo")]:
        assert element.rect["x"] + element.rect["width"] <= column["x"] + column["width"] + 1, element.text
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
    assert text_of(duo, "#predict-caption") == f"test image #{index} · true class: {label} · run {run_id}"
    assert "photo" not in text_of(duo, "#predict-hint .low-confidence")  # a test image is no photo
    assert not duo.find_elements("#predict-hint .imagenet-note")       # ... and gets no ImageNet view
    probs = confident[runs.PROB_COLUMNS].to_numpy(float)
    second = int(probs.argsort()[-2])
    named = f"It may also be {CLASS_NAMES[second]} (" in text_of(duo, "#predict-hint")
    assert named == (probs[second] >= RUNNER_UP_SHARE)  # the runner-up named, unless it is noise
    shown = attribute(duo, "#predict-input", "src")
    (tmp_path / "notes.png").write_text("this is not an image")
    duo.find_element("#predict-upload input[type=file]").send_keys(str(tmp_path / "notes.png"))
    duo.wait_for_contains_text("#predict-message .problem", "notes.png", timeout=WAIT)
    assert "Upload rejected; the result shown is still your earlier image" in text_of(duo, "#predict-message")
    assert attribute(duo, "#predict-input", "src") == shown  # the earlier result stays
    assert displayed(duo, "#predict-bars") and not displayed(duo, "#predict-empty")
    assert text_of(duo, "#predict-caption") == f"test image #{index} · true class: {label} · run {run_id}"
    assert parse_qs(urlparse(duo.driver.current_url).query)["test"] == [str(index)]  # a rejected upload: kept
    duo.find_element("#predict-random").click()  # a random image goes into the URL: a link, and Back
    picked = until(lambda: (parse_qs(urlparse(duo.driver.current_url).query).get("test") or [str(index)])[0]
                   != str(index) and parse_qs(urlparse(duo.driver.current_url).query)["test"][0], timeout=WAIT)
    until(lambda: text_of(duo, "#predict-caption").startswith(f"test image #{picked} ·"), timeout=WAIT)
    duo.driver.back()
    until(lambda: text_of(duo, "#predict-caption").startswith(f"test image #{index} ·"), timeout=WAIT)
    duo.find_element("#predict-upload input[type=file]").send_keys(str(garment_photo(tmp_path, data_dir)))
    until(lambda: "test" not in parse_qs(urlparse(duo.driver.current_url).query), timeout=WAIT)  # no link to it
    until(lambda: not text_of(duo, "#predict-caption").startswith("test image"), timeout=WAIT)
    assert parse_qs(urlparse(duo.driver.current_url).query).get("photos") == ["1"]
    shown = "return document.querySelector('#predict-hint .low-confidence').innerText"  # what is rendered
    flagged = until(lambda: duo.driver.execute_script(shown), timeout=WAIT)  # a flagged photo: what may help,
    assert "a box drawn around it on the photo may help" in flagged and "busy background" not in flagged
    duo.find_element("#predict-hint .low-confidence summary").click()  # and why, folded till asked for
    until(lambda: "busy background" in duo.driver.execute_script(shown), timeout=WAIT)
    duo.driver.back()  # the test image shown before the upload
    until(lambda: text_of(duo, "#predict-caption").startswith(f"test image #{index} ·"), timeout=WAIT)
    duo.driver.forward()  # the upload is not in the address: the page says so instead of a blank page
    duo.wait_for_contains_text("#predict-message", "Your photos are no longer here", timeout=WAIT)
    assert "upload again" in text_of(duo, "#predict-message") and displayed(duo, "#predict-empty")
    until(lambda: not duo.find_elements("._dash-loading-callback"), timeout=WAIT)  # its curve done: a server
    # stopped mid-callback prints a thread's SystemExit


def query(duo) -> dict:
    return parse_qs(urlparse(duo.driver.current_url).query)


def test_switches_off_in_a_link_stay_off_and_a_malformed_value_is_named_and_dropped(workbench):
    duo, _ = workbench
    duo.driver.get(duo.server_url + "/predict?imagenet=0&photorun=maybe")
    duo.wait_for_contains_text("#predict-url-note", "photorun='maybe' ignored", timeout=WAIT)
    until(lambda: "photorun" not in query(duo), timeout=WAIT)  # dropped from the address, the rest kept
    assert query(duo).get("imagenet") == ["0"] and not duo.find_element("#predict-imagenet").is_selected()
    duo.find_element("#predict-random").click()  # a URL the page writes keeps the switch
    until(lambda: "test" in query(duo), timeout=WAIT)
    assert query(duo).get("imagenet") == ["0"] and not duo.find_element("#predict-imagenet").is_selected()
    duo.driver.back()
    until(lambda: "test" not in query(duo), timeout=WAIT)
    duo.wait_for_element("#predict-imagenet", timeout=WAIT)
    assert query(duo).get("imagenet") == ["0"] and not duo.find_element("#predict-imagenet").is_selected()


def test_explanation_settings_live_in_the_link_and_a_new_image_starts_at_its_prediction(workbench, app_runs):
    """method, target and opacity from a link are what the page shows; an unknown layer is named and the
    run's default shown; a change is written in place (no history entry); a new image drops target=."""
    duo, run_id = workbench
    target = 4
    duo.driver.get(duo.server_url + f"/predict?test=7&method=saliency&target={target}&opacity=0.3&layer=no_such")
    duo.wait_for_contains_text("#predict-cam-caption", f"Saliency (gradients) for {CLASS_NAMES[target]}", timeout=WAIT)
    duo.wait_for_contains_text("#predict-layer-note", "layer='no_such' ignored", timeout=WAIT)
    until(lambda: "layer" not in query(duo), timeout=WAIT)   # the default layer: left out of the address
    assert {k: v[0] for k, v in query(duo).items() if k != "run"} == \
        {"test": "7", "method": "saliency", "target": str(target), "opacity": "0.3"}
    assert duo.find_element("#_dbcprivate_radioitems_predict-method_input_saliency").is_selected()
    depth = duo.driver.execute_script("return history.length")
    duo.find_element("label[for='_dbcprivate_radioitems_predict-method_input_gradcam']").click()
    duo.wait_for_contains_text("#predict-cam-caption", f"Grad-CAM for {CLASS_NAMES[target]}", timeout=WAIT)
    until(lambda: "method" not in query(duo), timeout=WAIT)  # the default method: left out, in place
    assert duo.driver.execute_script("return history.length") == depth
    duo.driver.refresh()  # the address alone gives the same view again
    duo.wait_for_contains_text("#predict-cam-caption", f"Grad-CAM for {CLASS_NAMES[target]}", timeout=WAIT)
    assert query(duo).get("opacity") == ["0.3"]
    duo.find_element("#predict-random").click()  # a new image: its predicted class, the rest kept
    until(lambda: query(duo).get("test") != ["7"], timeout=WAIT)
    until(lambda: text_of(duo, "#predict-cam-caption").endswith("(predicted)"), timeout=WAIT)
    until(lambda: "target" not in query(duo), timeout=WAIT)
    assert query(duo).get("opacity") == ["0.3"]
    layers = get_explainer(app_runs, run_id).layer_choices()
    if len(layers) > 1:  # a layer the run has stays, in the dropdown and the address
        duo.driver.get(duo.server_url + f"/predict?test=7&layer={layers[1]}")
        until(lambda: layers[1] in text_of(duo, "#predict-layer"), timeout=WAIT)
        assert query(duo).get("layer") == [layers[1]] and not text_of(duo, "#predict-layer-note")


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
    duo.wait_for_contains_text("#predict-hint .imagenet-note", "An ImageNet classifier sees “", timeout=WAIT)
    duo.find_element("#predict-imagenet").click()  # the model alone: no note, imagenet=0 in the address
    until(lambda: not duo.find_elements("#predict-hint .imagenet-note"), timeout=WAIT)
    until(lambda: query(duo).get("imagenet") == ["0"], timeout=WAIT)
    assert query(duo).get("photos") == ["1"] and text_of(duo, "#predict-caption").startswith("pair.png")
    duo.find_element("#predict-imagenet").click()
    duo.wait_for_contains_text("#predict-hint .imagenet-note", "An ImageNet classifier sees “", timeout=WAIT)
    until(lambda: "imagenet" not in query(duo), timeout=WAIT)
    whole = attribute(duo, "#predict-input", "src")
    assert duo.driver.execute_script(  # with a mouse, a drag on the photo draws a box
        "return document.querySelector('#predict-photo .js-plotly-plot').layout.dragmode") == "drawrect"
    assert displayed(duo, ".pointer-only") and not displayed(duo, "#predict-draw")
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
    # a box of a few pixels is refused in words, and the result stays
    duo.driver.execute_script(draw.replace("x0: 135, y0: 5, x1: 252, y1: 123", "x0: 20, y0: 20, x1: 24, y1: 24"))
    duo.wait_for_contains_text("#predict-message", "The box was not used", timeout=WAIT)
    assert "28x28" in text_of(duo, "#predict-message")
    assert attribute(duo, "#predict-input", "src") == whole
    # On a phone the answer comes first: the bars, then the photo with its outline, then what the model sees
    duo.driver.set_window_size(400, 800)
    try:
        tops = duo.driver.execute_script("return ['predict-upload', 'predict-bars', 'predict-photo', 'predict-input']"
                                         ".map(id => document.getElementById(id).getBoundingClientRect().top)")
        assert tops == sorted(tops), f"upload, bars, photo, model input at {tops} px on a phone"
        lefts = duo.driver.execute_script("return ['predict-input', 'predict-cam', 'predict-colour-bar']"
                                          ".map(id => Math.round(document.getElementById(id).getBoundingClientRect().left))")
        assert len(set(lefts)) == 1, f"the two images and the colour bar stacked but not aligned: {lefts}"
        duo.wait_for_element("#predict-faith .g-xtitle", timeout=WAIT)  # the faithfulness curve's texts fit
        def spans():  # the graph's box, then its title, x-axis title and legend (redrawn for the new width)
            return duo.driver.execute_script(
                "return ['', ' .gtitle', ' .g-xtitle', ' .legend'].map(s => document.querySelector('#predict-faith' + s))"
                ".map(e => e.getBoundingClientRect()).map(r => [Math.round(r.left), Math.round(r.right)])")
        try:
            until(lambda: all(spans()[0][0] <= left and right <= spans()[0][1] for left, right in spans()[1:]), WAIT)
        except TimeoutError:
            raise AssertionError(f"the faithfulness curve's texts overflow its box: {spans()}") from None
        # On a touch screen a swipe over the photo scrolls the page; "Draw a box" turns drawing on
        duo.driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
        duo.driver.get(duo.server_url + "/predict")  # loaded again: the page asks the browser as it opens
        duo.wait_for_element("#predict-upload input[type=file]", timeout=WAIT).send_keys(str(tmp_path / "pair.png"))
        duo.wait_for_element("#predict-photo .scatterlayer .trace", timeout=WAIT)
        dragmode = "return document.querySelector('#predict-photo .js-plotly-plot').layout.dragmode"
        assert duo.driver.execute_script(dragmode) is False
        assert not displayed(duo, ".pointer-only") and displayed(duo, ".touch-only")
        duo.find_element("#predict-draw").click()
        until(lambda: duo.driver.execute_script(dragmode) == "drawrect", timeout=WAIT)
    finally:
        duo.driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
        duo.driver.set_window_size(1440, 1100)
    # "Random test image" would replace the photo, which the URL cannot bring back: it asks first
    address = duo.driver.current_url
    duo.find_element("#predict-random").click()
    question = WebDriverWait(duo.driver, WAIT).until(expected_conditions.alert_is_present())
    assert "uploaded photos" in question.text
    question.dismiss()  # kept: the photo, its answer and the address
    time.sleep(0.5)
    assert text_of(duo, "#predict-caption").startswith("pair.png")
    assert attribute(duo, "#predict-input", "src") == whole and duo.driver.current_url == address
    duo.find_element("#predict-random").click()
    WebDriverWait(duo.driver, WAIT).until(expected_conditions.alert_is_present()).accept()
    until(lambda: text_of(duo, "#predict-caption").startswith("test image #"), timeout=WAIT)
    assert "test" in parse_qs(urlparse(duo.driver.current_url).query)
    until(lambda: not duo.find_elements("._dash-loading-callback"), timeout=WAIT)  # its curve done: a server
    # stopped mid-callback prints a thread's SystemExit
