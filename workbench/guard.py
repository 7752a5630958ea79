"""Request-level protection of the whole app (pages, Dash callbacks, API): one size limit, no 500s
for malformed requests.

    guard_server(app.server, limits)              # in workbench.app.create_app

- One request-size limit for every route (Flask MAX_CONTENT_LENGTH = ApiLimits.max_request_bytes): a
  body with a larger Content-Length is refused before it is read, a chunked one as soon as it passes
  the limit (refuse_long_chunked_body), with 413.
- JSON nested deeper than Python's parser goes (RecursionError) is a 400, on any route.
- A Dash callback request that fails before any page's callback runs (a hand-made payload: a
  malformed body, an unknown output) answers 400, logged; other errors stay 500s, which are bugs.
- An error inside a page's callback that the page did not catch (a run file damaged in a way no check
  foresaw, or a hand-made value no check expected) is logged with its traceback and shown above the
  page (`callback_failed`, Dash's on_error), the outputs left as they were: never a silently blank
  part of a page. The pages validate what they can and show their own message first.
"""

from __future__ import annotations

import io
import logging

import flask
from dash import ctx, html, no_update, set_props
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from workbench.limits import ApiLimits

LOG = logging.getLogger(__name__)
DASH_CALLBACK_PATH = "_dash-update-component"
ERROR_ID = "app-error"   # the alert above every page (workbench.app.serve_layout) that callback_failed opens
INPUT_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError, OverflowError)


def guard_server(server: flask.Flask, limits: ApiLimits) -> None:
    server.config["MAX_CONTENT_LENGTH"] = limits.max_request_bytes
    server.before_request(lambda: refuse_long_chunked_body(limits.max_request_bytes))

    @server.errorhandler(RecursionError)
    def too_deep(_exc):
        return bad_request("the JSON body is nested too deeply")

    @server.errorhandler(Exception)
    def unusable_callback_inputs(exc: Exception):
        if isinstance(exc, HTTPException):
            return exc
        if flask.request.path.endswith(DASH_CALLBACK_PATH) and isinstance(exc, INPUT_ERRORS):
            LOG.warning("callback request refused: %s: %s", type(exc).__name__, exc)
            return bad_request(f"this callback request cannot be used ({type(exc).__name__}: {exc})"[:300])
        LOG.exception("unexpected error in %s", flask.request.path)
        return InternalServerError(original_exception=exc)


def refuse_long_chunked_body(limit: int) -> None:
    """A body without Content-Length (chunked): read at most limit + 1 bytes; more is a 413 at once.

    Werkzeug cuts such a body at MAX_CONTENT_LENGTH without an error, so Dash would parse half a
    JSON document; here it is refused as too large, and a body within the limit is read as usual.
    """
    environ = flask.request.environ
    if flask.request.content_length is not None or "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", ""):
        return
    body = environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        raise RequestEntityTooLarge(f"the request body is larger than the limit of {limit:,} bytes")
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)


def bad_request(detail: str):
    """400 with a JSON body shaped like the API's errors."""
    return flask.jsonify({"error": "bad_request", "detail": detail}), 400


def callback_failed(exc: Exception):
    """Dash's on_error for every callback: log the error with its traceback, say so above the page, and
    leave the callback's outputs as they were."""
    LOG.error("callback for %s failed: %s: %s", ctx.outputs_list, type(exc).__name__, exc, exc_info=exc)
    detail = f"{type(exc).__name__}: {exc}"[:300]
    set_props(ERROR_ID, {"is_open": True, "children": [
        html.Strong("Part of this page could not be shown. "),
        f"The run's files may be damaged or from another version ({detail}); the server log has the details."]})
    outputs = ctx.outputs_list
    return [no_update] * len(outputs) if isinstance(outputs, list) else no_update
