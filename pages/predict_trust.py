"""Predict page, part two: can the shown explanation be trusted? (no page of its own; predict.py uses it)

Under the overlay: its colour scale, the deletion / insertion curve of the shown map next to a
random map's, and "Compare all methods": every method's map of the same image with its AUC.

Its callbacks are registered by `register_callbacks()`, which predict.py calls as Dash executes it.
Dash executes each page file afresh for every app it builds, but a helper module like this one is
imported once per process: decorating at import would give its callbacks to the first app only
(a second app in the same process, as in the tests, had a Predict page without its curve).
"""

from __future__ import annotations

import logging

import dash_bootstrap_components as dbc
import numpy as np
from dash import Input, Output, State, callback, ctx, dcc, html

from workbench import ExplainError, RunError, explain_figures, figures, trust
from workbench.components import problem, settings
from workbench.explain import LAYER_METHODS, METHODS, get_explainer
from workbench.images import overlay, png_data_url
from workbench.uploads import chosen, decode

from pages.predict_settings import answering_run

PREDICTED = "predicted"  # the target dropdown's "explain the predicted class" value (as in predict.py)
SHOWN = [Input("predict-store", "data"), Input("predict-item", "value"), Input("run-store", "data"),
         Input("predict-method", "value"), Input("predict-target", "value"), Input("predict-layer", "value"),
         Input("predict-photo-run", "value")]


FAITH_HEIGHT = "330px"  # the faithfulness curve's box: its figure's height (its legend sits below the plot)


def colour_bar():
    """The overlay's colour scale, with what its ends mean."""
    return html.Div([html.Img(src=explain_figures.colorbar_url(), className="colour-bar", alt="colour scale"),
                     html.Div([html.Span("0 · ignored"), html.Span("1 · decisive")], className="colour-bar-ends")],
                    id="predict-colour-bar", className="colour-bar-box")


def trust_section():
    """The faithfulness curve and the side-by-side button, placed under the images."""
    return html.Div([
        dcc.Loading(dcc.Graph(id="predict-faith", config=figures.STATIC_GRAPH_CONFIG,
                              style={"height": FAITH_HEIGHT}), type="dot"),
        dbc.Button("Compare all methods", id="predict-compare-button", color="secondary", outline=True,
                   size="sm", className="mt-1"),
        dcc.Loading(html.Div(id="predict-compare", className="method-grid"), type="dot"),
    ], className="predict-trust")


def current(store, item_index, selected_run, use_photo_run):
    """(image uint8 28x28, run id) of the chosen item, or (None, None)."""
    item = chosen(store, item_index)
    if item is None:
        return None, None
    return decode(item["pixels"]), answering_run(item, selected_run, use_photo_run)


def target_class(explainer, image: np.ndarray, target) -> int:
    if target not in (None, PREDICTED):
        return int(target)
    return int(trust.predict_fn(explainer.model)(image[None, ..., None].astype(np.float32))[0].argmax())


def register_callbacks() -> None:
    """Register this module's callbacks for the app Dash is building now."""
    callback(Output("predict-faith", "figure"), Output("predict-faith", "style"), *SHOWN)(faithfulness_curve)
    callback(Output("predict-compare", "children"), Input("predict-compare-button", "n_clicks"), *SHOWN[:3],
             State("predict-target", "value"), State("predict-layer", "value"), State("predict-photo-run", "value"),
             prevent_initial_call=True)(compare_methods)


def faithfulness_curve(store, item_index, selected_run, method, target, layer, use_photo_run):
    """Deletion / insertion curves of the map shown above (hidden when there is none)."""
    image, run_id = current(store, item_index, selected_run, use_photo_run)
    hidden = {"display": "none"}
    if image is None or not run_id or method not in METHODS:
        return {}, hidden
    try:
        explainer = get_explainer(settings()["runs_dir"], run_id)
        cls = target_class(explainer, image, target)
        heatmap = explainer.explain(image[None], cls, method, layer if method in LAYER_METHODS else None)[0]
        curve = trust.one_image(explainer, image[..., None], cls, heatmap)
    except (RunError, ExplainError) as exc:
        logging.getLogger(__name__).info("no faithfulness curve for run %s: %s", run_id, exc)
        return {}, hidden
    return explain_figures.faithfulness_figure(curve, METHODS[method]), {"height": FAITH_HEIGHT}


def compare_methods(_clicks, store, item_index, selected_run, target, layer, use_photo_run):
    """Every method's map of the current image, each with its deletion / insertion AUC."""
    if ctx.triggered_id != "predict-compare-button":
        return []  # a new image or run: the old comparison no longer applies
    image, run_id = current(store, item_index, selected_run, use_photo_run)
    if image is None or not run_id:
        return []
    try:
        explainer = get_explainer(settings()["runs_dir"], run_id)
        cls = target_class(explainer, image, target)
        return [method_tile(explainer, image, cls, method, layer) for method in METHODS]
    except (RunError, ExplainError) as exc:
        return problem(str(exc), "Cannot compare methods")


def method_tile(explainer, image: np.ndarray, cls: int, method: str, layer):
    heatmap = explainer.explain(image[None], cls, method, layer if method in LAYER_METHODS else None)[0]
    curve = trust.one_image(explainer, image[..., None], cls, heatmap)
    return html.Figure([
        html.Img(src=png_data_url(overlay(image, heatmap)), className="method-image"),
        html.Figcaption([html.Strong(METHODS[method]), html.Br(),
                         f"deletion {curve['deletion_auc']:.2f} · insertion {curve['insertion_auc']:.2f}"]),
    ], className="method-tile")
