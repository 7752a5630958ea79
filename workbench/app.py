"""The Dash workbench: a multi-page app over the run folders (it reads runs, it never trains).

    workbench serve                          # http://127.0.0.1:8050, gunicorn, 1 worker
    workbench serve --workers 3 --port 8080  # several gunicorn worker processes
    gunicorn "workbench.app:wsgi()"          # any WSGI server; settings from WORKBENCH_* variables

Pages live in the `pages` package (one file per page), the stylesheet in the `assets` package;
both folders are found through the installed packages, so a non-editable install works. The run
selector in the navbar writes the chosen run id into the `run-store`; every page reads it. The run is
in the URL too (`/errors?run=fast-default`): a link or Back selects it, choosing another run writes it
there (other parameters kept), and the navbar links carry it from page to page.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
import flask
import numpy as np
from dash import ALL, Input, Output, State, dcc, html

from model import runs
from model.data import IMAGE_SIZE
from workbench.api import register_api
from workbench.classify import low_confidence_threshold
from workbench.components import settings
from workbench.guard import ERROR_ID, callback_failed, guard_server
from workbench.limits import ApiLimits
from workbench.urlstate import merge_query

THEME = "cerulean"  # Bootswatch theme shipped in Bootstrap-Flask: served locally (no CDN, works
                    # offline) and one of those without a web-font import
THEME_URL = "/_workbench/theme/bootstrap.min.css"
GUNICORN_THREADS = 16      # per worker: callbacks of one page load arrive together, and a few slow
                           # clients (each held up to gworker.READ_IDLE_S) must not take every thread
GUNICORN_TIMEOUT = 120     # s: the first request of a worker loads TensorFlow and the model
GUNICORN_KEEPALIVE = 15    # s an idle keep-alive connection stays open: above clients' reuse gaps (the
                           # load benchmark saw idle connections closed under clients at gunicorn's 2 s)


def create_app(runs_dir: Path | str = runs.DEFAULT_RUNS_DIR, backend: str = "keras",
               data_dir: Path | str | None = None, low_confidence: float | None = None) -> dash.Dash:
    """The Dash app over `runs_dir`; `backend` ("keras", "onnx", "tflite") goes to the predictors.
    `low_confidence` (default: $WORKBENCH_LOW_CONFIDENCE, else 0.5) is the one threshold the pages
    and the JSON API flag answers below."""
    if low_confidence is None:
        low_confidence = low_confidence_threshold()

    app = dash.Dash(
        __name__, use_pages=True, title="Fashion workbench",
        pages_folder=package_folder("pages"), assets_folder=package_folder("assets"),
        external_stylesheets=[THEME_URL], suppress_callback_exceptions=True,
        on_error=callback_failed)  # an error no page caught: said above the page, never a blank part
    guard_server(app.server, ApiLimits.from_env())  # one request-size limit for every route
    _serve_theme(app.server)
    app.server.config.update(WORKBENCH_RUNS_DIR=str(runs_dir), WORKBENCH_BACKEND=backend,
                             WORKBENCH_DATA_DIR=str(data_dir) if data_dir else None,
                             WORKBENCH_LOW_CONFIDENCE=low_confidence)
    app.layout = serve_layout

    # The run in the URL <-> the selector, in the browser: only it sees the URL as it is now (each
    # page writes its own parameters through its own dcc.Location), so other parameters are kept.
    app.clientside_callback(RUN_FROM_URL, Output("run-select", "value"), Output("run-store", "data"),
                            Output("app-url", "search"), Output("run-note", "children"),
                            Output("run-note", "is_open"), Input("app-url", "search"),
                            Input("run-select", "value"), State("run-select", "options"))

    # Another page: the error said above the last one goes (the new page's callbacks say theirs)
    app.clientside_callback("function(_) { return false; }", Output(ERROR_ID, "is_open"),
                            Input("app-url", "pathname"), prevent_initial_call=True)

    # "Skip to the page", the first Tab stop: past the navbar's 13 stops to the page (the next Tab is its
    # first control). A button, not a #main link: the hash would be a history entry
    app.clientside_callback("function(_) { document.getElementById('main').focus(); "
                            "return dash_clientside.no_update; }", Output("main", "title"),
                            Input("skip-link", "n_clicks"), prevent_initial_call=True)

    @app.callback(Output({"type": "nav-link", "path": ALL}, "href"),
                  Output({"type": "nav-link", "path": ALL}, "active"),
                  Input("app-url", "pathname"), Input("run-store", "data"),
                  State({"type": "nav-link", "path": ALL}, "id"))
    def keep_run_in_links(pathname, run_id, ids):
        paths = [link["path"] for link in ids]
        query = merge_query("", {"run": run_id})
        return [path + query for path in paths], [path == pathname for path in paths]

    @app.callback(Output("navbar-collapse", "is_open"), Input("navbar-toggler", "n_clicks"),
                  State("navbar-collapse", "is_open"), prevent_initial_call=True)
    def toggle_navbar(_clicks, is_open):
        return not is_open

    # The JSON API, /api/v1/..., beside the pages, with the pages' threshold.
    register_api(app.server, Path(runs_dir), backend, low_confidence=low_confidence)
    _finish_setup(app)
    return app


# Page load or Back/Forward (the URL changed): select the URL's run, or say it does not exist and keep
# the selector's. None named: the default (the first), not the run this tab's session remembers, so an
# address shows the same run in every tab. The user picked a run: store it and write it into the URL,
# keeping the other parameters.
RUN_FROM_URL = """
function(search, selected, options) {
    const skip = window.dash_clientside.no_update;
    const params = new URLSearchParams(window.location.search);
    const wanted = params.get("run");
    if (window.dash_clientside.callback_context.triggered_id === "run-select") {
        if (!selected || wanted === selected) { return [skip, selected, skip, skip, skip]; }
        params.set("run", selected);
        return [skip, selected, "?" + params.toString(), "", false];
    }
    if (wanted === null) {  // an address without run= means the default run, as in a fresh tab (Back
        const first = (options || []).length ? options[0].value : selected;  // to it undoes a run pick)
        return [first === selected ? skip : first, first, skip, "", false];
    }
    if ((options || []).some(o => o.value === wanted)) {
        return [wanted === selected ? skip : wanted, wanted, skip, "", false];
    }
    const shown = wanted.length > 64 ? wanted.slice(0, 64) + "…" : wanted;
    return [skip, selected, skip, `Run '${shown}' not found: showing ${selected ? `run '${selected}'` : "no run"}.`, true];
}
"""


def package_folder(name: str) -> str:
    """The folder of an installed package, found without importing it (Dash imports the pages
    itself; workbench never imports pages), so a non-editable install works too."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not installed; reinstall the project (pip install -e .)")
    return str(Path(next(iter(spec.submodule_search_locations))).resolve())


