"""A garment found in a real photo (workbench.segment) -> the 28x28 Fashion-MNIST-like model input.

Used by workbench.preprocess.prepare_pil when the photo is not a clean product shot:

    prepared = prepare_found(work)                     # a working-size PIL image -> Prepared
    image, steps, box = frame_found(work_rgb, found)   # uint8 (28, 28), display steps, crop box

and the small helpers prepare_pil shares: crop_to_box (the user's box), plain_backdrop (is this a
studio photo?) and mask_outline (a mask's boundary as polygon points).

Fashion-MNIST images are negated grayscale product photos on white: the garment is bright, its
darker parts brighter still, the background black, the longest edge 28 px. Here the garment's
own shading is negated and stretched inside the found mask (the background's colour, which says
nothing about the garment, is not used), lifted by a floor so a white garment keeps its silhouette,
then resized, sharpened and padded exactly as the clean path does.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from model.errors import ImageError
from workbench.canvas import SIZE, Prepared, pad_center, resize_longest, sharpen, stretch
from workbench.decode import Limits
from workbench.segment import Found, FinderSettings, NothingFound, find_garment


@dataclass(frozen=True)
class FrameSettings:
    """How the found garment's pixels become model-input intensities."""
    floor: float = 0.35            # share of 255 the faintest garment pixel gets: a white shirt stays visible
    low: float = 2.0               # percentile of the garment's negated gray mapped to the floor ...
    high: float = 98.0             # ... and this one to full brightness (robust to highlights and seams)
    flat: bool = False             # True: a filled silhouette instead of the garment's shading (odd dev
                                   # half, default run: 39.1 % flat, 53.9 % shaded; floor 0.6: 43.5 %)


FINDER = FinderSettings()          # module-level so a benchmark can swap them while comparing
FRAME = FrameSettings()


def prepare_found(work, boxed: bool = False):
    """The real-photo path of workbench.preprocess.prepare_pil: a working-size PIL image -> Prepared,
    its outline in working pixels; ImageError (code no_object) when nothing can be separated. `boxed`:
    `work` is the inside of a box the user drew."""
    rgb = np.asarray(work.convert("RGB"))
    try:
        found = find_garment(rgb, FINDER, boxed)
    except NothingFound as exc:
        raise ImageError(str(exc), "no_object") from exc
    image, steps, box = frame_found(rgb, found, FRAME)
    points = [(x / found.scale, y / found.scale) for x, y in mask_outline(found.mask)]
    outside = ~upscale_mask(found.mask, rgb.shape[:2])
    background = float(np.median(dict(steps)["grayscale"][outside])) if outside.any() else 0.0
    return Prepared(image=image, steps=steps, inverted=True, box=tuple(int(v) for v in box),
                    background=background, outline=points, found_fraction=found.fraction,
                    warnings=list(found.warnings), method="finder")


