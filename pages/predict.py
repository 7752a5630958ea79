"""Predict: upload photos (or pick a test image), see what the model sees, its confidence and why.

The store holds the prepared 28x28 images (784 bytes each, base64), never the uploads themselves
(built by pages/predict_loading.py).
`/predict?test=123` opens test image 123 (the Errors page links here). "Random test image" writes
its number there, so it can be shared and Back returns to the previous one. An upload writes how
many photos it showed instead (photos=2, a history entry): uploads cannot be in a link, so an
address with photos= (Back or Forward to it, a reload, a shared link) says to upload them again.
The photo switches and the explanation's settings are in the URL when not the default (imagenet=0,
method=saliency, target=4, ...; pages/predict_settings.py).
"""

from __future__ import annotations

import json
import logging

import dash
import dash_bootstrap_components as dbc
import numpy as np
from dash import Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update

from workbench import CLASS_NAMES, ExplainError, ImageError, artifacts, figures
from workbench.classify import familiarity_warnings, join_imagenet, predict_images, without_imagenet
from workbench.components import HIDDEN, link_notes, no_run, problem, settings
from workbench.explain import METHODS, get_explainer
from workbench.framing import FINDER
from workbench.images import overlay, png_data_url
from workbench.preprocess import prepare_image
from workbench.uploads import box_of, chosen, decode, drawn_box, photo_bytes, prepared_fields, step_image
from workbench.urlstate import merge_query, parse_query

from pages.predict_answer import hint, imagenet_note
from pages.predict_loading import (MAX_FILES, in_name_order, load_uploads, message_title, random_test_index,
                                   test_from_url, uploads_gone)
from pages.predict_settings import (PREDICTED, answering_run, read_settings, register_callbacks as register_settings,
                                   switches, valid_opacity)
from pages.predict_trust import colour_bar, register_callbacks as register_trust, trust_section

dash.register_page(__name__, path="/predict", name="Predict", order=1)
register_trust()     # the helper modules' callbacks, for the app being built (see pages/predict_trust.py)
register_settings()

BOX_HINT = [html.Span("Drag a box around the garment to look only there.", className="pointer-only"),
            html.Span("Tap Draw a box, then drag around the garment to look only there.", className="touch-only")]
# (a swipe on a touch screen scrolls: there drawing is a button)
PHOTO_HINT = ["Green: the garment found. Not right? ", *BOX_HINT]
POOR_FIND = "Green: the little that was found ({:.0%} of the picture), probably not the whole garment. "
DRAW = "Draw a box"
EMPTY_HINT = ("Upload a photo or pick a random test image: its prediction, the 28×28 image the model "
              "sees and why it decided appear here.")
WORKING = "Reading your photo and asking the model…"
REPLACE_UPLOADS = ("Show a random test image instead of your uploaded photos? They are not kept once replaced: "
                   "to see them again you would upload them again.")


