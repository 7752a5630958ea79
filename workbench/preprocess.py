"""Photos -> Fashion-MNIST: bring an ordinary garment photo into the 28x28 domain the models know.

    prepared = prepare_image(open("shirt.jpg", "rb").read())
    prepared.image        # uint8 (28, 28), garment bright on black: the model input
    prepared.steps        # [(step name, uint8 array), ...] to show what the model sees
    prepared.inverted     # True when the photo was dark-on-light and got negated

The published Fashion-MNIST conversion (zalandoresearch/fashion-mnist README) trims edges close to
the corner colour, resizes the longest edge to 28, sharpens, pads the short edge to 28 centred,
negates the intensities and keeps 8-bit grayscale. Photos need more, so the steps here are:

  1. decode      (workbench/decode.py) size/format/decoded-bytes limits, JPEGs drafted and other images
                 reduced before any conversion, few large decodes at once, EXIF orientation, alpha
                 composited onto white
  2. route       a studio-like photo (plain light or dark, smooth border) takes the clean path
                 below; every other photo (beds, floors, carpets, hands) goes to the real-photo
                 finder: workbench.segment (GrabCut) and workbench.framing, which end in the same
                 resize, stretch, sharpen and pad
  3. grayscale   luminance; the background is a smooth colour surface fitted to a border strip
                 (vignetting, light gradients), its polarity the strip's median
  4. mask        pixels far from the background (hysteresis threshold), specks and clutter dropped,
                 holes filled; faint shadows excluded from the box: a robust object box
  5. crop        the object box; negate when the background is light (a Fashion-MNIST-like
                 light-on-dark image is left as it is), zero outside the object
  6. resize      longest edge -> 28 (antialiased), stretch the brightest pixels to 255 as in
                 Fashion-MNIST, then sharpen as the official conversion does; pad the short edge
                 to 28, centred on black

`box=(x0, y0, x1, y1)` (upright-photo pixels) limits the search to a region the user drew.
`Prepared.outline` is the found region in the photo's own pixels (to draw it), `.warnings` says in
words when the find is poor (flag the answer as low-confidence), `.found_fraction` its share.

Every input problem raises `ImageError` with a human message and a short machine `code`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from model.errors import ImageError
from workbench.canvas import (SHARPEN_MIN_SCALE, SHARPEN_PERCENT, SIZE, Prepared, pad_center, resize_longest,
                              sharpen, stretch)
from workbench.decode import FULL_SIZE, Limits, decode, to_rgb  # noqa: F401  (Limits: re-exported for callers)
from workbench.framing import crop_to_box, mask_outline, plain_backdrop, prepare_found

DISPLAY_SIZE = 256       # longest side of the "original" step kept for display


@dataclass(frozen=True)
class Settings:
    """How the object is found and framed; values tuned on rendered test images (benchmarks/photos.py)."""
    work_side: int = 384               # px: photos are reduced to this longest side first (speed, denoise)
    border: float = 0.03               # fraction of the short side sampled as background border strip
    strong: float = 0.10               # min distance from background (0..1 of 255) that seeds the object
    strong_noise: float = 6.0          # ... and this many background-noise sigmas (textured backgrounds)
    strong_relative: float = 0.30      # the box ignores pixels under this share of the object's contrast (shadows)
    weak_noise: float = 2.0            # weak threshold = this many border-noise sigmas ...
    weak_floor: float = 2.5            # ... and at least this many gray levels (resampling ripples)
    grow: float = 0.05                 # faint pixels this close (share of the side) stay in the image:
                                       # 0.02 -> 0.05 with weak_noise 4 -> 2 gained 1.4 points on renders
    box_grow: float = 0.02             # ... but may widen the box only this far (shadows) ...
    box_weak_noise: float = 4.0        # ... through pixels this many noise sigmas off (grainy backdrops)
    min_part: float = 0.05             # parts smaller than this share of the largest part are clutter
    min_area: float = 0.001            # parts smaller than this share of the image are specks
    margin: float = 0.0                # extra margin around the box (the official conversion has none)
    stretch_percentile: float = 99.5   # of the object's pixels at 28 px, mapped to 255 (about its 2nd brightest)
    sharpen_percent: int = SHARPEN_PERCENT      # UnsharpMask strength after a real downscale
    sharpen_min_scale: float = SHARPEN_MIN_SCALE  # only sharpen when the crop shrank at least this much
    clean_noise: float = 10.5          # border noise above this: a texture, the finder's job (renders 4.4)
    clean_light: float = 175.0         # border brighter than this (or darker than 255 - this) and ...
    clean_tint: float = 20.0           # ... channels this close: a studio backdrop (dev photos 3 %, renders all)
    small_garment: int = 20            # px: a garment smaller than this in the photo is enlarged to 28, its
                                       # details guessed: a warning (no Fashion-MNIST test image is under 20 px)
    view_side: int = 260               # px: the ImageNet view's square (model/imagenet.py INPUT_SIZE)
    view_margin: float = 0.15          # the square is the garment box's longest side plus this share
                                       # (context: the ImageNet photos show objects with some around them)
    view_min: int = 56                 # px: a garment box smaller than this in the working image gets no
                                       # ImageNet view (a 28x28 test image enlarged 8x reads as junk to it)


# ---------------------------------------------------------------------------------------------
# 2-6. the pipeline on decoded pixels

def prepare_image(data: bytes, *, limits: Limits = Limits(), settings: Settings = Settings(),
                  box: tuple[int, int, int, int] | None = None) -> Prepared:
    """Uploaded bytes -> the 28x28 model input and every intermediate step. `box` (x0, y0, x1, y1 in
    the upright photo's pixels, e.g. drawn by the user) limits the search for the garment."""
    return prepare_pil(decode(data, limits), settings, box=box)


def prepare_array(array: np.ndarray, *, settings: Settings = Settings(),
                  box: tuple[int, int, int, int] | None = None) -> Prepared:
    """An already decoded uint8 image, (H, W) gray or (H, W, 3|4) RGB(A), -> Prepared."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"expected uint8 (H, W), (H, W, 3) or (H, W, 4), received {array.dtype} {array.shape}",
                         "invalid_array")
    return prepare_pil(to_rgb(Image.fromarray(array)), settings, box=box)


def prepare_pil(image: Image.Image, settings: Settings = Settings(), *,
                box: tuple[int, int, int, int] | None = None) -> Prepared:
    """An RGB PIL image -> Prepared (steps 2-6): the clean product-photo path when the background is
    a plain surface the garment stands out from, else the real-photo finder (workbench.segment)."""
    full_size = tuple(image.info.get(FULL_SIZE, image.size))
    region, origin, factor = crop_to_box(image, box, full_size)
    work = shrink(region, settings.work_side)
    factor *= region.width / work.width                   # original pixels per working pixel
    prepared = prepare_clean(work, settings) or prepare_found(work, boxed=box is not None)
    prepared.steps.insert(0, ("original", np.asarray(shrink(image, DISPLAY_SIZE))))
    prepared.view = garment_view(work, prepared.box, settings)
    prepared.image_size = full_size
    across = round(max(prepared.box[2] - prepared.box[0], prepared.box[3] - prepared.box[1]) * factor)
    if across < settings.small_garment:
        prepared.warnings.append(f"the garment is only {across} px across in the picture, less than the {SIZE} px "
                                 "the model reads: it was enlarged and its details guessed; a bigger photo helps")
    prepared.outline = [(round(origin[0] + x * factor), round(origin[1] + y * factor))
                        for x, y in prepared.outline]
    return prepared


def garment_view(work: Image.Image, box: tuple[int, int, int, int], settings: Settings) -> np.ndarray | None:
    """The photo in colour, a square around the garment's box (white beyond the photo's edge) at
    view_side px: what the ImageNet view reads. None when the garment is too small for it."""
    x0, y0, x1, y1 = box
    longest = max(x1 - x0, y1 - y0)
    if longest < settings.view_min:
        return None
    side = round(longest * (1 + settings.view_margin))
    left, top = round((x0 + x1 - side) / 2), round((y0 + y1 - side) / 2)
    inside = (max(0, left), max(0, top), min(work.width, left + side), min(work.height, top + side))
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(work.convert("RGB").crop(inside), (inside[0] - left, inside[1] - top))
    return np.asarray(square.resize((settings.view_side, settings.view_side), Image.Resampling.BILINEAR))


def prepare_clean(work: Image.Image, settings: Settings) -> Prepared | None:
    """The product-photo path (a smooth background fitted to the border, distance from it), or None
    when the photo is not that clean: a textured or coloured backdrop, or nothing stands out."""
    rgb = np.asarray(work, dtype=np.float32)
    gray = np.asarray(work.convert("L"), dtype=np.float32)
    surface, noise = estimate_background(rgb, settings.border)
    strip = border_strip(rgb, settings.border)
    if noise > settings.clean_noise or not plain_backdrop(strip, settings.clean_light, settings.clean_tint):
        return None
    bg_gray = surface @ np.array([0.299, 0.587, 0.114], np.float32)  # the luminance Pillow's "L" uses
    inverted = bool(np.median(border_strip(bg_gray, settings.border)) >= 128.0)
    distance = np.abs(rgb - surface).max(axis=2)  # per channel: a red shirt differs from white in G and B
    mask, box_mask = object_masks(distance, noise, settings)
    if not box_mask.any():
        return None
    box = bounding_box(box_mask, settings.margin)
    crop = object_intensity(gray, mask, bg_gray, inverted, box)
    resized, scale = resize_longest(crop, SIZE)
    resized = stretch(resized, settings.stretch_percentile)
    padded = pad_center(sharpen(resized, scale, settings.sharpen_percent, settings.sharpen_min_scale), SIZE)
    steps = [("grayscale", gray.astype(np.uint8)), ("mask", (mask * 127 + box_mask * 128).astype(np.uint8)),
             ("cropped", stretch(crop, 100.0)), ("resized", resized), ("padded", padded), ("final", padded)]
    return Prepared(image=padded, steps=steps, inverted=inverted, box=box,
                    background=float(np.median(border_strip(bg_gray, settings.border))),
                    outline=mask_outline(mask), found_fraction=float(mask.mean()))


def shrink(image: Image.Image, side: int) -> Image.Image:
    """A copy whose longest side is at most `side` (antialiased); smaller images stay as they are."""
    if max(image.size) <= side:
        return image.copy()
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def border_strip(array: np.ndarray, border: float) -> np.ndarray:
    """The values of a strip `border` x the short side wide (at least 1 px) around the image."""
    width = max(1, round(border * min(array.shape[:2])))
    strip = np.ones(array.shape[:2], bool)
    strip[width:-width, width:-width] = False
    return array[strip]


def estimate_background(rgb: np.ndarray, border: float) -> tuple[np.ndarray, float]:
    """The background as a smooth colour surface (H, W, 3) fitted to the border strip, and the
    strip's noise (robust sigma). A quadratic in x and y absorbs vignetting and light gradients;
    two refits without the worst-fitting pixels keep a garment touching the border from bending it."""
    height, width = rgb.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / max(height - 1, 1) - 0.5, x / max(width - 1, 1) - 0.5
    terms = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=-1)  # (H, W, 6)
    design, values = border_strip(terms, border), border_strip(rgb, border)
    deviation = np.abs(values - np.median(values, axis=0)).max(axis=1)
    keep = deviation <= max(3 * 1.4826 * float(np.median(deviation)), 2.0)  # start from the median colour
    for _ in range(3):
        fit = design[keep]  # least squares by the 6x6 normal equations: far cheaper than lstsq here
        coef = np.linalg.solve(fit.T @ fit + 1e-6 * np.eye(6, dtype=np.float32), fit.T @ values[keep])
        residual = np.abs(values - design @ coef).max(axis=1)
        sigma = 1.4826 * float(np.median(residual[keep])) + 0.5
        keep = residual <= max(3 * sigma, 2.0)
    return (terms @ coef).astype(np.float32), sigma


def object_masks(distance: np.ndarray, noise: float, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Two masks from the distance to the background: the object's pixels (strong seeds grown into
    weak pixels nearby, specks and clutter dropped, holes filled), and the part that decides the box
    (seeds also above a share of the object's own contrast, so soft shadows stay outside)."""
    side = max(distance.shape)
    weaks = (distance > max(settings.weak_floor, settings.weak_noise * noise),
             distance > max(settings.weak_floor, settings.box_weak_noise * noise))
    reaches = (max(2, round(settings.grow * side)), max(2, round(settings.box_grow * side)))
    contrast = float(np.percentile(distance, 99.5))
    strong = max(settings.strong * 255, settings.strong_noise * noise)
    seeds = clean_seeds(distance > strong, settings)
    box_seeds = clean_seeds(distance > max(strong, settings.strong_relative * contrast), settings)
    masks = []
    for seed, reach, weak in zip((seeds, box_seeds), reaches, weaks):
        near = ndimage.binary_dilation(seed, iterations=reach) if seed.any() else seed
        masks.append(ndimage.binary_fill_holes(ndimage.binary_propagation(seed, mask=weak & near) | seed))
    return masks[0], masks[1] & masks[0]


