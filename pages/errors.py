"""Errors: the confusion matrix; click a cell to see exactly those test images, most confident first.

Everything comes from the run's saved test predictions, so the matrix opens instantly; Grad-CAM
overlays for a gallery page are computed in one batch and cached.

The view is in the URL, so Back returns to the previous cell or page and a link reproduces it:

    /errors?run=fast-default&true=6&pred=0&page=2&cam=1&image=123&norm=rows

true/pred: the cell (true class row, predicted class column); page: the gallery page; cam: Grad-CAM
overlays on; image: the test image open in the detail view; norm=rows: row-normalised matrix.
A malformed value (true=99, page=-3) is ignored, and the page says so.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import numpy as np
from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update

from workbench import (CLASS_NAMES, PROB_COLUMNS, TEST_IMAGES, DataError, ExplainError, RunError, artifacts,
                       figures)
from workbench.components import HIDDEN, link_notes, no_run, problem, rows_table, settings
from workbench.explain import get_explainer
from workbench.gallery import clicked_step, detail, detail_footer, footer_state, step_in
from workbench.gallery import pages as page_count
from workbench.images import overlay, png_data_url
from workbench.urlstate import ChoiceField, FlagField, IntField, merge_query, parse_query, read_query, write_query

dash.register_page(__name__, path="/errors", name="Errors", order=2)

PAGE_SIZE = 50   # gallery images per page: one screenful, and one Grad-CAM batch well under a second
TOP_PAIRS = 5    # confused pairs listed open; the other cells are folded under them
PROMPT = "Click a cell of the matrix (or a confused pair) to see its images."
LAST_CLASS = len(CLASS_NAMES) - 1
FIELDS = {  # the URL's parameters for this page; defaults are left out of the URL
    "norm": ChoiceField(("counts", "rows"), default="counts"),
    "true": IntField(0, LAST_CLASS), "pred": IntField(0, LAST_CLASS),
    "page": IntField(1, TEST_IMAGES // PAGE_SIZE, default=1),
    "cam": FlagField(),
    "image": IntField(0, TEST_IMAGES - 1),
}


def layout(**query):
    state, notes = read_state(query)
    cell = {"true": state["true"], "pred": state["pred"]} if state["true"] is not None else None
    return html.Div([
        dcc.Location(id="errors-url", refresh=False),
        html.H1("Errors", className="page-title h2"),
        html.Div(link_notes(notes, "errors"), id="errors-notes"),
        dbc.Row([
            dbc.Col([
                dbc.RadioItems(id="errors-norm", value=state["norm"], inline=True, options=[
                    {"label": "counts", "value": "counts"}, {"label": "row-normalised", "value": "rows"}]),
                dcc.Graph(id="errors-matrix", config=figures.STATIC_GRAPH_CONFIG),
                html.Div("Click a cell to see its test images (or pick it from the lists beside, by "
                         "keyboard). Errors are red (darkest: the most frequent confusion), right answers "
                         "green.", className="small text-muted"),
            ], lg=7),
            dbc.Col([html.Div(id="errors-problem"),
                     html.H5("Per-class scores"), html.Div(id="errors-table"),
                     html.H5("Most confused pairs", className="mt-3"), html.Div(id="errors-pairs")], lg=5),
        ]),
        dbc.Card([
            dbc.CardHeader(dbc.Row([
                dbc.Col(html.H5(id="errors-gallery-title", className="mb-0")),
                dbc.Col(dbc.Switch(id="errors-overlay", label="Grad-CAM overlay", value=state["cam"]), width="auto"),
                dbc.Col(dbc.Pagination(id="errors-page", max_value=state["page"], active_page=state["page"],
                                       fully_expanded=False, size="sm", className="mb-0"), id="errors-page-col",
                        width="auto", className=HIDDEN),  # shown once a chosen cell has more than one page
            ], align="center")),
            dbc.CardBody(dcc.Loading(html.Div(id="errors-gallery"), type="dot")),
        ], className="mt-3", id="errors-gallery-card"),
        dbc.Modal([dbc.ModalHeader(dbc.ModalTitle(id="errors-detail-title")),
                   dbc.ModalBody(id="errors-detail-body"),
                   detail_footer("errors")],
                  id="errors-detail", labelledby="errors-detail-title",
                  size="xl", is_open=state["image"] is not None),
        dcc.Store(id="errors-cell", data=cell), dcc.Store(id="errors-image", data=state["image"]),
        dcc.Store(id="errors-scrolled"),
    ])


def read_state(search, run_id: str | None = None) -> tuple[dict, list[str]]:
    """The page's state from the URL, and notes on what was ignored: a cell needs both true and pred,
    and (when the run is known) the page must exist in that cell."""
    state, notes = read_query(search, FIELDS)
    if (state["true"] is None) != (state["pred"] is None):
        if "true" in str(search) or "pred" in str(search):
            notes.append("a cell needs both true and pred: ignored")
        state["true"] = state["pred"] = None
    if state["true"] is None:
        state["page"] = 1
    elif run_id and state["page"] > 1:
        pages = page_count(len(cell_order(run_id, state["true"], state["pred"])), PAGE_SIZE)
        if state["page"] > pages:
            notes.append(f"page={state['page']} ignored: this cell has {pages} page{'s' * (pages > 1)}")
            state["page"] = 1
    return state, notes


def cell_order(run_id: str, true: int, pred: int) -> list[int]:
    """The cell's test image indices in gallery order (most confident first)."""
    return artifacts.cell_predictions(settings()["runs_dir"], run_id, true, pred)["index"].tolist()


