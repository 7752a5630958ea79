"""All errors: every misclassified test image (or every test image) in one sortable, filterable table.

Columns: test index, true and predicted class, confidence (top probability), margin (top-1 minus
top-2), loss (-log p(true class)) and the suspected-label score (cleanlab's label quality: low = the
given label looks wrong). Filter by class pair and confidence range, sort by any column, export
exactly the rows shown (filtered and sorted) as CSV; a click on a row opens the image with Grad-CAM.
Filters, sort, page and the open image live in the URL, so Back undoes one step at a time:
/all-errors?true=6&pred=0&lo=0.5&sort=loss:desc&page=2&image=123
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, clientside_callback, ctx, dash_table, dcc, html, no_update
from dash.dash_table.Format import Format, Scheme

from workbench import CLASS_NAMES, TEST_IMAGES, DataError, ExplainError, RunError, insight
from workbench.components import link_notes, no_run, problem, settings
from workbench.gallery import clicked_step, detail, detail_footer, footer_state, step_in
from workbench.gallery import pages as page_count
from workbench.urlstate import ChoiceField, FloatField, IntField, changed_query, merge_query, read_query_ignored

dash.register_page(__name__, path="/all-errors", name="All errors", order=3)

PAGE_SIZE = 25  # rows per table page: fits a laptop screen without scrolling
DEFAULT_SORT = [{"column_id": "loss", "direction": "desc"}]  # the worst mistakes first
URL_KEYS = ("show", "true", "pred", "lo", "hi", "sort", "page")  # this page's parameters (the rest are kept)
NUMBER = Format(precision=3, scheme=Scheme.fixed)
COLUMNS = [{"name": "index", "id": "index", "type": "numeric"},
           {"name": "true", "id": "true"}, {"name": "predicted", "id": "predicted"},
           {"name": "confidence", "id": "confidence", "type": "numeric", "format": NUMBER},
           {"name": "margin", "id": "margin", "type": "numeric", "format": NUMBER},
           {"name": "loss", "id": "loss", "type": "numeric", "format": NUMBER},
           {"name": "label quality (low = suspect)", "id": "label_quality", "type": "numeric", "format": NUMBER}]


def sort_label(column: dict, direction: str) -> str:
    """'sort: loss, highest first' / 'sort: true, A to Z': a sort order in words."""
    if column.get("type") == "numeric":
        order = "lowest first" if direction == "asc" else "highest first"
    else:
        order = "A to Z" if direction == "asc" else "Z to A"
    return f"sort: {column['name'].split(' (')[0]}, {order}"


SORT_OPTIONS = [{"label": sort_label(c, d), "value": f"{c['id']}:{d}"} for c in COLUMNS for d in ("desc", "asc")]


def sort_key(sort_by) -> str | None:
    """DataTable's sort_by as the URL writes it ("loss:desc"); None when unsorted."""
    return f"{sort_by[0]['column_id']}:{sort_by[0]['direction']}" if sort_by else None


def _class(value) -> int | None:
    try:
        k = int(value)
    except (TypeError, ValueError):
        return None
    return k if 0 <= k < len(CLASS_NAMES) else None


