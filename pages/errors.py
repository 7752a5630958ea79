"""Errors: the confusion matrix; click a cell to see exactly those test images, most confident first.

Everything comes from the run's saved test predictions, so the matrix opens instantly; Grad-CAM
overlays for a gallery page are computed in one batch and cached.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import numpy as np
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from workbench import CLASS_NAMES, PROB_COLUMNS, DataError, ExplainError, RunError, artifacts, figures
from workbench.components import no_run, problem, rows_table, settings
from workbench.explain import get_explainer
from workbench.images import overlay, png_data_url

dash.register_page(__name__, path="/errors", name="Errors", order=2)

PAGE_SIZE = 50   # gallery images per page: one screenful, and one Grad-CAM batch well under a second
HIDDEN = "d-none"
PROMPT = "Click a cell of the matrix (or a confused pair) to see its images."

layout = html.Div([
    html.H2("Errors", className="page-title"),
    dbc.Row([
        dbc.Col([
            dbc.RadioItems(id="errors-norm", value="counts", inline=True, options=[
                {"label": "counts", "value": "counts"}, {"label": "row-normalised", "value": "rows"}]),
            dcc.Graph(id="errors-matrix", config={"displayModeBar": False}),
            html.Div("Click a cell to see its test images.", className="small text-muted"),
        ], lg=7),
        dbc.Col([html.Div(id="errors-problem"),
                 html.H5("Per-class scores"), html.Div(id="errors-table"),
                 html.H5("Most confused pairs", className="mt-3"), html.Div(id="errors-pairs")], lg=5),
    ]),
    dbc.Card([
        dbc.CardHeader(dbc.Row([
            dbc.Col(html.H5(id="errors-gallery-title", className="mb-0")),
            dbc.Col(dbc.Switch(id="errors-overlay", label="Grad-CAM overlay", value=False), width="auto"),
            dbc.Col(dbc.Pagination(id="errors-page", max_value=1, active_page=1, fully_expanded=False,
                                   size="sm", className="mb-0"), id="errors-page-col", width="auto",
                    className=HIDDEN),  # shown once a chosen cell has more than one page
        ], align="center")),
        dbc.CardBody(dcc.Loading(html.Div(id="errors-gallery"), type="dot")),
    ], className="mt-3"),
    dbc.Modal([dbc.ModalHeader(dbc.ModalTitle(id="errors-detail-title")), dbc.ModalBody(id="errors-detail-body")],
              id="errors-detail", size="xl", is_open=False),
    dcc.Store(id="errors-cell"),
])


@callback(Output("errors-matrix", "figure"), Output("errors-table", "children"),
          Output("errors-pairs", "children"), Output("errors-problem", "children"),
          Input("run-store", "data"), Input("errors-norm", "value"), Input("errors-cell", "data"))
def show_matrix(run_id, norm, cell):
    cell = valid_cell(cell)
    if not run_id:
        return figures.go.Figure(), None, None, no_run()
    runs_dir = settings()["runs_dir"]
    names = artifacts.class_names(runs_dir, run_id)
    try:
        matrix = artifacts.confusion(runs_dir, run_id)
    except RunError as exc:
        return figures.go.Figure(), None, None, problem(str(exc), "No confusion matrix")
    selected = (cell["true"], cell["pred"]) if cell else None
    fig = figures.confusion_figure(matrix, names, normalise=norm == "rows", selected=selected)
    try:
        table = rows_table(figures.per_class_rows(artifacts.metrics(runs_dir, run_id)["per_class"], names))
    except (RunError, KeyError) as exc:
        table = problem(str(exc), "No per-class scores")
    return fig, table, pair_list(figures.top_confused_pairs(matrix, names)), None


def valid_cell(cell) -> dict | None:
    """The chosen cell when it names two classes 0..9 (a hand-made request may send anything), else None."""
    if not isinstance(cell, dict):
        return None
    ok = all(isinstance(cell.get(k), int) and not isinstance(cell.get(k), bool) and 0 <= cell[k] < len(CLASS_NAMES)
             for k in ("true", "pred"))
    return cell if ok else None


def pair_list(pairs: list[dict]):
    """The most confused pairs; clicking one opens its gallery like clicking its matrix cell."""
    if not pairs:
        return html.Div("No confusions at all.", className="text-muted")
    return dbc.ListGroup([dbc.ListGroupItem(
        [html.Span(f"{p['true']} → {p['predicted']}"),
         dbc.Badge(f"{p['count']}  ({p['share']:.0%} of {p['true']})", color="light", text_color="dark",
                   className="ms-2")],
        id={"type": "errors-pair", "row": p["row"], "col": p["col"]}, action=True, n_clicks=0,
        className="d-flex justify-content-between") for p in pairs], className="pair-list")


@callback(Output("errors-cell", "data"), Output("errors-page", "active_page"),
          Input("errors-matrix", "clickData"), Input({"type": "errors-pair", "row": ALL, "col": ALL}, "n_clicks"),
          Input("run-store", "data"), prevent_initial_call=True)
def pick_cell(click, pair_clicks, run_id):
    if isinstance(ctx.triggered_id, dict):  # a confused pair
        if not any(pair_clicks):
            return no_update, no_update
        return {"true": ctx.triggered_id["row"], "pred": ctx.triggered_id["col"]}, 1
    if ctx.triggered_id != "errors-matrix" or not click or not run_id:
        return None, 1
    names = artifacts.class_names(settings()["runs_dir"], run_id)
    point = click["points"][0]
    return {"true": names.index(point["y"]), "pred": names.index(point["x"])}, 1


@callback(Output("errors-gallery", "children"), Output("errors-gallery-title", "children"),
          Output("errors-page", "max_value"), Output("errors-page-col", "className"),
          Input("errors-cell", "data"), Input("errors-page", "active_page"), Input("errors-overlay", "value"),
          State("run-store", "data"))
def show_gallery(cell, page, with_overlay, run_id):
    cell, page = valid_cell(cell), page if isinstance(page, int) and page >= 1 else 1
    if not cell or not run_id:
        return html.Div(PROMPT, className="text-muted", id="errors-prompt"), "Gallery", 1, HIDDEN
    cfg = settings()
    names = artifacts.class_names(cfg["runs_dir"], run_id)
    title = f"true {names[cell['true']]} → predicted {names[cell['pred']]}"
    try:
        tiles, total = gallery_tiles(cfg, run_id, cell["true"], cell["pred"], page or 1, bool(with_overlay))
    except (RunError, DataError, ExplainError) as exc:
        return problem(str(exc), "No gallery"), title, 1, HIDDEN
    pages = max(1, -(-total // PAGE_SIZE))
    return (html.Div(tiles, className="tiles gallery", id="errors-tiles"), f"{title}: {total} images", pages,
            "" if pages > 1 else HIDDEN)


def gallery_tiles(cfg: dict, run_id: str, true: int, pred: int, page: int, with_overlay: bool):
    """One page of the cell's images as clickable tiles, with the saved probabilities."""
    cell = artifacts.cell_predictions(cfg["runs_dir"], run_id, true, pred)
    chunk = cell.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    indices = chunk["index"].to_numpy()
    images = artifacts.test_images(cfg["data_dir"])[indices]
    if with_overlay and len(images):
        heatmaps = get_explainer(cfg["runs_dir"], run_id).explain(images, pred, "gradcam")
        shown = [overlay(im, hm) for im, hm in zip(images, heatmaps)]
    else:
        shown = list(images)
    names = artifacts.class_names(cfg["runs_dir"], run_id)
    probs = chunk[PROB_COLUMNS].to_numpy()
    tiles = [thumb(int(i), src, p, names, true, pred) for i, src, p in zip(indices, shown, probs)]
    return tiles, len(cell)


