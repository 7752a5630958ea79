"""Real-photo benchmark: how well does the photo path classify photos people actually take?

    .venv/bin/python benchmarks/photos.py --real ../shared/data/real-photos-dev
    .venv/bin/python benchmarks/photos.py --real DIR --half odd --sheet /tmp/odd.png --run photo-default
    .venv/bin/python benchmarks/photos.py --real DIR --phone-size    # also time 12 MP JPEGs
    .venv/bin/python benchmarks/photos.py --real DIR --run photo-default --against fast-default

DIR holds labels.csv (columns file, label, ...) and images/. Every photo goes through
workbench.preprocess.prepare_image and the model, then Grad-CAM (as the app does), and the script
prints, for the whole set and for the odd- and even-numbered files separately (tune on the odd
half only): accuracy, per-class accuracy, the main confusions, refusals and their reasons, the
low-confidence split (flagged = top-1 below the threshold or a preprocessing warning), and p50/p95
milliseconds for preprocessing and for predict + Grad-CAM. It also calibrates the low-confidence
threshold on the odd half alone: the lowest threshold at which the unflagged odd photos are right at
least CALIBRATION_TARGET of the time, then shows what that threshold does on the even half. `--sheet` writes a contact sheet:
photo with the found outline | the 28x28 the model saw | true / predicted and probability.

With a few hundred photos chance moves accuracy by several points (the 95 % interval printed beside
each accuracy is about +-6.5 points at 228 photos, +-9 on a half), so a change is judged paired:
`--against RUN` answers the same model inputs with a second run and prints McNemar's test
(workbench.insight.mcnemar) per half and overall. Settings tried on the odd half alone are judged
by the even half's test.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CALIBRATION_TARGET = 0.80   # unflagged answers should be right as often as the accuracy target
CALIBRATION_GRID = [round(0.30 + 0.05 * i, 2) for i in range(14)]   # thresholds tried: 0.30 .. 0.95

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot"]


@dataclass
class Outcome:
    """One photo's result."""
    file: str
    label: int
    predicted: int = -1                 # -1: refused
    probability: float = 0.0
    runner_up: int = -1                 # the second class, which the Predict page names for a flagged answer
    alone: int = -1                     # the run's own answer, before the ImageNet view joins it
    refusal: str = ""
    warnings: list[str] = field(default_factory=list)
    prep_ms: float = 0.0
    model_ms: float = 0.0
    image: np.ndarray | None = None     # the 28x28 model input
    thumb: Image.Image | None = None    # the photo with the outline drawn


def load_labels(folder: Path, half: str) -> list[tuple[str, int]]:
    """(file, label) rows of labels.csv, only odd or even trailing numbers when asked."""
    from model.errors import DataError

    try:
        with open(folder / "labels.csv", newline="") as handle:
            rows = [(row["file"], int(row["label"])) for row in csv.DictReader(handle)]
        return [row for row in rows if half == "all" or file_half(row[0]) == half]
    except FileNotFoundError:
        raise DataError(f"{folder} has no labels.csv: a real-photo folder holds labels.csv (columns file, "
                        "label) and images/", code="no_labels") from None
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise DataError(f"{folder / 'labels.csv'} is not a labels table (columns file, label with a "
                        f"class number, files numbered like name_001.jpg): {exc!r}", code="bad_labels") from None


def file_half(name: str) -> str:
    """'odd' or 'even' from the number before the extension (00_tshirt_007.jpg -> odd)."""
    return "odd" if int(Path(name).stem.rsplit("_", 1)[-1]) % 2 else "even"


def run_one(path: Path, label: int, predictor, explainer, flags=None, imagenet: bool = True) -> Outcome:
    """Preprocess, predict and explain one photo, timing both stages; `flags` (model inputs -> a list
    of warnings per input, e.g. workbench.classify.familiarity_warnings) adds the model's own flags;
    `imagenet` joins the ImageNet view as workbench.classify does."""
    from model.data import CLASS_NAMES
    from model.imagenet import blend
    from workbench.classify import Item, imagenet_view
    from workbench.preprocess import ImageError, prepare_image

    outcome = Outcome(file=path.name, label=label)
    data = path.read_bytes()
    started = time.perf_counter()
    try:
        prepared = prepare_image(data)
    except ImageError as exc:
        outcome.refusal, outcome.prep_ms = str(exc), (time.perf_counter() - started) * 1000
        return outcome
    outcome.prep_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    own = predictor.predict(prepared.image[None])
    masses = imagenet_view([Item(path.name, 0, prepared)], list(CLASS_NAMES))[0] if imagenet else None
    probs = (blend(own, masses) if masses is not None else own)[0]
    outcome.alone = int(own[0].argmax())
    extra = flags(prepared.image[None])[0] if flags else []
    if explainer is not None:
        explainer.explain(prepared.image[None], int(probs.argmax()))
    outcome.model_ms = (time.perf_counter() - started) * 1000
    outcome.predicted, outcome.probability = int(probs.argmax()), float(probs.max())
    outcome.runner_up = int(np.argsort(probs)[-2])
    outcome.warnings, outcome.image = [*prepared.warnings, *extra], prepared.image
    outcome.thumb = thumbnail(dict(prepared.steps)["original"], prepared)
    return outcome


