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
import binascii
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import flask
import numpy as np
from werkzeug.exceptions import HTTPException

from model import runs
from workbench.predict import low_confidence_threshold, rank
from workbench.preprocess import ImageError, Limits, prepare_image

PREFIX = "/api/v1"
LOG = logging.getLogger(__name__)

# HTTP status per ImageError code: size problems are 413, formats 415, undecodable content 422.
IMAGE_STATUS = {"empty": 400, "too_large": 413, "too_many_pixels": 413, "not_an_image": 415,
                "unsupported_format": 415, "animated": 415}


@dataclass(frozen=True)
class ApiLimits:
    """Per-request limits of the API; image limits are the preprocessing ones."""
    image: Limits = field(default_factory=Limits)
    max_files: int = 16                    # a batch for a page of thumbnails; bigger jobs use the CLI
    max_request_bytes: int = 64 * 2**20    # 64 MiB: a full batch of phone photos, base64-inflated
    max_top: int = 10                      # there are 10 classes

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ApiLimits:
        """Defaults, overridden by WORKBENCH_MAX_FILES, WORKBENCH_MAX_REQUEST_BYTES,
        WORKBENCH_MAX_IMAGE_BYTES and WORKBENCH_MAX_PIXELS (whole numbers) where set."""
        def number(name: str, default: int) -> int:
            value = environ.get(name, "").strip()
            if not value:
                return default
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{name} must be a positive whole number, received {value!r}")
            return int(value)

        base, image = cls(), Limits()
        return cls(image=Limits(max_bytes=number("WORKBENCH_MAX_IMAGE_BYTES", image.max_bytes),
                                max_pixels=number("WORKBENCH_MAX_PIXELS", image.max_pixels)),
                   max_files=number("WORKBENCH_MAX_FILES", base.max_files),
                   max_request_bytes=number("WORKBENCH_MAX_REQUEST_BYTES", base.max_request_bytes))


class ApiError(Exception):
    """A request problem that becomes a 4xx JSON answer."""

    def __init__(self, status: int, error: str, detail: str, **extra):
        super().__init__(detail)
        self.status, self.error, self.detail, self.extra = status, error, detail, extra


def register_api(server: flask.Flask, runs_dir: Path | str, backend: str = "keras",
                 limits: ApiLimits | None = None, low_confidence: float | None = None) -> None:
    """Add the /api/v1 routes and their JSON error handling to a Flask server (the Dash app's).
    Unset `limits` and `low_confidence` come from WORKBENCH_MAX_* and WORKBENCH_LOW_CONFIDENCE
    environment variables where set, else the defaults."""
    from workbench.openapi import openapi_document

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
        available = runs.list_runs(runs_dir)
        return {"status": "ok", "runs": len(available), "default_run": default_run(available),
                "backend": backend}

    @api.get("/models")
    def models():
        available = runs.list_runs(runs_dir)
        return {"default": default_run(available), "models": [describe_run(runs_dir, r) for r in available]}

    @api.get("/openapi.json")
    def openapi():
        return openapi_document(limits, low_confidence)

    @api.post("/predict")
    def predict():
        started = time.perf_counter()
        options = request_options(limits)
        run_id = options["run"] or default_run(runs.list_runs(runs_dir))
        predictor = load_predictor(runs_dir, run_id, backend)
        uploads = read_uploads(limits)
        answer = predict_uploads(predictor, runs_dir, run_id, uploads, options, limits, low_confidence)
        answer["timing_ms"]["total"] = round((time.perf_counter() - started) * 1000, 2)
        return answer

    @api.route("/<path:anything>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def not_here(anything: str):
        # without this, the app's catch-all page route would answer unknown API paths with HTML
        if any(rule.rule == f"{PREFIX}/{anything}" for rule in server.url_map.iter_rules()):
            return error_response(405, "method_not_allowed", f"{flask.request.method} is not allowed on "
                                  f"{PREFIX}/{anything}")
        return error_response(404, "not_found", f"no API endpoint {PREFIX}/{anything}; see {PREFIX}/openapi.json")

    @api.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.error, exc.detail, **exc.extra)

    @api.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        LOG.exception("unexpected error in %s", flask.request.path)
        return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")

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
    """run, top and gradcam from the query string, the form, or the JSON body (in that order)."""
    body = json_body() if flask.request.is_json else {}
    sources = [flask.request.args, flask.request.form if not flask.request.is_json else {}, body]
    raw = {key: next((s[key] for s in sources if key in s), None) for key in ("run", "top", "gradcam")}
    return {"run": parse_run(raw["run"]), "top": parse_top(raw["top"], limits.max_top),
            "gradcam": parse_flag(raw["gradcam"], "gradcam")}


def json_body() -> dict:
    body = flask.request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body is not a JSON object; expected "
                       '{"images": [{"name": ..., "data": "<base64>"}, ...]}')
    return body


