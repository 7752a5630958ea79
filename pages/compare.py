"""Compare: two runs on the same test images. Which images does one get right and the other wrong,
which classes gained or lost, and is the accuracy difference more than chance (McNemar's test)?

Runs A and B, the side shown and the image open in the detail view are in the URL
(/compare?a=fast-default&b=photo-default&side=b_only&image=12), so Back undoes one step at a time. Runs
evaluated on different test sets cannot be paired image by image: the page says so instead of comparing.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from workbench import DEFAULT_RUN_ID, TEST_IMAGES, DataError, ExplainError, RunError, insight, list_runs
from workbench.classify import PHOTO_RUN_ID
from workbench.components import HIDDEN, link_notes, metric_card, problem, rows_table, settings
from workbench.gallery import clicked_step, detail, detail_footer, footer_state, gallery, pages, step_in
from workbench.urlstate import (ChoiceField, IntField, RunField, changed_query, parse_query, read_query,
                                read_query_ignored)

dash.register_page(__name__, path="/compare", name="Compare", order=6)

SIDES = {"a_only": "A right, B wrong", "b_only": "B right, A wrong"}


def fields(run_ids: list[str]) -> dict:
    """The URL's parameters for this page: the two runs, the side whose images are shown, its gallery
    page, the image open."""
    return {"a": RunField(tuple(run_ids)), "b": RunField(tuple(run_ids)),
            "side": ChoiceField(tuple(SIDES), default="a_only"), "page": IntField(1, pages(TEST_IMAGES), default=1),
            "image": IntField(0, TEST_IMAGES - 1)}


def runs_named(state: dict, run_ids: list[str], selected: str | None) -> tuple[str | None, str | None]:
    """Runs A and B from the URL's state. By default A is the run chosen in the navbar (`selected`),
    else the default run; B the default run, else the photo run, else the newest other one."""
    a = state["a"] or (selected if selected in run_ids else next(iter(run_ids), None))
    others = [r for r in run_ids if r != a]
    return a, state["b"] or next((r for r in (DEFAULT_RUN_ID, PHOTO_RUN_ID) if r in others), next(iter(others), a))


def layout(**query):
    run_ids = list_runs(settings()["runs_dir"])
    state, notes = read_query(query, fields(run_ids))
    a, b = runs_named(state, run_ids, parse_query(query).get("run"))
    options = [{"label": r, "value": r} for r in run_ids]
    return html.Div([
        dcc.Location(id="compare-url", refresh=False),
        html.H1("Compare runs", className="page-title h2"),
        link_notes(notes, "compare"),  # sync_url then drops the values ignored
        dbc.Row([dbc.Col([html.Div("run A", className="small text-muted"),
                          dcc.Dropdown(id="compare-a", options=options, value=a, clearable=False)], md=4),
                 dbc.Col([html.Div("run B", className="small text-muted"),
                          dcc.Dropdown(id="compare-b", options=options, value=b, clearable=False)], md=4)]),
        html.Div(id="compare-problem", className="mt-2"),
        html.Div(id="compare-summary", className="mt-3"),
        dbc.Row([dbc.Col([html.H5("Per-class accuracy"), html.Div(id="compare-classes")], lg=5),
                 dbc.Col(dbc.Card([
                     dbc.CardHeader(dbc.Row([
                         dbc.Col(dbc.RadioItems(id="compare-side", value=state["side"],
                                                inline=True, options=[{"label": t, "value": k}
                                                                      for k, t in SIDES.items()])),
                         dbc.Col(dbc.Switch(id="compare-overlay", label="Grad-CAM", value=False), width="auto"),
                         dbc.Col(dbc.Pagination(id="compare-page", max_value=1, active_page=state["page"], size="sm",
                                                fully_expanded=False, className="mb-0"),
                                 id="compare-page-col", width="auto", className=HIDDEN)], align="center")),
                     dbc.CardBody(dcc.Loading(html.Div(id="compare-gallery"), type="dot"))]), lg=7)],
                className="mt-3"),
        dbc.Modal([dbc.ModalHeader(dbc.ModalTitle(id="compare-detail-title")),
                   dbc.ModalBody(id="compare-detail-body"), detail_footer("compare")],
                  id="compare-detail", labelledby="compare-detail-title",
                  size="xl", is_open=state["image"] is not None),
        dcc.Store(id="compare-open", data=state["image"]),  # the test image open in the detail view
    ])


def comparison(run_a: str, run_b: str) -> dict:
    return insight.run_comparison(settings()["runs_dir"], run_a, run_b)


@callback(Output("compare-url", "search"), Output("compare-a", "value"), Output("compare-b", "value"),
          Output("compare-side", "value"), Output("compare-page", "active_page"), Output("compare-detail", "is_open"),
          Output("compare-open", "data"),
          Input("compare-a", "value"), Input("compare-b", "value"), Input("compare-side", "value"),
          Input("compare-page", "active_page"),
          Input("compare-url", "search"), Input({"type": "compare-thumb", "index": ALL}, "n_clicks"),
          Input("compare-prev", "n_clicks"), Input("compare-next", "n_clicks"), Input("compare-detail", "is_open"),
          State("compare-open", "data"), State("compare-stepped", "data"))
def sync_url(run_a, run_b, side, page, search, _clicks, prev, next_, is_open, current, stepped):
    """The controls, the open image and the URL in step, one callback both ways: Back or Forward
    changed the URL -> show what it names; the user changed the view -> write it (the URL's other
    parameters, the navbar's run among them, kept). A tile opens its image, previous / next step
    through the side's images, another run or side closes it and starts at the gallery's first page.
    Opening the page writes nothing, unless to drop values it ignored."""
    if ctx.triggered_id in (None, "compare-url"):  # opening, Back, Forward
        return show_url(search, {"a": run_a, "b": run_b, "side": side, "page": page,
                                 "image": current if is_open else None})
    if ctx.triggered_id in ("compare-a", "compare-b", "compare-side"):
        page = 1
    step = clicked_step("compare", prev, next_, stepped) if ctx.triggered_id in ("compare-prev", "compare-next") else 0
    image = opened_image(run_a, run_b, side, current, is_open, step)
    if image is False and ctx.triggered_id != "compare-page":  # not an action: a tile re-rendered, the
        return (no_update,) * 7                                   # modal opened by this callback
    image = current if image is False else image  # a page turned: the open image (if any) stays
    url = changed_query(search, {"a": run_a or None, "b": run_b or None, "side": side or None,
                                 "page": page if isinstance(page, int) and page > 1 else None, "image": image})
    return (no_update if url is None else url, no_update, no_update, no_update,
            page if ctx.triggered_id != "compare-page" else no_update, image is not None,
            image if image != current else no_update)


def show_url(search, shown: dict) -> tuple:
    """The page's outputs for the state the URL names (no_update where it is shown already)."""
    run_ids = list_runs(settings()["runs_dir"])
    state, _notes, ignored = read_query_ignored(search, fields(run_ids))
    wanted = {**dict(zip(("a", "b"), runs_named(state, run_ids, parse_query(search).get("run")))),
              "side": state["side"], "page": state["page"], "image": state["image"]}
    url = changed_query(search, {**wanted, "page": wanted["page"] if wanted["page"] > 1 else None}) \
        if ignored else None  # the URL without what was ignored
    return (no_update if url is None else url,
            *(wanted[k] if wanted[k] != shown[k] else no_update for k in ("a", "b", "side", "page")),
            wanted["image"] is not None if wanted["image"] != shown["image"] else no_update,
            wanted["image"] if wanted["image"] != shown["image"] else no_update)


def opened_image(run_a, run_b, side, current, is_open, step: int = 0):
    """The image open after the user's action: None (closed), an index, or False when the event was
    not an action; `step`: images to move by for previous / next."""
    trigger = ctx.triggered_id
    if trigger in ("compare-a", "compare-b", "compare-side"):
        return None
    if trigger == "compare-detail":  # the modal's close button or Escape
        return None if not is_open else False
    if trigger in ("compare-prev", "compare-next"):
        index = step_in(side_order(run_a, run_b, side), current, step)
        return False if index is None or index == current else index
    if not isinstance(trigger, dict) or not ctx.triggered[0]["value"]:  # a tile (re-)rendered, not clicked
        return False
    return int(trigger["index"])


@callback(Output("compare-summary", "children"), Output("compare-classes", "children"),
          Output("compare-problem", "children"),
          Input("compare-a", "value"), Input("compare-b", "value"))
def show_comparison(run_a, run_b):
    if not run_a or not run_b:
        return None, None, problem("pick two runs", "Nothing to compare")
    try:
        result = comparison(run_a, run_b)
    except (RunError, DataError) as exc:
        return None, None, problem(str(exc), "Cannot compare these runs")
    test = result["mcnemar"]
    cards = dbc.Row([dbc.Col(metric_card(label, value, note)) for label, value, note in [
        ("accuracy A", f"{test['accuracy_a']:.2%}", run_a), ("accuracy B", f"{test['accuracy_b']:.2%}", run_b),
        ("A right, B wrong", f"{test['a_only']:,}", "images"), ("B right, A wrong", f"{test['b_only']:,}", "images"),
        ("McNemar test", insight.p_text(test["p_value"]), test["method"])]], id="compare-counts")
    same = html.Div("A and B are the same run." if run_a == run_b else "", className="text-muted small")
    verdict = dbc.Alert(test["verdict"], color="success" if test["p_value"] < insight.ALPHA else "secondary",
                        className="mt-2 mb-0", id="compare-verdict")
    table = result["per_class"].round(4).to_dict("records")
    return html.Div([cards, verdict, same]), rows_table(table, table_id="compare-class-table"), None


@callback(Output("compare-gallery", "children"), Output("compare-page", "max_value"),
          Output("compare-page-col", "className"),
          Input("compare-a", "value"), Input("compare-b", "value"), Input("compare-side", "value"),
          Input("compare-page", "active_page"), Input("compare-overlay", "value"))
def show_gallery(run_a, run_b, side, page, with_overlay):
    """The images one run gets right and the other wrong, shown with the wrong run's answer."""
    if not run_a or not run_b:
        return None, 1, HIDDEN
    side = side if side in SIDES else "a_only"
    try:
        indices = comparison(run_a, run_b)[side]
        wrong_run = run_b if side == "a_only" else run_a
        page = min(page or 1, pages(len(indices)) or 1)  # a linked page past the side's last: its last
        tiles, total = gallery(settings(), wrong_run, indices, page, bool(with_overlay), "compare")
    except (RunError, DataError, ExplainError) as exc:
        return problem(str(exc), "No gallery"), 1, HIDDEN
    if not total:
        return html.Div("No such images.", className="text-muted"), 1, HIDDEN
    n_pages = pages(total)
    note = html.Div(f"{total:,} images; captions give {wrong_run}'s (wrong) answer, click one for its Grad-CAM.",
                    className="small text-muted mb-2")
    return html.Div([note, html.Div(tiles, className="tiles gallery", id="compare-tiles")]), n_pages, \
        "" if n_pages > 1 else HIDDEN


@callback(Output("compare-detail-title", "children"), Output("compare-detail-body", "children"),
          Output("compare-prev", "disabled"), Output("compare-next", "disabled"),
          Output("compare-position", "children"),
          Input("compare-open", "data"), Input("compare-a", "value"), Input("compare-b", "value"),
          Input("compare-side", "value"), State("compare-detail", "is_open"))
def show_detail(index, run_a, run_b, side, is_open):
    """The open image as the wrong run answered it; drawn again when Back or Forward change the runs
    or the side under the same image (a jump of several history entries)."""
    if not isinstance(index, int) or not run_a or not run_b or (ctx.triggered_id != "compare-open" and not is_open):
        return no_update, no_update, True, True, None
    side = side if side in SIDES else "a_only"
    wrong_run = run_b if side == "a_only" else run_a
    title = f"Test image #{index}: run {wrong_run}'s answer"
    try:
        order, body = side_order(run_a, run_b, side), detail(settings(), wrong_run, index, "compare")
    except (RunError, DataError, ExplainError) as exc:
        return title, problem(str(exc)), True, True, None
    return title, body, *footer_state(order, index, f"with {SIDES[side]}",
                                               f"not among the images with {SIDES[side]}")


def side_order(run_a: str, run_b: str, side: str) -> list[int]:
    """The test images of one side of the comparison, in gallery order."""
    return [int(i) for i in comparison(run_a, run_b)[side if side in SIDES else "a_only"]]
