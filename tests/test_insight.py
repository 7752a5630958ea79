"""Unit tests of the analyst views' pieces on small hand-made data: McNemar's test, the error table's
rows, the run comparison's checks, and the embedding map's cache (reused, recomputed when stale)."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

from model import embedding
from model.errors import RunError
from model.runs import PROB_COLUMNS
from workbench import insight

NAMES = [f"c{k}" for k in range(10)]


def paired(b: int, c: int, both_right: int = 50, both_wrong: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Right/wrong answers of A and B with b = A-only right, c = B-only right."""
    a = [True] * both_right + [True] * b + [False] * c + [False] * both_wrong
    bb = [True] * both_right + [False] * b + [True] * c + [False] * both_wrong
    return np.array(a), np.array(bb)


def test_mcnemar_exact_on_few_discordant_pairs():
    # b = 15, c = 5: two-sided exact p = 2 * sum_{k<=5} C(20, k) / 2^20 = 2 * 21700 / 1048576, by hand
    result = insight.mcnemar(*paired(15, 5))
    assert result["method"] == "exact binomial"
    assert (result["a_only"], result["b_only"], result["both_right"], result["both_wrong"]) == (15, 5, 50, 5)
    assert result["p_value"] == pytest.approx(2 * 21700 / 2**20)
    assert result["p_value"] < insight.ALPHA and result["verdict"].startswith("A is significantly")


def test_mcnemar_chi_squared_with_continuity_correction():
    # b = 40, c = 20: chi2 = (|40 - 20| - 1)^2 / 60 = 361 / 60; for 1 dof p = erfc(sqrt(chi2 / 2))
    result = insight.mcnemar(*paired(20, 40))
    assert result["method"].startswith("chi-squared")
    assert result["statistic"] == pytest.approx(361 / 60)
    assert result["p_value"] == pytest.approx(math.erfc(math.sqrt(361 / 120)))
    assert result["verdict"].startswith("B is significantly")
    balanced = insight.mcnemar(*paired(30, 30))
    assert balanced["p_value"] > 0.5 and balanced["verdict"].startswith("No significant")
    same = insight.mcnemar(np.array([True, False, True]), np.array([True, False, True]))
    assert same["p_value"] == 1.0 and same["verdict"].startswith("The runs agree on every image")


def test_mcnemar_refuses_unpaired_answers():
    with pytest.raises(RunError) as info:
        insight.mcnemar(np.ones(5, bool), np.ones(6, bool))
    assert info.value.code == "unpaired"


def frame(labels, probs) -> pd.DataFrame:
    probs = np.asarray(probs, dtype=np.float32)
    out = pd.DataFrame({"index": np.arange(len(labels)), "label": labels, "predicted": probs.argmax(axis=1)})
    return out.assign(**{c: probs[:, i] for i, c in enumerate(PROB_COLUMNS)})


def tiny_probs() -> np.ndarray:
    probs = np.zeros((3, 10))
    probs[0, :3] = [0.7, 0.2, 0.1]    # label 0, right: margin 0.5
    probs[1, :3] = [0.6, 0.3, 0.1]    # label 1, wrong (predicted 0): margin 0.3, loss -ln 0.3
    probs[2, 2:5] = [0.1, 0.05, 0.85]  # label 3, wrong (predicted 4): p_true 0.05
    return probs


def test_error_rows_loss_margin_and_label_quality():
    rows = insight.error_rows(frame([0, 1, 3], tiny_probs()), NAMES)
    assert rows["confidence"].tolist() == pytest.approx([0.7, 0.6, 0.85])
    assert rows["margin"].tolist() == pytest.approx([0.5, 0.3, 0.75])
    assert rows["loss"].tolist() == pytest.approx([-math.log(0.7), -math.log(0.3), -math.log(0.05)], rel=1e-5)
    assert rows["true"].tolist() == ["c0", "c1", "c3"] and rows["predicted"].tolist() == ["c0", "c0", "c4"]
    # cleanlab's default label quality (self-confidence) is the probability of the given label
    assert rows["label_quality"].tolist() == pytest.approx([0.7, 0.3, 0.05], rel=1e-5)


def test_filter_rows_by_pair_confidence_and_errors():
    rows = insight.error_rows(frame([0, 1, 3], tiny_probs()), NAMES)
    assert insight.filter_rows(rows)["index"].tolist() == [2, 1]          # errors, highest loss first
    assert insight.filter_rows(rows, errors_only=False)["index"].tolist() == [2, 1, 0]
    assert insight.filter_rows(rows, true=1, pred=0)["index"].tolist() == [1]
    assert insight.filter_rows(rows, confidence=(0.8, 1.0))["index"].tolist() == [2]
    csv = insight.rows_csv(insight.filter_rows(rows).to_dict("records"))
    assert csv.splitlines()[0] == ",".join(insight.ROW_COLUMNS) and csv.splitlines()[1].startswith("2,c3,c4,")


