"""Imports started from the app: each runs `model.importer.import_model` in a background thread.

    job_id = start_import(runs_dir, data_dir, "their_cnn.keras", data, "their-cnn", input_scale=None)
    job_status(job_id)   # {"state": "running" | "done" | "failed", "steps": [...], "message": ..., "run_id": ...}

The upload is checked before a thread starts (size, file type, run id free), so the form can say at
once what is wrong; the import's own errors (not a model, 11 outputs, a Lambda layer ...) end the
job as "failed" with the importer's message, and the importer leaves no run folder behind. Code
in a model file is never trusted from the app (that needs `workbench import --trust-model-code`).
Jobs live in this process (a small registry, oldest dropped first); with several gunicorn workers a
page's polls may reach another worker, so the app's import form is for the default single worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from model import runs
from model.errors import ImportModelError, RunError, SettingError, WorkbenchError

UPLOAD_SUFFIXES = (".keras", ".h5", ".hdf5", ".onnx")  # single files; a SavedModel folder needs the CLI
MAX_MODEL_BYTES = 128 * 2**20  # 128 MiB: a ResNet50 .h5 (~95 MB) fits; override with WORKBENCH_MAX_MODEL_BYTES
MAX_JOBS = 32                  # finished jobs kept for their status; the oldest are dropped


@dataclass
class ImportJob:
    run_id: str
    filename: str
    state: str = "running"
    steps: list[str] = field(default_factory=list)
    message: str = ""

    def status(self) -> dict:
        return {"run_id": self.run_id, "filename": self.filename, "state": self.state,
                "steps": list(self.steps), "message": self.message}


_JOBS: OrderedDict[str, ImportJob] = OrderedDict()
_LOCK = threading.Lock()


def max_model_bytes(environ=os.environ) -> int:
    """The upload limit: WORKBENCH_MAX_MODEL_BYTES when set, else MAX_MODEL_BYTES."""
    value = environ.get("WORKBENCH_MAX_MODEL_BYTES", "").strip()
    if not value:
        return MAX_MODEL_BYTES
    if not value.isdigit() or int(value) < 1:
        raise SettingError(f"WORKBENCH_MAX_MODEL_BYTES must be a positive whole number, received {value!r}")
    return int(value)


def check_upload(runs_dir: Path, filename: str, size: int, run_id: str) -> str:
    """The file's safe base name, or ImportModelError / RunError saying what is wrong with the request."""
    name = Path(filename or "").name
    if not name or Path(name).suffix.lower() not in UPLOAD_SUFFIXES:
        raise ImportModelError(f"{name or 'the upload'} is not a model file: upload a .keras, .h5 or .onnx file "
                               "(a SavedModel folder: use `workbench import`)", "not_a_model")
    limit = max_model_bytes()
    if size > limit:
        raise ImportModelError(f"{name} is {size / 2**20:.1f} MiB; the limit is {limit / 2**20:.0f} MiB "
                               "(WORKBENCH_MAX_MODEL_BYTES, or use `workbench import`)", "too_large")
    if size == 0:
        raise ImportModelError(f"{name} is empty", "empty")
    runs.check_run_id((run_id or "").strip())
    if (Path(runs_dir) / run_id.strip()).exists():
        raise RunError(f"run {run_id.strip()!r} already exists; choose another run id", "run_exists")
    return name


def start_import(runs_dir: Path, data_dir, filename: str, data: bytes, run_id: str,
                 input_scale: str | None = None, class_order: str | None = None) -> str:
    """Check the upload, then import it in a thread; the job id for job_status."""
    name = check_upload(runs_dir, filename, len(data), run_id)
    run_id = run_id.strip()
    folder = Path(tempfile.mkdtemp(prefix="workbench-upload-"))
    (folder / name).write_bytes(data)
    job_id, job = uuid.uuid4().hex, ImportJob(run_id, name)
    with _LOCK:
        _JOBS[job_id] = job
        while len(_JOBS) > MAX_JOBS:
            _JOBS.popitem(last=False)
    thread = threading.Thread(target=_run, name=f"import-{run_id}", daemon=True,
                              args=(job, folder, folder / name, runs_dir, data_dir, input_scale, class_order))
    thread.start()
    return job_id


def _run(job: ImportJob, folder: Path, path: Path, runs_dir, data_dir, input_scale, class_order) -> None:
    from model.importer import import_model

    try:
        result = import_model(path, runs_dir, job.run_id, input_scale=input_scale, class_order=class_order,
                              data_dir=data_dir, progress=job.steps.append)
        job.message = (f"run {job.run_id} imported: test accuracy {result.test_accuracy:.2%}. "
                       + " ".join(note[0].upper() + note[1:] + "." for note in result.notes))
        job.state = "done"
    except Exception as exc:  # every failure ends the job with its message; the thread must not die silently
        job.message = str(exc) if isinstance(exc, WorkbenchError) else \
            f"the import failed ({type(exc).__name__}: {exc})"
        job.state = "failed"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def job_status(job_id: str | None) -> dict | None:
    """The job's state, steps and message; None for an unknown id."""
    with _LOCK:
        job = _JOBS.get(job_id or "")
    return job.status() if job else None
