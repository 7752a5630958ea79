"""The JSON API, served by the app's Flask server under /api/v1 (documented in workbench/openapi.py).

    register_api(app.server, runs_dir)                        # in workbench.app.create_app

    curl -F file=@shirt.jpg http://127.0.0.1:8050/api/v1/predict
    curl -F files=@a.jpg -F files=@b.png "http://127.0.0.1:8050/api/v1/predict?run=fast-default&gradcam=true"
    curl -H 'Content-Type: application/json' -d '{"images": [{"name": "a.png", "data": "<base64>"}]}' \\
         http://127.0.0.1:8050/api/v1/predict
    GET /api/v1/health   GET /api/v1/models   GET /api/v1/openapi.json

Every problem is a 4xx JSON body {"error": code, "detail": message} (plus "file"/"index" when one
image of a batch is at fault); a batch with one bad image is refused as a whole, naming that image.
"""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path

import flask
import numpy as np
from werkzeug.exceptions import HTTPException

from model import runs
from model.errors import ImageError, WorkbenchError
from workbench.classify import (Batch, classify, decode_base64, low_confidence_threshold, parse_box,
                                run_for_photos)
from workbench.inference import get_predictor
from workbench.limits import ERROR_STATUS, UNLISTED_STATUS, ApiLimits
from workbench.openapi import openapi_document

PREFIX = "/api/v1"
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]   # unknown API paths answer JSON to each
LOG = logging.getLogger(__name__)
MAX_ECHO = 64      # characters of an unknown run id quoted back (a 5,000-character id is not echoed whole)
MAX_LISTED = 10    # runs named in an unknown-run error; GET /api/v1/models lists them all


class RequestError(WorkbenchError):
    """A malformed request (bad JSON, parameter, media type ...): a 4xx JSON answer."""

    code = "bad_parameter"


def register_api(server: flask.Flask, runs_dir: Path | str, backend: str = "keras",
                 limits: ApiLimits | None = None, low_confidence: float | None = None) -> None:
    """Add the /api/v1 routes and their JSON error handling to a Flask server (the Dash app's).
    Unset `limits` and `low_confidence` come from WORKBENCH_MAX_* and WORKBENCH_LOW_CONFIDENCE
    environment variables where set, else the defaults."""
    limits = limits or ApiLimits.from_env()
    if low_confidence is None:
        low_confidence = low_confidence_threshold()
    api = flask.Blueprint("api_v1", __name__, url_prefix=PREFIX)
    runs_dir = Path(runs_dir)

    @api.before_request
    def limit_request_size():
        # per request (Flask >= 3.1), so the Dash routes keep their own limits
        flask.request.max_content_length = limits.max_request_bytes

    @api.get("/health")
    def health():
        # "loading" (503) while a served worker loads the default model (workbench.app.warm_up), so
        # a balancer sends no one to wait for it; "ok" (200) once it answers, or without a warm-up
        available = runs.list_runs(runs_dir)
        status = flask.current_app.config.get("WORKBENCH_READINESS", "ok")
        return ({"status": status, "runs": len(available), "default_run": default_run(available),
                 "photo_run": run_for_photos(runs_dir), "backend": backend}, 503 if status == "loading" else 200)

    @api.get("/models")
    def models():
        available = runs.list_runs(runs_dir)
        return {"default": default_run(available), "photo_run": run_for_photos(runs_dir),
                "models": [describe_run(runs_dir, r) for r in available]}

    @api.get("/openapi.json")
    def openapi():
        return openapi_document(limits, low_confidence)

    @api.post("/predict")
    def predict():
        started = time.perf_counter()
        options = request_options(limits)
        run_id = check_run(runs_dir, run_for_photos(runs_dir, options["run"]), backend)
        batch = classify(read_uploads(limits), runs_dir, run_id, backend, top=options["top"],
                         low_confidence=low_confidence, limits=limits.image, box=options["box"],
                         imagenet=options["imagenet"])
        answer = batch_answer(batch, runs_dir, options["gradcam"], low_confidence)
        answer["timing_ms"]["total"] = round((time.perf_counter() - started) * 1000, 2)
        return answer

    register_error_handlers(api, server)


