"""Import a model: upload a classifier trained elsewhere (.keras, .h5, .onnx) and import it as a run.

The import runs in the background (workbench.imports, the same import as `workbench import`); the
page polls its progress, and when it is done the new run is added to the run selector and chosen.
"""

from __future__ import annotations

import base64
import binascii

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html, no_update

from workbench import WorkbenchError, list_runs
from workbench.components import problem, settings
from workbench.imports import job_status, max_model_bytes, start_import
from workbench.urlstate import merge_query

dash.register_page(__name__, path="/import", name="Import", order=10)

POLL_MS = 700  # progress refresh while an import runs
SCALES = [{"label": "work it out (try 0-1 and 0-255 on validation images)", "value": "auto"},
          {"label": "0-1", "value": "0-1"}, {"label": "0-255", "value": "0-255"},
          {"label": "imagenet (0-1, then ImageNet mean/std)", "value": "imagenet"}]


def layout(**_):
    form = dbc.Card(dbc.CardBody([
        dcc.Upload(id="import-upload", className="upload-zone",  # any file: a wrong one gets a message
                   children=html.Div(["Drop a model file here (.keras, legacy .h5, .onnx), or ",
                                      html.A("choose a file", className="link-primary")])),
        html.Div(id="import-file", className="small text-muted mt-1"),
        dbc.Label("Run id", className="mt-2"),
        dbc.Input(id="import-run-id", placeholder="e.g. my-cnn", type="text"),
        dbc.Label("Pixel scale the model was trained on", className="mt-2"),
        dcc.Dropdown(id="import-scale", options=SCALES, value="auto", clearable=False),
        dbc.Label("Class order (optional)", className="mt-2"),
        dbc.Input(id="import-class-order", type="text",
                  placeholder="the Fashion-MNIST class of each output, e.g. 0,1,2,3,4,5,6,7,8,9"),
        dbc.Button("Import", id="import-start", color="primary", className="mt-3"),
    ]))
    return html.Div([
        html.H1("Import a model", className="page-title h2"),
        html.P([f"A Fashion-MNIST classifier trained elsewhere (up to {max_model_bytes() / 2**20:.0f} MiB): "
                "its input convention is worked out from its input shape, it is evaluated once on the test "
                "set, and every page then works on it. Models that need code from the file (Lambda layers, "
                "custom objects) are refused here; import those you trust with ",
                html.Code("workbench import PATH --run-id ID --trust-model-code"), "."]),
        dbc.Row([dbc.Col(form, lg=6), dbc.Col(html.Div(id="import-status"), lg=6)]),
        dcc.Store(id="import-job"),
        dcc.Interval(id="import-poll", interval=POLL_MS, disabled=True),
    ])


@callback(Output("import-file", "children"), Input("import-upload", "filename"))
def show_file(filename):
    return f"file: {filename}" if filename else "no file chosen"


@callback(Output("import-job", "data"), Output("import-poll", "disabled"), Output("import-status", "children"),
          Input("import-start", "n_clicks"), State("import-upload", "contents"), State("import-upload", "filename"),
          State("import-run-id", "value"), State("import-scale", "value"), State("import-class-order", "value"),
          prevent_initial_call=True)
def start(_, contents, filename, run_id, scale, class_order):
    if not contents:
        return None, True, problem("choose a model file first", "Nothing to import")
    if not run_id or not run_id.strip():
        return None, True, problem("give the new run an id", "No run id")
    try:
        data = base64.b64decode(contents.partition(",")[2], validate=True)
        cfg = settings()
        job_id = start_import(cfg["runs_dir"], cfg["data_dir"], filename, data, run_id,
                              None if scale == "auto" else scale, class_order or None)
    except binascii.Error:
        return None, True, problem("the upload arrived damaged; try again", "Cannot import")
    except WorkbenchError as exc:
        return None, True, problem(str(exc), "Cannot import")
    return job_id, False, progress_view(job_status(job_id))


@callback(Output("import-status", "children", allow_duplicate=True),
          Output("import-poll", "disabled", allow_duplicate=True),
          Output("run-select", "options"), Output("run-select", "value"),
          Input("import-poll", "n_intervals"), State("import-job", "data"), prevent_initial_call=True)
def poll(_, job_id):
    if job_id is None:  # nothing started (the page was just opened): nothing to report
        return no_update, True, no_update, no_update
    status = job_status(job_id)
    if status is None:
        return problem("this import is no longer known to the server (was it restarted?)", "Import lost"), \
            True, no_update, no_update
    if status["state"] == "running":
        return progress_view(status), False, no_update, no_update
    if status["state"] == "failed":
        return progress_view(status), True, no_update, no_update
    run_ids = list_runs(settings()["runs_dir"])
    return progress_view(status), True, [{"label": r, "value": r} for r in run_ids], status["run_id"]


def progress_view(status: dict):
    steps = html.Ol([html.Li(step) for step in status["steps"]], className="small")
    if status["state"] == "running":
        head = dbc.Alert([dbc.Spinner(size="sm"), f" importing {status['filename']} as {status['run_id']}…"],
                         color="info", id="import-running")
    elif status["state"] == "done":
        head = dbc.Alert([html.Strong("Imported. "), status["message"], " ",
                          dcc.Link("Open its overview →", href="/" + merge_query("", {"run": status["run_id"]}))],
                         color="success", id="import-done")
    else:
        head = dbc.Alert([html.Strong("Import failed: "), status["message"]], color="danger",
                         className="problem", id="import-failed")
    return html.Div([head, steps])