def thumb(index: int, image: np.ndarray, probs: np.ndarray, names: list[str], true: int, pred: int):
    second = int(np.argsort(probs)[-2])
    other = true if pred != true else second
    caption = [html.Div(f"{probs[pred]:.0%} {names[pred]}", className="prob-main"),
               html.Div(f"{probs[other]:.0%} {names[other]}", className="prob-other")]
    return html.Button([html.Img(src=png_data_url(image, scale=3), className="thumb"), *caption],
                       id={"type": "errors-thumb", "index": index}, className="tile tile-button",
                       title=f"test image #{index}: {probs[pred]:.0%} {names[pred]}, {probs[other]:.0%} "
                             f"{names[other]}", **{"data-index": str(index)})


@callback(Output("errors-detail", "is_open"), Output("errors-detail-title", "children"),
          Output("errors-detail-body", "children"),
          Input({"type": "errors-thumb", "index": ALL}, "n_clicks"), State("run-store", "data"),
          prevent_initial_call=True)
def open_detail(clicks, run_id):
    if not ctx.triggered_id or not any(clicks) or not ctx.triggered[0]["value"]:
        return no_update, no_update, no_update
    index = int(ctx.triggered_id["index"])
    cfg = settings()
    try:
        return True, f"Test image #{index}", detail(cfg, run_id, index)
    except (RunError, DataError, ExplainError) as exc:
        return True, f"Test image #{index}", problem(str(exc))


def detail(cfg: dict, run_id: str, index: int):
    """A test image large, its Grad-CAM for the predicted class and the saved probabilities."""
    frame = artifacts.predictions(cfg["runs_dir"], run_id)
    row = frame[frame["index"] == index].iloc[0]
    probs = artifacts.probabilities(row)
    names = artifacts.class_names(cfg["runs_dir"], run_id)
    image = artifacts.test_images(cfg["data_dir"])[index]
    heatmap = get_explainer(cfg["runs_dir"], run_id).explain(image[None], int(row["predicted"]))[0]
    return dbc.Row([
        dbc.Col([html.Div([html.Figure([html.Img(src=png_data_url(image, scale=6), className="big-image"),
                                        html.Figcaption(f"true: {names[int(row['label'])]}")]),
                           html.Figure([html.Img(src=png_data_url(overlay(image, heatmap), scale=6),
                                                 className="big-image"),
                                        html.Figcaption(f"Grad-CAM for {names[int(row['predicted'])]}")])],
                          className="image-pair"),
                 dcc.Link("Explore in Predict →", href=f"/predict?test={index}")], md=6),
        dbc.Col(dcc.Graph(figure=figures.confidence_bars(probs, names), config={"displayModeBar": False}), md=6),
    ], id="errors-detail-content")