def register_error_handlers(api: flask.Blueprint, server: flask.Flask) -> None:
    """JSON errors for the API: unknown paths, project errors (status from ERROR_STATUS), the rest."""
    @api.route("", methods=ANY_METHOD)
    @api.route("/", methods=ANY_METHOD)
    def root():  # /api/v1 alone: the API's JSON 404, not the app's HTML page
        return error_response("not_found", f"{PREFIX} has no index; see {PREFIX}/openapi.json")

    @api.route("/<path:anything>", methods=ANY_METHOD)
    def not_here(anything: str):
        # without this, the app's catch-all page route would answer unknown API paths with HTML
        if any(rule.rule == f"{PREFIX}/{anything}" for rule in server.url_map.iter_rules()):
            return error_response("method_not_allowed", f"{flask.request.method} is not allowed on "
                                  f"{PREFIX}/{anything}")
        return error_response("not_found", f"no API endpoint {PREFIX}/{anything}; see {PREFIX}/openapi.json")

    @server.route("/api", methods=ANY_METHOD)
    @server.route("/api/", methods=ANY_METHOD)
    @server.route("/api/<path:anything>", methods=ANY_METHOD)
    def other_version(anything: str = ""):  # /api, /api/openapi.json ...: guessed addresses get JSON too
        return error_response("not_found", f"no API endpoint {flask.request.path}: the API lives under {PREFIX}; "
                              f"see {PREFIX}/openapi.json")

    @api.errorhandler(WorkbenchError)
    def project_error(exc: WorkbenchError):
        return error_response(exc.code, str(exc), **exc.extra)

    @api.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        LOG.exception("unexpected error in %s", flask.request.path)
        return error_response("internal_error", f"{type(exc).__name__}: {exc}", status=500)

    server.register_blueprint(api)

    @server.errorhandler(HTTPException)
    def http_error_outside_views(exc: HTTPException):
        # 404/405 for unknown /api/v1 paths never reach the blueprint; the rest of the app is untouched
        if flask.request.path.startswith(PREFIX + "/") or flask.request.path == PREFIX:
            return http_error(exc)
        return exc


# ---------------------------------------------------------------------------------------------
# request parsing

def request_options(limits: ApiLimits) -> dict:
    """run, top, gradcam, box and imagenet from the query string, the form or the JSON body; given in two of
    them, a value must agree (a URL's run= and a body's "run" naming two runs is refused)."""
    body = json_body() if flask.request.is_json else {}
    sources = [flask.request.args, flask.request.form if not flask.request.is_json else {}, body]
    raw = {}
    for key in ("run", "top", "gradcam", "box", "imagenet"):
        given = [value for source in sources if key in source
                 for value in (source.getlist(key) if hasattr(source, "getlist") else [source[key]])]
        if len({str(value).strip().lower() for value in given}) > 1:  # "3" in the URL is 3 in the body
            raise RequestError(f"{key} is given twice with different values (in the URL, the form or the "
                               "body); give it once")
        raw[key] = given[0] if given else None
    return {"run": parse_run(raw["run"]), "top": parse_top(raw["top"], limits.max_top),
            "gradcam": parse_flag(raw["gradcam"], "gradcam"), "box": parse_box(raw["box"]),
            "imagenet": raw["imagenet"] in (None, "") or parse_flag(raw["imagenet"], "imagenet")}


def json_body() -> dict:
    try:
        body = flask.request.get_json(silent=True)
    except RecursionError:  # nesting deeper than Python's JSON parser goes: not an upload body
        raise RequestError("the JSON body is nested too deeply", "bad_json") from None
    if body is None and flask.request.get_data(cache=True).strip() != b"null":
        raise RequestError('the body is not valid JSON (cut short or malformed); expected {"images": '
                           '[{"name": ..., "data": "<base64>"}, ...]}', "bad_json")
    if not isinstance(body, dict):
        raise RequestError('the body is not a JSON object; expected {"images": [{"name": ..., '
                           '"data": "<base64>"}, ...]}', "bad_json")
    return body


