"""The last steps both photo paths share: an object crop -> the 28x28 Fashion-MNIST-like input.

    resized, scale = resize_longest(crop, SIZE)       # longest edge -> 28, antialiased
    resized = stretch(resized, 99.5)                   # the brightest object pixels -> 255
    image = pad_center(sharpen(resized, scale), SIZE)  # unsharp mask, centred on black

and `Prepared`, what workbench.preprocess returns: the model input and how it was made. The clean
product-photo path (workbench.preprocess) and the real-photo path (workbench.framing) both end here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from model.data import IMAGE_SIZE

SIZE = IMAGE_SIZE         # Fashion-MNIST side
SHARPEN_PERCENT = 60      # UnsharpMask strength after a real downscale (official: sigma 1.0)
SHARPEN_MIN_SCALE = 2.0   # only sharpen when the crop shrank at least this much


@dataclass
class Prepared:
    """A model input and how it was made."""
    image: np.ndarray                                     # uint8 (28, 28), garment bright on black
    # (name, uint8 array) for display: "original" (RGB, longest side 256), "grayscale" and "mask"
    # (working size; mask white = object pixels that set the box, gray = faint object pixels kept),
    # "cropped", "resized" (28 on the long side), "padded" (sharpened, 28x28), "final" (= image)
    steps: list[tuple[str, np.ndarray]] = field(default_factory=list)
    inverted: bool = False                                # intensities negated (light background)
    box: tuple[int, int, int, int] = (0, 0, 0, 0)         # object box in the working image (x0, y0, x1, y1)
    background: float = 0.0                               # background gray level 0..255
    image_size: tuple[int, int] = (0, 0)                  # (width, height) of the upright original
    outline: list[tuple[int, int]] = field(default_factory=list)  # found region, original (x, y) pixels
    found_fraction: float = 0.0                           # share of the searched area (photo or box) found
    warnings: list[str] = field(default_factory=list)     # why the answer deserves less trust, for people
    method: str = "clean"                                 # "clean" product-photo path or "finder" (segment)
    view: np.ndarray | None = None                        # uint8 RGB square around the garment for the
                                                          # ImageNet view (model/imagenet.py), None when too small


def resize_longest(crop: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Longest edge -> size (antialiased, in float), aspect kept; also the shrink factor (>1 = shrunk)."""
    height, width = crop.shape
    scale = max(height, width) / size
    new = (max(1, round(width / scale)), max(1, round(height / scale)))
    if new == (width, height):
        return crop.astype(np.float32), 1.0
    resized = Image.fromarray(crop.astype(np.float32), mode="F").resize(new, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized), 0, None), scale


def stretch(image: np.ndarray, percentile: float) -> np.ndarray:
    """Float intensities -> uint8 with the brightest object pixels at 255, as in every Fashion-MNIST
    image (maximum 254-255); a percentile, not the maximum, so one extreme pixel cannot set the scale."""
    inside = image[image > 0]
    top = float(np.percentile(inside, percentile)) if inside.size else 0.0
    if top <= 0:
        return np.zeros(image.shape, np.uint8)
    return np.clip(image * (255.0 / top), 0, 255).round().astype(np.uint8)


def sharpen(image: np.ndarray, scale: float, percent: int = SHARPEN_PERCENT,
            min_scale: float = SHARPEN_MIN_SCALE) -> np.ndarray:
    """Unsharp mask (radius 1, as the official conversion) to restore edges lost in a real downscale."""
    if scale < min_scale or percent <= 0:
        return image
    mask = ImageFilter.UnsharpMask(radius=1.0, percent=percent, threshold=0)
    return np.asarray(Image.fromarray(image).filter(mask))


def pad_center(image: np.ndarray, size: int) -> np.ndarray:
    """Pad with black to size x size, the image centred (an odd spare pixel goes first, as in Fashion-MNIST)."""
    height, width = image.shape
    top, left = (size - height + 1) // 2, (size - width + 1) // 2
    canvas = np.zeros((size, size), np.uint8)
    canvas[top:top + height, left:left + width] = image
    return canvas