# ---------------------------------------------------------------------------------------------
# The state: the URL <-> the controls. One callback both ways (Dash allows a loop only inside one
# callback): the URL changed (page load, Back, Forward) -> set the controls; a control changed ->
# write the URL (pushing a history entry), keeping its other parameters (the run).

STATE_OUTPUTS = ("norm", "cam", "page", "cell", "image", "is_open")


@callback(Output("errors-url", "search"), Output("errors-norm", "value"), Output("errors-overlay", "value"),
          Output("errors-page", "active_page"), Output("errors-cell", "data"), Output("errors-image", "data"),
          Output("errors-detail", "is_open"), Output("errors-notes", "children"),
          Input("errors-url", "search"), Input("errors-norm", "value"), Input("errors-overlay", "value"),
          Input("errors-page", "active_page"), Input("errors-matrix", "clickData"),
          Input({"type": "errors-pair", "row": ALL, "col": ALL}, "n_clicks"),
          Input({"type": "errors-thumb", "index": ALL}, "n_clicks"),
          Input("errors-prev", "n_clicks"), Input("errors-next", "n_clicks"), Input("errors-detail", "is_open"),
          State("errors-cell", "data"), State("errors-image", "data"), State("run-store", "data"),
          State("errors-stepped", "data"), prevent_initial_call=True)
def sync_state(search, norm, cam, page, click, _pairs, _thumbs, prev, next_, is_open, cell, image, run_id, stepped):
    cell = valid_cell(cell)
    current = {"norm": norm, "cam": bool(cam), "page": page, "image": image,
               "true": cell["true"] if cell else None, "pred": cell["pred"] if cell else None}
    if ctx.triggered_id == "errors-url":  # the URL changed: show what it says, and drop what was ignored
        state, notes = read_state(search, run_id)  # (written here, the clean URL does not trigger this again)
        url = write_query(search, state, FIELDS) if notes else no_update
        return url, *changed(state, current, is_open), link_notes(notes, "errors")
    step = clicked_step("errors", prev, next_, stepped) if ctx.triggered_id in ("errors-prev", "errors-next") else 0
    state = next_state(current, ctx.triggered_id, ctx.triggered[0]["value"], click, run_id, step)
    if state is None:
        return (no_update,) * 8
    url = merge_query(write_query(search, state, FIELDS), {"run": run_id})  # a control already shows
    same = parse_query(url) == parse_query(search)                           # its new value: compare URLs
    return no_update if same else url, *changed(state, current, is_open), no_update


def changed(state: dict, current: dict, is_open) -> list:
    """The control values for `state`, no_update where a control already shows it."""
    cell = {"true": state["true"], "pred": state["pred"]} if state["true"] is not None else None
    new = {"norm": state["norm"], "cam": state["cam"], "page": state["page"], "cell": cell,
           "image": state["image"], "is_open": state["image"] is not None}
    old = {**current, "cell": {"true": current["true"], "pred": current["pred"]} if current["true"] is not None
           else None, "is_open": bool(is_open)}
    return [new[k] if new[k] != old[k] else no_update for k in STATE_OUTPUTS]