def parse_run(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RequestError(f"run must be a run id string, received {value!r}")
    return value


def parse_top(value, max_top: int) -> int:
    if value is None or value == "":
        return 3
    try:
        if isinstance(value, (bool, float)):  # 2.0, true, and JSON's Infinity (int() would overflow)
            raise ValueError
        top = int(value)
        if not 1 <= top <= max_top:
            raise ValueError
    except (TypeError, ValueError):
        raise RequestError(f"top must be an integer 1..{max_top}, received {value!r}") from None
    return top


def parse_flag(value, name: str) -> bool:
    if value is None or value == "" or value is False:
        return False
    if value is True or (type(value) is int and value in (0, 1)):  # JSON's 1 and 0 as "1" and "0"
        return bool(value)
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    raise RequestError(f"{name} must be true or false, received {value!r}")


def read_uploads(limits: ApiLimits) -> list[tuple[str, bytes]]:
    """(name, bytes) of every uploaded image: multipart files, or base64 in a JSON body."""
    request = flask.request
    if request.is_json:
        uploads = json_images(json_body(), limits.max_name_chars)
    elif request.mimetype == "multipart/form-data":
        uploads = [(upload_name(f.filename, f"{key}[{i}]", limits.max_name_chars), data)
                   for key in request.files for i, f in enumerate(request.files.getlist(key))
                   if (data := f.read()) or f.filename]  # a form's empty file input is no upload
    else:
        raise RequestError(f"send multipart/form-data (field 'file' or 'files') or application/json, not "
                           f"{request.mimetype or 'a body without Content-Type'!r}", "unsupported_media_type")
    if not uploads:
        raise RequestError("no image in the request: send files in the multipart field 'file' or 'files', "
                           "or a JSON body with a non-empty 'images' list", "no_images")
    if len(uploads) > limits.max_files:
        raise RequestError(f"{len(uploads)} images in one request; the limit is {limits.max_files}",
                           "too_many_files")
    return uploads


def upload_name(name, fallback: str, max_chars: int) -> str:
    """The name an answer gives an upload: the client's, cut to max_chars, or `fallback` without one."""
    if not isinstance(name, str) or not name:
        return fallback
    return name if len(name) <= max_chars else f"{name[:max_chars - 1]}…"


def json_images(body: dict, max_name_chars: int) -> list[tuple[str, bytes]]:
    images = body.get("images")
    if not isinstance(images, list):
        raise RequestError("'images' must be a list of {\"name\": ..., \"data\": \"<base64>\"}", "bad_json")
    uploads = []
    for i, item in enumerate(images):
        if not isinstance(item, dict) or not isinstance(item.get("data"), str):
            raise RequestError(f"images[{i}] must be an object with a base64 string 'data'", "bad_json", index=i)
        name = upload_name(item.get("name"), f"images[{i}]", max_name_chars)
        uploads.append((name, image_bytes(item["data"], name, i)))
    return uploads


def image_bytes(text: str, name: str, index: int) -> bytes:
    try:
        return decode_base64(text)
    except ImageError as exc:
        raise RequestError(f"{name}: 'data' is not valid base64 ({exc.__cause__})", exc.code, file=name,
                           index=index) from exc


# ---------------------------------------------------------------------------------------------
# prediction

def check_run(runs_dir: Path, run_id: str | None, backend: str) -> str:
    """The run to answer with, loaded: 404 for an unknown run, 503 for one that cannot answer."""
    if run_id is None:
        raise RequestError(f"no trained run in {runs_dir.name}/; train one with `workbench train`", "no_runs")
    available = runs.list_runs(runs_dir)
    if run_id not in available:
        shown = run_id if len(run_id) <= MAX_ECHO else run_id[:MAX_ECHO] + "…"
        more = f" and {len(available) - MAX_LISTED} more (GET {PREFIX}/models lists all)" \
            if len(available) > MAX_LISTED else ""
        raise RequestError(f"unknown run {shown!r}; available: {', '.join(available[:MAX_LISTED])}{more}",
                           "unknown_run", run=shown)
    try:
        get_predictor(runs_dir, run_id, backend)
    except Exception as exc:  # RunError for a broken run folder, ExportError for a failed ONNX/TFLite export
        detail = f"run {run_id!r} cannot answer with the {backend} backend: {exc}".replace(str(runs_dir), runs_dir.name)
        raise RequestError(detail, "run_unavailable", run=run_id) from exc
    return run_id


def batch_answer(batch: Batch, runs_dir: Path, gradcam: bool, low_confidence: float) -> dict:
    """The response body: every result with its model input (and Grad-CAM); a bad image refuses all."""
    from workbench.images import png_bytes

    failed = batch.first_error()
    if failed is not None:
        raise RequestError(f"{failed.name}: {failed.error}", failed.error.code, file=failed.name,
                           index=failed.index) from failed.error
    results = [{**item.answer, "input_png": b64(png_bytes(item.prepared.image))} for item in batch.items]
    timing = {"preprocess": sum(item.preprocess_ms for item in batch.items),
              "predict": batch.predict_ms * len(batch.items)}
    if gradcam:
        started = time.perf_counter()
        images = np.stack([item.prepared.image for item in batch.items])
        probs = np.stack([item.probs for item in batch.items])
        for result, overlay_png in zip(results, gradcam_pngs(runs_dir, batch.run_id, images, probs)):
            result["gradcam_png"] = overlay_png
        timing["gradcam"] = (time.perf_counter() - started) * 1000
    return {"run_id": batch.run_id, "backend": batch.backend, "class_names": batch.class_names,
            "low_confidence_threshold": low_confidence, "results": results,
            "timing_ms": {k: round(v, 2) for k, v in timing.items()}}


def gradcam_pngs(runs_dir: Path, run_id: str, images: np.ndarray, probs: np.ndarray) -> list[str]:
    """Base64 PNGs (112x112) of Grad-CAM for the predicted class over each model input."""
    from workbench.explain import get_explainer
    from workbench.images import overlay, png_bytes, upscale

    heatmaps = get_explainer(runs_dir, run_id).explain(images, probs.argmax(axis=1), method="gradcam")
    return [b64(png_bytes(upscale(overlay(image, heatmap)))) for image, heatmap in zip(images, heatmaps)]


# ---------------------------------------------------------------------------------------------
# answers

def default_run(available: list[str]) -> str | None:
    """The default run when present (list_runs puts it first), else the newest, else None."""
    return available[0] if available else None


def describe_run(runs_dir: Path, run_id: str) -> dict:
    """A run's id, recipe, architecture and test accuracy, None where its files do not say, and
    `problems`: what is wrong with its config, metrics or model file, in words (the model is not loaded)."""
    run_dir, problems = runs_dir / run_id, []

    def read(reader, default):
        try:
            return reader(run_dir)
        except runs.RunError as exc:
            problems.append(str(exc))
            return default

    config = read(runs.read_config, {})
    accuracy = read(runs.read_metrics, {}).get("test_accuracy")
    read(lambda folder: runs.check_model_file(folder, config), None)
    return {"run_id": run_id, "recipe": as_text(config.get("recipe")),
            "architecture": as_text(config.get("architecture")),
            "test_accuracy": float(accuracy) if isinstance(accuracy, (int, float)) else None,
            "has_model": runs.model_file(run_dir, config).is_file(), "problems": problems}


def as_text(value) -> str | None:
    return value if isinstance(value, str) else None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def http_error(exc: HTTPException):
    """A werkzeug HTTP error (404, 405, 413 ...) as the API's JSON error body."""
    codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
    detail = exc.description or exc.name
    limit = flask.request.max_content_length
    if exc.code == 413 and limit:
        detail = f"the request is larger than the limit of {limit:,} bytes"
    return error_response(codes.get(exc.code, "http_error"), detail, status=exc.code or 500)


def error_response(error: str, detail: str, status: int | None = None, **extra):
    """The JSON error body; the status is ERROR_STATUS's for the code unless given."""
    status = status or ERROR_STATUS.get(error, UNLISTED_STATUS)
    return flask.jsonify({"error": error, "detail": detail, **extra}), status
