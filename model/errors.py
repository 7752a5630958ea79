"""Every error the project raises on purpose: one base class with a machine-readable `code`.

    try:
        ...
    except WorkbenchError as exc:      # the CLI catches this once; the API maps exc.code to a status
        print(f"error: {exc}")         # the message is written for the user
        exc.code                       # "run_error", "no_object", ... for machines

Each subclass names a kind of problem and has a default code; a raise may give a finer one
(`ImageError("the file is empty", "empty")`). Errors of input values (images, explanation
requests) are also ValueErrors, so plain `except ValueError` callers keep working.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """A problem the user can act on; `code` names it for machines (API bodies, CLI JSON)."""

    code = "error"

    def __init__(self, message: str, code: str | None = None, **extra):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.extra = extra  # context for machine answers, e.g. the file or run at fault


class DataError(WorkbenchError):
    """A data file is missing, damaged or not what it claims to be."""

    code = "data_error"


class RunError(WorkbenchError):
    """A run folder, or one of its files, is missing or unreadable."""

    code = "run_error"


class WeightsError(WorkbenchError):
    """Requested weights could not be found, downloaded, verified or loaded."""

    code = "weights_error"


class ExportError(WorkbenchError):
    """An export failed or its result does not behave like the Keras model."""

    code = "export_error"


class DistributedError(WorkbenchError):
    """TF_CONFIG is malformed, or local workers cannot be started as asked."""

    code = "distributed_error"


class ImageError(WorkbenchError, ValueError):
    """An upload that cannot be turned into a model input (empty, corrupt, too large, no garment)."""

    code = "invalid_image"


class ExplainError(WorkbenchError, ValueError):
    """An explanation was asked for with an unknown method, layer or target."""

    code = "bad_explanation"


class SettingError(WorkbenchError, ValueError):
    """An environment variable or option holds a value the workbench cannot use."""

    code = "bad_setting"


class ImportModelError(WorkbenchError):
    """A model file that cannot be imported as a run (not a model, wrong shape, unsafe code, ...)."""

    code = "import_error"
