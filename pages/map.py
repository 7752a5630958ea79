"""Map: the test set in the model's own feature space; lasso a region to see its images.

The 10,000 test images sit where the model's penultimate features put them (UMAP to 2-D, stored in
the run folder; the first view of a run computes it, ~1 minute). Colour by true class, predicted
class or correct / wrong (in the URL: /map?colour=correct). Hover shows the image; a lasso or box
selection lists the selected images below (paginated, Grad-CAM optional); a click on a point or a
tile opens the detail view with Grad-CAM for the predicted and the true class, and its previous /
next buttons step through the selection. The open image is in the URL too (image=12), so Back steps
back through the images, then closes the view, and a link opens it. A whole colour group picked
from the list is in the URL too (group=wrong), so Back, a reload or a link selects it again; a lasso's
selection is not (up to 10,000 points): a linked image's view then says it is not in one.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, Patch, State, callback, ctx, dcc, html, no_update

from workbench import CLASS_NAMES, TEST_IMAGES, DataError, ExplainError, RunError, artifacts, figures, maps
from workbench.components import HIDDEN, link_notes, no_run, problem, settings
from workbench.gallery import clicked_step, detail, detail_footer, footer_state, gallery, pages, step_in
from workbench.images import png_data_url
from workbench.urlstate import ChoiceField, IntField, changed_query, parse_query, read_query, read_query_ignored

dash.register_page(__name__, path="/map", name="Map", order=4)

PROMPT = ("Drag a lasso (or pick the box tool) around points of the map, or pick a whole colour group above, "
          "to list their images here.")
NOTHING_INSIDE = ("No dot is inside the lasso or box you drew: draw it around some dots (zoom in with the "
                  "mouse wheel for small groups).")
MAX_SELECTED = 10_000  # a selection holds test indices only: the whole test set at most
FIELDS = {"colour": ChoiceField(tuple(maps.COLOUR_BY), default="true"),  # the URL's parameters for this page
          "image": IntField(0, TEST_IMAGES - 1),
          "group": ChoiceField((*CLASS_NAMES, *maps.RIGHT_WRONG))}  # a whole colour group selected


def layout(**query):
    state, notes = read_query(query, FIELDS)
    colour = state["colour"]
    return html.Div([
        dcc.Location(id="map-url", refresh=False),  # written by callbacks: history entries, no reload
        html.H1("Map", className="page-title h2"),
        link_notes(notes, "map"),  # sync_url then drops a malformed colour or image
        html.P("Each dot is a test image, placed by the model's penultimate-layer features (UMAP): images the "
               "model sees as alike sit together. Hover to see one, lasso a region to list its images.",
               className="text-muted small"),
        dbc.RadioItems(id="map-colour", value=colour, inline=True,
                       options=[{"label": f"colour by {text}", "value": key} for key, text in maps.COLOUR_BY.items()]),
        dcc.Dropdown(id="map-group", placeholder="or select a whole colour group (as a lasso around it would)",
                     className="map-group mt-2"),  # also the keyboard's way to a selection: the dots take a mouse
        html.Div(id="map-hint"),
        dcc.Loading(dcc.Graph(id="map-graph", config={**figures.GRAPH_CONFIG, "scrollZoom": True},
                              clear_on_unhover=True), type="dot"),
        dcc.Tooltip(id="map-tooltip", direction="right"),
        dbc.Card([
            dbc.CardHeader(dbc.Row([
                dbc.Col(html.H5("Selection", id="map-gallery-title", className="mb-0")),
                dbc.Col(dbc.Switch(id="map-overlay", label="Grad-CAM overlay", value=False), width="auto"),
                dbc.Col(dbc.Pagination(id="map-page", max_value=1, active_page=1, fully_expanded=False, size="sm",
                                       className="mb-0"), id="map-page-col", width="auto", className=HIDDEN),
            ], align="center")),
            dbc.CardBody(dcc.Loading(html.Div(html.Div(PROMPT, className="text-muted"), id="map-gallery"),
                                     type="dot")),
        ], className="mt-3"),
        dbc.Modal([dbc.ModalHeader(dbc.ModalTitle(id="map-detail-title")), dbc.ModalBody(id="map-detail-body"),
                   detail_footer("map")], id="map-detail", labelledby="map-detail-title",
                   size="xl", is_open=state["image"] is not None),
        dcc.Store(id="map-selection"),
        dcc.Store(id="map-selection-name"),  # a colour group's name ("Shirt (true class)"); a lasso's has none
        dcc.Store(id="map-group-link", data=state["group"]),  # a link's group=, till the picker has its choices
        dcc.Store(id="map-open", data=state["image"]),  # the test image open in the detail view
    ])


@callback(Output("map-hint", "children"), Input("run-store", "data"))
def show_hint(run_id):
    """Say so before a long first computation (the figure's callback clears it when done)."""
    if not run_id:
        return None
    try:
        ready = maps.has_embedding(settings()["runs_dir"], run_id)
    except RunError:
        return None  # show_map says what is wrong
    if ready:
        return None
    return dbc.Alert(f"Computing the map of run {run_id} (once; ~{maps.ESTIMATED_SECONDS} s on 2 CPU cores). "
                     f"`{artifacts.command_line(settings()['runs_dir'], run_id, 'workbench embed')}` "
                     "computes it ahead of time.", color="info", id="map-computing")


@callback(Output("map-url", "search"), Output("map-colour", "value"), Output("map-detail", "is_open"),
          Output("map-open", "data"),
          Input("map-colour", "value"), Input("map-url", "search"), Input("map-graph", "clickData"),
          Input({"type": "map-thumb", "index": ALL}, "n_clicks"), Input("map-prev", "n_clicks"),
          Input("map-next", "n_clicks"), Input("map-detail", "is_open"),
          State("run-store", "data"), State("map-open", "data"), State("map-selection", "data"),
          State("map-stepped", "data"))
def sync_url(colour, search, click, _clicks, prev, next_, is_open, run_id, current, selection, stepped):
    """The colouring, the open image and the URL in step, one callback both ways (Dash allows a loop
    only inside one): Back or Forward changed the URL -> show what it names; the user acted -> write
    it, the run shown and the URL's other parameters kept. A clicked point or tile opens its image,
    previous / next step through the selection in gallery order. A run chosen in the navbar is
    written by the app. Opening the page writes nothing (see workbench/urlstate.py), unless to drop
    a malformed value."""
    shown = {"colour": colour, "image": current if is_open else None}
    if ctx.triggered_id in (None, "map-url"):  # opening, Back or Forward: the URL wins
        state, _notes, ignored = read_query_ignored(search, FIELDS)
        url = changed_query(search, state, run_id) if ignored else None
        return no_update if url is None else url, *changed(state, shown)
    image = opened_image(click, current, is_open, selection, stepped, prev, next_)
    if image is False:  # not an action: a tile re-rendered, the view opened by this callback
        return (no_update,) * 4
    wanted = {"colour": colour if colour in maps.COLOUR_BY else "true", "image": image}
    if ctx.triggered_id == "map-colour":  # the groups are another colouring's: the picked one goes
        wanted["group"] = None
    url = changed_query(search, wanted, run_id)
    return no_update if url is None else url, no_update, *changed(wanted, shown)[1:]


def changed(state: dict, shown: dict) -> tuple:
    """The colouring, the view's open state and its image for `state`; no_update where shown already."""
    if state["image"] == shown["image"]:
        return (state["colour"] if state["colour"] != shown["colour"] else no_update, no_update, no_update)
    return (state["colour"] if state["colour"] != shown["colour"] else no_update,
            state["image"] is not None, state["image"])


def opened_image(click, current, is_open, selection, stepped, prev, next_):
    """The image open after the user's action: None (closed), an index, or False when the event was
    not an action (the colouring changed: the view, closed then, stays so)."""
    trigger = ctx.triggered_id
    if trigger == "map-colour":
        return current if is_open else None
    if trigger == "map-detail":  # the modal's close button or Escape
        return None if not is_open else False
    if trigger in ("map-prev", "map-next"):
        index = step_in(list(selection or []), current, clicked_step("map", prev, next_, stepped))
        return False if index is None or index == current else index
    if isinstance(trigger, dict):
        return int(trigger["index"]) if ctx.triggered[0]["value"] else False  # clicked, or re-rendered
    if click and click.get("points") and "customdata" in click["points"][0]:
        return int(click["points"][0]["customdata"])
    return False


@callback(Output("map-url", "search", allow_duplicate=True), Input("map-group", "value"),
          State("map-url", "search"), State("run-store", "data"), prevent_initial_call=True)
def write_group(group, search, run_id):
    """A colour group picked (or cleared) into the URL: a history entry, and a link selects it again.
    The picker set to what the URL says already (as the page opens) writes nothing."""
    if parse_query(search).get("group") == group:
        return no_update
    url = changed_query(search, {"group": group}, run_id)
    return no_update if url is None else url


@callback(Output("map-graph", "figure"), Output("map-hint", "children", allow_duplicate=True),
          Output("map-group", "options"), Output("map-group", "value"),
          Input("run-store", "data"), Input("map-colour", "value"), State("map-selection", "data"),
          State("map-group", "value"), State("map-group-link", "data"), prevent_initial_call="initial_duplicate")
def show_map(run_id, colour, selection, group, linked):
    """The map, and its colour groups as the group picker's choices (label: name and count). A
    selection kept through a change of colouring stays drawn as selected (another run clears it); the
    group picked (or a link's group=) stays picked for another run, not for another colouring."""
    colour = colour if colour in maps.COLOUR_BY else "true"
    if not run_id:
        return maps.go.Figure(), no_run(), [], None
    cfg = settings()
    try:
        coords = maps.embedding(cfg["runs_dir"], run_id, cfg["data_dir"])
        frame = artifacts.predictions(cfg["runs_dir"], run_id)
        names = artifacts.class_names(cfg["runs_dir"], run_id)
        kept = selection if ctx.triggered_id == "map-colour" and selection else None
        fig = maps.map_figure(coords, frame, names, colour, kept)
    except (RunError, DataError) as exc:
        return maps.go.Figure(), problem(str(exc), "No map"), [], None
    options = [{"label": f"{name} ({len(members):,} images)", "value": name}
               for name, members in maps.groups(frame, names, colour) if members]
    names_shown = [option["value"] for option in options]
    picked = None if ctx.triggered_id == "map-colour" else next((g for g in (group, linked) if g in names_shown), None)
    return fig, None, options, picked


@callback(Output("map-tooltip", "show"), Output("map-tooltip", "bbox"), Output("map-tooltip", "children"),
          Input("map-graph", "hoverData"), State("run-store", "data"))
def show_hover(hover, run_id):
    """The hovered image with its true and predicted class."""
    if not hover or not run_id:
        return False, no_update, no_update
    point = hover["points"][0]
    index = int(point["customdata"])
    cfg = settings()
    try:
        row = artifacts.predictions(cfg["runs_dir"], run_id).set_index("index").loc[index]
        names = artifacts.class_names(cfg["runs_dir"], run_id)
        image = artifacts.test_images(cfg["data_dir"])[index]
    except (RunError, DataError, KeyError):
        return False, no_update, no_update
    return True, point["bbox"], html.Div([
        html.Img(src=png_data_url(image, scale=3), className="thumb"),
        html.Div(f"#{index}: {names[int(row['predicted'])]}", className="small"),
        html.Div(f"true {names[int(row['label'])]}", className="small text-muted")], className="text-center")


def selected_indices(selected) -> list[int] | None:
    """Test indices of a lasso / box selection (each point carries its index as customdata); None when
    the selection was cleared (a double click), [] for a lasso around no dot."""
    if not isinstance(selected, dict):
        return None
    points = selected.get("points") or []
    return [int(p["customdata"]) for p in points[:MAX_SELECTED] if isinstance(p, dict) and "customdata" in p]


@callback(Output("map-selection", "data"), Output("map-page", "active_page"),
          Output("map-graph", "figure", allow_duplicate=True), Output("map-selection-name", "data"),
          Input("map-graph", "selectedData"), Input("run-store", "data"), Input("map-group", "value"),
          State("map-colour", "value"), prevent_initial_call=True)
def remember_selection(selected, run_id, group, colour):
    """The lasso's images, or a whole colour group's (the group picker, whose dots are then drawn as
    selected, as a lasso's are, and whose name titles the list); cleared for another run."""
    if ctx.triggered_id == "map-group":
        indices = group_indices(run_id, colour, group) if group and run_id else None
        if indices is None:
            return (no_update,) * 4
        return indices, 1, show_selected(run_id, colour, indices), f"{group} ({maps.COLOUR_BY.get(colour, '')})"
    if ctx.triggered_id != "map-graph":
        return None, 1, no_update, None  # another run: its map is another picture
    return selected_indices(selected), 1, no_update, None


def show_selected(run_id: str, colour: str, indices: list[int]):
    """A patch of the map that draws `indices` as selected (each trace's selectedpoints)."""
    cfg = settings()
    try:
        positions = maps.selected_points(artifacts.predictions(cfg["runs_dir"], run_id),
                                         artifacts.class_names(cfg["runs_dir"], run_id), colour, indices)
    except (RunError, DataError):
        return no_update
    patch = Patch()
    for trace, points in enumerate(positions):
        patch["data"][trace]["selectedpoints"] = points
    return patch


def group_indices(run_id: str, colour: str, group: str) -> list[int] | None:
    """The test indices of one colour group, or None when there is no such group (a stale choice)."""
    cfg = settings()
    try:
        found = maps.groups(artifacts.predictions(cfg["runs_dir"], run_id),
                            artifacts.class_names(cfg["runs_dir"], run_id), colour)
    except (RunError, DataError):
        return None
    return next((members[:MAX_SELECTED] for name, members in found if name == group), None)


@callback(Output("map-gallery", "children"), Output("map-gallery-title", "children"),
          Output("map-page", "max_value"), Output("map-page-col", "className"),
          Input("map-selection", "data"), Input("map-page", "active_page"), Input("map-overlay", "value"),
          State("run-store", "data"), State("map-selection-name", "data"), prevent_initial_call=True)
def show_gallery(indices, page, with_overlay, run_id, name):
    if not indices or not run_id:
        text = NOTHING_INSIDE if indices == [] and run_id else PROMPT
        return html.Div(text, className="text-muted", id="map-prompt"), "Selection", 1, HIDDEN
    try:
        tiles, total = gallery(settings(), run_id, indices, page or 1, bool(with_overlay), "map")
    except (RunError, DataError, ExplainError) as exc:
        return problem(str(exc), "No gallery"), "Selection", 1, HIDDEN
    n_pages = pages(total)
    title = f"Selection: {name}, {total:,} images" if name else f"Selection: {total:,} images"
    return html.Div(tiles, className="tiles gallery", id="map-tiles"), title, n_pages, "" if n_pages > 1 else HIDDEN


@callback(Output("map-detail-title", "children"), Output("map-detail-body", "children"),
          Output("map-prev", "disabled"), Output("map-next", "disabled"), Output("map-position", "children"),
          Input("map-open", "data"), Input("map-selection", "data"), State("run-store", "data"))
def show_detail(index, selection, run_id):
    """The open image; the footer steps through the selection when the image is in it (a point
    clicked outside the selection has no previous or next)."""
    if not isinstance(index, int) or not run_id:
        return no_update, no_update, True, True, None
    title = f"Test image #{index}"
    try:
        body = detail(settings(), run_id, index)
    except (RunError, DataError, ExplainError) as exc:
        return title, problem(str(exc)), True, True, None
    return title, body, *footer_state(list(selection or []), index, "in the selection",
                                            "not in the selection")
