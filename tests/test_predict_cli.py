"""`workbench predict FILE...` on the committed default run: text and JSON output, per-file errors,
exit codes; one run through the installed entry point in its own process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from model.data import CLASS_NAMES, load_raw
from test_preprocess import load_benchmark
from workbench import cli
from workbench.cli.commands import format_text
from workbench.classify import LOW_CONFIDENCE, PHOTO_RUN_ID, low_confidence_threshold, rank, run_for_photos


@pytest.fixture(scope="module")
def photo_files(data_dir, tmp_path_factory):
    """Rendered JPEG photos of a trouser and a bag test image, a text file and a truncated JPEG."""
    raw = load_raw(data_dir, progress=False)
    render = load_benchmark().render_photo
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(2)
    files = {}
    for name, label in (("trousers.jpg", 1), ("bag.jpg", 8)):
        index = int(np.flatnonzero(raw["test_labels"] == label)[0])
        files[name] = folder / name
        files[name].write_bytes(render(raw["test_images"][index], rng, orientation=6))
    files["notes.txt"] = folder / "notes.txt"
    files["notes.txt"].write_text("not a photo\n")
    files["cut.jpg"] = folder / "cut.jpg"
    files["cut.jpg"].write_bytes(files["bag.jpg"].read_bytes()[:400])
    return files


def run_cli(capsys, runs_dir, *args) -> tuple[int, str, str]:
    code = cli.main(["predict", *map(str, args), "--runs-dir", str(runs_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_output_names_each_file_and_its_class(capsys, runs_dir, photo_files):
    code, out, err = run_cli(capsys, runs_dir, photo_files["trousers.jpg"], photo_files["bag.jpg"])
    assert code == 0 and err == ""
    lines = [line for line in out.splitlines() if not line.startswith(" ")]
    assert lines[0].startswith(f"{photo_files['trousers.jpg']}: Trouser ")
    assert lines[1].startswith(f"{photo_files['bag.jpg']}: Bag ")
    assert "then:" in out  # the runners-up


def test_json_output_has_every_probability(capsys, runs_dir, photo_files):
    code, out, _ = run_cli(capsys, runs_dir, "--json", "--top", "10", photo_files["trousers.jpg"])
    answer = json.loads(out)
    assert code == 0 and answer["run_id"] == run_for_photos(runs_dir) == PHOTO_RUN_ID  # photos' default run
    result = answer["results"][0]
    assert result["name"] == str(photo_files["trousers.jpg"]) and result["index"] == 0  # as in the API
    assert "file" not in result
    assert result["label"] == "Trouser" and len(result["top"]) == 10 and len(result["probabilities"]) == 10
    assert sum(result["probabilities"]) == pytest.approx(1, abs=1e-3) and result["inverted"]
    assert result["timing_ms"]["preprocess"] > 0


def test_bad_files_get_their_own_errors_and_the_rest_still_run(capsys, runs_dir, photo_files, tmp_path):
    missing = tmp_path / "missing.jpg"
    code, out, err = run_cli(capsys, runs_dir, photo_files["notes.txt"], photo_files["bag.jpg"],
                             photo_files["cut.jpg"], missing, tmp_path)
    assert code == 1
    assert f"{photo_files['bag.jpg']}: Bag" in out
    errors = err.splitlines()
    assert errors[0] == f"{photo_files['notes.txt']}: error (not_an_image): not an image: the file is in no " \
                        "image format this app can read (JPEG, PNG, WebP, GIF, BMP, TIFF and more)"
    assert "(truncated)" in errors[1] and str(photo_files["cut.jpg"]) in errors[1]
    assert errors[2] == f"{missing}: error (not_found): file not found: {missing}"
    assert "(not_a_file)" in errors[3]


def test_all_bad_exits_2_and_json_keeps_the_errors(capsys, runs_dir, photo_files):
    code, out, _ = run_cli(capsys, runs_dir, "--json", photo_files["notes.txt"])
    assert code == 2
    assert json.loads(out)["results"] == [{"name": str(photo_files["notes.txt"]), "index": 0,
                                           "error": "not_an_image",
                                           "detail": "not an image: the file is in no image format this "
                                                     "app can read (JPEG, PNG, WebP, GIF, BMP, TIFF and more)"}]


def test_unknown_run_is_one_line_error(capsys, runs_dir, photo_files):
    code, _, err = run_cli(capsys, runs_dir, "--run", "no-such-run", photo_files["bag.jpg"])
    assert code == 2 and err.startswith("error: run 'no-such-run'") and len(err.splitlines()) == 1


@pytest.mark.parametrize("top", ["0", "-1", "11", "abc"])
def test_a_top_outside_1_to_10_is_refused_as_the_api_does(capsys, runs_dir, photo_files, top):
    with pytest.raises(SystemExit) as caught:
        run_cli(capsys, runs_dir, "--top", top, photo_files["bag.jpg"])
    assert caught.value.code == 2 and f"must be a whole number 1..10, received '{top}'" in capsys.readouterr().err


def test_box_looks_only_inside_it_as_the_api_box_does(capsys, runs_dir, data_dir, tmp_path):
    """A photo of a trouser beside a bag: --box around either one answers that one; a box beyond the
    photo, or not four numbers, is refused with the API's words."""
    raw = load_raw(data_dir, progress=False)
    tiles = [np.kron(255 - raw["test_images"][int(np.flatnonzero(raw["test_labels"] == label)[0])],
                     np.ones((8, 8), np.uint8)) for label in (1, 8)]   # dark garments on white, 224 px
    scene = np.concatenate([tiles[0], np.full((224, 96), 255, np.uint8), tiles[1]], axis=1)
    path = tmp_path / "two.png"
    Image.fromarray(scene).save(path)
    answers = {}
    for name, box in (("left", "0,0,260,224"), ("right", "284,0,544,224")):
        code, out, _ = run_cli(capsys, runs_dir, "--json", "--box", box, path)
        answers[name] = json.loads(out)["results"][0]["label"]
    assert answers == {"left": "Trouser", "right": "Bag"}
    code, _, err = run_cli(capsys, runs_dir, "--box", "0,0,600,224", path)
    assert code == 2 and "(bad_box)" in err and "544" in err
    code, out, err = run_cli(capsys, runs_dir, "--box", "0,0,260,224", path, path)  # one box, two photos
    assert code == 2 and out == "" and "2 photos came with it" in err
    with pytest.raises(SystemExit) as caught:
        run_cli(capsys, runs_dir, "--box", "1,2,3", path)
    assert caught.value.code == 2 and "box must be x0,y0,x1,y1" in capsys.readouterr().err


