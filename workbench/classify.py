"""The one classify path: photo bytes -> model input -> probabilities -> ranked answer.

    batch = classify([("shirt.jpg", data)], runs_dir, "fast-default")
    batch.items[0].answer      # {"name", "index", "label", "probability", "top", ..., "low_confidence"}
    batch.items[0].prepared    # workbench.preprocess.Prepared: the 28x28 input and its steps
    batch.first_error()        # the first item that could not be used, or None

The app's Predict page, the JSON API and `workbench predict` all go through here: `prepare_uploads`
(each upload through workbench.preprocess, a bad one becoming that item's ImageError),
`predict_images` (the run's cached predictor), `imagenet_view` (for photos: what an ImageNet
classifier sees in the photo, joined with the run's probabilities, model/imagenet.py) and `rank`
(the answer a person or program reads).
What each caller does with a bad item differs: the CLI reports it and goes on, the API refuses the
batch naming it, the page lists it beside the good ones.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model import runs
from model.data import CLASS_NAMES
from model.errors import ImageError, RunError, SettingError, WeightsError
from model.familiarity import load_familiarity
from model.imagenet import ImageNetView, blend, weights_path
from model.runs import list_runs
from workbench import artifacts
from workbench.cache import cached
from workbench.inference import get_predictor
from workbench.preprocess import Limits, Prepared, prepare_image

# Below this top-1 probability the answer is flagged "low_confidence": the UI shows a hint instead of
# a confident label. Calibrated on the odd half of the real dev photos (benchmarks/photos.py --real,
# photo-default with the ImageNet view, the finder's and the familiarity warnings also flagging): the
# lowest value at which unflagged answers are right >= 80 % (odd 83 %, 58 of 115 unflagged; held-out
# even half 89 %, 54 of 113). The 0.65 used before the ImageNet view left 70 % of photos flagged (the
# unflagged 30 % all right). On the Fashion-MNIST test set (fast-default) 0.5 flags 3.4 % of images,
# right 46.5 % of the time; unflagged ones are right 95.2 % (0.65: 9.3 % flagged, 58 % and 97.2 %).
LOW_CONFIDENCE = 0.5
LOW_CONFIDENCE_ENV = "WORKBENCH_LOW_CONFIDENCE"
# The run that answers photos when none is asked for: the default model fine-tuned on Fashion-MNIST
# passed through the photo path (model/photo_augment.py), far better on real photos; Fashion-MNIST
# images themselves keep the selected run.
PHOTO_RUN_ID = "photo-default"
# The warning for an input the run's familiarity check (model/familiarity.py) finds unlike its training images.
UNFAMILIAR = ("it looks unlike everything this model learned from (farther from all its classes than 99 % of "
              "its test images); if it is not one of the 10 kinds of clothing it knows, the answer means nothing")
RUNNER_UP_SHARE = 0.10  # a flagged answer names the runner-up from this probability on. Of the dev photos'
                        # 131 answers under 0.65 (photo-default alone), 130 have a runner-up of 10 % or more, the
                        # true class 35 times (the top class 48); below 10 % it is noise (a sliver boxed by
                        # mistake gave "It may also be Ankle boot (5.0%)")


def low_confidence_threshold(environ=os.environ) -> float:
    """LOW_CONFIDENCE, or WORKBENCH_LOW_CONFIDENCE where that is set (read on every call)."""
    value = (environ.get(LOW_CONFIDENCE_ENV) or "").strip()
    if not value:
        return LOW_CONFIDENCE
    try:
        return float(value)
    except ValueError:
        raise SettingError(f"{LOW_CONFIDENCE_ENV} must be a number such as 0.5, received {value!r}") from None


def run_for_photos(runs_dir: Path | str, run_id: str | None = None) -> str | None:
    """The run that classifies photos: the one asked for, else PHOTO_RUN_ID when it is there and its
    model file is whole, else the default run (list_runs puts it first; answers name the run that
    gave them); None when there are no runs at all."""
    if run_id:
        return run_id
    available = list_runs(runs_dir)
    if PHOTO_RUN_ID in available:
        try:
            runs.check_model_file(runs.run_path(runs_dir, PHOTO_RUN_ID))  # cheap: not loaded
            return PHOTO_RUN_ID
        except RunError as exc:
            logging.getLogger(__name__).warning("photos go to the default run: %s", exc)
    others = [r for r in available if r != PHOTO_RUN_ID]
    return (others or available or [None])[0]


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


def decode_base64(text: str) -> bytes:
    """The bytes of base64 text or of a browser data URL ("data:<type>;base64,<data>"); line breaks
    and spaces inside the text are allowed (MIME base64 wraps at 76 characters)."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"the data is not valid base64 ({exc})", "bad_base64") from exc


