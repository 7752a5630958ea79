"""Predict page, part three: the words under the answer (no page of its own; predict.py uses it).

`hint`: the true class of a test image, and for a flagged answer why it is flagged, the runner-up
and what may help. `imagenet_note`: for a photo, what the ImageNet view saw (workbench.classify)
and the run's own answer where the view changed it. Both are pure: the answer in, Dash components out.
"""

from __future__ import annotations

import dash_bootstrap_components as dbc
import numpy as np
from dash import html

from workbench.classify import RUNNER_UP_SHARE
from workbench.components import settings


def hint(probs: np.ndarray, names: list[str], item: dict) -> list:
    """A test image's true class as a badge; for a flagged answer, a warning that says why."""
    notes = []
    top = float(probs.max())
    photo = item.get("label") is None
    if not photo:
        right = int(probs.argmax()) == item["label"]
        notes.append(dbc.Badge(f"true class: {names[item['label']]}", color="success" if right else "danger",
                               className="me-2"))
    warnings = item.get("warnings") or []
    low = top < settings()["low_confidence"]  # the app's one threshold, shared with the JSON API
    if low or warnings:
        threshold = settings()["low_confidence"]
        opening = (f"Low confidence: the top class has only {top:.1%} (answers under {threshold:.0%} are "
                   "flagged). " if low else "Treat this answer with care. ")
        second = int(np.argsort(probs)[-2])  # a flagged photo's true class is the runner-up about as
        maybe = (f"It may also be {names[second]} ({probs[second]:.1%}). "  # often as the top class
                 if probs[second] >= RUNNER_UP_SHARE else "")
        found = [html.Ul([html.Li(f"{w[:1].upper()}{w[1:]}.") for w in warnings], className="mb-1 mt-1")] \
            if warnings else []
        why = advice(names, item) if photo else ["This test image sits between classes for this model."]
        notes.append(dbc.Alert([html.Strong(opening), maybe, *found, *why],
                               color="warning", className="low-confidence mt-2 mb-0"))
    return notes


def advice(names: list[str], item: dict) -> list:
    """For a flagged photo: what may help, then why such answers happen, folded (the answer stays short)."""
    helps = ("What lies outside your box counts as background: draw the box around the whole garment, not "
             "through it." if item.get("box") else
             "If it is one of the 10 kinds of clothing the model knows, a box drawn around it on the photo may help.")
    unlike = ("The model knows only product photos of 10 kinds of clothing (" + ", ".join(names) +
              "); a busy background, several garments or an unusual angle often give answers like this.")
    return [" " + helps, html.Details([html.Summary("Why?"), unlike], className="small mt-1")]


def imagenet_note(item: dict, own: np.ndarray, probs: np.ndarray, names: list[str]) -> list:
    """A line under the answer for a photo: what the ImageNet view saw, and the run's own answer when
    the view changed it (or why the view was skipped)."""
    seen = item.get("imagenet")
    if not seen or ("skipped" not in seen and probs is own):  # no view, or one this run's classes cannot take
        return []
    if "skipped" in seen:
        return [html.Small(f"ImageNet view skipped: {seen['skipped']}", className="imagenet-note d-block text-muted mt-2")]
    alone = int(own.argmax())
    changed = (f" The model alone says {names[alone]} ({own[alone]:.1%}); the heatmap is the model's own evidence "
               f"for the class shown." if alone != int(probs.argmax()) else "")
    return [html.Small([f"An ImageNet classifier sees “{seen['imagenet_class']}” ({seen['probability']:.1%}; garment "
                        f"names hold {seen['garment_share']:.0%} of its belief); the answer joins that with the "
                        f"model's.{changed}"], className="imagenet-note d-block text-muted mt-2")]