def _finish_setup(app: dash.Dash) -> None:
    """Answer one request now, so Dash's first-request setup is done before real traffic.

    Dash registers its JavaScript bundles on the first request and marks that done before it
    finishes; under a threaded server (gunicorn gthread, the dev server) requests arriving
    together with the first one can then be refused ("dash is not a registered library").
    """
    app.server.test_client().get("/")


def _serve_theme(server: flask.Flask) -> None:
    """The Bootstrap theme's stylesheet from the installed Bootstrap-Flask package."""
    import flask_bootstrap

    folder = Path(flask_bootstrap.__file__).parent / "static" / "bootstrap5" / "css" / "bootswatch" / THEME
    server.add_url_rule(THEME_URL, "workbench_theme",
                        lambda: flask.send_from_directory(folder, "bootstrap.min.css", max_age=3600))


def serve_layout():
    """The frame around every page: navbar with the run selector, the page, the shared store."""
    run_ids = runs.list_runs(settings()["runs_dir"])
    selector = dcc.Dropdown(
        id="run-select", options=[{"label": r, "value": r} for r in run_ids],
        value=run_ids[0] if run_ids else None, clearable=False,  # no persistence: the URL names the run
        placeholder="no runs found", className="run-select")
    links = [dbc.NavLink(page["name"], href=page["relative_path"], active=False,  # active, ?run=: a callback
                         id={"type": "nav-link", "path": page["relative_path"]})
             for page in dash.page_registry.values() if not is_not_found_page(page)]
    navbar = dbc.Navbar(dbc.Container([  # below 992 px the links and run picker fold behind a toggler
        dbc.NavbarBrand("Fashion workbench", href="/"),
        dbc.NavbarToggler(id="navbar-toggler", n_clicks=0),
        dbc.Collapse([dbc.Nav(links, navbar=True, className="me-auto"),
                      html.Div([html.Span("run", className="run-label"), selector], className="run-picker")],
                     id="navbar-collapse", is_open=False, navbar=True),
    ], fluid=True), color="primary", dark=True, expand="lg", className="mb-3")
    note = dbc.Alert(id="run-note", is_open=False, color="warning", dismissable=True, className="run-note")
    failed = dbc.Alert(id=ERROR_ID, is_open=False, color="danger", dismissable=True, className="problem")
    skip = html.Button("Skip to the page", id="skip-link",  # shown only when the keyboard focuses it
                       className="skip-link btn btn-light visually-hidden-focusable")
    return html.Div([dcc.Store(id="run-store"), dcc.Location(id="app-url", refresh=False), skip, navbar,
                     html.Main(dbc.Container([note, failed, dash.page_container], fluid=True, className="page"),
                               id="main", tabIndex="-1")])


