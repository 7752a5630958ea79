"""Rendered-photo benchmark: does preprocessing bring "photos" back into the Fashion-MNIST domain?

    .venv/bin/python benchmarks/photos.py                       # 1000 test images, runs/fast-default
    .venv/bin/python benchmarks/photos.py --n 2000 --hard       # also the harder renderings
    .venv/bin/python benchmarks/photos.py --save-dir /tmp/renders --n 20   # look at some renderings
    .venv/bin/python benchmarks/photos.py --real ../shared/data/real-photos-dev --sheet /tmp/sheet.png
                                          # real labelled photos instead: see benchmarks/photos_real.py

Real labelled photos are few (the dev set), so here test images are rendered the way photos look: upscaled 6-16x,
inverted to dark-on-light, placed off-centre on a light background of random size and aspect,
blurred, noised, JPEG-compressed, and a third of them stored rotated with an EXIF orientation tag.
`--hard` adds what product photos have: a coloured garment, a soft drop shadow, an uneven
background and a small unrelated object. The model's accuracy on the rendered set, after
workbench.preprocess, is compared with its accuracy on the original 28x28 images (target: within
2 points), next to a naive resize of the whole photo for scale.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # TensorFlow's start-up lines would bury the numbers

EXIF_ORIENTATION = 0x0112
# EXIF orientation tag -> the transpose that stores an upright image so that exif_transpose undoes it
STORED_AS = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def render_photo(image: np.ndarray, rng: np.random.Generator, hard: bool = False,
                 orientation: int | None = None) -> bytes:
    """A 28x28 Fashion-MNIST image (bright on black) -> JPEG bytes of a plausible product photo."""
    scale = int(rng.integers(6, 17))
    ink = upscale(image, scale)                                       # 0..1, 1 = garment
    canvas_h = int(ink.shape[0] / rng.uniform(0.4, 0.9))
    canvas_w = int(ink.shape[1] / rng.uniform(0.4, 0.9))
    top = int(rng.integers(0, canvas_h - ink.shape[0] + 1))
    left = int(rng.integers(0, canvas_w - ink.shape[1] + 1))
    background = rng.uniform(205, 252) + rng.uniform(-6, 6, size=3)   # light, slightly tinted
    photo = np.ones((canvas_h, canvas_w, 3)) * background
    if hard:
        photo *= uneven_light(canvas_h, canvas_w, rng)[..., None]
        photo = drop_shadow(photo, ink, top, left, rng)
        photo = add_clutter(photo, top, left, ink.shape, rng)
    colour = rng.uniform(0, 200, size=3) if hard else rng.uniform(0, 40, size=1).repeat(3)
    region = photo[top:top + ink.shape[0], left:left + ink.shape[1]]
    region[:] = region * (1 - ink[..., None]) + colour * ink[..., None]   # dark garment over the background
    photo = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8))
    photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    noisy = np.asarray(photo, np.float64) + rng.normal(0, rng.uniform(1, 4), size=(canvas_h, canvas_w, 3))
    photo = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return to_jpeg(photo, int(rng.integers(70, 96)), orientation if orientation is not None
                   else int(rng.choice([1, 1, 1, 1, 3, 6, 8, 1, 1])))


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscaling of a uint8 image to float 0..1."""
    size = (image.shape[1] * scale, image.shape[0] * scale)
    big = Image.fromarray(image).resize(size, Image.Resampling.BICUBIC)
    return np.asarray(big, np.float64) / 255.0


def uneven_light(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth brightness falloff (vignette plus a linear gradient), 0.85..1."""
    y, x = np.mgrid[0:height, 0:width]
    y, x = y / height - 0.5, x / width - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    light = 1 - 0.35 * (x ** 2 + y ** 2) - 0.08 * (np.cos(angle) * x + np.sin(angle) * y)
    return np.clip(light, 0.85, 1.0)


def drop_shadow(photo: np.ndarray, ink: np.ndarray, top: int, left: int, rng: np.random.Generator) -> np.ndarray:
    """A blurred, offset, faint copy of the garment's silhouette darkening the background."""
    height, width = photo.shape[:2]
    silhouette = np.zeros((height, width))
    dy, dx = (rng.uniform(0.01, 0.04, size=2) * max(ink.shape)).astype(int)
    bottom, right = min(height, top + dy + ink.shape[0]), min(width, left + dx + ink.shape[1])
    silhouette[top + dy:bottom, left + dx:right] = (ink > 0.1)[:bottom - top - dy, :right - left - dx]
    blurred = Image.fromarray((silhouette * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.01, 0.03) * max(ink.shape)))
    strength = rng.uniform(0.08, 0.25)
    return photo * (1 - strength * np.asarray(blurred, np.float64)[..., None] / 255)


