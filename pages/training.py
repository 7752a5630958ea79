"""Training: learning curves (loss, accuracy, learning rate) from history.csv; overlay several runs."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from workbench import RunError, artifacts, figures, list_runs
from workbench.components import no_run, problem, rows_table, settings

dash.register_page(__name__, path="/training", name="Training", order=8)

layout = html.Div([
    html.H1("Training", className="page-title h2"),
    dbc.Row([dbc.Col(dbc.Label("Runs to compare"), width="auto"),
             dbc.Col(dcc.Dropdown(id="training-runs", multi=True, placeholder="choose runs"))],
            align="center", className="mb-2"),
    html.Div(id="training-problem"),
    dcc.Graph(id="training-curves", config=figures.STATIC_GRAPH_CONFIG),
    html.H5("Last epoch", className="mt-3"),
    html.Div(id="training-summary"),
])


@callback(Output("training-runs", "options"), Output("training-runs", "value"), Input("run-store", "data"))
def offer_runs(run_id):
    run_ids = list_runs(settings()["runs_dir"])
    return [{"label": r, "value": r} for r in run_ids], [run_id] if run_id else []


@callback(Output("training-curves", "figure"), Output("training-problem", "children"),
          Output("training-summary", "children"), Input("training-runs", "value"))
def show_curves(run_ids):
    if not run_ids:
        return figures.learning_curves({}), no_run(), None
    histories, problems = {}, []
    for run_id in run_ids:
        try:
            histories[run_id] = artifacts.history(settings()["runs_dir"], run_id)
        except RunError as exc:
            problems.append(problem(str(exc), "No learning curves"))
    summary = [last_epoch(run_id, frame) for run_id, frame in histories.items()]
    return figures.learning_curves(histories), problems, rows_table(summary) if summary else None


def last_epoch(run_id: str, frame) -> dict:
    last = frame.iloc[-1]
    row = {"run": run_id, "epochs": int(last["epoch"])}
    for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if column in frame.columns:
            row[column] = float(last[column])
    if "val_accuracy" in frame.columns:
        row["best val_accuracy"] = float(frame["val_accuracy"].max())
    if "seconds" in frame.columns:
        row["minutes"] = f"{float(frame['seconds'].sum()) / 60:.1f}"
    return row