def parse_run(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ApiError(400, "bad_parameter", f"run must be a run id string, received {value!r}")
    return value


def parse_top(value, max_top: int) -> int:
    if value is None or value == "":
        return 3
    try:
        top = int(value)
        if isinstance(value, (bool, float)) or not 1 <= top <= max_top:
            raise ValueError
    except (TypeError, ValueError):
        raise ApiError(400, "bad_parameter", f"top must be an integer 1..{max_top}, received {value!r}") from None
    return top


def parse_flag(value, name: str) -> bool:
    if value is None or value == "" or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    raise ApiError(400, "bad_parameter", f"{name} must be true or false, received {value!r}")


def read_uploads(limits: ApiLimits) -> list[tuple[str, bytes]]:
    """(name, bytes) of every uploaded image: multipart files, or base64 in a JSON body."""
    request = flask.request
    if request.is_json:
        uploads = json_images(json_body())
    elif request.mimetype == "multipart/form-data":
        uploads = [(f.filename or f"{key}[{i}]", data)
                   for key in request.files for i, f in enumerate(request.files.getlist(key))
                   if (data := f.read()) or f.filename]  # a form's empty file input is no upload
    else:
        raise ApiError(415, "unsupported_media_type", f"send multipart/form-data (field 'file' or 'files') or "
                       f"application/json, not {request.mimetype or 'a body without Content-Type'!r}")
    if not uploads:
        raise ApiError(400, "no_images", "no image in the request: send files in the multipart field "
                       "'file' or 'files', or a JSON body with a non-empty 'images' list")
    if len(uploads) > limits.max_files:
        raise ApiError(413, "too_many_files", f"{len(uploads)} images in one request; the limit is "
                       f"{limits.max_files}")
    return uploads


def json_images(body: dict) -> list[tuple[str, bytes]]:
    images = body.get("images")
    if not isinstance(images, list):
        raise ApiError(400, "bad_json", "'images' must be a list of {\"name\": ..., \"data\": \"<base64>\"}")
    uploads = []
    for i, item in enumerate(images):
        if not isinstance(item, dict) or not isinstance(item.get("data"), str):
            raise ApiError(400, "bad_json", f"images[{i}] must be an object with a base64 string 'data'", index=i)
        name = item.get("name") if isinstance(item.get("name"), str) else f"images[{i}]"
        uploads.append((name, decode_base64(item["data"], name, i)))
    return uploads


def decode_base64(text: str, name: str, index: int) -> bytes:
    if text.startswith("data:") and "," in text:  # a browser data URL: keep only the payload
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "bad_base64", f"{name}: 'data' is not valid base64 ({exc})", file=name,
                       index=index) from exc


# ---------------------------------------------------------------------------------------------
# prediction

def load_predictor(runs_dir: Path, run_id: str | None, backend: str):
    from workbench.inference import get_predictor

    if run_id is None:
        raise ApiError(503, "no_runs", f"no trained run in {runs_dir.name}/; train one with `workbench train`")
    available = runs.list_runs(runs_dir)
    if run_id not in available:
        raise ApiError(404, "unknown_run", f"unknown run {run_id!r}; available: {', '.join(available)}",
                       run=run_id)
    try:
        return get_predictor(runs_dir, run_id, backend)
    except Exception as exc:  # RunError for a broken run folder, ExportError for a failed ONNX/TFLite export
        detail = f"run {run_id!r} cannot answer with the {backend} backend: {exc}".replace(str(runs_dir), runs_dir.name)
        raise ApiError(503, "run_unavailable", detail, run=run_id) from exc


def predict_uploads(predictor, runs_dir: Path, run_id: str, uploads: list[tuple[str, bytes]], options: dict,
                    limits: ApiLimits, low_confidence: float) -> dict:
    """Preprocess every upload (refusing the batch at the first bad one), predict, rank, explain."""
    from workbench import artifacts
    from workbench.images import png_bytes

    timing = {"preprocess": 0.0, "predict": 0.0}
    prepared = []
    started = time.perf_counter()
    for index, (name, data) in enumerate(uploads):
        try:
            prepared.append(prepare_image(data, limits=limits.image))
        except ImageError as exc:
            raise ApiError(IMAGE_STATUS.get(exc.code, 422), exc.code, f"{name}: {exc}", file=name,
                           index=index) from exc
    timing["preprocess"] = (time.perf_counter() - started) * 1000
    images = np.stack([p.image for p in prepared])
    started = time.perf_counter()
    probs = predictor.predict(images)
    timing["predict"] = (time.perf_counter() - started) * 1000
    class_names = artifacts.class_names(runs_dir, run_id)
    results = [{"name": name, "index": i, **rank(row, class_names, options["top"], low_confidence),
                "inverted": p.inverted, "input_png": b64(png_bytes(p.image))}
               for i, ((name, _), p, row) in enumerate(zip(uploads, prepared, probs))]
    if options["gradcam"]:
        started = time.perf_counter()
        for result, overlay_png in zip(results, gradcam_pngs(runs_dir, run_id, images, probs)):
            result["gradcam_png"] = overlay_png
        timing["gradcam"] = (time.perf_counter() - started) * 1000
    return {"run_id": run_id, "backend": predictor.backend, "class_names": class_names,
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
    """A run's id, recipe, architecture and test accuracy, None where its files do not say."""
    run_dir = runs_dir / run_id
    try:
        config = runs.read_config(run_dir)
    except runs.RunError:
        config = {}
    try:
        accuracy = runs.read_metrics(run_dir).get("test_accuracy")
    except runs.RunError:
        accuracy = None
    return {"run_id": run_id, "recipe": as_text(config.get("recipe")),
            "architecture": as_text(config.get("architecture")),
            "test_accuracy": float(accuracy) if isinstance(accuracy, (int, float)) else None,
            "has_model": (run_dir / runs.MODEL).is_file()}


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
    return error_response(exc.code or 500, codes.get(exc.code, "http_error"), detail)


def error_response(status: int, error: str, detail: str, **extra):
    return flask.jsonify({"error": error, "detail": detail, **extra}), status