def test_the_imagenet_view_is_named_under_a_photo_and_no_imagenet_leaves_the_run_alone(capsys, runs_dir, photo_files):
    code, out, _ = run_cli(capsys, runs_dir, photo_files["bag.jpg"])
    assert code == 0 and "\n    ImageNet view: " in out and "joined with the run's own answer" in out
    _, joined, _ = run_cli(capsys, runs_dir, "--json", "--top", "10", photo_files["bag.jpg"])
    _, alone, _ = run_cli(capsys, runs_dir, "--json", "--top", "10", "--no-imagenet", photo_files["bag.jpg"])
    joined, alone = json.loads(joined)["results"][0], json.loads(alone)["results"][0]
    assert "imagenet" not in alone and "ImageNet view" not in format_text(alone, 0.65)
    np.testing.assert_allclose(alone["probabilities"], joined["imagenet"]["model_probabilities"], atol=1e-6)


def test_low_confidence_threshold_is_a_flag(capsys, runs_dir, photo_files):
    _, out, _ = run_cli(capsys, runs_dir, "--json", "--low-confidence", "1.01", photo_files["bag.jpg"])
    assert json.loads(out)["results"][0]["low_confidence"] is True
    _, out, _ = run_cli(capsys, runs_dir, "--low-confidence", "1.01", photo_files["bag.jpg"])
    assert "[low confidence: under the 101% threshold" in out  # why, as the page says it


def test_cli_reads_the_low_confidence_override(capsys, runs_dir, photo_files, monkeypatch):
    monkeypatch.setenv("WORKBENCH_LOW_CONFIDENCE", "1.01")
    _, out, _ = run_cli(capsys, runs_dir, "--json", photo_files["bag.jpg"])
    assert json.loads(out)["results"][0]["low_confidence"] is True
    monkeypatch.setenv("WORKBENCH_LOW_CONFIDENCE", "high")
    code, _, err = run_cli(capsys, runs_dir, photo_files["bag.jpg"])
    assert code == 2 and "WORKBENCH_LOW_CONFIDENCE must be a number" in err


def test_low_confidence_threshold_reads_the_override():
    assert low_confidence_threshold({}) == LOW_CONFIDENCE == 0.5
    assert low_confidence_threshold({"WORKBENCH_LOW_CONFIDENCE": ""}) == LOW_CONFIDENCE
    assert low_confidence_threshold({"WORKBENCH_LOW_CONFIDENCE": " 0.75 "}) == 0.75
    with pytest.raises(ValueError, match="WORKBENCH_LOW_CONFIDENCE must be a number"):
        low_confidence_threshold({"WORKBENCH_LOW_CONFIDENCE": "high"})


def test_rank_orders_and_flags():
    probs = np.array([0.05, 0.5, 0.05, 0.3, 0, 0, 0.1, 0, 0, 0])
    answer = rank(probs, list(CLASS_NAMES), top=3, low_confidence=0.6)
    assert [c["label"] for c in answer["top"]] == ["Trouser", "Dress", "Shirt"]
    assert answer["low_confidence"] and answer["class_id"] == 1
    assert not rank(probs, list(CLASS_NAMES), low_confidence=0.5)["low_confidence"]


def test_entry_point_in_its_own_process(runs_dir, photo_files):
    result = subprocess.run([sys.executable, "-m", "workbench.cli", "predict", str(photo_files["trousers.jpg"]),
                             "--runs-dir", str(runs_dir), "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["results"][0]["label"] == "Trouser"
