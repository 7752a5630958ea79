"""A garment found in a real photo (workbench.segment) -> the 28x28 Fashion-MNIST-like model input.

Used by workbench.preprocess.prepare_pil when the photo is not a clean product shot:

    prepared = prepare_found(work, settings)        # a working-size PIL image -> Prepared
    image, steps, box = frame_found(work_rgb, found)   # uint8 (28, 28), display steps, crop box

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

from workbench.segment import Found, FinderSettings, NothingFound, find_garment


@dataclass(frozen=True)
class FrameSettings:
    """How the found garment's pixels become model-input intensities."""
    floor: float = 0.35            # share of 255 the faintest garment pixel gets: a white shirt stays visible
    low: float = 2.0               # percentile of the garment's negated gray mapped to the floor ...
    high: float = 98.0             # ... and this one to full brightness (robust to highlights and seams)
    flat: bool = False             # True: a filled silhouette instead of the garment's shading


FINDER = FinderSettings()          # module-level so a benchmark can swap them while comparing
FRAME = FrameSettings()


def frame_found(work_rgb: np.ndarray, found: Found, settings: FrameSettings = FrameSettings()):
    """Working-size RGB and its Found -> (uint8 28x28 image, [(step name, uint8 array), ...])."""
    from workbench.preprocess import SIZE, Settings, pad_center, resize_longest, sharpen, stretch

    mask = upscale_mask(found.mask, work_rgb.shape[:2])
    gray = cv2.cvtColor(work_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    crop = shade(gray[box[1]:box[3], box[0]:box[2]], mask[box[1]:box[3], box[0]:box[2]], settings)
    crop = np.rot90(crop, found.turn).copy() if found.turn else crop
    resized, scale = resize_longest(crop, SIZE)
    resized = stretch(resized, 100.0)
    padded = pad_center(sharpen(resized, scale, Settings()), SIZE)
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


def prepare_found(work, settings):
    """The real-photo path of workbench.preprocess.prepare_pil: a working-size PIL image -> Prepared,
    its outline in working pixels; ImageError (code no_object) when nothing can be separated."""
    from workbench.preprocess import ImageError, Prepared, mask_outline

    rgb = np.asarray(work.convert("RGB"))
    try:
        found = find_garment(rgb, FINDER)
    except NothingFound as exc:
        raise ImageError(str(exc), "no_object") from exc
    image, steps, box = frame_found(rgb, found, FRAME)
    points = [(x / found.scale, y / found.scale) for x, y in mask_outline(found.mask)]
    inverted = bool(np.median(rgb) >= 128)
    return Prepared(image=image, steps=steps, inverted=inverted, box=tuple(int(v) for v in box),
                    background=float(np.median(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[~upscale_mask(
                        found.mask, rgb.shape[:2])])) if found.fraction < 1 else 0.0,
                    outline=points, found_fraction=found.fraction, warnings=list(found.warnings),
                    method="finder")
