"""Teach: a classroom view for a projector (1280×720 without scrolling), large type and images.

Guess first: the class is hidden until "Reveal" — the class asks, then the model answers, with
its Grad-CAM. Below: what each conv block sees of the image (its most active feature maps), and
what the model thinks each class looks like (activation maximisation, computed once per run).
The image is in the URL (/teach?image=123): a link shows the class the same image, and Back
returns to the previous one. "Guess first" switched off is there too (guess=0), written in place.
"""

from __future__ import annotations

import random

import dash
import dash_bootstrap_components as dbc
import numpy as np
from dash import Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update

from workbench import CLASS_NAMES, TEST_IMAGES, DataError, ExplainError, RunError, artifacts, teaching
from workbench.classify import predict_images
from workbench.components import link_notes, no_run, problem, settings
from workbench.explain import get_explainer
from workbench.images import overlay, png_data_url
from workbench.urlstate import FlagField, IntField, merge_query, query_updater, read_query

dash.register_page(__name__, path="/teach", name="Teach", order=9)

FIELDS = {"image": IntField(0, TEST_IMAGES - 1),  # a malformed image= is ignored: a random image instead
          "guess": FlagField(default=True)}       # guess first (on: left out of the URL)


def layout(**query):
    state, notes = read_query(query, FIELDS)
    return html.Div([
        dcc.Location(id="teach-url", refresh=False),
        link_notes(notes, "teach"),  # a mistyped image= says so (a random image is shown instead)
        html.Div([
            dbc.Button("Next image", id="teach-next", color="primary", size="lg", className="me-2"),
            dbc.Switch(id="teach-guess", value=state["guess"], label="Guess first", className="d-inline-block me-3 teach-switch"),
            dbc.Button("Reveal", id="teach-reveal", color="success", size="lg", className="me-2"),
            dbc.Button("What does the model think each class looks like?", id="teach-classes", color="link"),
        ], className="teach-controls"),
        dbc.Row([
            dbc.Col(html.Figure([html.Img(id="teach-image", className="teach-image"),
                                 html.Figcaption(id="teach-truth")]), xs=6, md=3),
            dbc.Col(html.Div(id="teach-answer", className="teach-answer"), xs=6, md=3),
            dbc.Col(html.Div(id="teach-layers", className="teach-layers"), xs=12, md=6),
        ], className="g-3"),
        html.Div(id="teach-class-images", className="teach-classes"),
        dcc.Store(id="teach-index", data=state["image"]), dcc.Store(id="teach-query"),
        dcc.Store(id="teach-scrolled"),
    ], className="teach")


@callback(Output("teach-index", "data"), Output("teach-url", "search"), Input("teach-next", "n_clicks"),
          Input("teach-url", "search"), State("teach-index", "data"))
def next_image(clicks, search, index):
    """The image: a random one on Next (written into the URL: a history entry) or when the page opens
    without one; the URL's after Back or Forward. (When the page opens, Dash may report any input
    as the trigger, so the values decide, not the trigger alone.)"""
    if ctx.triggered_id == "teach-next" and clicks:
        index = random.randrange(TEST_IMAGES)
        return index, merge_query(search, {"image": index})
    wanted = read_query(search, FIELDS)[0]["image"]
    if wanted is not None and wanted != index:
        return wanted, no_update
    return (random.randrange(TEST_IMAGES) if index is None else no_update), no_update


@callback(Output("teach-query", "data"), Input("teach-index", "data"), Input("teach-guess", "value"))
def teach_query(index, guess_first):
    """The image shown and the guess switch as URL parameters (None: left out)."""
    return {"image": index, "guess": None if guess_first else "0"}


# ... written in place (replaceState): the image the page opened with adds no history entry, and a
# flipped switch none either; Next writes its own entry (next_image).
clientside_callback(query_updater(), Output("teach-url", "search", allow_duplicate=True), Output("teach-url", "href"),
                    Input("teach-query", "data"), prevent_initial_call="initial_duplicate")


@callback(Output("teach-image", "src"), Output("teach-truth", "children"), Output("teach-layers", "children"),
          Input("teach-index", "data"), Input("run-store", "data"))
