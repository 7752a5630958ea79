"""Figure builders and image helpers: pure functions, checked on small hand-made inputs."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from model.data import CLASS_NAMES
from workbench import figures, images

NAMES = list(CLASS_NAMES)


def test_confidence_bars_show_every_class_and_mark_top_and_target():
    probs = np.array([0.05, 0.0, 0.1, 0.0, 0.05, 0.0, 0.7, 0.0, 0.1, 0.0])
    fig = figures.confidence_bars(probs, NAMES, target=2)
    bar = fig.data[0]
    assert list(bar.y) == NAMES and np.allclose(bar.x, probs)
    assert bar.marker.color[6] == figures.ACCENT and bar.marker.color[2] == figures.HIGHLIGHT
    assert bar.marker.color[0] == figures.MUTED
    assert "Shirt" in fig.layout.title.text and "70.0%" in fig.layout.title.text


def test_confusion_counts_and_row_normalised_with_hover_data():
    matrix = np.diag([90] * 10)
    matrix[6, 0], matrix[9, 9] = 10, 0  # an empty row must not divide by zero
    counts = figures.confusion_figure(matrix, NAMES)
    shares = figures.confusion_figure(matrix, NAMES, normalise=True, selected=(6, 0))
    errors, right = (np.asarray(trace.z, dtype=float) for trace in counts.data)
    assert np.array_equal(np.nan_to_num(errors) + np.nan_to_num(right), matrix)  # each cell in one trace
    z = np.nan_to_num(np.asarray(shares.data[0].z, dtype=float)) + np.nan_to_num(np.asarray(shares.data[1].z, dtype=float))
    assert z[6, 0] == pytest.approx(0.1) and z[6, 6] == pytest.approx(0.9) and z[9].sum() == 0
    assert counts.data[0].text[6][0] == "10" and shares.data[0].text[6][0] == "10%"
    custom = np.asarray(shares.data[0].customdata)
    assert custom[6, 0, 0] == 10 and custom[6, 0, 1] == pytest.approx(0.1)  # hover: count and share
    assert len(shares.layout.shapes) == 1 and shares.layout.shapes[0].x0 == -0.5


def test_confusion_colour_scale_spans_the_errors_not_the_diagonal():
    matrix = np.diag([900] * 10)
    matrix[6, 0], matrix[2, 4] = 12, 3
    fig = figures.confusion_figure(matrix, NAMES)
    errors, right = fig.data
    assert np.isnan(np.asarray(errors.z, dtype=float)[np.eye(10, dtype=bool)]).all()  # diagonal off the error scale
    assert errors.zmax == 12 and errors.zmin == 0  # the largest error gets the darkest colour, not 12/900 of it
    assert np.isnan(np.asarray(right.z, dtype=float)[6, 0]) and right.zmax == 900
    assert figures.confusion_figure(np.diag([5] * 10), NAMES).data[0].zmax == 1  # no errors: still a valid scale


def test_learning_curves_overlay_runs_with_train_val_and_lr():
    history = pd.DataFrame({"epoch": [1, 2, 3], "loss": [1.0, 0.6, 0.4], "accuracy": [0.6, 0.8, 0.85],
                            "val_loss": [0.9, 0.7, 0.6], "val_accuracy": [0.65, 0.75, 0.8],
                            "learning_rate": [1e-3, 5e-4, 2e-4]})
    fig = figures.learning_curves({"a": history, "b": history.iloc[:2]})
    assert len(fig.data) == 10
    names = [t.name for t in fig.data]
    assert "a · train" in names and "b · val" in names and "a · lr" in names
    val_loss = next(t for t in fig.data if t.name == "a · val" and list(t.y) == [0.9, 0.7, 0.6])
    assert val_loss.line.dash == "dash"
    assert {t.line.color for t in fig.data if t.legendgroup == "b"} == {figures.RUN_COLORS[1]}
    assert [t.name for t in fig.data if t.showlegend] == ["a · train", "a · val", "b · train", "b · val"]


def test_learning_curves_skip_missing_columns():
    fig = figures.learning_curves({"old": pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5], "val_loss": [1, 1]})})
    assert [t.name for t in fig.data] == ["old · train", "old · val"]


def test_reliability_diagram_plots_used_bins_and_diagonal():
    rel = {"bin_edges": np.linspace(0, 1, 11), "bin_accuracy": [0] * 8 + [0.7, 0.95],
           "bin_confidence": [0] * 8 + [0.85, 0.97], "bin_count": [0] * 8 + [20, 80]}
    fig = figures.reliability_diagram(rel)
    bars, diagonal = fig.data
    assert np.allclose(bars.x, [0.85, 0.95]) and np.allclose(bars.y, [0.7, 0.95])
    assert list(diagonal.x) == [0, 1] and list(diagonal.y) == [0, 1]


def test_per_class_rows_and_top_confused_pairs():
    per_class = {n: {"precision": 0.91234, "recall": 0.8, "f1": 0.85, "support": 100} for n in NAMES}
    rows = figures.per_class_rows(per_class, NAMES)
    assert len(rows) == 10 and rows[0] == {"class": "T-shirt/top", "precision": 0.912, "recall": 0.8,
                                           "f1": 0.85, "support": 100}
    matrix = np.diag([100] * 10)
    matrix[6, 0], matrix[0, 6], matrix[4, 2] = 30, 12, 20
    pairs = figures.top_confused_pairs(matrix, NAMES, k=5)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == \
        [("Shirt", "T-shirt/top", 30), ("Coat", "Pullover", 20), ("T-shirt/top", "Shirt", 12)]
    assert pairs[0]["share"] == pytest.approx(30 / 130, abs=1e-3) and (pairs[0]["row"], pairs[0]["col"]) == (6, 0)


def decode_data_url(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_png_data_url_round_trips_and_upscales():
    image = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    decoded = decode_data_url(images.png_data_url(image, scale=3))
    assert decoded.shape == (84, 84)
    assert np.array_equal(decoded[::3, ::3], image)
    with pytest.raises(ValueError, match="uint8"):
        images.png_bytes(image.astype(np.float32))


def test_overlay_blends_heatmap_by_opacity():
    image = np.full((28, 28), 100, dtype=np.uint8)
    heat = np.zeros((28, 28), dtype=np.float32)
    heat[:14] = 1.0
    assert np.array_equal(images.overlay(image, heat, opacity=0.0), np.full((28, 28, 3), 100))
    full = images.overlay(image, heat, opacity=1.0)
    assert tuple(full[0, 0]) == tuple(images.colorize(np.ones((1, 1)))[0, 0])  # hot = red end of jet
    assert full[0, 0, 0] > full[0, 0, 2]  # hot = red
    assert np.array_equal(full[14:], np.full((14, 28, 3), 100))  # cold: the garment, untinted
    half = images.overlay(image, heat * 0.5, opacity=1.0)[0, 0].astype(int)
    assert np.all(np.abs(half - (100 + 0.5 * (images.colorize(np.full((1, 1), 0.5))[0, 0] - 100))) <= 1)
    with pytest.raises(ValueError, match="differ in shape"):
        images.overlay(image, heat[:10])


def test_graph_configs_offer_no_upload_to_plotly_cloud():
    for config in (figures.GRAPH_CONFIG, figures.STATIC_GRAPH_CONFIG):
        assert config["showSendToCloud"] is False and config["showEditInChartStudio"] is False
        assert config["displaylogo"] is False and config["plotlyServerURL"] == ""
    assert figures.STATIC_GRAPH_CONFIG["displayModeBar"] is False


def test_every_graph_takes_its_config_from_figures():
    """Each dcc.Graph in pages/ and workbench/ passes config=figures.*GRAPH_CONFIG (or a dict built on it)."""
    from pathlib import Path
    import re

    repo = Path(__file__).resolve().parents[1]
    files = [*(repo / "pages").glob("*.py"), *(repo / "workbench").glob("*.py")]
    calls = [(f.name, m.group(0)) for f in files
             for m in re.finditer(r"dcc\.Graph\((?:[^()]|\([^()]*\))*\)", f.read_text())]
    assert calls, "no dcc.Graph found: the pattern is wrong"
    bad = [(name, call) for name, call in calls if not re.search(r"config=(\{\*\*)?figures\.(STATIC_)?GRAPH_CONFIG", call)]
    assert bad == []


def test_methods_with_the_same_scores_are_named_as_giving_the_same_maps():
    from workbench.explain_figures import same_maps

    def row(deletion, insertion):
        return {"deletion": {"mean": deletion, "ci95": 0.01}, "insertion": {"mean": insertion, "ci95": 0.01}}

    def sanity(*rhos):
        return {"passed": True, "steps": [{"layer": f"l{i}", "rho": r} for i, r in enumerate(rhos)]}

    table = {"methods": {"gradcam": row(0.23, 0.52), "gradcam++": row(0.234421, 0.5246), "layercam": row(0.23442, 0.5246)},
             "sanity": {"gradcam": sanity(0.1, -0.1), "gradcam++": sanity(0.72226, 0.0123),
                        "layercam": sanity(0.72227, 0.0123)}}
    assert same_maps(table) == [("Grad-CAM++", "Layer-CAM")]
    table["sanity"]["layercam"] = sanity(0.72227, 0.0125)   # one sanity step differs: not the same maps
    assert same_maps(table) == []
    table["sanity"]["layercam"] = sanity(0.72227, 0.0123)
    table["methods"]["gradcam"] = row(0.234421, 0.5246)      # all three the same: every pair named
    table["sanity"]["gradcam"] = sanity(0.72226, 0.0123)
    assert len(same_maps(table)) == 3