def thumbnail(display: np.ndarray, prepared) -> Image.Image:
    """The display-size photo with the found outline drawn in red."""
    image = Image.fromarray(display).convert("RGB")
    scale = image.width / max(prepared.image_size[0], 1)
    if len(prepared.outline) > 2:
        points = [(x * scale, y * scale) for x, y in prepared.outline]
        ImageDraw.Draw(image).line(points + points[:1], fill=(255, 0, 0), width=2)
    return image


def summarise(title: str, outcomes: list[Outcome], low_confidence: float) -> None:
    """Print accuracy, per class, confusions, refusals, the flagged split and timings."""
    if not outcomes:
        return
    labels = np.array([o.label for o in outcomes])
    right = np.array([o.predicted == o.label for o in outcomes])
    refused = [o for o in outcomes if o.predicted < 0]
    low, high = accuracy_interval(int(right.sum()), len(right))
    print(f"\n{title}: {right.sum()}/{len(right)} = {right.mean():.1%} right (95 % CI {low:.1%}-{high:.1%}); "
          f"{len(refused)} refused ({len(refused) / len(right):.1%})")
    print("  per class: " + ", ".join(f"{CLASSES[c]} {right[labels == c].sum()}/{(labels == c).sum()}"
                                      for c in sorted(set(labels))))
    confusions = Counter((CLASSES[o.label], CLASSES[o.predicted]) for o in outcomes
                         if o.predicted >= 0 and o.predicted != o.label)
    print("  main confusions: " + ", ".join(f"{t} -> {p} x{n}" for (t, p), n in confusions.most_common(6)))
    for reason, count in Counter(o.refusal for o in refused).most_common():
        print(f"  refused x{count}: {reason}")
    print_flagged(outcomes, right, low_confidence)
    print_timings(outcomes)


def accuracy_interval(right: int, total: int) -> tuple[float, float]:
    """Wilson's 95 % interval for an accuracy of right/total (scipy)."""
    from scipy import stats

    interval = stats.binomtest(right, total).proportion_ci(0.95, method="wilson")
    return float(interval.low), float(interval.high)


def print_paired(outcomes: list[Outcome], other, run: str, other_run: str) -> None:
    """Answer the same 28x28 inputs with `other` (a predictor; None: the run alone, without the
    ImageNet view) and print McNemar's test of A and B per half and overall; a refused photo is
    wrong for both."""
    from workbench.insight import mcnemar

    if other is None:
        theirs = np.array([o.alone == o.label for o in outcomes])
    else:
        images = [o.image for o in outcomes if o.image is not None]
        answers = iter(other.predict(np.stack(images)).argmax(axis=1) if images else [])
        theirs = np.array([next(answers) == o.label if o.image is not None else False for o in outcomes])
    ours = np.array([o.predicted == o.label for o in outcomes])
    print(f"\npaired: A = {run}, B = {other_run} on the same model inputs")
    for part in ("odd", "even", "all"):
        pick = np.array([part == "all" or file_half(o.file) == part for o in outcomes])
        if pick.any():
            result = mcnemar(ours[pick], theirs[pick])
            print(f"  {part}: A {result['accuracy_a']:.1%}, B {result['accuracy_b']:.1%}; only A right "
                  f"{result['a_only']}, only B right {result['b_only']}; {result['verdict']}")


def print_flagged(outcomes: list[Outcome], right: np.ndarray, low_confidence: float) -> None:
    """How often flagged (low top-1 or a preprocessing warning) and unflagged answers are right."""
    answered = np.array([o.predicted >= 0 for o in outcomes])
    flagged = np.array([o.probability < low_confidence or bool(o.warnings) for o in outcomes]) & answered
    warned = np.array([bool(o.warnings) for o in outcomes])
    calm = answered & ~flagged
    second = right | np.array([o.runner_up == o.label for o in outcomes])
    rate = lambda pick, hit=right: f"{hit[pick].mean():.0%}" if pick.any() else "-"  # noqa: E731
    print(f"  flagged {flagged.sum()} (top-1 < {low_confidence} or a warning; {warned.sum()} warnings): "
          f"right {rate(flagged)}, the true class in the top two {rate(flagged, second)}; "
          f"unflagged {calm.sum()}: right {rate(calm)}")


def calibrate(outcomes: list[Outcome], target: float = CALIBRATION_TARGET) -> float | None:
    """The lowest threshold of the grid at which unflagged answers are right >= target (None: none)."""
    for threshold in CALIBRATION_GRID:
        calm = [o for o in outcomes if o.predicted >= 0 and o.probability >= threshold and not o.warnings]
        if calm and np.mean([o.predicted == o.label for o in calm]) >= target:
            return threshold
    return None


