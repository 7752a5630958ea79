"""Not found: Dash's custom 404 page (the file name is Dash's convention) for a path no page has.

It names the path asked for and links to every page, so a mistyped or old link (/label-issues for
/suspects) leads somewhere. It is no navbar link (workbench.app.is_not_found_page).
"""

from __future__ import annotations

import dash
from dash import Input, Output, callback, dcc, html

dash.register_page(__name__, name="Page not found")


def layout(**_query):
    pages = sorted((p for p in dash.page_registry.values() if p["module"] != __name__),
                   key=lambda p: (p.get("order") is None, p.get("order") or 0, p["name"]))
    return html.Div([
        dcc.Location(id="notfound-url", refresh=False),
        html.H1("Page not found", className="page-title h2"),
        html.P(id="notfound-path"),
        html.P("The workbench's pages:"),
        html.Ul([html.Li(dcc.Link(p["name"], href=p["relative_path"])) for p in pages], id="notfound-pages"),
    ], id="notfound")


@callback(Output("notfound-path", "children"), Input("notfound-url", "pathname"))
def name_the_path(pathname):
    return ["There is no page at ", html.Code(str(pathname or "")[:200]), "."]