def next_state(current: dict, trigger, value, click, run_id, step: int = 0) -> dict | None:
    """The state after the user's action, or None when the event is not one (a tile re-rendered);
    `step`: images to move by for previous / next."""
    if trigger == "errors-norm":
        return {**current, "norm": value}
    if trigger == "errors-overlay":
        return {**current, "cam": bool(value)}
    if trigger == "errors-page":
        return {**current, "page": value} if isinstance(value, int) and value >= 1 else None
    if trigger == "errors-detail":  # the modal was closed
        return {**current, "image": None} if not value else None
    if trigger in ("errors-prev", "errors-next"):
        return step_image(current, run_id, step) if value and step else None
    if trigger == "errors-matrix":
        return clicked_cell(current, click, run_id)
    if not isinstance(trigger, dict) or not value:  # a tile or pair (re-)rendered, not clicked
        return None
    if trigger["type"] == "errors-thumb":
        return {**current, "image": int(trigger["index"])}
    return {**current, "true": trigger["row"], "pred": trigger["col"], "page": 1, "image": None}


def clicked_cell(current: dict, click, run_id) -> dict | None:
    if not click or not run_id:
        return None
    names = artifacts.class_names(settings()["runs_dir"], run_id)
    point = click["points"][0]
    return {**current, "true": names.index(point["y"]), "pred": names.index(point["x"]), "page": 1, "image": None}


