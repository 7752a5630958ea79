"""Label issues: images whose given label the model doubts, ranked by cleanlab, for an analyst to mark.

Each tile: the image, given and suggested label with their probabilities, Grad-CAM for the given and
for the suggested class, and three buttons (label wrong / label fine / unsure) showing the current
mark. The split (test / train) and the page live in the URL (?split=test&page=2). Marks export as
CSV. Below, the train/test near-duplicate pairs found by `workbench label-issues RUN`.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from workbench import RunError, WorkbenchError, artifacts, suspects as sus
from workbench.components import link_notes, no_run, problem, settings
from workbench.gallery import pages as page_count
from workbench.urlstate import ChoiceField, IntField, changed_query, read_query, read_query_ignored

dash.register_page(__name__, path="/suspects", name="Label issues", order=5)

PAGE_SIZE = 12  # tiles per page: two Grad-CAM batches of 12 images stay well under a second on 2 cores
DUPLICATES_SHOWN = 30  # near-duplicate pairs shown (most similar first): fast-default has 25
TRAIN_IMAGES = 60_000  # the larger split: at most 5,000 pages of suspects
FIELDS = {"split": ChoiceField(tuple(sus.SPLITS), default="test"),  # the URL's parameters for this page
          "page": IntField(1, -(-TRAIN_IMAGES // PAGE_SIZE), default=1)}


def layout(**query):
    state, notes = read_query(query, FIELDS)
    return html.Div([
        dcc.Location(id="suspects-url", refresh=False),
        html.H1("Label issues", className="page-title h2"),
        link_notes(notes, "suspects"),  # show_suspects then writes the split and page shown
        html.P("Images whose given label the model doubts, ranked by cleanlab's label quality "
               "(lowest first). Mark each one; the marks are saved in the run folder.", className="text-muted"),
        dbc.Row([
            dbc.Col(dbc.RadioItems(id="suspects-split", value=state["split"], inline=True, options=[
                {"label": "test set", "value": "test"}, {"label": "training set", "value": "train"}]),
                width="auto"),
            dbc.Col(dbc.Pagination(id="suspects-pager", max_value=1, active_page=state["page"],
                                   fully_expanded=False, size="sm", className="mb-0"), width="auto"),
            dbc.Col([dbc.Button("Export marks (CSV)", id="suspects-export", size="sm", color="secondary"),
                     dcc.Download(id="suspects-download")], width="auto"),
        ], align="center", className="mb-2"),
        html.Div(id="suspects-status"),
        dcc.Loading(html.Div(id="suspects-tiles"), type="dot"),
        html.H4("Train/test near-duplicates", className="mt-4"),
        html.Div(id="suspects-duplicates"),
    ])


@callback(Output("suspects-tiles", "children"), Output("suspects-pager", "max_value"),
          Output("suspects-pager", "active_page"), Output("suspects-split", "value"),
          Output("suspects-url", "search"), Output("suspects-duplicates", "children"),
          Input("run-store", "data"), Input("suspects-split", "value"), Input("suspects-pager", "active_page"),
          Input("suspects-url", "search"))
def show_suspects(run_id, split, page, search):
    chosen = ctx.triggered_id in ("suspects-split", "suspects-pager")
    state, _notes, ignored = read_query_ignored(search, FIELDS)
    if ctx.triggered_id == "suspects-url":  # Back / Forward: the URL wins over the controls
        split, page = state["split"], state["page"]
    elif ctx.triggered_id == "suspects-split":  # another split's suspects: from its first page
        page = 1
    split = split if split in sus.SPLITS else "test"
    page = page if isinstance(page, int) and page >= 1 else 1

    def url(page: int, past: bool = False):  # the split and page in the URL, the run and other parameters
        if not chosen and not ignored and not past:  # kept: when the user picks them (the app writes the
            return no_update                     # run), or to drop values the URL had wrong or past the end
        written = changed_query(search, {"split": split, "page": page}, run_id)
        return no_update if written is None else written

    if not run_id:
        return no_run(), 1, page, split, url(page), None
    cfg = settings()
    duplicates = duplicates_or_problem(cfg, run_id)  # a damaged pairs file hides only its own section
    try:
        found = sus.suspects(cfg["runs_dir"], run_id, split)
    except RunError as exc:
        hint = problem(str(exc), "No label issues yet") if exc.code == "no_label_issues" else problem(str(exc))
        return hint, 1, 1, split, url(1), duplicates
    pages = page_count(len(found), PAGE_SIZE)
    asked, page = page, min(page, pages)
    past = f" The link's page {asked} is past the last, so page {pages} is shown." if asked > pages else ""
    try:
        tiles = suspect_tiles(run_id, split, found.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE], cfg)
    except WorkbenchError as exc:
        tiles = problem(str(exc))
    header = html.P(f"{len(found):,} suspects in the {split} set; page {page} of {pages}.{past}", className="small")
    return [header, tiles], pages, page, split, url(page, bool(past)), duplicates


def suspect_tiles(run_id: str, split: str, rows, cfg: dict):
    """One card per suspect: image, labels, probabilities, two Grad-CAM overlays, the mark buttons."""
    names = artifacts.class_names(cfg["runs_dir"], run_id)
    images = sus.split_images(split, cfg["data_dir"])[rows["index"].to_numpy()]
    plain, cam_given, cam_suggested, why = sus.tile_images(cfg["runs_dir"], run_id, images,
                                                           rows["given"].to_numpy(), rows["suggested"].to_numpy())
    try:
        current, unreadable = sus.marks(cfg["runs_dir"], run_id), None
    except RunError as exc:  # the suspects still show; marking says why it cannot save
        current, unreadable = {}, problem(str(exc), "Your marks cannot be shown")
    cards = []
    for i, row in enumerate(rows.itertuples()):
        key = f"{split}/{row.index}"
        pictures = [_figure(plain[i], "image")]
        if cam_given is not None:
            pictures += [_figure(cam_given[i], "CAM given"), _figure(cam_suggested[i], "CAM suggested")]
        cards.append(dbc.Col(dbc.Card(dbc.CardBody([
            html.Div(f"#{row.rank} · {split} image {row.index}", className="fw-bold small"),
            html.Div(pictures, className="d-flex flex-wrap gap-1"),
            html.Div(f"given {names[row.given]} ({row.p_given:.2f}) → suggested {names[row.suggested]} "
                     f"({row.p_suggested:.2f})", className="small"),  # wraps on a phone
            html.Div(f"label quality {row.label_quality:.3f}", className="small text-muted"),
            _mark_buttons(key, current.get(key, {}).get("mark")),
        ]), className="suspect-tile h-100"), md=6, lg=4, className="mb-2"))
    note = [html.Div(f"Grad-CAM unavailable: {why}", className="small text-muted")] if why else []
    return html.Div(([unreadable] if unreadable else []) + note + [dbc.Row(cards)])


def _figure(url: str, caption: str):
    return html.Figure([html.Img(src=url, width=84, height=84),
                        html.Figcaption(caption, className="small text-muted text-nowrap")], className="mb-0 text-center",
                       style={"width": "90px"})


def _mark_buttons(key: str, mark: str | None):
    buttons = [dbc.Button(text, id={"type": "suspects-mark", "key": key, "mark": value}, size="sm",
                          color="primary", outline=value != mark, className="suspects-mark")
               for value, text in sus.MARKS.items()]
    return html.Div([dbc.ButtonGroup(buttons, size="sm"),
                     html.Span(sus.MARKS.get(mark, "not marked"), id={"type": "suspects-current", "key": key},
                               className="ms-2 small")], className="mt-1")


def duplicates_or_problem(cfg: dict, run_id: str):
    try:
        return duplicates_section(cfg["runs_dir"], run_id, cfg["data_dir"])
    except WorkbenchError as exc:
        return problem(str(exc), "No near-duplicates")


def duplicates_section(runs_dir, run_id: str, data_dir=None):
    """The near-duplicate pairs as small cards: test image, its nearest training image, how close."""
    pairs = sus.near_duplicates(runs_dir, run_id)
    if pairs is None:
        command = artifacts.command_line(runs_dir, run_id, "workbench label-issues")
        return html.P(f"Not computed: run `{command}`.", className="text-muted")
    names = artifacts.class_names(runs_dir, run_id)
    shown = pairs.head(DUPLICATES_SHOWN)
    test = sus.split_images("test", data_dir)[shown["test_index"].to_numpy()]
    train = sus.split_images("train", data_dir)[shown["train_index"].to_numpy()]
    cards = [dbc.Col(dbc.Card(dbc.CardBody([
        html.Div([_figure(sus.png_data_url(test[i]), f"test {r.test_index}"),
                  _figure(sus.png_data_url(train[i]), f"train {r.train_index}")], className="d-flex gap-1"),
        html.Div(f"cosine {r.similarity:.4f} · pixels differ {r.pixel_difference:.1f}/255", className="small"),
        html.Div(names[r.test_label] if r.test_label == r.train_label
                 else f"labels differ: {names[r.test_label]} / {names[r.train_label]}",
                 className="small" + ("" if r.test_label == r.train_label else " text-danger fw-bold")),
    ])), width="auto", className="mb-2") for i, r in enumerate(shown.itertuples())]
    return html.Div([html.P(f"{len(pairs):,} test images whose nearest training image (cosine similarity of the "
                            f"model's penultimate features) is at least {sus.NEAR_DUPLICATE_THRESHOLD}; "
                            f"top {len(shown)} shown.", className="small"),
                     dbc.Row(cards, id="suspects-duplicate-pairs")])


@callback(Output({"type": "suspects-current", "key": ALL}, "children"),
          Output({"type": "suspects-mark", "key": ALL, "mark": ALL}, "outline"),
          Output("suspects-status", "children"),
          Input({"type": "suspects-mark", "key": ALL, "mark": ALL}, "n_clicks"),
          State("run-store", "data"), prevent_initial_call=True)
def mark_suspect(_clicks, run_id):
    clicked = ctx.triggered_id
    if not clicked or not ctx.triggered[0]["value"]:
        raise PreventUpdate  # new tiles appearing, not a click
    status = None
    try:
        split, index = clicked["key"].split("/", 1)
        sus.set_mark(settings()["runs_dir"], run_id, split, index, clicked["mark"])
    except (ValueError, WorkbenchError) as exc:
        status = problem(str(exc), "Mark not saved")
    try:
        current = sus.marks(settings()["runs_dir"], run_id) if run_id else {}
    except RunError:  # unreadable: said by set_mark's refusal above
        current = {}
    keys = [item["id"]["key"] for item in ctx.outputs_list[0]]
    labels = [sus.MARKS.get(current.get(key, {}).get("mark"), "not marked") for key in keys]
    outlines = [current.get(item["id"]["key"], {}).get("mark") != item["id"]["mark"] for item in ctx.outputs_list[1]]
    return labels, outlines, status


@callback(Output("suspects-download", "data"), Output("suspects-status", "children", allow_duplicate=True),
          Input("suspects-export", "n_clicks"), State("run-store", "data"), prevent_initial_call=True)
def export_marks(clicks, run_id):
    if not clicks or not run_id:
        return no_update, no_update
    cfg = settings()
    try:
        text = sus.marks_csv(cfg["runs_dir"], run_id, artifacts.class_names(cfg["runs_dir"], run_id))
    except WorkbenchError as exc:
        return no_update, problem(str(exc), "Nothing exported")
    return dcc.send_string(text, f"label_marks_{run_id}.csv"), None