def print_calibration(outcomes: list[Outcome]) -> None:
    """Calibrate on the odd half, then show the flagged/unflagged split of both halves at that value."""
    odd = [o for o in outcomes if file_half(o.file) == "odd"]
    threshold = calibrate(odd)
    if threshold is None:
        print(f"\ncalibration: no threshold up to {CALIBRATION_GRID[-1]} makes unflagged odd answers "
              f"{CALIBRATION_TARGET:.0%} right")
        return
    print(f"\ncalibrated on the odd half: threshold {threshold} (lowest with unflagged answers >= "
          f"{CALIBRATION_TARGET:.0%} right)")
    for part in ("odd", "even"):
        chosen = [o for o in outcomes if file_half(o.file) == part]
        if chosen:
            print(f"  {part}:", end="")
            print_flagged(chosen, np.array([o.predicted == o.label for o in chosen]), threshold)


def print_timings(outcomes: list[Outcome]) -> None:
    """p50/p95 milliseconds per photo for preprocessing and for predict + Grad-CAM."""
    prep = [o.prep_ms for o in outcomes]
    model = [o.model_ms for o in outcomes if o.predicted >= 0]
    total = [o.prep_ms + o.model_ms for o in outcomes]
    print(f"  ms per photo p50/p95: preprocess {np.percentile(prep, 50):.0f}/{np.percentile(prep, 95):.0f}, "
          f"predict+Grad-CAM {np.percentile(model, 50):.0f}/{np.percentile(model, 95):.0f}, "
          f"total {np.percentile(total, 50):.0f}/{np.percentile(total, 95):.0f}")


def contact_sheet(outcomes: list[Outcome], path: Path, columns: int = 6) -> None:
    """Per photo: thumbnail with outline | model input x4 | true / predicted (probability)."""
    cell_w, cell_h = 128 + 112 + 8, 150
    rows = (len(outcomes) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, outcome in enumerate(outcomes):
        x, y = (i % columns) * cell_w, (i // columns) * cell_h
        if outcome.thumb is not None:
            thumb = outcome.thumb.copy()
            thumb.thumbnail((128, 128))
            sheet.paste(thumb, (x, y))
        if outcome.image is not None:
            sheet.paste(Image.fromarray(outcome.image).resize((112, 112), Image.Resampling.NEAREST), (x + 130, y))
        colour = (0, 120, 0) if outcome.predicted == outcome.label else (200, 0, 0)
        guess = CLASSES[outcome.predicted] if outcome.predicted >= 0 else "refused"
        flag = " !" if outcome.warnings else ""
        draw.text((x, y + 130), f"{outcome.file[:22]} {CLASSES[outcome.label]} -> {guess} "
                  f"{outcome.probability:.2f}{flag}", fill=colour)
    sheet.save(path)


def time_phone_size(folder: Path, rows: list[tuple[str, int]], predictor, explainer, count: int = 20,
                    flags=None, imagenet: bool = True) -> None:
    """p50/p95 ms for photos upscaled to a 12-megapixel phone JPEG (4032x3024, quality 90): what
    decoding and finding cost at a phone camera's full size."""
    import io
    import tempfile

    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, label in rows[::max(1, len(rows) // count)][:count]:
            photo = Image.open(folder / "images" / name).convert("RGB")
            size = (4032, 3024) if photo.width >= photo.height else (3024, 4032)
            buffer = io.BytesIO()
            photo.resize(size, Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=90)
            path = Path(tmp) / name
            path.write_bytes(buffer.getvalue())
            outcomes.append(run_one(path, label, predictor, explainer, flags, imagenet))
    print(f"\n12-megapixel JPEGs ({len(outcomes)} dev photos upscaled to 4032x3024):")
    print_timings(outcomes)


def run_real(folder: Path, half: str, predictor, explainer, low_confidence: float,
             sheet: Path | None, phone_size: bool = False, against: tuple | None = None,
             flags=None, imagenet: bool = True) -> list[Outcome]:
    """The whole benchmark on one folder; prints the odd, even and whole-set summaries, and with
    `against` = (run, other run, other predictor) the paired comparison; with `imagenet`, also the
    paired comparison against the run alone."""
    rows = load_labels(folder, half)
    predictor.predict(np.zeros((1, 28, 28), np.uint8))  # warm up: the first call builds the graph
    outcomes = [run_one(folder / "images" / name, label, predictor, explainer, flags, imagenet)
                for name, label in rows]
    for part in ("odd", "even"):
        summarise(f"{part} half", [o for o in outcomes if file_half(o.file) == part], low_confidence)
    summarise(f"all ({half})", outcomes, low_confidence)
    print_calibration(outcomes)
    if imagenet:
        print_paired(outcomes, None, "the run with the ImageNet view", "the run alone")
    if against:
        print_paired(outcomes, against[2], against[0], against[1])
    if phone_size:
        time_phone_size(folder, rows, predictor, explainer, flags=flags, imagenet=imagenet)
    if sheet:
        contact_sheet(outcomes, sheet)
        print(f"\ncontact sheet: {sheet}")
    return outcomes
