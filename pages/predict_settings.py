"""Predict page, part three: its settings in the URL (the photo switches, and the explanation's
method, target class, layer and opacity), and which run answers an image. No page of its own;
predict.py uses it.

A setting is in the URL when it is not the default (imagenet=0, photorun=0, method=saliency,
target=4, layer=conv2d_1, opacity=0.3), so a link shows the same answer explained the same way. A
change writes the address in place, with no history entry: Back re-renders the page, which would
lose the uploaded photos. A new image starts at its predicted class, so the page drops target= then.
A layer the run does not have falls back to the run's default with a note. Its callbacks are
registered by `register_callbacks()`, as in pages/predict_trust.py (a helper module is imported once
per process; Dash builds a fresh app per test).
"""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, clientside_callback, ctx, no_update

from workbench import CLASS_NAMES, ExplainError, RunError, list_runs
from workbench.classify import PHOTO_RUN_ID, run_for_photos
from workbench.components import HIDDEN, settings
from workbench.explain import LAYER_METHODS, METHODS, get_explainer, layer_label
from workbench.images import DEFAULT_OPACITY
from workbench.urlstate import ChoiceField, FlagField, FloatField, IntField, NameField, query_updater, read_query

PREDICTED = "predicted"   # the target dropdown's value for "the class the model predicts" (target= left out)
FIELDS = {"imagenet": FlagField(default=True),    # the URL's parameters; a default value is left out
          "photorun": FlagField(default=True),
          "method": ChoiceField(tuple(METHODS), default="gradcam"),
          "target": IntField(0, len(CLASS_NAMES) - 1),
          "layer": NameField(),                   # checked against the run's layers once it is known
          "opacity": FloatField(0.0, 1.0, default=DEFAULT_OPACITY)}


def read_settings(query) -> tuple[dict, list[str]]:
    """The settings from the page's query, and notes on malformed values (urlstate.read_query)."""
    return read_query(query, FIELDS)


def switches(state: dict) -> list:
    """The photo-run switch (shown when that run is there; test images keep the selected run) and the ImageNet one."""
    present = PHOTO_RUN_ID in list_runs(settings()["runs_dir"])
    return [dbc.Switch(id="predict-photo-run", value=present and state["photorun"],
                       className="mt-2" if present else HIDDEN,
                       label=f"Classify photos with {PHOTO_RUN_ID}, the model tuned for real photos"),
            dbc.Switch(id="predict-imagenet", value=state["imagenet"], className="mt-1",
                       label="Photos: also ask an ImageNet classifier (off: the model alone)")]


def answering_run(item: dict, selected: str | None, use_photo_run: bool) -> str | None:
    """The run that answers this item: the photo-tuned run for uploaded photos when switched on."""
    if item.get("slot") is not None and use_photo_run:
        return run_for_photos(settings()["runs_dir"]) or selected
    return selected


def valid_opacity(opacity) -> float:
    """The slider's value when it is a number in 0..1 (a hand-made request may send anything), else the default."""
    if isinstance(opacity, (int, float)) and not isinstance(opacity, bool) and 0 <= opacity <= 1:
        return float(opacity)
    return DEFAULT_OPACITY


def settings_query(imagenet, photo_run, method, target, layer, opacity, photo_run_class, layers) -> dict:
    """The settings as URL parameters, None (left out) for a default: the photo-run switch only where
    it is shown, the layer only when it is not the run's default (the first of its options).
    Written into the address in the browser, and into each URL the page writes."""
    default_layer = layers[0]["value"] if layers else None
    opacity = round(valid_opacity(opacity), 2)
    return {"imagenet": None if imagenet else "0",
            "photorun": None if photo_run or photo_run_class == HIDDEN else "0",
            "method": None if method == FIELDS["method"].default else method,
            "target": None if target in (None, PREDICTED) else str(target),
            "layer": None if layer in (None, default_layer) else layer,
            "opacity": None if opacity == DEFAULT_OPACITY else f"{opacity:g}"}


def list_layers(run_id, method, shown, linked):
    """The run's layers for the layer dropdown; the one shown stays when the run has it (the same layer
    after another run is picked), else a link's layer= when the run has it (the dropdown drops a value
    not among its options as the page opens), else the run's default, with a note on the link's layer."""
    disabled = method not in LAYER_METHODS
    if ctx.triggered_id == "predict-method":
        return no_update, no_update, disabled, no_update
    try:
        layers = get_explainer(settings()["runs_dir"], run_id).layer_choices() if run_id else []
    except (RunError, ExplainError):
        layers = []
    options = layer_options(settings()["runs_dir"], run_id, layers)
    value = next((name for name in (shown, linked) if name in layers), layers[0] if layers else None)
    note = (f"layer={linked!r} ignored: run {run_id} has no such layer; showing its default"
            if linked and layers and linked not in layers else None)
    return options, value, disabled, note


def layer_options(runs_dir, run_id: str, layers: list[str]) -> list[dict]:
    """Dropdown options "conv3_block1_out · 7×7 (default)", ..."""
    model = get_explainer(runs_dir, run_id).model if layers else None
    return [{"label": layer_label(model, name) + (" (default)" if i == 0 else ""), "value": name}
            for i, name in enumerate(layers)]


def register_callbacks() -> None:
    """Register this module's callbacks for the app Dash is building now."""
    callback(Output("predict-layer", "options"), Output("predict-layer", "value"),
             Output("predict-layer", "disabled"), Output("predict-layer-note", "children"),
             Input("run-store", "data"), Input("predict-method", "value"), State("predict-layer", "value"),
             State("predict-layer-link", "data"))(list_layers)
    callback(Output("predict-query", "data"), Input("predict-imagenet", "value"), Input("predict-photo-run", "value"),
             Input("predict-method", "value"), Input("predict-target", "value"), Input("predict-layer", "value"),
             Input("predict-opacity", "value"), State("predict-photo-run", "className"),
             State("predict-layer", "options"))(settings_query)
    clientside_callback(query_updater(), Output("predict-url", "search", allow_duplicate=True),
                        Output("predict-url", "href"), Input("predict-query", "data"),
                        prevent_initial_call="initial_duplicate")