def show_image(index, run_id):
    """The image, big; its true class stays hidden while guessing; the layers' feature maps."""
    if index is None:
        return no_update, no_update, no_update
    try:
        image = artifacts.test_images(settings()["data_dir"])[index]
    except DataError as exc:
        return None, problem(str(exc), "No test images"), None
    layers = layer_view(run_id, image) if run_id else no_run()
    return png_data_url(image, scale=10), f"test image {index}", layers


# Reveal only while guessing: without "Guess first" the answer shows at once
clientside_callback("function(guess) { return guess ? 'me-2' : 'me-2 d-none'; }",
                    Output("teach-reveal", "className"), Input("teach-guess", "value"))


@callback(Output("teach-answer", "children"), Input("teach-reveal", "n_clicks"), Input("teach-guess", "value"),
          Input("teach-index", "data"), Input("run-store", "data"))
def answer(_reveal, guess_first, index, run_id):
    """The model's answer and its Grad-CAM: at once, or after Reveal in guess-first mode."""
    if index is None or not run_id:
        return None
    if guess_first and ctx.triggered_id != "teach-reveal":
        return html.Div("What is it? Guess, then press Reveal.", id="teach-hidden", className="teach-prompt")
    cfg = settings()
    image = artifacts.test_images(cfg["data_dir"])[index]
    try:
        probs = predict_images(cfg["runs_dir"], run_id, image[None], cfg["backend"])[0]
        top = int(probs.argmax())
        heatmap = get_explainer(cfg["runs_dir"], run_id).explain(image[None], top, "gradcam")[0]
    except (RunError, ExplainError) as exc:
        return problem(str(exc))
    truth = int(artifacts.test_labels(cfg["data_dir"])[index])
    verdict = "right" if top == truth else f"wrong: it is a {CLASS_NAMES[truth]}"
    return html.Div([html.Div(f"{CLASS_NAMES[top]}", id="teach-predicted", className="teach-class"),
                     html.Div(f"{probs[top]:.0%} sure · {verdict}", className="teach-verdict"),
                     html.Img(src=png_data_url(overlay(image, heatmap), scale=6), className="teach-cam"),
                     html.Div("where it looked (Grad-CAM)", className="teach-note")])


def layer_view(run_id: str, image: np.ndarray):
    """Each conv block's most active feature maps: edges first, garment parts later."""
    try:
        layers = teaching.feature_maps(settings()["runs_dir"], run_id, image)
    except (RunError, ExplainError) as exc:
        return problem(str(exc), "No layer view")
    return [html.Div("What each layer sees", className="teach-heading")] + [
        html.Div([html.Span(label, className="teach-layer-label"),
                  *[html.Img(src=png_data_url(m, scale=max(1, 56 // m.shape[0])), className="teach-map")
                    for m in maps]], className="teach-layer") for label, maps in layers]


@callback(Output("teach-class-images", "children"), Input("teach-classes", "n_clicks"),
          Input("run-store", "data"), prevent_initial_call=True)
def class_pictures(_clicks, run_id):
    """Activation maximisation per class (computed once per run, then read from the run folder);
    another run clears them, so they never show the previous run's pictures."""
    if ctx.triggered_id == "run-store":
        return None
    if not run_id:
        return no_run()
    try:
        images = teaching.class_images(settings()["runs_dir"], run_id)
    except (RunError, ExplainError) as exc:
        return problem(str(exc))
    return [html.Figure([html.Img(src=png_data_url(img, scale=3), className="teach-map"),
                         html.Figcaption(CLASS_NAMES[i])], className="teach-class-image")
            for i, img in enumerate(images)]


# Class pictures asked for: bring them whole into view (on a 1280x720 projector their captions fall
# at the bottom edge); cleared ones (another run) move nothing.
clientside_callback("""
function(children) {
    const box = document.getElementById("teach-class-images");
    if (!children || !box) { return window.dash_clientside.no_update; }
    box.scrollIntoView({block: "nearest"});
    return Date.now();
}""", Output("teach-scrolled", "data"), Input("teach-class-images", "children"), prevent_initial_call=True)
