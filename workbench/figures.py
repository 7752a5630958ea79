"""Pure figure builders: data in, plotly figure (or table rows) out. Pages only wire them up.

    confidence_bars(probs, class_names)                 # horizontal bars, all 10 classes
    confusion_figure(matrix, class_names, normalise)    # clickable heatmap: errors red, right answers green
    learning_curves({run_id: history_frame, ...})       # loss, accuracy, learning rate; runs overlaid
    reliability_diagram(metrics["reliability"])         # accuracy vs confidence per bin
    per_class_rows(metrics["per_class"], class_names)   # precision / recall / F1 / support rows
    top_confused_pairs(matrix, class_names)             # the largest off-diagonal cells

Every dcc.Graph takes its `config` from here: GRAPH_CONFIG (a modebar without the Plotly logo and
without "Share chart", which offers to upload the chart to Plotly Cloud: this is a local tool) or
STATIC_GRAPH_CONFIG (no modebar at all), e.g. `config={**GRAPH_CONFIG, "scrollZoom": True}`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

ACCENT = "#2c7be5"      # predicted class / train curves
HIGHLIGHT = "#e63757"   # the chosen target class / validation
MUTED = "#adb5bd"       # the other classes
CORRECT_SCALE = [[0, "#f3faf6"], [1, "#a8dcc0"]]  # confusion diagonal: pale green, text stays readable
ERROR_SCALE = [[0, "#fff5f0"], [1, "#f26b4f"]]    # confusion errors: white to a mid red that dark text reads on
RUN_COLORS = ("#2c7be5", "#e63757", "#00a87e", "#f6a609", "#6f42c1", "#17a2b8")
MARGIN = dict(l=10, r=10, t=40, b=10)
GRAPH_CONFIG = {            # dcc.Graph config: nothing leaves the machine
    "displaylogo": False,   # no Plotly logo (a link to plotly.com)
    "showSendToCloud": False,        # no "Share chart" button (plotly.js 3 shows it by default)
    "showEditInChartStudio": False,  # no "Edit in Chart Studio" button
    "plotlyServerURL": "",           # and nowhere to send a chart to, should a button appear anyway
    "showLink": False,               # no "Edit chart" link under the graph
}
STATIC_GRAPH_CONFIG = {**GRAPH_CONFIG, "displayModeBar": False}  # small read-only charts: no modebar


def confidence_bars(probs, class_names: list[str], target: int | None = None) -> go.Figure:
    """All classes' probabilities as horizontal bars, first class on top; the top class in blue."""
    probs = np.asarray(probs, dtype=float)
    top = int(probs.argmax())
    colors = [ACCENT if i == top else HIGHLIGHT if i == target else MUTED for i in range(len(probs))]
    fig = go.Figure(go.Bar(
        x=probs, y=list(class_names), orientation="h", marker_color=colors,
        text=[f"{p:.1%}" for p in probs], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    fig.add_trace(row_hit_area(probs, class_names))
    fig.update_layout(title=f"{class_names[top]} ({probs[top]:.1%})", margin=MARGIN, height=320,
                      barmode="overlay", showlegend=False, font_size=14,  # readable on a projector
                      title_font_size=18, xaxis=dict(range=[0, 1.15], tickformat=".0%", showgrid=False),
                      yaxis=dict(autorange="reversed"), plot_bgcolor="white")
    return fig


def row_hit_area(probs: np.ndarray, class_names: list[str]) -> go.Bar:
    """An invisible full-width bar over each class's row: a click anywhere on the row picks the class
    (a 1% bar alone is 1-3 px wide). Same row order as the visible bars, so pointIndex = class."""
    return go.Bar(x=[1.15] * len(probs), y=list(class_names), orientation="h", name="row",
                  width=1.0, marker=dict(color="rgba(0,0,0,0)", line_width=0), customdata=probs,
                  hovertemplate="%{y}: %{customdata:.2%} · click to explain<extra></extra>")


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its total (recall on the diagonal); empty rows stay 0."""
    matrix = np.asarray(matrix, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def confusion_figure(matrix, class_names: list[str], normalise: bool = False,
                     selected: tuple[int, int] | None = None) -> go.Figure:
    """Confusion matrix heatmap (rows true, columns predicted); click data carries the cell's counts.

    The errors get their own colour scale, from 0 to the largest off-diagonal cell, and the diagonal
    (right answers) a separate pale one: with one scale the diagonal (~900 a class) makes every error
    (mostly < 100) nearly white. The diagonal-excluded scale, rather than log(1 + count), keeps the
    colour proportional to the number of errors, so the darkest red is the worst confusion; the real
    counts or shares are in each cell's text and hover.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    shares = normalise_rows(counts)
    values = shares if normalise else counts.astype(float)
    text = [[f"{v:.0%}" if normalise else f"{int(v)}" for v in row] for row in values]
    diagonal = np.eye(len(counts), dtype=bool)
    hover = dict(x=list(class_names), y=list(class_names), text=text, texttemplate="%{text}", xgap=1, ygap=1,
                 customdata=np.dstack([counts, shares]), showscale=False, hoverongaps=False,
                 hovertemplate="true %{y} → predicted %{x}<br>%{customdata[0]} images "
                               "(%{customdata[1]:.1%} of %{y})<extra></extra>")
    errors = np.where(diagonal, np.nan, values)
    top = np.nanmax(errors) if np.any(errors > 0) else 1.0
    fig = go.Figure([
        go.Heatmap(z=errors, colorscale=ERROR_SCALE, zmin=0, zmax=top, name="errors", **hover),
        go.Heatmap(z=np.where(diagonal, values, np.nan), colorscale=CORRECT_SCALE, zmin=0,
                   zmax=max(float(values.max()), 1e-9), name="correct", **hover)])
    if selected is not None:
        r, c = selected
        fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5,
                      line=dict(color=ACCENT, width=3))
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10), height=520, plot_bgcolor="white",
                      xaxis=dict(title="predicted", side="top", tickangle=-45),  # no overlap down to 400 px
                      yaxis=dict(title="true", autorange="reversed"))
    return fig


