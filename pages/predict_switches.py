"""Predict page, part three: the photo switches (ask the ImageNet classifier too; classify photos with
the photo-tuned run) and which run answers an image. No page of its own; predict.py uses it.

The switches are in the URL when off (imagenet=0, photorun=0), so a link shows the same answer. A flip
writes the address in place, with no history entry: Back re-renders the page, which would lose the
uploaded photos. Its callbacks are registered by `register_callbacks()`, as in pages/predict_trust.py
(a helper module is imported once per process; Dash builds a fresh app per test).
"""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, clientside_callback

from workbench import list_runs
from workbench.classify import PHOTO_RUN_ID, run_for_photos
from workbench.components import HIDDEN, settings
from workbench.urlstate import FlagField, query_updater, read_query

SWITCHES = {"imagenet": FlagField(default=True),   # the URL's switch parameters (on is the default, left out)
            "photorun": FlagField(default=True)}


def read_switches(query) -> tuple[dict, list[str]]:
    """The switches' state from the page's query, and notes on malformed values (urlstate.read_query)."""
    return read_query(query, SWITCHES)


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


def switch_query(imagenet, photo_run, photo_run_class) -> dict:
    """The switches as URL parameters: "0" when off, None (left out) when on; the photo-run switch
    only where it is shown. Written into the address in the browser, and into each URL the page writes."""
    shown = {"imagenet": imagenet, "photorun": photo_run if photo_run_class != HIDDEN else True}
    return {key: None if value else "0" for key, value in shown.items()}


def register_callbacks() -> None:
    """Register this module's callbacks for the app Dash is building now."""
    callback(Output("predict-switches", "data"), Input("predict-imagenet", "value"),
             Input("predict-photo-run", "value"), State("predict-photo-run", "className"))(switch_query)
    clientside_callback(query_updater(), Output("predict-url", "search", allow_duplicate=True),
                        Output("predict-url", "href"), Input("predict-switches", "data"),
                        prevent_initial_call="initial_duplicate")