def step_image(current: dict, run_id, step: int) -> dict | None:
    """The previous / next image of the cell (and the gallery page it is on)."""
    if current["true"] is None or current["image"] is None or not run_id:
        return None
    order = cell_order(run_id, current["true"], current["pred"])
    image = step_in(order, current["image"], step)
    return None if image is None else {**current, "image": image, "page": order.index(image) // PAGE_SIZE + 1}


def valid_cell(cell) -> dict | None:
    """The chosen cell when it names two classes 0..9 (a hand-made request may send anything), else None."""
    if not isinstance(cell, dict):
        return None
    ok = all(isinstance(cell.get(k), int) and not isinstance(cell.get(k), bool) and 0 <= cell[k] < len(CLASS_NAMES)
             for k in ("true", "pred"))
    return cell if ok else None


# Once a newly chosen cell's gallery is drawn, bring it into view (the matrix fills the first screen):
# after it is drawn, so that the page is long enough to scroll to it; not again for its other pages.
clientside_callback("""
function(_gallery, cell, scrolled) {
    const card = document.getElementById("errors-gallery-card");
    const key = JSON.stringify(cell);
    if (!cell || !card || key === scrolled) { return window.dash_clientside.no_update; }
    card.scrollIntoView({block: "start"});
    return key;
}""", Output("errors-scrolled", "data"), Input("errors-gallery", "children"), State("errors-cell", "data"),
    State("errors-scrolled", "data"), prevent_initial_call=True)


# ---------------------------------------------------------------------------------------------
# The views

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
    pairs = figures.top_confused_pairs(matrix, names, k=matrix.size)
    return fig, table, [pair_list(pairs[:TOP_PAIRS]), other_cells(pairs[TOP_PAIRS:], matrix, names)], None


def pair_list(pairs: list[dict]):
    """The most confused pairs; clicking one opens its gallery like clicking its matrix cell."""
    if not pairs:
        return html.Div("No confusions at all.", className="text-muted")
    return html.Div([pair_button(p) for p in pairs], className="list-group pair-list")


def other_cells(pairs: list[dict], matrix, names: list[str]):
    """Every other non-empty cell, folded: the confused pairs after the top ones, then the right
    answers. The keyboard's way to any cell (the matrix takes only a mouse click)."""
    counts = np.asarray(matrix, dtype=np.int64)
    right = [{"true": n, "predicted": f"{n} (right)", "count": int(counts[i, i]),
              "share": float(counts[i, i] / max(counts[i].sum(), 1)), "row": i, "col": i}
             for i, n in enumerate(names) if counts[i, i] > 0]
    return html.Details([
        html.Summary(f"Every other cell: {len(pairs)} more confused pairs, {len(right)} right-answer cells",
                     className="small mt-2"),
        html.Div([pair_button(p) for p in pairs + right], className="list-group pair-list other-cells")])


def pair_button(p: dict):
    """A cell as a button: Tab reaches it and Enter opens its gallery, as a click on the matrix does."""
    return html.Button(
        [html.Span(f"{p['true']} → {p['predicted']}"),
         dbc.Badge(f"{p['count']}  ({p['share']:.0%} of {p['true']})", color="light", text_color="dark",
                   className="ms-2")],
        id={"type": "errors-pair", "row": p["row"], "col": p["col"]}, n_clicks=0, type="button",
        className="list-group-item list-group-item-action d-flex justify-content-between")


@callback(Output("errors-gallery", "children"), Output("errors-gallery-title", "children"),
          Output("errors-page", "max_value"), Output("errors-page-col", "className"),
          Input("errors-cell", "data"), Input("errors-page", "active_page"), Input("errors-overlay", "value"),
          Input("run-store", "data"))
def show_gallery(cell, page, with_overlay, run_id):
    cell, page = valid_cell(cell), page if isinstance(page, int) and page >= 1 else 1
    if not cell or not run_id:
        return html.Div(PROMPT, className="text-muted", id="errors-prompt"), "Gallery", 1, HIDDEN
    cfg = settings()
    names = artifacts.class_names(cfg["runs_dir"], run_id)
    title = f"true {names[cell['true']]} → predicted {names[cell['pred']]}"
    try:
        total = len(cell_order(run_id, cell["true"], cell["pred"]))
        page = min(page, page_count(total, PAGE_SIZE))  # a page beyond the end (another run's cell): the last one
        tiles = gallery_tiles(cfg, run_id, cell["true"], cell["pred"], page, bool(with_overlay))
    except (RunError, DataError, ExplainError) as exc:
        return problem(str(exc), "No gallery"), title, 1, HIDDEN
    pages = page_count(total, PAGE_SIZE)
    return (html.Div(tiles, className="tiles gallery", id="errors-tiles"), f"{title}: {total} images", pages,
            "" if pages > 1 else HIDDEN)


def gallery_tiles(cfg: dict, run_id: str, true: int, pred: int, page: int, with_overlay: bool) -> list:
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
    return [thumb(int(i), src, p, names, true, pred) for i, src, p in zip(indices, shown, probs)]


def thumb(index: int, image: np.ndarray, probs: np.ndarray, names: list[str], true: int, pred: int):
    """A tile: the image and two one-line captions (cut with … when long; the tooltip has them whole)."""
    second = int(np.argsort(probs)[-2])
    other = true if pred != true else second
    caption = [html.Div(f"{probs[pred]:.0%} {names[pred]}", className="prob-main"),
               html.Div(f"{probs[other]:.0%} {names[other]}", className="prob-other")]
    return html.Button([html.Img(src=png_data_url(image, scale=3), className="thumb"), *caption],
                       id={"type": "errors-thumb", "index": index}, className="tile tile-button",
                       title=f"test image #{index}: {probs[pred]:.0%} {names[pred]}, {probs[other]:.0%} "
                             f"{names[other]}", **{"data-index": str(index)})


@callback(Output("errors-detail-title", "children"), Output("errors-detail-body", "children"),
          Output("errors-prev", "disabled"), Output("errors-next", "disabled"),
          Output("errors-position", "children"),
          Input("errors-image", "data"), Input("run-store", "data"), State("errors-cell", "data"))
def show_detail(index, run_id, cell):
    if not isinstance(index, int) or not run_id:
        return no_update, no_update, True, True, None
    cell, cfg = valid_cell(cell), settings()
    try:
        order = cell_order(run_id, cell["true"], cell["pred"]) if cell else []
        body = detail(cfg, run_id, index, "errors")
    except (RunError, DataError, ExplainError) as exc:
        return f"Test image #{index}", problem(str(exc)), True, True, None
    return (f"Test image #{index}", body, *footer_state(order, index, "in this cell", "not in this cell"))