def is_not_found_page(page: dict) -> bool:
    """Dash's custom 404 page (pages/not_found_404.py): shown for unknown paths, not a navbar link."""
    return page["module"].split(".")[-1] == "not_found_404"


# ---------------------------------------------------------------------------------------------
# Serving

def wsgi(runs_dir: str | None = None, backend: str | None = None, data_dir: str | None = None) -> flask.Flask:
    """WSGI factory for gunicorn & co; defaults from WORKBENCH_RUNS_DIR, WORKBENCH_BACKEND and
    FASHION_MNIST_DIR (read by model.data when data_dir is None)."""
    app = create_app(runs_dir or os.environ.get("WORKBENCH_RUNS_DIR") or runs.DEFAULT_RUNS_DIR,
                     backend or os.environ.get("WORKBENCH_BACKEND") or "keras", data_dir)
    warm_up(app.server)
    return app.server


def warm_up(server: flask.Flask) -> threading.Thread:
    """Load the default run's predictor and answer one prediction in the background, so the first user
    does not wait for TensorFlow (17-19 s measured); /api/v1/health says "loading" (503) until then."""
    from workbench.inference import get_predictor

    runs_dir, backend = server.config["WORKBENCH_RUNS_DIR"], server.config["WORKBENCH_BACKEND"]
    server.config["WORKBENCH_READINESS"] = "loading"

    def load():
        available = []
        try:
            available = runs.list_runs(runs_dir)
            if available:
                get_predictor(runs_dir, available[0], backend).predict(
                    np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32))
        except Exception:  # a broken default run: the pages and the API say why when asked
            logging.getLogger(__name__).exception("warm-up of the default run failed")
        server.config["WORKBENCH_READINESS"] = "ok"  # the API is ready; the explainer is for the pages
        if available:
            explain_first(runs_dir, available[0])
        look_once()

    thread = threading.Thread(target=load, name="workbench-warm-up", daemon=True)
    thread.start()
    return thread


def look_once() -> None:
    """Load the ImageNet view and look at one blank square, so the first photo does not wait ~3 s."""
    from model.imagenet import INPUT_SIZE
    from workbench.classify import imagenet_network

    try:
        imagenet_network().look(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.uint8))
    except Exception:  # missing weights: each photo's answer says the view was skipped, and why
        logging.getLogger(__name__).exception("warm-up of the ImageNet view failed")


def explain_first(runs_dir, run_id: str) -> None:
    """Build the run's explainer and one Grad-CAM, so the first Predict page does not stall on it."""
    from workbench.explain import get_explainer

    try:
        get_explainer(runs_dir, run_id).explain(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), np.uint8), 0)
    except Exception as exc:  # an imported run without explanations: the page says so
        logging.getLogger(__name__).info("no explainer warm-up for run %s: %s", run_id, exc)


def serve_gunicorn(runs_dir: Path, backend: str, data_dir: str | None, host: str, port: int,
                    workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            for key, value in {"bind": f"{host}:{port}", "workers": workers, "threads": GUNICORN_THREADS,
                               "worker_class": "workbench.gworker.DeadlineWorker", "timeout": GUNICORN_TIMEOUT,
                               "keepalive": GUNICORN_KEEPALIVE, "limit_request_line": 8190,
                               "limit_request_fields": 100, "limit_request_field_size": 8190,
                               "accesslog": None, "preload_app": False,
                               "control_socket_disable": True}.items():
                self.cfg.set(key, value)

        def load(self):  # in each worker after the fork: TensorFlow is never loaded in the master
            return wsgi(str(runs_dir), backend, data_dir)

    Server().run()
