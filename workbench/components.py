"""Pieces every page uses: the app's settings for the current request, and small shared widgets.

    cfg = settings()                 # runs_dir, backend, data_dir, low_confidence of this app
    problem("file is damaged")       # a visible, specific error in the page
    metric_card("accuracy", "93.5 %"), rows_table(rows), no_run()
    link_notes(notes, "map")         # "Part of the link was ignored: ..." (urlstate.read_query's notes)
    className=HIDDEN                 # a part of a page not shown (yet)
"""

from __future__ import annotations

from pathlib import Path

import dash_bootstrap_components as dbc
import flask
from dash import html

from model import runs

HIDDEN = "d-none"  # Bootstrap's className for a part of a page not shown (yet): a result before its input


def settings() -> dict:
    """runs_dir, backend, data_dir and low_confidence threshold of the app answering the current request."""
    config = flask.current_app.config
    return {"runs_dir": Path(config.get("WORKBENCH_RUNS_DIR") or runs.DEFAULT_RUNS_DIR),
            "backend": config.get("WORKBENCH_BACKEND") or "keras",
            "data_dir": config.get("WORKBENCH_DATA_DIR"),
            "low_confidence": config["WORKBENCH_LOW_CONFIDENCE"]}


def problem(message: str, title: str = "Cannot show this") -> dbc.Alert:
    """A visible, specific error in the page (bad upload, broken run file ...)."""
    return dbc.Alert([html.Strong(title + ": "), message], color="danger", className="problem")


def no_run() -> dbc.Alert:
    return dbc.Alert("No run selected: train one with `workbench train` or pick a runs folder "
                     "with `workbench serve --runs-dir`.", color="warning", className="problem")


def link_notes(notes: list[str], prefix: str) -> dbc.Alert | None:
    """What of the page's URL was ignored (urlstate.read_query's notes) as a warning with id
    `<prefix>-url-note`; None when nothing was. The page then writes its URL without those values."""
    if not notes:
        return None
    return dbc.Alert(["Part of the link was ignored: ", "; ".join(notes), "."], color="warning",
                     dismissable=True, className="problem", id=f"{prefix}-url-note")


def metric_card(label: str, value: str, note: str = "") -> dbc.Card:
    return dbc.Card(dbc.CardBody([html.Div(label, className="metric-label"),
                                  html.Div(value, className="metric-value"),
                                  html.Div(note, className="metric-note")]), className="metric-card")


def training_card(metrics: dict, config: dict) -> dbc.Card:
    """How the run was trained: minutes and images/s, "imported" for a model trained elsewhere, or
    "not recorded" when the history that gives them was lost."""
    if runs.is_imported(config):
        return metric_card("training", "imported", str(config["imported"].get("source", "?")))
    if "train_seconds" not in metrics or "train_images_per_second" not in metrics:
        return metric_card("training", "not recorded", "no training time in metrics.json")
    return metric_card("training", f"{metrics['train_seconds'] / 60:.1f} min",
                       f"{metrics['train_images_per_second']:,.0f} img/s")


def rows_table(rows: list[dict], columns: list[str] | None = None, table_id: str | None = None) -> dbc.Table:
    columns = columns or (list(rows[0]) if rows else [])
    head = html.Thead(html.Tr([html.Th(c) for c in columns]))
    body = html.Tbody([html.Tr([html.Td(_cell(row.get(c))) for c in columns]) for row in rows])
    extra = {"id": table_id} if table_id else {}
    return dbc.Table([head, body], striped=True, hover=True, size="sm", className="rows-table",
                     responsive=True, **extra)  # a wide table scrolls in its own box, not the page


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)