def parse_box(value) -> tuple[int, int, int, int] | None:
    """A crop box "x0,y0,x1,y1" (or a 4-item list) in the photo's pixels; None when empty.
    SettingError("bad_parameter") when it is not four whole numbers with x0 < x1 and y0 < y1."""
    if value is None or value == "":
        return None
    parts = value.split(",") if isinstance(value, str) else value
    try:
        box = tuple(int(str(v).strip()) for v in parts)
    except (TypeError, ValueError):
        box = ()
    if len(box) != 4 or min(box) < 0 or box[0] >= box[2] or box[1] >= box[3]:
        raise SettingError(f"box must be x0,y0,x1,y1: four whole pixel numbers, 0 or more, with x0 < x1 and "
                           f"y0 < y1, received {value!r}", "bad_parameter")
    return box


@dataclass
class Item:
    """One upload on its way through the path: prepared (or failed), then predicted and ranked."""
    name: str
    index: int
    prepared: Prepared | None = None
    error: ImageError | None = None
    preprocess_ms: float = 0.0
    probs: np.ndarray | None = None     # the answer's probabilities (the run's, joined with the ImageNet view)
    model_probs: np.ndarray | None = None  # the run's own
    answer: dict = field(default_factory=dict)  # rank() plus name, index and "inverted"; or the error


@dataclass
class Batch:
    run_id: str
    backend: str
    class_names: list[str]
    items: list[Item]
    predict_ms: float = 0.0  # per image

    def first_error(self) -> Item | None:
        return next((item for item in self.items if item.error is not None), None)


def answer(item: Item, probs: np.ndarray, class_names: list[str], top: int, low_confidence: float,
           extra_warnings: Sequence[str] = ()) -> dict:
    """A prepared item's answer: rank() plus its name and index, how the photo was read, and the
    preprocessing's warnings (little of the garment found, a person wearing it ...) and any extra
    ones (an unfamiliar input): an answer with a warning is flagged low-confidence whatever its
    probability."""
    ranked = rank(probs, class_names, top, low_confidence)
    warnings = [*item.prepared.warnings, *extra_warnings]
    return {"name": item.name, "index": item.index, **ranked,
            "low_confidence": ranked["low_confidence"] or bool(warnings), "inverted": item.prepared.inverted,
            "warnings": warnings}


def prepare_uploads(uploads: Sequence[tuple[str, bytes]], limits: Limits = Limits(),
                    box: tuple[int, int, int, int] | None = None) -> list[Item]:
    """Every upload through the photo preprocessing (inside `box` when given, the user's crop);
    a bad one keeps its ImageError in its item."""
    items = []
    for index, (name, data) in enumerate(uploads):
        item, started = Item(name=name, index=index), time.perf_counter()
        try:
            item.prepared = prepare_image(data, limits=limits, box=box)
        except ImageError as exc:
            item.error = exc
            item.answer = {"name": name, "index": index, "error": exc.code, "detail": str(exc)}
        item.preprocess_ms = (time.perf_counter() - started) * 1000
        items.append(item)
    return items


def predict_images(runs_dir: Path | str, run_id: str, images: np.ndarray, backend: str = "keras") -> np.ndarray:
    """(N, 28, 28) uint8 model inputs -> (N, 10) probabilities from the run's cached predictor."""
    return get_predictor(runs_dir, run_id, backend).predict(images)


def familiarity_warnings(runs_dir: Path | str, run_id: str, images: np.ndarray,
                         backend: str = "keras") -> list[list[str]]:
    """Per image [UNFAMILIAR] when the run's familiarity check flags it, else []. Only where the run
    has one (`workbench familiarity RUN`) and with the Keras backend, whose graph gives the features."""
    if backend != "keras":
        return [[] for _ in images]
    run_dir = runs.run_path(runs_dir, run_id)
    try:
        familiarity = cached("familiarity", run_dir / runs.FAMILIARITY, lambda: load_familiarity(run_dir))
    except RunError as exc:  # an optional check: the answer still comes, with the reason it was skipped
        return [[f"the check for inputs unlike the training images was skipped: {exc}"] for _ in images]
    if familiarity is None:
        return [[] for _ in images]
    from model.features import feature_model  # TensorFlow: imported once a model is in use

    model = cached("features", run_dir / runs.MODEL,
                   lambda: feature_model(get_predictor(runs_dir, run_id, "keras").model))
    features = np.asarray(model(np.asarray(images, np.float32)[..., None], training=False))  # no predict():
    # its per-call setup costs ~50 ms, the forward pass of a few images ~1 ms
    return [[UNFAMILIAR] if flag else [] for flag in familiarity.unfamiliar(features)]


