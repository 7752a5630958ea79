"""`workbench predict FILE...`: classify garment photos from the command line (text or JSON).

    workbench predict shirt.jpg boots.png                  # top 3 classes per file
    workbench predict --json --top 10 photos/*.jpg         # every probability, machine-readable

Each file goes through workbench.preprocess (the same steps as the app and the JSON API), then the
run's model. A file that cannot be read gets its own one-line error and the others still run; the
exit code is 0 when every file was classified, 1 when some failed, 2 when none could be.

`rank` and `LOW_CONFIDENCE` are shared with the JSON API, so both answer the same way: each result
names its image with `name` and its position with `index`, as the API's results do.
`low_confidence_threshold()` is the threshold with the WORKBENCH_LOW_CONFIDENCE override applied
(the Predict page reads it there).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# Below this top-1 probability the answer is flagged "low_confidence": the UI shows a hint instead of
# a confident label. On 1,000 rendered test photos (benchmarks/photos.py, fast-default at 92.2%) 15%
# were flagged; answers above 0.6 were right 96-97% of the time, flagged ones 51-60%.
LOW_CONFIDENCE = 0.6
LOW_CONFIDENCE_ENV = "WORKBENCH_LOW_CONFIDENCE"


def low_confidence_threshold(environ=os.environ) -> float:
    """LOW_CONFIDENCE, or WORKBENCH_LOW_CONFIDENCE where that is set (read on every call)."""
    value = (environ.get(LOW_CONFIDENCE_ENV) or "").strip()
    if not value:
        return LOW_CONFIDENCE
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{LOW_CONFIDENCE_ENV} must be a number such as 0.6, received {value!r}") from None


def rank(probs: np.ndarray, class_names: list[str], top: int = 3,
         low_confidence: float = LOW_CONFIDENCE) -> dict:
    """One image's probabilities (10,) -> the JSON-ready answer: top classes, all 10, the flag."""
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs, kind="stable")[:max(1, min(top, len(probs)))]
    ranked = [{"class_id": int(i), "label": class_names[i], "probability": round(float(probs[i]), 6)}
              for i in order]
    return {
        "label": ranked[0]["label"],
        "class_id": ranked[0]["class_id"],
        "probability": ranked[0]["probability"],
        "low_confidence": bool(probs[order[0]] < low_confidence),
        "top": ranked,
        "probabilities": [round(float(p), 6) for p in probs],
    }


def classify_files(paths: list[str], runs_dir: Path, run_id: str, backend: str = "keras", top: int = 3,
                   low_confidence: float = LOW_CONFIDENCE) -> list[dict]:
    """Every file's answer ({"name", "index", ...rank()}), or its error ({"name", "index", "error",
    "detail"}), in the order given; `name` is the path as given, `index` its position."""
    from workbench import artifacts
    from workbench.inference import get_predictor
    from workbench.preprocess import ImageError, prepare_image

    predictor = get_predictor(runs_dir, run_id, backend)
    class_names = artifacts.class_names(runs_dir, run_id)
    answers: list[dict] = [{} for _ in paths]
    ready: list[tuple[int, np.ndarray, bool, float]] = []
    for i, path in enumerate(paths):
        started = time.perf_counter()
        try:
            prepared = prepare_image(read_file(path))
        except ImageError as exc:
            answers[i] = {"name": path, "index": i, "error": exc.code, "detail": str(exc)}
            continue
        ready.append((i, prepared.image, prepared.inverted, (time.perf_counter() - started) * 1000))
    if ready:
        started = time.perf_counter()
        probs = predictor.predict(np.stack([image for _, image, _, _ in ready]))
        predict_ms = (time.perf_counter() - started) * 1000 / len(ready)
        for (i, _, inverted, prep_ms), row in zip(ready, probs):
            answers[i] = {"name": paths[i], "index": i, "run_id": run_id,
                          **rank(row, class_names, top, low_confidence), "inverted": inverted,
                          "timing_ms": {"preprocess": round(prep_ms, 2), "predict": round(predict_ms, 2)}}
    return answers


def read_file(path: str) -> bytes:
    """A file's bytes, or ImageError when it cannot be read (missing, a folder, no permission)."""
    from workbench.preprocess import ImageError

    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(f"file not found: {path}", "not_found") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{path} is a folder, not an image file", "not_a_file") from exc
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}", "unreadable") from exc


def format_text(answer: dict) -> str:
    """One file's answer as a line (or a line plus indented runners-up)."""
    if "error" in answer:
        return f"{answer['name']}: error ({answer['error']}): {answer['detail']}"
    hint = "  [low confidence: try a plain light background, the garment filling the frame]" \
        if answer["low_confidence"] else ""
    others = ", ".join(f"{c['label']} {c['probability']:.1%}" for c in answer["top"][1:])
    line = f"{answer['name']}: {answer['label']} {answer['probability']:.1%}{hint}"
    return line + (f"\n    then: {others}" if others else "")


def main(args: argparse.Namespace) -> int:
    """Handler of `workbench predict`; returns 0 all classified, 1 some failed, 2 none classified."""
    low = getattr(args, "low_confidence", None)
    if low is None:
        try:
            low = low_confidence_threshold()
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    answers = classify_files(args.files, Path(args.runs_dir), args.run, args.backend, args.top, low)
    if args.json:
        print(json.dumps({"run_id": args.run, "results": answers}, indent=2))
    else:
        for answer in answers:
            stream = sys.stderr if "error" in answer else sys.stdout
            print(format_text(answer), file=stream)
    failed = sum("error" in a for a in answers)
    return 0 if failed == 0 else (2 if failed == len(answers) else 1)