def frame_found(work_rgb: np.ndarray, found: Found, settings: FrameSettings = FrameSettings()):
    """Working-size RGB and its Found -> (uint8 28x28 image, [(step name, uint8 array), ...], the
    garment's box in working pixels)."""
    mask = upscale_mask(found.mask, work_rgb.shape[:2])
    gray = cv2.cvtColor(work_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    crop = shade(gray[box[1]:box[3], box[0]:box[2]], mask[box[1]:box[3], box[0]:box[2]], settings)
    crop = np.rot90(crop, found.turn).copy() if found.turn else crop
    resized, scale = resize_longest(crop, SIZE)
    resized = stretch(resized, 100.0)
    padded = pad_center(sharpen(resized, scale), SIZE)
    steps = [("grayscale", gray.astype(np.uint8)), ("mask", mask.astype(np.uint8) * 255),
             ("cropped", stretch(crop, 100.0)), ("resized", resized), ("padded", padded),
             ("final", padded)]
    return padded, steps, box


def upscale_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The finder's small mask at the working size, edges smoothed by linear interpolation."""
    if mask.shape == shape:
        return mask
    big = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return big >= 0.5


def shade(gray: np.ndarray, mask: np.ndarray, settings: FrameSettings) -> np.ndarray:
    """Float 0..1: the garment's negated gray stretched between two percentiles onto [floor, 1]
    inside the mask, 0 outside."""
    if settings.flat:
        return mask.astype(np.float32)
    negated = 255.0 - gray
    low, high = np.percentile(negated[mask], [settings.low, settings.high])
    spread = max(float(high - low), 1.0)
    values = settings.floor + (1 - settings.floor) * np.clip((negated - low) / spread, 0, 1)
    return np.where(mask, values, 0.0).astype(np.float32)


def crop_to_box(image, box, full_size) -> tuple[object, tuple[float, float], float]:
    """The part of a PIL image inside `box` (x0, y0, x1, y1 in original pixels), that part's origin
    in original pixels and the original pixels per image pixel; the whole image when box is None."""
    factor = full_size[0] / image.width
    if box is None:
        return image, (0.0, 0.0), factor
    x0, y0, x1, y1 = (int(v) for v in box)
    photo = f"the {full_size[0]}x{full_size[1]} photo"
    if x0 >= full_size[0] or y0 >= full_size[1]:
        raise ImageError(f"the box {tuple(box)} lies outside {photo}", "bad_box")
    # a box reaching beyond the photo was meant for another size or photo: refused, not cut silently
    if x0 < 0 or y0 < 0 or x1 > full_size[0] or y1 > full_size[1]:
        raise ImageError(f"the box {tuple(box)} reaches beyond {photo}: x must lie within "
                         f"0..{full_size[0]} and y within 0..{full_size[1]} (upright photo pixels)", "bad_box")
    if x1 - x0 < SIZE or y1 - y0 < SIZE:  # fewer pixels than the model's input: no garment to find
        raise ImageError(f"the box {tuple(box)} holds only {x1 - x0}x{y1 - y0} pixels of {photo}; draw it "
                         f"around the whole garment (at least {SIZE}x{SIZE} pixels)", "bad_box")
    if max(x1 - x0, y1 - y0) > Limits.max_aspect * min(x1 - x0, y1 - y0):  # as decode refuses for a photo
        raise ImageError(f"the box {tuple(box)} is {x1 - x0}x{y1 - y0} pixels, more than {Limits.max_aspect:g} times "
                         "as long as it is wide; draw it around the whole garment", "bad_box")
    x0, y0, x1, y1 = widen(x0, y0, x1, y1, full_size)
    pixels = tuple(round(v / factor) for v in (x0, y0, x1, y1))
    return image.crop(pixels), (pixels[0] * factor, pixels[1] * factor), factor


def widen(x0: int, y0: int, x1: int, y1: int, full_size) -> tuple[int, int, int, int]:
    """The box grown on each side (within the photo) so that the strip the finder takes as sure
    background lies outside what the user drew, so a box drawn tight around the garment (or a little
    inside it) keeps the garment's edges: on drawn scenes the outline's IoU with a tight box rose from
    0.92 to 0.985 and with a box 6 px inside from 0.81-0.88 to 0.95 (loose boxes: unchanged)."""
    share = FINDER.border / (1 - 2 * FINDER.border)  # strip = border x (box + 2 margins) = one margin
    dx, dy = round(share * (x1 - x0)), round(share * (y1 - y0))
    return max(0, x0 - dx), max(0, y0 - dy), min(full_size[0], x1 + dx), min(full_size[1], y1 + dy)


def plain_backdrop(strip: np.ndarray, light_from: float, tint: float) -> bool:
    """A studio-like border (N, 3 RGB pixels): near white or near black and nearly gray (beds, floors
    and walls in everyday photos are coloured or mid-tone, and the finder handles those better)."""
    colour = np.median(strip, axis=0)
    light = float(colour @ np.array([0.299, 0.587, 0.114]))
    return (light >= light_from or light <= 255 - light_from) and float(colour.max() - colour.min()) <= tint


def mask_outline(mask: np.ndarray) -> list[tuple[float, float]]:
    """The largest outer boundary of a mask as (x, y) points in its own pixels."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    points = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 0.75, True)[:, 0, :]
    return [(float(x) + 0.5, float(y) + 0.5) for x, y in points]