def layout(test: str | None = None, photos: str | None = None, **query):
    state, notes = read_settings(query)
    initial = {"items": [], "errors": []}
    if test is not None:
        initial = test_from_url(test)
    elif photos is not None:
        initial = uploads_gone(photos)
    empty, results, _ = visibility(bool(initial["items"]))
    controls = dbc.Card(dbc.CardBody([
        dbc.Label("Explanation"), dbc.RadioItems(id="predict-method", value=state["method"], inline=True,
                                                 options=[{"label": v, "value": k} for k, v in METHODS.items()]),
        dbc.Label("Target class", className="mt-2"),
        dcc.Dropdown(id="predict-target", value=PREDICTED if state["target"] is None else state["target"],
                     clearable=False, options=target_options(CLASS_NAMES)),
        dbc.Label("Layer", className="mt-2"), dcc.Dropdown(id="predict-layer", value=state["layer"], clearable=False),
        html.Div(id="predict-layer-note", className="small text-warning"),
        dbc.Label("Overlay opacity", className="mt-2"),
        dcc.Slider(id="predict-opacity", min=0, max=1, step=0.05, value=state["opacity"],
                   marks={0: "0", 0.5: "½", 1: "1"}),
    ]), className="mb-3")
    return html.Div([
        dcc.Location(id="predict-url", refresh=False),
        html.H1("Predict", className="page-title h2"),
        link_notes(notes, "predict"),  # the settings' query then drops a malformed value from the URL
        dbc.Row([
            dbc.Col([  # under lg its two parts take turns with the results: the answer before the photo.
                # The upload has no accept="image/*": a file it would drop unseen (a .txt) gets a message instead.
                html.Div([
                    dcc.Upload(id="predict-upload", multiple=True, className="upload-zone", children=html.Div(
                        ["Drag and drop photos here, or ", html.A("choose files", className="link-primary")])),
                    dbc.Button("Random test image", id="predict-random", color="secondary", outline=True,
                               className="mt-2 w-100"),
                    dcc.ConfirmDialog(id="predict-random-confirm", message=REPLACE_UPLOADS),
                    *switches(state),
                    html.Div(id="predict-message", className="mt-2"),
                    dbc.RadioItems(id="predict-item", options=[], value=0, className="mt-2 item-list"),
                ], className="predict-controls"),
                html.Div([
                    html.Div([
                        html.Div(PHOTO_HINT, id="predict-photo-hint", className="small text-muted"),
                        dcc.Graph(id="predict-photo",
                                  config={**figures.GRAPH_CONFIG, "modeBarButtons": [["drawrect"]]}),
                        dbc.Button(DRAW, id="predict-draw", size="sm", color="secondary", outline=True,
                                   className="touch-only me-2"),
                        dbc.Button("Use the whole photo", id="predict-whole", size="sm", color="link",
                                   className="p-0"),
                    ], id="predict-photo-box", className=HIDDEN),
                    html.Div(id="predict-steps", className="mt-2"),
                ], className="predict-found"),
            ], md=12, lg=3, className="predict-left"),
            dbc.Col(html.Div(EMPTY_HINT, id="predict-empty-hint", className="empty-state"), id="predict-empty",
                    md=12, lg=9, className=empty),
            dbc.Col([
                html.Div(id="predict-caption", className="predict-caption"),
                dcc.Loading(dcc.Graph(id="predict-bars", config=figures.STATIC_GRAPH_CONFIG), type="dot"),
                html.Div(id="predict-hint"),
                dbc.Button("Why not …?", id="predict-whynot", color="link", className="p-0"),
                html.Div("Click anywhere on a class's row to explain that class instead.", className="small text-muted"),
            ], id="predict-result-bars", md=6, lg=4, className=results),
            dbc.Col([
                dcc.Loading(html.Div([
                    html.Figure([html.Img(id="predict-input", className="big-image"),
                                 html.Figcaption("what the model sees (28×28)")]),
                    html.Figure([html.Img(id="predict-cam", className="big-image"),
                                 html.Figcaption(id="predict-cam-caption")]),
                ], className="image-pair"), type="circle", delay_show=150,
                    overlay_style={"visibility": "visible", "opacity": 0.35}),
                colour_bar(),
                controls,
                trust_section(),
            ], id="predict-result-images", md=6, lg=5, className=results),
        ]),
        dcc.Store(id="predict-store", data=initial),
        dcc.Store(id="predict-photos"),  # data URLs of the accepted uploads: redrawn and re-cropped from here
        dcc.Store(id="predict-probs"),
        dcc.Store(id="predict-touch"),  # a touch screen (coarse pointer): set in the browser as the page opens
        dcc.Store(id="predict-layer-link", data=state["layer"]),  # a link's layer=, till the run's layers are known
        dcc.Store(id="predict-query"),  # the settings as URL parameters ({"imagenet": "0" or None, ...})
    ])


# ---------------------------------------------------------------------------------------------
# Loading images (what goes into the store: pages/predict_loading.py)

@callback(Output("predict-random-confirm", "displayed"), Input("predict-random", "n_clicks"),
          State("predict-photos", "data"), prevent_initial_call=True)
def ask_before_replacing_uploads(_clicks, photos):
    """Uploaded photos cannot come back from the URL: a random test image replaces them only when confirmed."""
    return bool(photos)


