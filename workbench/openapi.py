"""The OpenAPI 3 document of the JSON API (workbench/api.py), served at /api/v1/openapi.json.

Built from the same limits the server enforces, so the numbers in it are the real ones; the API
tests validate live responses against it with schemathesis.
"""

from __future__ import annotations

from workbench.classify import LOW_CONFIDENCE
from workbench.limits import ERROR_STATUS, ApiLimits

ERROR_CODES = [*ERROR_STATUS, "http_error", "internal_error"]


def _error_response(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json_response(description: str, schema: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _schemas(max_top: int) -> dict:
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    ranked = {"type": "object", "required": ["class_id", "label", "probability"], "properties": {
        "class_id": {"type": "integer", "minimum": 0, "maximum": 9}, "label": {"type": "string"},
        "probability": probability}}
    return {
        "Error": {"type": "object", "required": ["error", "detail"], "properties": {
            "error": {"type": "string", "enum": ERROR_CODES, "description": "machine-readable problem"},
            "detail": {"type": "string", "description": "what is wrong, for people"},
            "file": {"type": "string", "description": "the image at fault, in a batch"},
            "index": {"type": "integer", "minimum": 0}, "run": {"type": "string"}}},
        "Health": {"type": "object", "required": ["status", "runs", "default_run", "backend"], "properties": {
            "status": {"type": "string", "enum": ["ok", "loading"]}, "runs": {"type": "integer", "minimum": 0},
            "default_run": {"type": ["string", "null"]}, "backend": {"type": "string"},
            "photo_run": {"type": ["string", "null"], "description": "the run that answers photos by default"}}},
        "Models": {"type": "object", "required": ["default", "models"], "properties": {
            "default": {"type": ["string", "null"]},
            "photo_run": {"type": ["string", "null"], "description": "the run that answers photos by default"},
            "models": {"type": "array", "items": {"type": "object", "required": ["run_id", "has_model"],
                       "properties": {"run_id": {"type": "string"}, "recipe": {"type": ["string", "null"]},
                                      "architecture": {"type": ["string", "null"]},
                                      "test_accuracy": {"type": ["number", "null"]},
                                      "has_model": {"type": "boolean"},
                                      "problems": {"type": "array", "items": {"type": "string"},
                                                   "description": "damaged or missing files, in words"}}}}}},
        "Result": {"type": "object", "required": ["name", "index", "label", "class_id", "probability",
                                                  "low_confidence", "top", "probabilities", "inverted",
                                                  "input_png"], "properties": {
            "name": {"type": "string"}, "index": {"type": "integer", "minimum": 0},
            "label": {"type": "string"}, "class_id": {"type": "integer", "minimum": 0, "maximum": 9},
            "probability": probability,
            "low_confidence": {"type": "boolean",
                               "description": "top probability below the threshold, or a preprocessing warning"},
            "top": {"type": "array", "items": ranked, "minItems": 1, "maxItems": max_top},
            "probabilities": {"type": "array", "items": probability, "minItems": 10, "maxItems": 10,
                              "description": "all classes, in class_names order"},
            "inverted": {"type": "boolean", "description": "the photo was dark-on-light and was negated"},
            "warnings": {"type": "array", "items": {"type": "string"},
                         "description": "why the answer deserves less trust (then low_confidence is true)"},
            "input_png": {"type": "string", "format": "byte", "description": "the 28x28 model input, PNG"},
            "gradcam_png": {"type": "string", "format": "byte",
                            "description": "Grad-CAM of the predicted class over the input, 112x112 PNG"},
            "imagenet": {"type": "object", "description": (
                "for a photo: what an ImageNet classifier saw in it (its most likely garment name, that "
                "name's probability, the share of its belief on the garment names grouped under the ten "
                "classes), joined with the run's probabilities; model_probabilities are the run's own. "
                "Only 'skipped' (why) when the view could not be used"), "properties": {
                "imagenet_class": {"type": "string"}, "probability": probability, "garment_share": probability,
                "model_probabilities": {"type": "array", "items": probability, "minItems": 10, "maxItems": 10},
                "skipped": {"type": "string"}}}}},
        "Prediction": {"type": "object", "required": ["run_id", "backend", "class_names",
                                                      "low_confidence_threshold", "results", "timing_ms"],
                       "properties": {
            "run_id": {"type": "string"}, "backend": {"type": "string"},
            "class_names": {"type": "array", "items": {"type": "string"}, "minItems": 10, "maxItems": 10},
            "low_confidence_threshold": probability,
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}, "minItems": 1},
            "timing_ms": {"type": "object", "required": ["preprocess", "predict", "total"],
                          "additionalProperties": {"type": "number", "minimum": 0}}}},
    }


