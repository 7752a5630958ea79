"""Overview: the selected run's headline metrics, the state of its files, a test gallery per class."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, html

from workbench import DataError, RunError, artifacts
from workbench.components import metric_card, no_run, problem, settings, training_card
from workbench.images import png_data_url

dash.register_page(__name__, path="/", name="Overview", order=0)

PER_CLASS = 12  # gallery images per class: one row each on a laptop screen

LINKS = (("Predict", "/predict", "Upload a photo or pick a test image; see why the model decides."),
         ("Errors", "/errors", "Click a confusion-matrix cell to see exactly those test images."),
         ("Training", "/training", "Learning curves of one run, or several overlaid."),
         ("Model report", "/report", "Architecture, parameters, config, calibration."))

layout = html.Div([
    html.H1("Overview", className="page-title h2"),
    html.Div(id="overview-body"),
])


@callback(Output("overview-body", "children"), Input("run-store", "data"))
def show_overview(run_id):
    if not run_id:
        return no_run()
    runs_dir, data_dir = settings()["runs_dir"], settings()["data_dir"]
    try:
        status = artifacts.check_run(runs_dir, run_id)
    except RunError as exc:
        return problem(str(exc), "Run unavailable")
    return [run_health(status), headline(runs_dir, run_id), link_cards(),
            html.H4("Test images per class", className="section-title"),
            class_gallery(runs_dir, run_id, data_dir)]


def run_health(status: list[tuple[str, str | None]]):
    broken = [message for _, message in status if message]
    if not broken:
        return html.Div([dbc.Badge(f"{name} ✓", color="success", className="me-1 file-ok")
                         for name, _ in status], className="run-health mb-3")
    return dbc.Alert([html.Strong("This run has problems; the pages that need these files "
                                  "show why they are empty:"),
                      html.Ul([html.Li(m) for m in broken])], color="danger", className="problem run-problems")


def headline(runs_dir, run_id: str):
    try:
        m = artifacts.metrics(runs_dir, run_id)
        config = artifacts.config(runs_dir, run_id)
    except RunError:
        return html.Div()
    lo, hi = m.get("test_accuracy_ci95", [float("nan")] * 2)
    cards = [
        metric_card("test accuracy", f"{m['test_accuracy']:.2%}", f"95% CI {lo:.2%} – {hi:.2%}"),
        metric_card("macro F1", f"{m.get('macro_f1', float('nan')):.3f}", f"{m.get('n_test', '?')} test images"),
        metric_card("calibration error", f"{m.get('ece', float('nan')):.3f}", "ECE, lower is better"),
        training_card(m, config),
        metric_card("model", str(config.get("architecture", "?")),
                    f"recipe {config.get('recipe', '?')}, {config.get('epochs', '?')} epochs" if "imported" not in config
                    else f"imported {config['imported'].get('format', '?')} file, {config.get('softmax', '')}"),
    ]
    return dbc.Row([dbc.Col(c, xs=6, md=4, xl=True) for c in cards], className="g-3 mb-3")


def link_cards():
    cards = [dbc.Card(dbc.CardBody([html.H5(dcc_link(name, href)), html.P(text, className="mb-0")]),
                      className="link-card h-100") for name, href, text in LINKS]
    return dbc.Row([dbc.Col(c, xs=12, md=6, xl=3) for c in cards], className="g-3 mb-3")


def dcc_link(name: str, href: str):
    return dash.dcc.Link(name + " →", href=href)


def class_gallery(runs_dir, run_id: str, data_dir):
    """PER_CLASS test images of each class, with the run's prediction under each (red if wrong)."""
    try:
        images = artifacts.test_images(data_dir)
        frame = artifacts.predictions(runs_dir, run_id)
    except (DataError, RunError) as exc:
        return problem(str(exc), "No gallery")
    names = artifacts.class_names(runs_dir, run_id)
    rows = []
    for label, name in enumerate(names):
        picks = frame[frame["label"] == label].head(PER_CLASS)
        tiles = [html.Figure([html.Img(src=png_data_url(images[index], scale=2), className="thumb"),
                              html.Figcaption(names[predicted],
                                              className="ok" if predicted == label else "wrong")],
                             className="tile")
                 for index, predicted in zip(picks["index"].tolist(), picks["predicted"].tolist())]
        rows.append(html.Div([html.Div(name, className="gallery-class"), html.Div(tiles, className="tiles")],
                             className="gallery-row"))
    return html.Div(rows, id="overview-gallery")
