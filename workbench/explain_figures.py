"""Pure figure builders for explanations you can check: faithfulness curves, sanity check, colour bar.

    faithfulness_figure(trust.one_image(...), "Grad-CAM")   # deletion / insertion curves vs random
    sanity_figure(table["sanity"])                          # rank correlation per randomised layer
    auc_rows(table)                                         # per-method AUC rows for a table
    colorbar_url()                                          # the overlay's colour scale as a PNG
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from workbench.explain import METHODS
from workbench.images import colorize, png_data_url

DELETION, INSERTION, RANDOM_COLOR = "#e63757", "#2c7be5", "#adb5bd"
MARGIN = dict(l=40, r=10, t=40, b=40)


def faithfulness_figure(curve: dict, label: str) -> go.Figure:
    """Probability of the explained class as pixels are deleted / inserted in the map's order."""
    x = np.asarray(curve["fraction"])
    fig = go.Figure()
    for kind, color in (("deletion", DELETION), ("insertion", INSERTION)):
        fig.add_scatter(x=x, y=curve[kind], name=f"{kind} (AUC {curve[kind + '_auc']:.2f})",
                        line=dict(color=color, width=3))
        fig.add_scatter(x=x, y=curve["random"][kind], name=f"random {kind} ({curve['random'][kind + '_auc']:.2f})",
                        line=dict(color=RANDOM_COLOR, dash="dot" if kind == "deletion" else "dash"))
    reading = '<span style="font-size:11px">deletion ↓ low is good · insertion ↑ high is good</span>'
    fig.update_layout(  # two short title lines and the legend below: it fits a 360 px phone column
        title=f"Is the {label} map faithful?<br>{reading}",
        title_font_size=13, height=330, margin=dict(MARGIN, t=50), plot_bgcolor="white",
        xaxis=dict(title="pixels removed / added, most important first", tickformat=".0%"),
        yaxis=dict(title="probability", range=[0, 1.02]),
        legend=dict(font_size=11, orientation="h", yanchor="top", y=-0.3, x=0))
    return fig


def sanity_figure(sanity: dict) -> go.Figure:
    """Mean Spearman rho between trained and randomised maps, per layer randomised (top first)."""
    fig = go.Figure()
    threshold = 0.5
    for method, result in sanity.items():
        steps = result["steps"]
        threshold = result.get("pass_below", threshold)
        verdict = "passes" if result["passed"] else "FAILS"
        fig.add_scatter(x=[s["layer"] for s in steps], y=[s["rho"] for s in steps], mode="lines+markers",
                        name=f"{METHODS.get(method, method)}: {verdict}")
    fig.add_hline(y=threshold, line_dash="dash", line_color=RANDOM_COLOR,
                  annotation_text="pass below", annotation_position="bottom right")
    fig.update_layout(title="Sanity check: map similarity after randomising the top layers (cascading)",
                      title_font_size=13, height=300, margin=MARGIN, plot_bgcolor="white",
                      yaxis=dict(title="rank correlation with trained map", range=[-0.3, 1.05]),
                      xaxis=dict(title="randomised down to layer"))
    return fig


def same_maps(table: dict, decimals: int = 4) -> list[tuple[str, str]]:
    """Pairs of methods whose scores all agree to `decimals` (deletion, insertion, every sanity
    step): their maps are the same here, and one's line hides the other's in the sanity chart."""
    def scores(method: str) -> tuple:
        row, sanity = table["methods"][method], table.get("sanity", {}).get(method, {})
        return (round(row["deletion"]["mean"], decimals), round(row["insertion"]["mean"], decimals),
                *(round(step["rho"], decimals) for step in sanity.get("steps", [])))
    methods = list(table["methods"])
    return [(METHODS.get(a, a), METHODS.get(b, b)) for i, a in enumerate(methods) for b in methods[i + 1:]
            if scores(a) == scores(b)]


def auc_rows(table: dict) -> list[dict]:
    """One row per method: mean AUC +- 95% interval, and the sanity verdict."""
    rows = []
    for method, row in table["methods"].items():
        sanity = table.get("sanity", {}).get(method)
        d, i = row["deletion"], row["insertion"]
        rows.append({"method": METHODS.get(method, method),
                     "deletion AUC (lower is better)": f"{d['mean']:.3f} ± {d['ci95']:.3f}",
                     "insertion AUC (higher is better)": f"{i['mean']:.3f} ± {i['ci95']:.3f}",
                     "sanity check": "—" if sanity is None else "passes" if sanity["passed"] else "FAILS"})
    return rows


def per_class_rows(table: dict, class_names: list[str], kind: str = "deletion") -> list[dict]:
    """Mean AUC per method and predicted class."""
    rows = []
    for c, name in enumerate(class_names):
        row = {"class": name}
        for method, values in table["methods"].items():
            value = values["per_class"].get(str(c), values["per_class"].get(c))
            row[METHODS.get(method, method)] = f"{value[kind]:.2f}" if value else "—"
        rows.append(row)
    return rows


def colorbar_url(width: int = 196, height: int = 12) -> str:
    """The overlay's colour scale, 0 (ignored) on the left to 1 (decisive) on the right."""
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    return png_data_url(colorize(ramp), scale=1)