def clean_seeds(strong: np.ndarray, settings: Settings) -> np.ndarray:
    """Strong pixels without specks (a small opening, scaled to the image) and without clutter."""
    radius = round(max(strong.shape) / 200)
    if radius:
        strong = ndimage.binary_opening(strong, structure=np.ones((2 * radius + 1,) * 2))
    return keep_large_parts(strong, settings)


def keep_large_parts(mask: np.ndarray, settings: Settings) -> np.ndarray:
    """Connected parts that are neither specks (tiny vs. the image) nor clutter (small vs. the largest)."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    areas = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    keep = (areas >= settings.min_part * areas.max()) & (areas >= settings.min_area * mask.size)
    if not keep.any():
        keep = areas == areas.max()
    return np.isin(labels, np.flatnonzero(keep) + 1)


def bounding_box(mask: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), exclusive ends, of the mask's true pixels, widened by margin x the longest side."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    pad = round(margin * max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))
    height, width = mask.shape
    return (max(0, cols[0] - pad), max(0, rows[0] - pad), min(width, cols[-1] + 1 + pad),
            min(height, rows[-1] + 1 + pad))


def object_intensity(gray: np.ndarray, mask: np.ndarray, bg_gray: np.ndarray, inverted: bool,
                     box: tuple[int, int, int, int]) -> np.ndarray:
    """The box's pixels as float distance from the background gray (negated for light backgrounds),
    zero outside the object."""
    x0, y0, x1, y1 = box
    values = (bg_gray - gray) if inverted else (gray - bg_gray)
    values = np.where(mask, np.clip(values, 0, None), 0.0)[y0:y1, x0:x1].astype(np.float32)
    if values.max() <= 0:  # an object exactly as bright as the background: keep its silhouette
        return mask[y0:y1, x0:x1].astype(np.float32)
    return values
