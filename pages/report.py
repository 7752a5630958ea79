"""Model report: test metrics with their interval, calibration, architecture and the full config."""

from __future__ import annotations

import json

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from workbench import DataError, ExplainError, ExportError, RunError, artifacts, explain_figures, figures, trust
from workbench.images import colorize, png_data_url
from workbench.components import metric_card, no_run, problem, rows_table, settings, training_card
from workbench.explain import explanations_off
from workbench.inference import get_predictor

dash.register_page(__name__, path="/report", name="Report", order=7)

layout = html.Div([html.H1("Model report", className="page-title h2"),
                   dcc.Loading(html.Div(id="report-body"), type="dot")])


@callback(Output("report-body", "children"), Input("run-store", "data"))
def show_report(run_id):
    if not run_id:
        return no_run()
    runs_dir = settings()["runs_dir"]
    return [metrics_section(runs_dir, run_id), trust_section(runs_dir, run_id),
            architecture_section(runs_dir, run_id), config_section(runs_dir, run_id)]


def metrics_section(runs_dir, run_id: str):
    try:
        m = artifacts.metrics(runs_dir, run_id)
    except RunError as exc:
        return problem(str(exc), "No metrics")
    try:
        config = artifacts.config(runs_dir, run_id)
    except RunError:  # the configuration section below says what is wrong with it
        config = {}
    lo, hi = m.get("test_accuracy_ci95", [float("nan")] * 2)
    cards = dbc.Row([dbc.Col(c, xs=6, lg=3) for c in (
        metric_card("test accuracy", f"{m['test_accuracy']:.2%}", f"95% CI {lo:.2%} – {hi:.2%}"),
        metric_card("macro F1", f"{m.get('macro_f1', float('nan')):.3f}", f"n = {m.get('n_test', '?')}"),
        metric_card("expected calibration error", f"{m.get('ece', float('nan')):.3f}", "0 = perfectly calibrated"),
        training_card(m, config))], className="g-3 mb-3")
    names = artifacts.class_names(runs_dir, run_id)
    reliability = (dcc.Graph(id="report-reliability", figure=figures.reliability_diagram(m["reliability"]),
                             config=figures.STATIC_GRAPH_CONFIG)
                   if "reliability" in m else problem("metrics.json has no reliability bins", "No diagram"))
    per_class = rows_table(figures.per_class_rows(m.get("per_class", {}), names))
    return html.Div([cards, dbc.Row([dbc.Col(reliability, lg=6), dbc.Col(per_class, lg=6)])])


def trust_section(runs_dir, run_id: str):
    """Faithfulness per explanation method and the sanity check, from the run's cached table."""
    title = html.H4("Can its explanations be trusted?", className="section-title")
    table = trust.read_table(runs_dir, run_id)
    try:
        explanations_off(run_id, artifacts.config(runs_dir, run_id))
    except ExplainError as exc:  # nothing to measure: say why, not how to measure it
        return html.Div([title, html.P(str(exc), id="report-trust")])
    except RunError:
        pass  # a broken config: the configuration section says so
    if table is None:
        return html.Div([title, html.P(["Not measured yet for this run: ",
                                        html.Code(artifacts.command_line(
                                            runs_dir, run_id, "python benchmarks/faithfulness.py --run")),
                                        " scores every method once (a few minutes) and the table appears here."],
                                       id="report-trust")])
    note = (f"{table['n_images']} fixed test images, map of the predicted class; pixels deleted to "
            f"{table['baseline']} or inserted into a black image in the map's order, most important first. "
            "Mean ± 95% interval; the random map is the floor.")
    names = artifacts.class_names(runs_dir, run_id)
    return html.Div([title, html.P(note, className="small text-muted"),
                     dbc.Row([dbc.Col(rows_table(explain_figures.auc_rows(table), table_id="report-trust"), lg=6),
                              dbc.Col([dcc.Graph(id="report-sanity", config=figures.STATIC_GRAPH_CONFIG,
                                                 figure=explain_figures.sanity_figure(table["sanity"])),
                                       same_maps_note(table)], lg=6)]),
                     html.Details([html.Summary("deletion AUC per predicted class"),
                                   rows_table(explain_figures.per_class_rows(table, names))]),
                     dbc.Button("Class-average Grad-CAM (correct vs wrong)", id="report-average-button",
                                color="link", className="p-0"),
                     dcc.Loading(html.Div(id="report-average", className="method-grid"), type="dot")])


def same_maps_note(table: dict):
    """Methods that gave the same maps (one line hides the other), and why that can happen."""
    pairs = explain_figures.same_maps(table)
    if not pairs:
        return None
    named = "; ".join(f"{a} and {b}" for a, b in pairs)
    return html.P(f"{named}: the same maps for this model (every score agrees to 4 decimals, so one line hides "
                  "the other). That happens where the class score's gradient is the same at every position of "
                  "the layer, as in front of a global average pooling: Grad-CAM++'s position weights are then "
                  "all equal, and it reduces to Layer-CAM's positive-gradient weighting.",
                  className="small text-muted", id="report-same-maps")


@callback(Output("report-average", "children"), Input("report-average-button", "n_clicks"),
          State("run-store", "data"), prevent_initial_call=True)
def class_averages(_clicks, run_id):
    """Mean Grad-CAM of each class over its test images, correctly classified above, wrong below."""
    runs_dir = settings()["runs_dir"]
    try:
        maps = trust.class_averages(runs_dir, run_id, settings()["data_dir"])
    except (RunError, ExplainError, DataError) as exc:
        return problem(str(exc), "No class averages")
    names = artifacts.class_names(runs_dir, run_id)
    return [html.Figure([html.Img(src=png_data_url(colorize(m[0] / max(m[0].max(), 1e-6))), className="method-image"),
                         html.Img(src=png_data_url(colorize(m[1] / max(m[1].max(), 1e-6))), className="method-image"),
                         html.Figcaption([html.Strong(names[c]), html.Br(), "correct · wrong"])],
                        className="method-tile") for c, m in enumerate(maps)]


def architecture_section(runs_dir, run_id: str):
    try:
        model = getattr(get_predictor(runs_dir, run_id, "keras"), "model", None)
    except (RunError, ExportError) as exc:
        return problem(str(exc), "No architecture")
    if model is None:  # an imported ONNX-only run
        return html.Div([html.H4("Architecture", className="section-title"),
                         html.P("imported ONNX graph (model.onnx, run in ONNX Runtime): no Keras layer list",
                                id="report-params")])
    counts = artifacts.parameter_counts(model)
    rows = artifacts.layer_rows(model)
    summary = (f"{model.name}: {len(rows)} layers, {counts['total']:,} parameters "
               f"({counts['trainable']:,} trainable, {counts['non_trainable']:,} frozen)")
    return html.Div([html.H4("Architecture", className="section-title"), html.P(summary, id="report-params"),
                     html.Details([html.Summary("layers"), rows_table(rows)], open=len(rows) <= 40)])


def config_section(runs_dir, run_id: str):
    try:
        config = artifacts.config(runs_dir, run_id)
    except RunError as exc:
        return problem(str(exc), "No config")
    rows = [{"setting": k, "value": v if isinstance(v, (int, float, str)) else json.dumps(v)}
            for k, v in sorted(config.items())]
    return html.Div([html.H4("Config", className="section-title"), rows_table(rows)])