FIELDS = {  # the URL's parameters for this page (write_url writes URL_KEYS back); defaults left out
    "show": ChoiceField(("errors", "all"), default="errors"),
    "true": IntField(0, len(CLASS_NAMES) - 1), "pred": IntField(0, len(CLASS_NAMES) - 1),
    "lo": FloatField(0.0, 1.0, default=0.0), "hi": FloatField(0.0, 1.0, default=1.0),
    "sort": ChoiceField(tuple(f"{c['id']}:{d}" for c in COLUMNS for d in ("asc", "desc")), default="loss:desc"),
    "page": IntField(1, -(-TEST_IMAGES // PAGE_SIZE), default=1),
    "image": IntField(0, TEST_IMAGES - 1),  # the image open in the detail view (open_detail writes it)
}


def read_state(query) -> tuple[dict, list[str], dict]:
    """The URL's state, notes on what was ignored, and the ignored values (urlstate.read_query_ignored);
    also an inverted confidence range (lo above hi), which would show no row without saying why."""
    state, notes, ignored = read_query_ignored(query, FIELDS)
    if state["lo"] > state["hi"]:
        notes.append(f"lo={state['lo']:g} and hi={state['hi']:g} ignored: the range's low end is above its high end")
        ignored.update({key: str(state[key]) for key in ("lo", "hi")})
        state["lo"], state["hi"] = FIELDS["lo"].default, FIELDS["hi"].default
    return state, notes, ignored


def parse_sort(text) -> list[dict]:
    """"loss:desc" -> DataTable sort_by; anything else -> the default order."""
    column, _, direction = str(text or "").partition(":")
    if column in {c["id"] for c in COLUMNS} and direction in ("asc", "desc"):
        return [{"column_id": column, "direction": direction}]
    return DEFAULT_SORT


def layout(**query):
    state, notes, ignored = read_state(query)
    options = [{"label": name, "value": k} for k, name in enumerate(CLASS_NAMES)]
    return html.Div([
        dcc.Location(id="table-url", refresh=False),
        html.H1("All errors", className="page-title h2"),
        link_notes(notes, "table"), dcc.Store(id="table-ignored", data=sorted(ignored)),
        dbc.Row([
            dbc.Col(dbc.Switch(id="table-all", label="every test image (not only errors)",
                               value=state["show"] == "all"), width="auto"),
            dbc.Col(dcc.Dropdown(id="table-true", options=options, value=state["true"],
                                 placeholder="any true class"), md=2),
            dbc.Col(dcc.Dropdown(id="table-pred", options=options, value=state["pred"],
                                 placeholder="any predicted class"), md=2),
            dbc.Col([html.Div("confidence", className="small text-muted"),
                     dcc.RangeSlider(id="table-confidence", min=0, max=1, step=0.05,
                                     value=[state["lo"], state["hi"]], marks={0: "0", 0.5: "0.5", 1: "1"},
                                     tooltip={"placement": "bottom"})], md=3),
            dbc.Col(dcc.Dropdown(id="table-sort", options=SORT_OPTIONS, value=sort_key(parse_sort(state["sort"])),
                                 clearable=False, searchable=False, placeholder="unsorted",
                                 style={"minWidth": "15rem"}),
                    md=3),  # the keyboard's way to sort: the column titles take a mouse click
            dbc.Col(dbc.Button("One by one", id="table-first", color="primary", outline=True, size="sm",
                               title="open this page's first image; previous / next step through the rows"),
                    width="auto"),  # also the keyboard's way in: a row takes a mouse click
            dbc.Col(dbc.Button("Export CSV", id="table-export", color="secondary", size="sm"), width="auto"),
        ], align="center", className="g-2"),
        html.Div(id="table-problem"),
        html.Div(id="table-count", className="small text-muted my-2"),
        html.Div(dash_table.DataTable(
            id="table-grid", columns=COLUMNS, data=[], sort_action="native", sort_mode="single",
            sort_by=parse_sort(state["sort"]), page_action="native", page_size=PAGE_SIZE,
            page_current=state["page"] - 1, style_cell={"fontSize": "0.85rem", "padding": "2px 6px"},
            style_table={"overflowX": "auto"},  # a narrow window scrolls the table, not the page
            style_data_conditional=[{"if": {"state": "active"}, "backgroundColor": "#e8f1fc"}]),
            className="table-grid-wrap"),  # its own pager hidden (style.css): Tab could not leave its page box
        dbc.Pagination(id="table-pager", max_value=1, active_page=state["page"], fully_expanded=False,
                       first_last=True, previous_next=True, size="sm", class_name="mt-2"),
        dcc.Download(id="table-download"),
        dbc.Modal([dbc.ModalHeader(dbc.ModalTitle(id="table-detail-title")), dbc.ModalBody(id="table-detail-body"),
                   detail_footer("table")], id="table-detail", labelledby="table-detail-title",
                   size="xl", is_open=state["image"] is not None),
        dcc.Store(id="table-open", data=state["image"]),  # the test image open in the detail view
    ])


@callback(Output("table-grid", "data"), Output("table-count", "children"), Output("table-problem", "children"),
          Output("table-grid", "page_current"),
          Input("run-store", "data"), Input("table-all", "value"), Input("table-true", "value"),
          Input("table-pred", "value"), Input("table-confidence", "value"), State("table-grid", "page_current"))
def show_rows(run_id, every, true, pred, confidence, current):
    """The filtered rows. A filter the user changes starts again at page 1 (sync_url); a link's page
    past the filtered table's end, as the page opens, shows the last page and says so."""
    page = no_update
    if not run_id:
        return [], "", no_run(), page
    runs_dir = settings()["runs_dir"]
    try:
        rows = insight.run_rows(runs_dir, run_id)
    except (RunError, DataError) as exc:
        return [], "", problem(str(exc), "No predictions"), page
    lo, hi = (confidence if isinstance(confidence, list) and len(confidence) == 2 else (0.0, 1.0))
    shown = insight.filter_rows(rows, _class(true), _class(pred), (float(lo), float(hi)), errors_only=not every)
    what = "test images" if every else "misclassified test images"
    count = (f"{len(shown):,} {what} of {len(rows):,} (sort by a column title or the sort list; click a "
             "row, or 'One by one', for Grad-CAM)")
    pages = page_count(len(shown), PAGE_SIZE)
    opening = ctx.triggered_id in (None, "run-store")
    if opening and isinstance(current, int) and current >= pages:  # a link's page past the end
        count += f"; the link's page {current + 1} is past the last, so page {pages} is shown"
        page = pages - 1
    data = shown[insight.ROW_COLUMNS].assign(id=shown["index"]).to_dict("records")
    return data, count, None, page


# DataTable's own pager traps the keyboard (Tab never leaves its page box, dash 4.4); Bootstrap's pager
# stands in for it, in step with the table's page both ways (one callback: Dash allows a loop only there)
clientside_callback("""
function(active, current, rows) {
    const trigger = (dash_clientside.callback_context.triggered_id || "");
    const last = Math.max(1, Math.ceil((rows || []).length / PAGE_SIZE));
    if (trigger === "table-pager" && active - 1 !== current) {
        return [active - 1, dash_clientside.no_update, last];
    }
    const page = (current || 0) + 1;
    return [dash_clientside.no_update, page === active ? dash_clientside.no_update : page, last];
}""".replace("PAGE_SIZE", str(PAGE_SIZE)), Output("table-grid", "page_current", allow_duplicate=True),
                    Output("table-pager", "active_page"), Output("table-pager", "max_value"),
                    Input("table-pager", "active_page"), Input("table-grid", "page_current"),
                    Input("table-grid", "data"), prevent_initial_call="initial_duplicate")

# The sort list and the table's sort in step both ways (the column titles sort too, by mouse)
clientside_callback("""
function(value, sortBy) {
    const none = dash_clientside.no_update;
    const now = (sortBy && sortBy.length) ? sortBy[0].column_id + ":" + sortBy[0].direction : null;
    if ((dash_clientside.callback_context.triggered_id || "") === "table-sort") {
        if (!value || value === now) { return [none, none]; }
        const [column, direction] = value.split(":");
        return [[{column_id: column, direction: direction}], none];
    }
    return [none, now === value ? none : now];
}""", Output("table-grid", "sort_by", allow_duplicate=True), Output("table-sort", "value"),
                    Input("table-sort", "value"), Input("table-grid", "sort_by"), prevent_initial_call=True)

FILTERS = ("table-all", "table-true", "table-pred", "table-confidence")


@callback(Output("table-url", "search"), Output("table-all", "value"), Output("table-true", "value"),
          Output("table-pred", "value"), Output("table-confidence", "value"), Output("table-grid", "sort_by"),
          Output("table-grid", "page_current", allow_duplicate=True),
          Input("table-all", "value"), Input("table-true", "value"), Input("table-pred", "value"),
          Input("table-confidence", "value"), Input("table-grid", "sort_by"), Input("table-grid", "page_current"),
          Input("table-url", "search"), State("table-grid", "data"), State("run-store", "data"),
          prevent_initial_call=True)
def sync_url(every, true, pred, confidence, sort_by, page, search, rows, run_id):
    """The view and the URL in step, one callback both ways (Dash allows a loop only inside one): Back
    or Forward changed the URL -> show its view; the user changed the view -> write it, with the run
    shown and the URL's other parameters kept. A changed filter starts again at page 1."""
    shown = [bool(every), _class(true), _class(pred), confidence, sort_by, page]
    if ctx.triggered_id == "table-url":
        wanted = controls(read_state(search)[0])
        wanted[-1] = min(wanted[-1], page_count(len(rows or []), PAGE_SIZE) - 1)  # past the end: show_rows
        return no_update, *(w if w != now else no_update for w, now in zip(wanted, shown))
    first = 0 if ctx.triggered_id in FILTERS else page
    view = url_query(every, true, pred, confidence, sort_by, first)
    url = changed_query(search, {key: view.get(key) for key in URL_KEYS}, run_id)
    return no_update if url is None else url, *(no_update,) * 5, first if first != page else no_update


def controls(state: dict) -> list:
    """The controls' values for the URL's state, in sync_url's order."""
    return [state["show"] == "all", state["true"], state["pred"], [state["lo"], state["hi"]],
            parse_sort(state["sort"]), state["page"] - 1]


@callback(Output("table-url", "search", allow_duplicate=True), Input("table-ignored", "data"),
          State("table-url", "search"), prevent_initial_call="initial_duplicate")
def drop_ignored(keys, search):
    """The URL's values that the page ignored (and said so) out of it, once, when the page opens with them.
    (write_url writes only on a change, so that opening a page adds no history entry.)"""
    return merge_query(search, dict.fromkeys(keys, None)) if keys else no_update


def url_query(every, true, pred, confidence, sort_by, page) -> dict:
    """The view's state as query parameters, defaults left out so links stay short."""
    query = {"show": "all"} if every else {}
    query.update({k: v for k, v in (("true", _class(true)), ("pred", _class(pred))) if v is not None})
    if isinstance(confidence, list) and len(confidence) == 2 and list(confidence) != [0, 1]:
        query.update(lo=confidence[0], hi=confidence[1])
    if sort_by and sort_by != DEFAULT_SORT:
        query["sort"] = sort_key(sort_by)
    if isinstance(page, int) and page > 0:
        query["page"] = page + 1
    return query


@callback(Output("table-download", "data"), Input("table-export", "n_clicks"),
          State("table-grid", "derived_virtual_data"), State("run-store", "data"), prevent_initial_call=True)
def export_csv(_clicks, shown, run_id):
    """Exactly the rows shown: the filters' rows in the table's current sort order (every page)."""
    return {"content": insight.rows_csv(shown or []), "filename": f"{run_id or 'run'}-errors.csv",
            "type": "text/csv"}


@callback(Output("table-detail", "is_open"), Output("table-open", "data"),
          Output("table-url", "search", allow_duplicate=True), Output("table-grid", "active_cell"),
          Output("table-grid", "page_current", allow_duplicate=True),
          Input("table-grid", "active_cell"), Input("table-prev", "n_clicks"), Input("table-next", "n_clicks"),
          Input("table-detail", "is_open"), Input("table-url", "search"), Input("table-first", "n_clicks"),
          State("table-open", "data"),
          State("table-grid", "derived_virtual_data"), State("table-grid", "page_current"),
          State("table-stepped", "data"), prevent_initial_call=True)
def open_detail(cell, prev, next_, is_open, search, _first, current, shown, page, stepped):
    """A clicked row opens its image ("One by one": the page's first row); previous / next step through
    the rows in the table's order; the close button closes it. Each writes image= into the URL, so Back
    and Forward (which change the URL) step back through the images and close the view, one at a time."""
    trigger = ctx.triggered_id
    if trigger == "table-url":
        image = read_state(search)[0]["image"]
        return (image is not None if image != current or bool(is_open) != (image is not None) else no_update,
                image if image != current else no_update, no_update, None if image is None else no_update,
                no_update)
    nothing = no_update, no_update, no_update, no_update, no_update
    if trigger == "table-detail":  # opened here (nothing to do), or closed by the user
        if is_open or current is None:
            return nothing
        image = None
    elif trigger in ("table-prev", "table-next"):
        order = [int(row["id"]) for row in shown or []]
        image = step_in(order, current, clicked_step("table", prev, next_, stepped))
        if image is None or image == current:
            return nothing
        on_page = order.index(image) // PAGE_SIZE  # the table follows: closing shows the image's row
        if on_page != page:
            url = changed_query(search, {"image": image, "page": on_page + 1 if on_page else None})
            return True, image, no_update if url is None else url, no_update, on_page
    elif trigger == "table-first":  # the current page's first row
        rows = (shown or [])[(page or 0) * PAGE_SIZE:][:1]
        image = int(rows[0]["id"]) if rows else None
    else:
        image = int(cell["row_id"]) if cell and cell.get("row_id") is not None else None
        if image is None or (image == current and is_open):
            return nothing
    url = changed_query(search, {"image": image})  # closing forgets the clicked cell: a click on it reopens
    return image is not None, image, no_update if url is None else url, None if image is None else no_update, no_update


@callback(Output("table-detail-title", "children"), Output("table-detail-body", "children"),
          Input("table-open", "data"), State("run-store", "data"))
def show_detail(index, run_id):
    if not isinstance(index, int) or not run_id:
        return no_update, no_update
    try:
        body = detail(settings(), run_id, index, "table")
    except (RunError, DataError, ExplainError) as exc:
        body = problem(str(exc))
    return f"Test image #{index}", body


@callback(Output("table-prev", "disabled"), Output("table-next", "disabled"), Output("table-position", "children"),
          Input("table-open", "data"), Input("table-grid", "derived_virtual_data"))
def show_position(index, shown):
    """Where the open image sits in the table's order (a link's image once the rows have loaded)."""
    if not isinstance(index, int):
        return True, True, None
    return footer_state([int(row["id"]) for row in shown or []], index, "in the table's order",
                        "not among the table's rows (its filters leave it out)" if shown else None)