def add_clutter(photo: np.ndarray, top: int, left: int, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """A small dark blob (a tag, a hanger hook, dust) in a corner away from the garment, half the time."""
    height, width = photo.shape[:2]
    if rng.random() < 0.5:
        return photo
    size = max(3, int(rng.uniform(0.01, 0.03) * max(height, width)))
    corners = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size)]
    y, x = corners[int(rng.integers(0, 4))]
    overlaps = y < top + shape[0] and y + size > top and x < left + shape[1] and x + size > left
    if not overlaps:
        photo[y:y + size, x:x + size] = rng.uniform(30, 120)
    return photo


def to_jpeg(photo: Image.Image, quality: int, orientation: int) -> bytes:
    """JPEG bytes; orientation != 1 stores the pixels rotated with the EXIF tag that undoes it."""
    exif = Image.Exif()
    if orientation in STORED_AS:
        photo = photo.transpose(STORED_AS[orientation])
        exif[EXIF_ORIENTATION] = orientation
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=quality, exif=exif)
    return buffer.getvalue()


def naive(data: bytes) -> np.ndarray:
    """What a model gets without preprocessing: the whole photo, grayscale, squashed to 28x28."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("L").resize((28, 28), Image.Resampling.BILINEAR))


def imagenet_masses(prepared: list, chunk: int = 50) -> np.ndarray:
    """ImageNet group masses of prepared photos (workbench.classify.imagenet_view), in chunks."""
    from model.data import CLASS_NAMES
    from model.imagenet import SHARED
    from workbench.classify import Item, imagenet_view

    rows = []
    for start in range(0, len(prepared), chunk):
        items = [Item("", i, p) for i, p in enumerate(prepared[start:start + chunk])]
        masses = imagenet_view(items, list(CLASS_NAMES))[0]
        rows.append(masses if masses is not None else np.zeros((len(items), len(CLASS_NAMES) + len(SHARED))))
    return np.concatenate(rows)


def evaluate(predictor, originals: np.ndarray, labels: np.ndarray, renders: list[bytes],
             low_confidence: float, imagenet: bool = True) -> dict:
    """Accuracies on originals, preprocessed renders (with the ImageNet view, as workbench.classify
    answers photos, and the run alone) and naive renders; the low-confidence split."""
    from model.imagenet import blend
    from workbench.preprocess import ImageError, Prepared, prepare_image

    started = time.perf_counter()
    prepared, failed = [], 0
    for data in renders:
        try:
            prepared.append(prepare_image(data))
        except ImageError:
            failed += 1
            prepared.append(Prepared(image=np.zeros((28, 28), np.uint8)))
    prep_ms = (time.perf_counter() - started) * 1000 / len(renders)
    alone = predictor.predict(np.stack([p.image for p in prepared]))
    probs = blend(alone, imagenet_masses(prepared)) if imagenet else alone
    correct = probs.argmax(1) == labels
    unsure = probs.max(1) < low_confidence
    return {
        "original": float((predictor.predict(originals).argmax(1) == labels).mean()),
        "rendered": float(correct.mean()), "alone": float((alone.argmax(1) == labels).mean()),
        "naive": float((predictor.predict(np.stack([naive(d) for d in renders])).argmax(1) == labels).mean()),
        "failed": failed, "prep_ms": prep_ms, "unsure": float(unsure.mean()),
        "sure_accuracy": float(correct[~unsure].mean()) if (~unsure).any() else float("nan"),
        "unsure_accuracy": float(correct[unsure].mean()) if unsure.any() else float("nan"),
    }


def report(title: str, result: dict, low_confidence: float) -> None:
    gap = (result["original"] - result["rendered"]) * 100
    print(f"\n{title}")
    print(f"  accuracy on the original 28x28 images   {result['original']:.2%}")
    print(f"  accuracy on rendered photos, prepared   {result['rendered']:.2%}   (gap {gap:+.2f} points)")
    print(f"  ... the run alone, no ImageNet view      {result['alone']:.2%}")
    print(f"  accuracy on rendered photos, naive      {result['naive']:.2%}   (whole photo resized, no prep)")
    print(f"  preprocessing {result['prep_ms']:.1f} ms per photo; {result['failed']} failed")
    print(f"  low confidence (top-1 < {low_confidence}): {result['unsure']:.1%} of photos; accuracy "
          f"{result['unsure_accuracy']:.1%} there vs {result['sure_accuracy']:.1%} on the rest")


def main(argv: list[str] | None = None) -> int:
    from model.errors import WorkbenchError

    args = parse_args(argv)
    try:
        return run_real_photos(args) if args.real else run_rendered(args)
    except WorkbenchError as exc:  # missing data, an unknown run, a folder without labels.csv: in words
        print(f"error: {exc}", file=sys.stderr)
        return 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from workbench.classify import LOW_CONFIDENCE

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--run", default="fast-default")
    parser.add_argument("--backend", default="keras")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n", type=int, default=1000, help="test images (spread evenly over the test set)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hard", action="store_true", help="also run the harder product-photo renderings")
    parser.add_argument("--low-confidence", type=float, default=LOW_CONFIDENCE)
    parser.add_argument("--save-dir", default=None, help="write the rendered JPEGs here")
    add_real_arguments(parser)
    return parser.parse_args(argv)


def run_rendered(args: argparse.Namespace) -> int:
    """The rendered-photo benchmark: test images rendered as photos, then the photo path."""
    from model.data import load_splits
    from workbench.inference import get_predictor

    test = load_splits(args.data_dir, progress=False).test
    pick = np.linspace(0, len(test) - 1, min(args.n, len(test))).round().astype(int)
    images, labels = test.images[pick], test.labels[pick]
    predictor = get_predictor(args.runs_dir, args.run, args.backend)
    print(f"run {args.run} ({args.backend}), {len(pick)} test images, seed {args.seed}")
    for hard in ([False, True] if args.hard else [False]):
        rng = np.random.default_rng(args.seed)
        renders = [render_photo(image, rng, hard=hard) for image in images]
        if args.save_dir:
            folder = Path(args.save_dir) / ("hard" if hard else "clean")
            folder.mkdir(parents=True, exist_ok=True)
            for i, data in enumerate(renders[:50]):
                (folder / f"{i:03d}-label{labels[i]}.jpg").write_bytes(data)
        result = evaluate(predictor, images, labels, renders, args.low_confidence, not args.no_imagenet)
        report("hard renderings (colour, shadow, uneven light, clutter)" if hard else
               "clean renderings (dark-on-light, off-centre, blur, noise, JPEG, EXIF)", result, args.low_confidence)
    return 0


def add_real_arguments(parser: argparse.ArgumentParser) -> None:
    """--real and the options that go with it."""
    parser.add_argument("--real", default=None, help="a folder of real photos (labels.csv + images/)")
    parser.add_argument("--half", choices=["odd", "even", "all"], default="all",
                        help="with --real: only the odd- or even-numbered photos (tune on odd)")
    parser.add_argument("--sheet", default=None, help="with --real: write a contact-sheet PNG here")
    parser.add_argument("--no-gradcam", action="store_true", help="with --real: time predict alone")
    parser.add_argument("--phone-size", action="store_true", help="with --real: also time 12 MP JPEGs")
    parser.add_argument("--no-imagenet", action="store_true",
                        help="the run alone, without the ImageNet view (workbench.classify)")
    parser.add_argument("--against", default=None,
                        help="with --real: a second run answering the same inputs, compared by McNemar's test")


def run_real_photos(args: argparse.Namespace) -> int:
    """--real: the labelled-photo benchmark of benchmarks/photos_real.py."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from photos_real import load_labels, run_real

    load_labels(Path(args.real), args.half)  # a folder without labels says so before a model loads
    from workbench.classify import familiarity_warnings
    from workbench.explain import get_explainer
    from workbench.inference import get_predictor

    predictor = get_predictor(args.runs_dir, args.run, args.backend)
    explainer = None if args.no_gradcam else get_explainer(args.runs_dir, args.run)
    print(f"run {args.run} ({args.backend}), real photos in {args.real}, half {args.half}")
    against = (args.run, args.against, get_predictor(args.runs_dir, args.against, args.backend)) \
        if args.against else None
    flags = (lambda images: familiarity_warnings(args.runs_dir, args.run, images, args.backend))  # noqa: E731
    run_real(Path(args.real), args.half, predictor, explainer, args.low_confidence,
             Path(args.sheet) if args.sheet else None, args.phone_size, against, flags, not args.no_imagenet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
