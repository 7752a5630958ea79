"""The familiarity check (model/familiarity.py): inputs unlike the training images are flagged, the
test set's own images almost never, and the classify path turns a flag into a warning."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from model import familiarity as fam
from model import runs
from model.data import load_raw
from model.errors import RunError
from workbench.classify import UNFAMILIAR, familiarity_warnings


@pytest.fixture(scope="module")
def data(data_dir):
    return load_raw(data_dir, progress=False)


def noise(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28)).astype(np.uint8)


def test_committed_checks_flag_noise_and_about_one_test_image_in_a_hundred(runs_dir, data):
    for run_id in ("fast-default", "photo-default"):
        test = familiarity_warnings(runs_dir, run_id, data["test_images"][:2000])
        share = np.mean([bool(w) for w in test])
        assert 0.0 < share < 0.03, (run_id, share)       # the threshold is the test set's 99th percentile
        assert all(w == [UNFAMILIAR] for w in familiarity_warnings(runs_dir, run_id, noise(20))), run_id
        assert familiarity_warnings(runs_dir, run_id, noise(3), backend="onnx") == [[], [], []]


def test_fit_sets_the_threshold_at_the_test_percentile_and_round_trips(default_run_dir, data, tmp_path,
                                                                       monkeypatch):
    from model.features import penultimate_features
    from model.runs import load_model

    monkeypatch.setattr(fam, "SAMPLE", 600)
    model = load_model(default_run_dir)
    test = data["test_images"][:500]
    fitted = fam.fit_familiarity(model, data["train_images"], data["train_labels"], test)
    assert fitted.means.shape[0] == 10 and fitted.precision.shape == (fitted.means.shape[1],) * 2
    distances = fitted.distance(penultimate_features(model, test))
    assert fitted.threshold == pytest.approx(np.percentile(distances, fam.PERCENTILE))
    assert fitted.unfamiliar(penultimate_features(model, test)).sum() == 5   # 1 % of 500
    fam.save_familiarity(tmp_path, fitted)
    loaded = fam.load_familiarity(tmp_path)
    assert loaded.threshold == fitted.threshold and np.array_equal(loaded.means, fitted.means)
    assert fam.load_familiarity(tmp_path / "nowhere") is None


def test_a_damaged_file_is_a_run_error_answers_still_come_and_a_run_without_one_flags_nothing(runs_dir, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(runs_dir / "fast-default", run, ignore=shutil.ignore_patterns("label_issues*", "*.parquet",
                                                                                   "embedding.npz"))
    whole = (run / runs.FAMILIARITY).read_bytes()
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, means=np.array([{"a": 1}], dtype=object), precision=np.eye(2), threshold=np.array(1.0))
    for damage in (b"not a zip", whole[: len(whole) // 2], pickled.read_bytes()):  # garbage, truncated, objects
        (run / runs.FAMILIARITY).write_bytes(damage)
        with pytest.raises(RunError) as caught:
            fam.load_familiarity(run)
        assert caught.value.code == "bad_familiarity" and "workbench familiarity copy" in str(caught.value)
        assert "allow_pickle" not in str(caught.value)  # numpy's advice to load it unsafely is not passed on
        warnings = familiarity_warnings(tmp_path, "copy", noise(2))  # the answer comes, saying what was skipped
        assert len(warnings) == 2 and "skipped" in warnings[0][0] and "familiarity.npz" in warnings[0][0]
    (run / runs.FAMILIARITY).unlink()
    assert familiarity_warnings(tmp_path, "copy", noise(2)) == [[], []]
