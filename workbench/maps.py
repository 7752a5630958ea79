"""The embedding map for the Map page: the run's stored 2-D layout of the test set, and its figure.

    coords = embedding(runs_dir, run_id, data_dir)      # (10000, 2); computed and stored on first use
    has_embedding(runs_dir, run_id)                     # False: the page says it is computing (~60 s)
    fig = map_figure(coords, predictions, names, "true")    # WebGL scatter, one trace per colour group

The layout itself (UMAP of the penultimate features, settings, caching in the run folder) is
model/embedding.py; `workbench embed RUN` computes it ahead of time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from model import runs
from model.embedding import DEFAULT_SETTINGS, ESTIMATED_SECONDS, model_key, read_embedding, run_embedding
from workbench import artifacts
from workbench.cache import cached, file_stamp

COLOUR_BY = {"true": "true class", "predicted": "predicted class", "correct": "correct / wrong"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",  # plotly's D3 ten: distinct at 3 px
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
UNSELECTED_OPACITY = 0.08  # dots outside a selection: faint, so the selected ones stand out (plotly's 0.2 hid them)
RIGHT_WRONG = {"correct": "#b0b7bf", "wrong": "#d62728"}  # errors stand out on a grey crowd
MARKER_SIZE = 4        # px: 10,000 points stay distinct at the page's 650 px height
DECIMALS = 3           # coordinates rounded in the figure JSON: a third of the size, no visible change
__all__ = ["COLOUR_BY", "ESTIMATED_SECONDS", "embedding", "groups", "has_embedding", "map_figure",
           "selected_points"]


def has_embedding(runs_dir: Path | str, run_id: str) -> bool:
    """Whether the run's map is stored and current (else the first view computes it)."""
    run_dir = runs.run_path(runs_dir, run_id)
    try:
        n = len(artifacts.predictions(runs_dir, run_id))
        key = f"{model_key(run_dir)}:{n}"
    except (runs.RunError, OSError):
        return False
    return read_embedding(run_dir / runs.EMBEDDING, DEFAULT_SETTINGS, key) is not None


def embedding(runs_dir: Path | str, run_id: str, data_dir: Path | str | None = None) -> np.ndarray:
    """(n, 2) coordinates of the run's test images, in the order of its saved predictions."""
    run_dir = runs.run_path(runs_dir, run_id)

    def build() -> np.ndarray:
        frame = artifacts.predictions(runs_dir, run_id)
        images = artifacts.test_images(data_dir)[frame["index"].to_numpy()]
        return run_embedding(run_dir, images)[0]

    # Keyed on the model file and the map file: a new model or a recomputed map is read again.
    return cached("embedding", runs.model_file(run_dir), build, file_stamp(run_dir / runs.EMBEDDING))


def _groups(predictions: pd.DataFrame, names: list[str], colour_by: str) -> list[tuple[str, str, np.ndarray]]:
    """(legend name, colour, row mask) per colour group."""
    labels, predicted = predictions["label"].to_numpy(), predictions["predicted"].to_numpy()
    if colour_by == "correct":
        right = labels == predicted
        return [("correct", RIGHT_WRONG["correct"], right), ("wrong", RIGHT_WRONG["wrong"], ~right)]
    column = labels if colour_by == "true" else predicted
    return [(name, PALETTE[k % len(PALETTE)], column == k) for k, name in enumerate(names)]


def groups(predictions: pd.DataFrame, names: list[str], colour_by: str) -> list[tuple[str, list[int]]]:
    """(legend name, test indices) per colour group: a whole group selected without drawing a lasso."""
    index = predictions["index"].to_numpy()
    return [(name, index[mask].tolist()) for name, _, mask in _groups(predictions, names, colour_by)]


def selected_points(predictions: pd.DataFrame, names: list[str], colour_by: str, indices) -> list[list[int]]:
    """Per trace of map_figure, the positions of the selected test indices in it (plotly's
    selectedpoints: those dots drawn as selected, the rest dimmed)."""
    wanted = np.isin(predictions["index"].to_numpy(), np.asarray(list(indices), dtype=np.int64))
    return [np.flatnonzero(wanted[mask]).tolist() for _, _, mask in _groups(predictions, names, colour_by)]


def map_figure(coords: np.ndarray, predictions: pd.DataFrame, names: list[str], colour_by: str = "true",
               selected=None) -> go.Figure:
    """A WebGL scatter of the map: one trace per colour group (click a legend entry to hide it);
    each point's customdata is its test index; hover text is left to the page's image tooltip.
    `selected` (test indices; None: no selection) are drawn as selected, as a lasso leaves them."""
    coords = np.round(np.asarray(coords, dtype=np.float64), DECIMALS)
    index = predictions["index"].to_numpy()
    fig = go.Figure()
    positions = selected_points(predictions, names, colour_by, selected) if selected is not None else None
    for trace, (name, colour, mask) in enumerate(_groups(predictions, names, colour_by)):
        # customdata as a plain list: dcc.Graph copies it into click / selection events by position,
        # which fails on plotly's base64 typed-array encoding of a numpy array (x, y may stay encoded)
        fig.add_trace(go.Scattergl(x=coords[mask, 0], y=coords[mask, 1], customdata=index[mask].tolist(),
                                   name=name,
                                   mode="markers", marker={"size": MARKER_SIZE, "color": colour},
                                   hoverinfo="none", selectedpoints=positions[trace] if positions else None,
                                   unselected={"marker": {"opacity": UNSELECTED_OPACITY}}))
    fig.update_layout(dragmode="lasso", height=650, margin={"l": 10, "r": 10, "t": 40, "b": 10},  # t: the tool
                      # bar's own strip above the plot, so it does not cover the legend's title
                      legend={"itemsizing": "constant", "title": COLOUR_BY.get(colour_by, "")},
                      xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"},
                      plot_bgcolor="white", uirevision="map")
    return fig
