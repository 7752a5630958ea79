"""The real-photo benchmark (benchmarks/photos.py --real, benchmarks/photos_real.py) on a folder of
drawn photos with a stand-in model: halves, refusals, flagged answers and the contact sheet."""

from __future__ import annotations

import importlib
import sys

import cv2
import numpy as np
from PIL import Image

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def load_module():
    """benchmarks/photos_real.py, imported the way benchmarks/photos.py imports it."""
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    return importlib.import_module("photos_real")


class Constant:
    """A stand-in predictor: always class 1 (Trouser) with probability 0.9."""

    def predict(self, images):
        probs = np.full((len(images), 10), 0.1 / 9, np.float32)
        probs[:, 1] = 0.9
        return probs


def drawn_folder(tmp_path):
    """Three drawn photos (two garments and a flat grey picture) and their labels.csv."""
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    rows = ["file,label,label_name"]
    for name, label, garment in [("01_trouser_001.jpg", 1, True), ("01_trouser_002.jpg", 1, True),
                                 ("00_tshirt_003.jpg", 0, False)]:
        photo = np.full((300, 200, 3), (150, 110, 70), np.uint8)
        if garment:
            photo = (photo + rng.normal(0, 12, photo.shape)).clip(0, 255).astype(np.uint8)
            cv2.rectangle(photo, (60, 40), (140, 260), (30, 40, 120), -1)
        Image.fromarray(photo).save(tmp_path / "images" / name, quality=92)
        rows.append(f"{name},{label},x")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_the_benchmark_reports_halves_refusals_and_draws_a_sheet(tmp_path, capsys):
    module = load_module()
    folder = drawn_folder(tmp_path)
    sheet = tmp_path / "sheet.png"
    outcomes = module.run_real(folder, "all", Constant(), None, 0.6, sheet)
    printed = capsys.readouterr().out
    assert [o.predicted for o in outcomes] == [1, 1, -1]                  # the flat picture is refused
    assert "odd half: 1/2 = 50.0% right (95 % CI 9.5%-90.5%); 1 refused" in printed
    assert "even half: 1/1 = 100.0% right (95 % CI 20.7%-100.0%); 0 refused" in printed
    assert "refused x1: nothing stands out" in printed
    assert Image.open(sheet).size[0] > 0 and outcomes[0].thumb is not None
    assert [name for name, _ in module.load_labels(folder, "odd")] == ["01_trouser_001.jpg", "00_tshirt_003.jpg"]


def test_calibration_picks_the_lowest_threshold_that_makes_unflagged_answers_right_enough():
    module = load_module()
    Outcome = module.Outcome
    # odd files: right answers at 0.9 and 0.7, a wrong one at 0.5, a right one at 0.4 -> above 0.45 3/3 right,
    # above 0.40 3/4 = 75 % (< 80 %) -> 0.45 is the first grid value whose unflagged answers are 100 % right
    odd = [Outcome(f"a_{2 * i + 1:03d}.jpg", 1, predicted, p) for i, (predicted, p) in
           enumerate([(1, 0.9), (1, 0.7), (0, 0.5), (1, 0.4)])]
    odd[2].probability = 0.44
    assert module.calibrate(odd) == 0.45
    odd.append(Outcome("a_011.jpg", 1, 0, 0.99))   # a confident wrong answer beats every threshold
    odd.append(Outcome("a_013.jpg", 1, 0, 0.99))
    assert module.calibrate(odd) is None
    warned = Outcome("a_015.jpg", 1, 0, 0.99, warnings=["little found"])  # warnings are always flagged
    assert module.calibrate([*odd[:4], warned]) == 0.45


class Other:
    """A second stand-in run: always class 0 (T-shirt/top)."""

    def predict(self, images):
        probs = np.full((len(images), 10), 0.1 / 9, np.float32)
        probs[:, 0] = 0.9
        return probs


def test_accuracy_interval_is_wilsons():
    # hand-computed: centre (5 + z^2/2) / (10 + z^2) = 0.5, half-width z sqrt(2.5 + z^2/4) / (10 + z^2)
    low, high = load_module().accuracy_interval(5, 10)
    assert abs(low - 0.2366) < 1e-3 and abs(high - 0.7634) < 1e-3


def test_against_compares_the_two_runs_on_the_same_inputs(tmp_path, capsys):
    module = load_module()
    assert Other().predict(np.zeros((1, 28, 28)))[0].argmax() == 0
    module.run_real(drawn_folder(tmp_path), "all", Constant(), None, 0.6, None, against=("A", "B", Other()))
    printed = capsys.readouterr().out
    assert "paired: A = A, B = B" in printed
    # both trousers right for A (Trouser) and wrong for B (T-shirt/top); the refused photo wrong for both
    assert "all: A 66.7%, B 0.0%; only A right 2, only B right 0" in printed
    assert "odd: A 50.0%, B 0.0%; only A right 1, only B right 0" in printed


def run_benchmark(*args: str):
    import subprocess

    return subprocess.run([sys.executable, "benchmarks/photos.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_a_folder_without_labels_or_a_missing_data_dir_is_named_not_a_traceback(tmp_path):
    no_labels = run_benchmark("--real", str(tmp_path))
    (tmp_path / "labels.csv").write_text("file,label\nshirt.jpg,6\n")   # no number to halve by
    unnumbered = run_benchmark("--real", str(tmp_path), "--half", "odd")
    no_data = run_benchmark("--data-dir", str(tmp_path / "missing"), "--n", "5")
    for result in (no_labels, unnumbered, no_data):
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "has no labels.csv" in no_labels.stderr
    assert "is not a labels table" in unnumbered.stderr and "name_001.jpg" in unnumbered.stderr
    assert str(tmp_path / "missing") in no_data.stderr


def test_flagged_answers_count_how_often_the_runner_up_is_the_true_class(capsys):
    module = load_module()
    Outcome = module.Outcome
    outcomes = [Outcome("a_001.jpg", 2, 0, 0.40, runner_up=2),   # flagged, the runner-up is right
                Outcome("a_003.jpg", 2, 0, 0.50, runner_up=4),   # flagged, neither is right
                Outcome("a_005.jpg", 1, 1, 0.95, runner_up=3)]   # unflagged, right
    module.print_flagged(outcomes, np.array([o.predicted == o.label for o in outcomes]), 0.65)
    printed = capsys.readouterr().out
    assert "flagged 2 (top-1 < 0.65 or a warning; 0 warnings): right 0%, the true class in the top two 50%" in printed
    assert "unflagged 1: right 100%" in printed