def imagenet_network() -> ImageNetView:
    """The ImageNet view's network, loaded once (the one cache, keyed on the weights file)."""
    return cached("imagenet", weights_path(), ImageNetView.load)


def imagenet_view(items: Sequence[Item], class_names: list[str]) -> tuple[np.ndarray | None, list[dict | None]]:
    """For each item with a garment view (a photo, not a tiny image): ImageNet's group masses (the ten
    classes, then the shared names: model.imagenet.group_masses) and what it saw, for the answer's
    "imagenet" field; masses of 0 where there is no view. The view is skipped, saying why, when the
    run's classes are not Fashion-MNIST's or the weights are missing."""
    if not any(item.prepared.view is not None for item in items):
        return None, [None] * len(items)
    if list(class_names) != list(CLASS_NAMES):
        return None, [{"skipped": "the run's classes are not Fashion-MNIST's ten"}] * len(items)
    try:
        view = imagenet_network()
    except WeightsError as exc:  # optional: the run still answers, and the answer says what is missing
        return None, [{"skipped": str(exc)}] * len(items)
    seen = [i for i, item in enumerate(items) if item.prepared.view is not None]
    found, named = view.look(np.stack([items[i].prepared.view for i in seen]))
    masses, notes = np.zeros((len(items), found.shape[1])), [None] * len(items)
    for row, i, note in zip(found, seen, named):
        masses[i], notes[i] = row, note
    return masses, notes


def imagenet_fields(prepared: Prepared) -> dict:
    """What the Predict page's store keeps of one photo's ImageNet view: what it saw and its ten
    group masses (a few numbers, not the photo); {} when the photo has no view."""
    masses, seen = imagenet_view([Item("", 0, prepared)], list(CLASS_NAMES))
    if seen[0] is None:
        return {}
    return {"imagenet": seen[0], "imagenet_masses": None if masses is None else masses[0].round(6).tolist()}


def without_imagenet(fields: dict) -> dict:
    """A stored upload (a Predict-page store item) less its ImageNet view (imagenet_fields' keys): the
    run alone answers it."""
    return {key: value for key, value in fields.items() if key not in ("imagenet", "imagenet_masses")}


def join_imagenet(probs: np.ndarray, fields: dict, class_names: list[str]) -> np.ndarray:
    """A run's probabilities joined with the stored ImageNet view (imagenet_fields), as classify
    joins them; unchanged without a view or for a run whose classes are not Fashion-MNIST's."""
    masses = fields.get("imagenet_masses")
    if masses is None or list(class_names) != list(CLASS_NAMES):
        return probs
    return blend(np.asarray(probs)[None], np.asarray(masses)[None])[0]


def classify(uploads: Sequence[tuple[str, bytes]], runs_dir: Path | str, run_id: str, backend: str = "keras",
             *, top: int = 3, low_confidence: float = LOW_CONFIDENCE, limits: Limits = Limits(),
             box: tuple[int, int, int, int] | None = None, imagenet: bool = True) -> Batch:
    """Prepare every upload, predict the good ones in one batch, rank each answer; `imagenet` False
    answers with the run alone. A box is drawn on one photo: with several, it would cut each of them
    at the same place, so that is refused."""
    if box is not None and len(uploads) > 1:
        raise ImageError(f"a box belongs to one photo, but {len(uploads)} photos came with it: give that "
                         "photo alone with its box", "bad_box")
    class_names = artifacts.class_names(runs_dir, run_id)
    batch = Batch(run_id, backend, class_names, prepare_uploads(uploads, limits, box))
    ready = [item for item in batch.items if item.error is None]
    if not ready:
        return batch
    started = time.perf_counter()
    images = np.stack([item.prepared.image for item in ready])
    probs = predict_images(runs_dir, run_id, images, backend)
    masses, seen = imagenet_view(ready, class_names) if imagenet else (None, [None] * len(ready))
    joined = blend(probs, masses) if masses is not None else probs
    batch.predict_ms = (time.perf_counter() - started) * 1000 / len(ready)
    flags = familiarity_warnings(runs_dir, run_id, images, backend)
    for item, own, row, extra, note in zip(ready, probs, joined, flags, seen):
        item.probs, item.model_probs = row, own
        item.answer = answer(item, row, batch.class_names, top, low_confidence, extra)
        if note is not None:
            item.answer["imagenet"] = {**note, "model_probabilities": [round(float(p), 6) for p in own]}
    return batch