@callback(Output("predict-store", "data"), Output("predict-item", "value"), Output("predict-photos", "data"),
          Output("predict-url", "search"), Input("predict-upload", "contents"), Input("predict-random", "n_clicks"),
          Input("predict-random-confirm", "submit_n_clicks"), Input("predict-url", "search"),
          State("predict-upload", "filename"), State("predict-store", "data"), State("predict-photos", "data"),
          State("predict-query", "data"), State("run-store", "data"), prevent_initial_call=True)
def load_images(contents, _clicks, _confirmed, search, filenames, store, photos, settings_query, run_id):
    """New images replace the old ones; an upload with no usable image keeps the earlier results. The
    test image shown is in the URL (test=N), so Back and Forward (which change it) show theirs. A
    random test image replaces uploaded photos only once the user confirms (ask_before_replacing_uploads)."""
    if ctx.triggered_id == "predict-url":
        test = parse_query(search).get("test")
        if test is None or (store or {}).get("test") == test:  # an upload's entry, or shown already
            return (no_update,) * 4
        return test_from_url(test), 0, None, no_update
    if ctx.triggered_id == "predict-random" and photos:  # the dialog asks first
        return (no_update,) * 4
    # written in the browser since this page's address was read; a new image starts at its predicted class
    keep = {"run": run_id, **(settings_query or {}), "target": None}
    if ctx.triggered_id in ("predict-random", "predict-random-confirm"):
        index = str(random_test_index())
        return test_from_url(index), 0, None, merge_query(search, {"test": index, "photos": None, **keep})
    if not contents:
        return (no_update,) * 4
    contents, filenames = in_name_order(contents, filenames or [f"upload {i + 1}" for i in range(len(contents))])
    loaded = load_uploads(contents, filenames)
    if not loaded["items"]:
        kept = (store or {}).get("items", [])
        title = "Upload rejected; the result shown is still your earlier image" if kept else "Upload rejected"
        return ({"items": kept, "errors": loaded["errors"], "title": title, "test": (store or {}).get("test")},
                no_update, no_update, no_update)
    url = merge_query(search, {"test": None, "photos": len(loaded["items"]), **keep})  # a history entry
    return loaded, 0, contents[:MAX_FILES], url


@callback(Output("predict-message", "children"), Output("predict-item", "options"),
          Input("predict-store", "data"))
def list_items(store):
    store = store or {}
    messages = [problem(e, message_title(store)) for e in store.get("errors", [])]
    items = store.get("items", [])
    options = [{"label": item["name"], "value": i} for i, item in enumerate(items)] if len(items) > 1 else []
    return messages, options


@callback(Output("predict-steps", "children"), Output("predict-photo", "figure"),
          Output("predict-photo-box", "className"), Output("predict-draw", "children"),
          Output("predict-photo-hint", "children"),
          Input("predict-item", "value"), Input("predict-store", "data"), State("predict-photos", "data"),
          State("predict-touch", "data"))
def show_steps(item_index, store, photos, touch):
    """The chosen upload with the found outline, and its preprocessing steps (computed again: the
    store keeps no big images)."""
    item = chosen(store, item_index)
    data = photo_bytes(item, photos)
    try:
        prepared = prepare_image(data, box=box_of(item)) if data is not None else None
    except ImageError:
        prepared = None
    if prepared is None:
        return [], empty_figure(""), HIDDEN, DRAW, PHOTO_HINT
    original = prepared.steps[0][1]
    photo = figures.photo_with_outline(original, prepared.outline, original.shape[1] / prepared.image_size[0],
                                       box_of(item), touch=bool(touch))
    tiles = [html.Figure([html.Img(src=png_data_url(step_image(image), scale=1), className="step-image"),
                          html.Figcaption(name)], className="step") for name, image in prepared.steps]
    note = " (light background: intensities inverted)" if item.get("inverted") else ""
    poor = prepared.method == "finder" and prepared.found_fraction < FINDER.poor_fraction  # flagged as a poor find
    hint = [POOR_FIND.format(prepared.found_fraction), *BOX_HINT] if poor else PHOTO_HINT
    return [html.Div("Preprocessing" + note, className="small text-muted"), html.Div(tiles, className="steps")], \
        photo, "", DRAW, hint