def learning_curves(histories: dict[str, pd.DataFrame]) -> go.Figure:
    """Loss, accuracy and learning rate per epoch; train solid, validation dashed; one colour per run."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", "accuracy", "learning rate"))
    panels = (("loss", "val_loss", 1), ("accuracy", "val_accuracy", 2), ("learning_rate", None, 3))
    for i, (run_id, frame) in enumerate(histories.items()):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        for train_col, val_col, col in panels:
            for column, dash, label in ((train_col, "solid", "train"), (val_col, "dash", "val")):
                if column is None or column not in frame.columns:
                    continue
                name = f"{run_id} · {label}" if column != "learning_rate" else f"{run_id} · lr"
                fig.add_trace(go.Scatter(
                    x=frame["epoch"], y=frame[column], mode="lines+markers", name=name,
                    line=dict(color=color, dash=dash), legendgroup=run_id, showlegend=col == 1,
                    hovertemplate=f"{name}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>"), row=1, col=col)
    longest = max((len(frame) for frame in histories.values()), default=0)
    fig.update_xaxes(title_text="epoch", dtick=1 if longest <= 20 else None)
    fig.update_yaxes(rangemode="tozero", row=1, col=3)  # linear: one-cycle schedules end at 0
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), height=380, plot_bgcolor="white",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def reliability_diagram(reliability: dict) -> go.Figure:
    """Accuracy per confidence bin against the diagonal of perfect calibration; bar width = bin."""
    edges = np.asarray(reliability["bin_edges"], dtype=float)
    accuracy = np.asarray(reliability["bin_accuracy"], dtype=float)
    confidence = np.asarray(reliability["bin_confidence"], dtype=float)
    count = np.asarray(reliability["bin_count"], dtype=float)
    centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    used = count > 0
    fig = go.Figure()
    fig.add_trace(go.Bar(x=centers[used], y=accuracy[used], width=widths[used] * 0.95, name="accuracy",
                         marker_color=ACCENT, customdata=np.stack([confidence, count], -1)[used],
                         hovertemplate="confidence %{customdata[0]:.3f}<br>accuracy %{y:.3f}"
                                       "<br>%{customdata[1]:.0f} images<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(color=MUTED, dash="dash")))
    fig.update_layout(margin=MARGIN, height=380, plot_bgcolor="white", title="reliability",
                      xaxis=dict(title="confidence", range=[0, 1]),
                      yaxis=dict(title="accuracy", range=[0, 1]), legend=dict(x=0.02, y=0.98))
    return fig


def per_class_rows(per_class: dict, class_names: list[str]) -> list[dict]:
    """Rows for a table: class, precision, recall, F1 (rounded) and support, in class order."""
    rows = []
    for name in class_names:
        scores = per_class.get(name, {})
        rows.append({"class": name, **{k: round(float(scores.get(k, float("nan"))), 3)
                                       for k in ("precision", "recall", "f1")},
                     "support": int(scores.get("support", 0))})
    return rows


def top_confused_pairs(matrix, class_names: list[str], k: int = 5) -> list[dict]:
    """The k largest off-diagonal cells: true, predicted, count and share of the true class."""
    counts = np.asarray(matrix, dtype=np.int64)
    shares = normalise_rows(counts)
    off = counts.copy()
    np.fill_diagonal(off, -1)
    order = np.argsort(off, axis=None, kind="stable")[::-1][:k]
    rows = []
    for flat in order:
        r, c = divmod(int(flat), counts.shape[1])
        if off[r, c] <= 0:
            break
        rows.append({"true": class_names[r], "predicted": class_names[c], "count": int(counts[r, c]),
                     "share": round(float(shares[r, c]), 3), "row": r, "col": c})
    return rows


def photo_with_outline(photo: np.ndarray, outline: list[tuple[int, int]], scale: float,
                       box: tuple[int, int, int, int] | None = None, touch: bool = False) -> go.Figure:
    """The uploaded photo (display size) with the found garment's outline in green and the user's
    box, if any, dashed; drag on it to draw a new box (plotly's drawrect). `scale` is display pixels
    per original pixel (outline and box are in the original photo's pixels). On a touch screen
    (`touch`) a drag scrolls the page instead: a swipe would draw a box and change the answer; the
    page offers a button that turns drawing on."""
    height, width = photo.shape[:2]
    fig = go.Figure(go.Image(z=photo, hoverinfo="skip"))
    if outline:
        xs, ys = zip(*[(x * scale, y * scale) for x, y in [*outline, outline[0]]])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#00e676", width=2),
                                 hoverinfo="skip", name="found garment"))
    if box:
        x0, y0, x1, y1 = (v * scale for v in box)
        fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color=ACCENT, dash="dash"))
    fig.update_layout(dragmode=False if touch else "drawrect", margin=dict(l=0, r=0, t=0, b=0),
                      height=round(260 * height / width) if width >= height else 260, showlegend=False,
                      newshape=dict(line=dict(color=HIGHLIGHT)),
                      xaxis=dict(visible=False, range=[0, width], fixedrange=True),
                      yaxis=dict(visible=False, range=[height, 0], fixedrange=True))
    return fig