def _predict_operation(limits, max_files: int, max_bytes: int, max_top: int) -> dict:
    options = {"run": {"type": "string", "description": "run id (default: the photo-tuned run when present, "
                                                        "else the default run)"},
               "top": {"type": "integer", "minimum": 1, "maximum": max_top, "default": 3},
               "gradcam": {"type": "boolean", "default": False},
               "imagenet": {"type": "boolean", "default": True,
                            "description": "join an ImageNet classifier's view of the photo to the run's answer "
                                           "(false: the run alone)"},
               "box": {"type": "string", "pattern": "^[0-9]+,[0-9]+,[0-9]+,[0-9]+$",
                       "description": "x0,y0,x1,y1 in the photo's pixels: look for the garment inside this "
                                      "box (one photo only: with several the request is refused, bad_box)"}}
    binary = {"type": "string", "format": "binary"}
    return {
        "summary": "Classify garment photos",
        "description": (f"Each image is brought into the Fashion-MNIST domain (EXIF rotation, background "
                        f"polarity, object crop, 28x28) and classified. Accepted formats: "
                        f"{', '.join(limits.formats)}; at most {limits.max_bytes:,} bytes and "
                        f"{limits.max_pixels:,} pixels per image, {max_files} images and {max_bytes:,} "
                        f"bytes per request. A batch with one bad image is refused, naming that image."),
        "parameters": [{"name": key, "in": "query", "required": False, "schema": schema}
                       for key, schema in options.items()],
        "requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": binary, "files": {"type": "array", "items": binary, "maxItems": max_files}}}},
            "application/json": {"schema": {"type": "object", "required": ["images"], "properties": {
                "images": {"type": "array", "maxItems": max_files, "items": {
                    "type": "object", "required": ["data"], "properties": {
                        "name": {"type": "string"},
                        "data": {"type": "string", "format": "byte", "description": "base64 image file"}}}},
                **options}}}}},
        "responses": {
            "200": _json_response("one result per image, in upload order", "Prediction"),
            "400": _error_response("empty image, no images, bad JSON, bad base64 or a bad parameter"),
            "404": _error_response("unknown run"),
            "413": _error_response("request, image or pixel count over the limits, or too many files"),
            "415": _error_response("not an image, an unsupported format, animated, or the wrong Content-Type"),
            "422": _error_response("truncated or corrupt image data, too small, or no garment found"),
            "500": _error_response("an unexpected server error"),
            "503": _error_response("no run available, or the run's model cannot be loaded"),
        },
    }


def openapi_document(limits: ApiLimits = ApiLimits(), low_confidence: float = LOW_CONFIDENCE) -> dict:
    """The OpenAPI 3.1 document of the API as configured with these limits."""
    max_top = limits.max_top
    return {
        "openapi": "3.1.0",
        "info": {"title": "fashion-workbench API", "version": "1",
                 "description": "Classify garment photos with Fashion-MNIST models. Answers with a top "
                                f"probability below {low_confidence} are flagged low_confidence."},
        "paths": {
            "/api/v1/health": {"get": {"summary": "Readiness and the default run", "responses": {
                "200": _json_response("ready: the default model answers", "Health"),
                "503": _json_response("loading: the worker is still loading the default model", "Health")}}},
            "/api/v1/models": {"get": {"summary": "Runs that can answer predictions",
                                       "responses": {"200": _json_response("runs, default first", "Models")}}},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {
                    "schema": {"type": "object"}}}}}}},
            "/api/v1/predict": {"post": _predict_operation(limits.image, limits.max_files,
                                                            limits.max_request_bytes, max_top)},
        },
        "components": {"schemas": _schemas(max_top)},
    }