# The first upload's answer takes a second or two: till then the empty result area says it is working
# (set in the browser at once); once the answer or a refusal is drawn, its className is set and the hint is back.
clientside_callback("function(contents) { return (contents && contents.length) ? " + json.dumps(WORKING) +
                    " : window.dash_clientside.no_update; }",
                    Output("predict-empty-hint", "children"), Input("predict-upload", "contents"),
                    prevent_initial_call=True)
clientside_callback("function(_) { return " + json.dumps(EMPTY_HINT) + "; }",
                    Output("predict-empty-hint", "children", allow_duplicate=True), Input("predict-empty", "className"),
                    prevent_initial_call=True)


# A touch screen: the photo scrolls with the page until "Draw a box" turns drawing on (until the
# photo is drawn again, with the new box).
clientside_callback("function(_) { return window.matchMedia('(pointer: coarse)').matches; }",
                    Output("predict-touch", "data"), Input("predict-url", "pathname"))
clientside_callback("""
function(_clicks) {
    const graph = document.querySelector('#predict-photo .js-plotly-plot');
    if (!graph) { return window.dash_clientside.no_update; }
    window.Plotly.relayout(graph, {dragmode: 'drawrect'});
    return 'Now drag on the photo';
}""", Output("predict-draw", "children", allow_duplicate=True), Input("predict-draw", "n_clicks"),
    prevent_initial_call=True)


@callback(Output("predict-store", "data", allow_duplicate=True),
          Input("predict-photo", "relayoutData"), Input("predict-whole", "n_clicks"),
          State("predict-store", "data"), State("predict-item", "value"), State("predict-photos", "data"),
          prevent_initial_call=True)
def crop(relayout, _whole, store, item_index, photos):
    """Look for the garment again, inside the box the user drew (or in the whole photo)."""
    item = chosen(store, item_index)
    data = photo_bytes(item, photos)
    if data is None:
        return no_update
    box = None if ctx.triggered_id == "predict-whole" else drawn_box(relayout, item)
    if box is None and (ctx.triggered_id != "predict-whole" or item.get("box") is None):
        return no_update
    try:
        prepared = prepare_image(data, box=box)
    except ImageError as exc:
        return {**store, "errors": [f"{item['name']}: inside the box you drew: {exc}"],
                "title": "The box was not used; the result shown is unchanged"}
    items = [dict(it, box=list(box) if box else None, **prepared_fields(prepared)) if it is item else it
             for it in store["items"]]
    return {**store, "items": items, "errors": []}


# ---------------------------------------------------------------------------------------------
# Prediction and explanation

@callback(Output("predict-target", "value"),
          Input("predict-bars", "clickData"), Input("predict-whynot", "n_clicks"),
          Input("predict-store", "data"), Input("predict-item", "value"), State("predict-probs", "data"),
          State("predict-target", "value"), prevent_initial_call=True)
def choose_target(click, _whynot, _store, _item, probs, target):
    """A clicked class row; "Why not X?" (the runner-up), which then leads back to the predicted class;
    a new image starts at its predicted class."""
    if ctx.triggered_id == "predict-bars" and click:
        return int(click["points"][0]["pointIndex"])
    if ctx.triggered_id == "predict-whynot" and probs:
        return int(np.argsort(probs)[-2]) if target in (None, PREDICTED, int(np.argmax(probs))) else PREDICTED
    return PREDICTED


@callback(Output("predict-input", "src"), Output("predict-cam", "src"), Output("predict-cam-caption", "children"),
          Output("predict-bars", "figure"), Output("predict-hint", "children"), Output("predict-whynot", "children"),
          Output("predict-probs", "data"), Output("predict-target", "options"),
          Output("predict-empty", "className"), Output("predict-result-bars", "className"),
          Output("predict-result-images", "className"),
          Input("predict-store", "data"), Input("predict-item", "value"), Input("run-store", "data"),
          Input("predict-method", "value"), Input("predict-target", "value"), Input("predict-layer", "value"),
          Input("predict-opacity", "value"), Input("predict-photo-run", "value"), Input("predict-imagenet", "value"))
