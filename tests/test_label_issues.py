"""Suspected label errors (model/label_issues.py, model/near_duplicates.py) on small data made here:
a real 2-fold x 1-epoch run on 600 images that is interrupted, resumed and then reused from its cache;
a known flipped label in a hand-made probability table; nearest neighbours of hand-made vectors.

    python -m pytest -q tests/test_label_issues.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model import label_issues, runs
from model.label_issues import FoldSettings, out_of_fold_probabilities, rank_label_issues
from model.near_duplicates import top_neighbours

TINY = FoldSettings(folds=2, epochs=1, width=4, batch_size=32, learning_rate=0.05)


def tiny_data(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is their brightness (25 * class + noise): unchanged by shifts and flips."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = (labels[:, None, None] * 25 + rng.integers(0, 20, (n, 28, 28))).astype(np.uint8)
    return images, labels


def test_interrupted_run_resumes_at_the_next_fold_and_a_finished_one_is_reused(tmp_path, monkeypatch):
    images, labels = tiny_data()
    cache = tmp_path / "label_issues"

    def interrupt_in_second_fold(done, total):
        if done > TINY.epochs:  # the first epoch of fold 1 finished: stop as Ctrl-C would
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        out_of_fold_probabilities(images, labels, cache, TINY, interrupt_in_second_fold)
    assert (cache / "fold_0.npz").is_file() and not (cache / "fold_1.npz").exists()
    assert not (cache / runs.OOF_TRAIN).exists()
    first = np.load(cache / "fold_0.npz")

    trained, real = [], label_issues.train_fold
    monkeypatch.setattr(label_issues, "train_fold", lambda *a, **k: trained.append(a[5]) or real(*a, **k))
    probs = out_of_fold_probabilities(images, labels, cache, TINY)
    assert trained == [1]  # fold 0 came from its file
    assert probs.shape == (600, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-3)
    assert (cache / runs.OOF_TRAIN).is_file() and not list(cache.glob("fold_*.npz"))
    held_out = label_issues.fold_indices(labels, TINY)[0][1]
    assert np.array_equal(first["held"], held_out)  # each image scored by the model that did not train on it
    assert np.allclose(probs[held_out], first["probs"], atol=1e-3)  # fold 0's saved answers, not retrained

    def no_training(*_args, **_kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(label_issues, "train_fold", no_training)
    again = out_of_fold_probabilities(images, labels, cache, TINY)
    assert np.allclose(again, probs, atol=1e-3)  # float16 storage
    done = (cache / runs.OOF_TRAIN).read_bytes()
    (cache / runs.OOF_TRAIN).write_bytes(done[: len(done) // 2])  # truncated: computed again, not a crash
    with pytest.raises(AssertionError, match="cache"):
        out_of_fold_probabilities(images, labels, cache, TINY)
    with pytest.raises(AssertionError, match="cache"):  # other settings: computed again
        out_of_fold_probabilities(images, labels, cache, FoldSettings(folds=2, epochs=2, width=4))


def test_cli_refuses_bad_settings_before_touching_the_cache(tmp_path, default_run_dir, capsys):
    from workbench import cli

    run = tmp_path / "run"
    (run / runs.LABEL_ISSUES_DIR).mkdir(parents=True)
    (run / runs.LABEL_ISSUES_DIR / runs.OOF_SETTINGS).write_text("{}")
    (run / runs.PREDICTIONS).write_bytes((default_run_dir / runs.PREDICTIONS).read_bytes())
    assert cli.main(["label-issues", "run", "--runs-dir", str(tmp_path), "--folds", "1", "--no-progress"]) == 2
    assert "folds >= 2; received folds=1" in capsys.readouterr().err
    assert (run / runs.LABEL_ISSUES_DIR / runs.OOF_SETTINGS).is_file()
    assert cli.main(["label-issues", "absent", "--runs-dir", str(tmp_path)]) == 2


def confident_table(n: int = 300, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of a good model: ~0.9 on the label, the rest spread."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    probs = rng.dirichlet(np.ones(10), n) * 0.1
    probs[np.arange(n), labels] += 0.9
    return labels, probs


def test_a_known_flipped_label_is_found_first_with_the_right_suggestion():
    labels, probs = confident_table()
    flipped = 123                       # truly class 5 (the model says so), labelled 3
    labels[flipped] = 3
    probs[flipped] = 0.005
    probs[flipped, 5] = 0.955
    found = rank_label_issues(labels, probs, "test", np.arange(len(labels)) + 1000)
    top = found.iloc[0]
    assert (top["index"], top["given"], top["suggested"], top["rank"]) == (1123, 3, 5, 1)
    assert top["p_suggested"] == pytest.approx(0.955, abs=1e-6) and top["p_given"] == pytest.approx(0.005, abs=1e-6)
    assert len(found) < 10  # the confident rest is not flagged

    frame = pd.DataFrame({"index": np.arange(len(labels)), "label": labels, "predicted": probs.argmax(axis=1),
                          **{c: probs[:, i] for i, c in enumerate(runs.PROB_COLUMNS)}})
    quality = label_issues.test_label_quality(frame)
    assert quality.shape == (len(labels),) and quality.argmin() == flipped


def test_top_neighbours_finds_the_most_similar_row_in_chunks():
    rng = np.random.default_rng(2)
    corpus = rng.random((50, 8)).astype(np.float32)
    queries = np.stack([corpus[7] * 3.0, corpus[31] + 1e-4, -corpus[0]])  # scale does not matter to cosine
    best, similarity = top_neighbours(queries, corpus, chunk=2)
    assert best[:2].tolist() == [7, 31]
    assert similarity[:2] == pytest.approx([1.0, 1.0], abs=1e-4) and similarity[2] < 0.99