def test_compare_runs_pairs_images_and_refuses_other_test_sets():
    a = frame([0, 1, 3], tiny_probs())
    b_probs = tiny_probs()
    b_probs[0] = np.roll(b_probs[0], 1)       # B gets image 0 wrong
    b_probs[1, :3] = [0.1, 0.8, 0.1]         # and image 1 right
    result = insight.compare_runs(a, frame([0, 1, 3], b_probs), NAMES)
    assert (result["a_only"], result["b_only"]) == ([0], [1])
    delta = result["per_class"].set_index("class")["delta (B - A)"]
    assert delta["c0"] == -1.0 and delta["c1"] == 1.0 and delta["c3"] == 0.0
    with pytest.raises(RunError) as info:
        insight.compare_runs(a, a.iloc[:2], NAMES)
    assert info.value.code == "different_test_sets"
    with pytest.raises(RunError):
        insight.compare_runs(a, a.assign(label=[0, 1, 2]), NAMES)


def test_run_comparison_computed_once_and_again_when_a_run_changes(tmp_path, monkeypatch):
    from model import runs
    from workbench import cache
    cache.clear()
    labels = np.array([0, 1, 3])
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        runs.write_predictions(tmp_path / run, labels, tiny_probs())
    calls = []
    real = insight.compare_runs
    monkeypatch.setattr(insight, "compare_runs", lambda *args: calls.append(args) or real(*args))
    first = insight.run_comparison(tmp_path, "a", "b")
    assert insight.run_comparison(tmp_path, "a", "b") is first and len(calls) == 1
    b_probs = tiny_probs()
    b_probs[0] = np.roll(b_probs[0], 1)                       # B re-evaluated: now wrong on image 0
    runs.write_predictions(tmp_path / "b", labels, b_probs)
    os.utime(tmp_path / "b" / runs.PREDICTIONS, ns=(1, 1))    # a new stamp even on a coarse clock
    assert insight.run_comparison(tmp_path, "a", "b")["a_only"] == [0] and len(calls) == 2


def test_embedding_cached_reused_and_recomputed_when_stale(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    centres = np.repeat(np.eye(2), 4, axis=1) * 6      # two blobs pointing different ways (cosine metric)
    features = (np.repeat(centres, 100, axis=0) + rng.normal(0, 1, (200, 8))).astype(np.float32)
    calls = []

    def make():
        calls.append(1)
        return features

    path = tmp_path / "embedding.npz"
    settings = embedding.MapSettings(n_neighbors=10)
    coords, computed = embedding.cached_embedding(path, make, "model-1", settings)   # the one real UMAP call
    assert computed and coords.shape == (200, 2) and np.isfinite(coords).all() and path.is_file()
    # the two blobs stay apart in 2-D: each point's nearest neighbour on the map is from its own blob
    distances = np.linalg.norm(coords[:, None] - coords[None], axis=2) + np.eye(200) * 1e9
    blob = np.arange(200) // 100
    assert (blob[distances.argmin(axis=1)] == blob).all()

    monkeypatch.setattr(embedding, "reduce_2d", lambda f, s: np.zeros((len(f), 2), np.float32))
    again, computed = embedding.cached_embedding(path, make, "model-1", settings)
    assert not computed and len(calls) == 1 and np.array_equal(again, coords)
    _, computed = embedding.cached_embedding(path, make, "model-1", embedding.MapSettings(n_neighbors=12))
    assert computed and len(calls) == 2                                   # other settings: recomputed
    _, computed = embedding.cached_embedding(path, make, "model-2", embedding.MapSettings(n_neighbors=12))
    assert computed and len(calls) == 3                                   # another model: recomputed
    path.write_bytes(b"damaged")
    assert embedding.read_embedding(path, settings, "model-1") is None
    embedding.write_embedding(path, coords, settings, "model-1", 1.0)
    path.write_bytes(path.read_bytes()[:100])                             # truncated: a zip without its end
    assert embedding.read_embedding(path, settings, "model-1") is None


def test_p_values_read_as_people_write_them():
    assert insight.p_text(0.0) == insight.p_text(1e-30) == "p < 0.0001"  # not "p = 0"
    assert insight.p_text(0.0321) == "p = 0.032" and insight.p_text(0.5) == "p = 0.5"


def test_map_figure_draws_a_kept_selection_in_any_colouring():
    """The selected test indices come back from each trace's selectedpoints, whatever the colouring."""
    from workbench import maps

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"index": np.arange(100, 400), "label": rng.integers(0, 10, 300),
                          "predicted": rng.integers(0, 10, 300)})
    names = [f"class {k}" for k in range(10)]
    wanted = set(rng.choice(frame["index"], 40, replace=False).tolist())
    for colour in maps.COLOUR_BY:
        fig = maps.map_figure(rng.normal(size=(300, 2)), frame, names, colour, sorted(wanted))
        got = [trace.customdata[p] for trace in fig.data for p in trace.selectedpoints]
        assert sorted(got) == sorted(wanted)
        assert all(trace.selectedpoints is None for trace in maps.map_figure(rng.normal(size=(300, 2)), frame,
                                                                             names, colour).data)
