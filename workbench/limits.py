"""Limits of the JSON API, in their own module so the API and its OpenAPI document share them.

    limits = ApiLimits.from_env()   # defaults, overridden by WORKBENCH_MAX_* environment variables
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from model.data import NUM_CLASSES
from model.errors import SettingError
from workbench.preprocess import Limits


@dataclass(frozen=True)
class ApiLimits:
    """Per-request limits of the API; image limits are the preprocessing ones."""
    image: Limits = field(default_factory=Limits)
    max_files: int = 16                    # a batch for a page of thumbnails; bigger jobs use the CLI
    max_request_bytes: int = 64 * 2**20    # 64 MiB: a full batch of phone photos, base64-inflated
    max_top: int = NUM_CLASSES             # at most every class
    max_name_chars: int = 200              # of an upload's name, which answers and errors repeat

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ApiLimits:
        """Defaults, overridden by WORKBENCH_MAX_FILES, WORKBENCH_MAX_REQUEST_BYTES,
        WORKBENCH_MAX_IMAGE_BYTES and WORKBENCH_MAX_PIXELS (whole numbers) where set."""
        def number(name: str, default: int) -> int:
            value = environ.get(name, "").strip()
            if not value:
                return default
            if not value.isdigit() or int(value) < 1:
                raise SettingError(f"{name} must be a positive whole number, received {value!r}")
            return int(value)

        base, image = cls(), Limits()
        return cls(image=Limits(max_bytes=number("WORKBENCH_MAX_IMAGE_BYTES", image.max_bytes),
                                max_pixels=number("WORKBENCH_MAX_PIXELS", image.max_pixels)),
                   max_files=number("WORKBENCH_MAX_FILES", base.max_files),
                   max_request_bytes=number("WORKBENCH_MAX_REQUEST_BYTES", base.max_request_bytes))


# Every error code the API answers with, and its HTTP status: the one table (the OpenAPI document
# lists these codes). Size problems are 413, formats 415, content that cannot be used 422.
ERROR_STATUS = {
    "empty": 400, "no_images": 400, "bad_json": 400, "bad_base64": 400, "bad_parameter": 400,
    "unknown_run": 404, "not_found": 404,
    "method_not_allowed": 405,
    "too_large": 413, "too_many_pixels": 413, "request_too_large": 413, "too_many_files": 413,
    "not_an_image": 415, "unsupported_format": 415, "animated": 415, "unsupported_media_type": 415,
    "truncated": 422, "corrupt": 422, "too_small": 422, "too_narrow": 422, "no_object": 422, "invalid_image": 422,
    "bad_box": 422,
    "explanations_off": 422,  # gradcam=true on an imported run without a Keras conv layer
    "run_unavailable": 503, "no_runs": 503,
}
UNLISTED_STATUS = 422  # a project error whose code is not in the table: the input could not be used