def explain_item(store, item_index, selected_run, method, target, layer, opacity, use_photo_run, use_imagenet):
    """Everything right of the upload for the chosen image; before there is one, only a hint."""
    item = chosen(store, item_index)
    if item is None:  # nothing uploaded yet, or every upload rejected: no result (and no stale one)
        return (None, None, "", empty_figure(""), None, "", None, [], *visibility(False))
    run_id = answering_run(item, selected_run, use_photo_run)
    if use_imagenet is False:  # the model alone: the photo's stored ImageNet view is left out
        item = without_imagenet(item)
    image = decode(item["pixels"])
    if not run_id:
        return (png_data_url(image), None, "", empty_figure(""), no_run(), "", None, [], *visibility(True))
    cfg = settings()
    names = artifacts.class_names(cfg["runs_dir"], run_id)
    try:
        own = predict_images(cfg["runs_dir"], run_id, image[None], cfg["backend"])[0]
        probs = join_imagenet(own, item, names)
        unfamiliar = familiarity_warnings(cfg["runs_dir"], run_id, image[None], cfg["backend"])[0]
        top = int(probs.argmax())
        cls = top if target in (None, PREDICTED) else int(target)
        heatmap = explain_or_why_not(cfg["runs_dir"], run_id, image, cls, method, layer)
    except Exception as exc:  # RunError, ExplainError, an export or runtime error: show it, keep going
        logging.getLogger(__name__).warning("predict failed for run %s: %s", run_id, exc)
        return (png_data_url(image), None, "", empty_figure(""), problem(str(exc)), "", None, [],
                *visibility(True))
    runner_up = int(np.argsort(probs)[-2])
    caption = f"{METHODS[method]} for {names[cls]}" + (" (predicted)" if cls == top else "")
    if isinstance(heatmap, str):  # explanations are off for this run (an imported MLP or ONNX model)
        caption, heatmap = heatmap, np.zeros(image.shape, np.float32)
    elif heatmap.max() <= 0:
        caption += ": no region speaks for this class"
    options = target_options(names, names[top])
    shown = overlay(image, heatmap, valid_opacity(opacity))
    bars = figures.confidence_bars(probs, names, None if cls == top else cls)
    hinted = {**item, "warnings": [*(item.get("warnings") or []), *unfamiliar]}
    return (png_data_url(image), png_data_url(shown), caption, bars,
            hint(probs, names, hinted) + imagenet_note(item, own, probs, names),
            f"Why not {names[runner_up]}?" if cls == top else f"← Back to {names[top]} (predicted)",
            probs.round(5).tolist(), options, *visibility(True))


def explain_or_why_not(runs_dir, run_id: str, image: np.ndarray, cls: int, method: str, layer):
    """The heatmap, or the reason explanations are off for this run (ExplainError "explanations_off")."""
    try:
        return get_explainer(runs_dir, run_id).explain(image[None], cls, method, layer)[0]
    except ExplainError as exc:
        if exc.code != "explanations_off":
            raise
        return str(exc)


def visibility(has_item: bool) -> tuple[str, str, str]:
    """classNames of the empty-state hint and the two result columns."""
    return (HIDDEN, "", "") if has_item else ("", HIDDEN, HIDDEN)


def target_options(names, predicted: str = "") -> list[dict]:
    first = f"predicted ({predicted})" if predicted else "predicted class"
    return [{"label": first, "value": PREDICTED}] + [{"label": n, "value": i} for i, n in enumerate(names)]


@callback(Output("predict-caption", "children"), Input("predict-store", "data"), Input("predict-item", "value"),
          Input("run-store", "data"), Input("predict-photo-run", "value"))
def caption(store, item_index, selected_run, use_photo_run):
    """Which image this is (a test image's index and true class, or the photo's name and crop) and
    the run that answers it."""
    item = chosen(store, item_index)
    if item is None:
        return ""
    run_id = answering_run(item, selected_run, use_photo_run)
    run = html.Span(f" · run {run_id}", className="text-muted") if run_id else ""
    if item.get("label") is not None:
        return [html.Strong(item["name"]), f" · true class: {CLASS_NAMES[item['label']]}", run]
    return [html.Strong(item["name"]), " · inside your box" if item.get("box") else "", run]


def empty_figure(message: str):
    fig = figures.go.Figure()
    fig.update_layout(height=320, xaxis_visible=False, yaxis_visible=False, plot_bgcolor="white",
                      annotations=[dict(text=message, showarrow=False, font=dict(size=14, color="#6c757d"))]
                      if message else [])
    return fig
