"""Photo-like copies of Fashion-MNIST images: what the real-photo path (workbench.segment and
workbench.framing) hands the model, imitated from the 28x28 images themselves.

    images, labels = expand(train_images, train_labels, copies=2, seed=0)   # originals + 2 copies each
    copy = photo_like(image, rng)                                           # one uint8 (28, 28)

The finder cuts the garment out of a photo along an imperfect outline, negates its gray shading,
stretches it between two percentiles onto [floor, 1] and frames it with the longest edge at 28.
So each copy takes the image's silhouette and
  - changes its shape a little: eroded or dilated (a loose or tight outline), stretched in one
    direction (perspective, how it lies), rotated a few degrees, sometimes cut off on one side
    (the frame cut it) or with a bite out of its edge (a shadow or fold counted as background);
  - replaces its intensities: its own shading with a random gamma, sometimes inverted (a white
    garment's folds are dark, a black one's bright), overlaid with a print (stripes, checks,
    blotches) or flattened to near a silhouette, then stretched as framing does;
  - for footwear, sometimes makes it a pair seen from above: two copies standing up side by side,
    which is what the finder keeps when the two shoes touch.
Training data stays Fashion-MNIST: nothing here looks at any photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

SIZE = 28
FOOTWEAR = (5, 7, 9)   # Sandal, Sneaker, Ankle boot: the classes photographed as pairs


@dataclass(frozen=True)
class PhotoAugment:
    """How far the copies stray from the originals; every value is a probability or a range."""
    work: int = 112                       # px the silhouette is reshaped at (4x: smooth outlines)
    outline_px: tuple[int, int] = (-5, 5)  # erosion (-) / dilation (+) at work size: outline error
    stretch: float = 0.25                 # max log-aspect change: perspective and how it lies
    rotate: float = 10.0                  # max degrees of rotation (photos are roughly upright)
    cut_probability: float = 0.15         # one side cut off by the frame ...
    cut_share: tuple[float, float] = (0.05, 0.25)  # ... by this share of its length
    bite_probability: float = 0.2         # an elliptical bite out of the outline (shadow, fold)
    invert_probability: float = 0.3       # shading inverted (the garment's own gray, negated or not)
    print_probability: float = 0.3        # a print (stripes, checks, blotches) over the shading
    flat_probability: float = 0.15        # nearly a silhouette: little shading survives
    floor: tuple[float, float] = (0.25, 0.5)  # framing lifts the faintest garment pixel to this share
    pair_probability: float = 0.35        # footwear only: a pair seen from above


def expand(images: np.ndarray, labels: np.ndarray, copies: int, seed: int,
           settings: PhotoAugment = PhotoAugment()) -> tuple[np.ndarray, np.ndarray]:
    """The originals followed by `copies` photo-like versions of each (seeded, repeatable)."""
    rng = np.random.default_rng(seed)
    made = [photo_like(image, rng, settings, int(label)) for _ in range(copies)
            for image, label in zip(images, labels)]
    if not made:
        return images, labels
    return np.concatenate([images, np.stack(made)]), np.concatenate([labels] + [labels] * copies)


def photo_like(image: np.ndarray, rng: np.random.Generator, settings: PhotoAugment = PhotoAugment(),
               label: int = -1) -> np.ndarray:
    """One uint8 (28, 28) Fashion-MNIST image -> a copy as the real-photo path would frame it."""
    big = cv2.resize(image.astype(np.float32) / 255.0, (settings.work, settings.work),
                     interpolation=cv2.INTER_CUBIC).clip(0, 1)
    mask = ndimage.binary_fill_holes(big > 0.08)
    if mask.sum() < 20:
        return image.copy()
    shading = intensities(big, mask, rng, settings)
    if label in FOOTWEAR and rng.random() < settings.pair_probability:
        shading, mask = as_pair(shading, mask, rng)
    shading, mask = reshape(shading, mask, rng, settings)
    if mask.sum() < 20:
        return image.copy()
    return frame(shading, mask)


def intensities(big: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                settings: PhotoAugment) -> np.ndarray:
    """New shading inside the mask, stretched between its 2nd and 98th percentiles onto [floor, 1]."""
    values = np.clip(big / max(float(np.percentile(big[mask], 98)), 1e-3), 0, 1) ** rng.uniform(0.5, 2.0)
    if rng.random() < settings.invert_probability:
        values = 1.0 - values
    if rng.random() < settings.print_probability:
        values = 0.5 * values + 0.5 * fabric_print(big.shape, rng)
    if rng.random() < settings.flat_probability:
        values = 0.85 + 0.15 * values
    low, high = np.percentile(values[mask], [2, 98])
    floor = rng.uniform(*settings.floor)
    values = floor + (1 - floor) * np.clip((values - low) / max(high - low, 1e-3), 0, 1)
    return np.where(mask, values, 0.0).astype(np.float32)


def fabric_print(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """0..1 pattern: stripes at a random angle and period, checks, or soft blotches."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
    stripes = (np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period) > 0).astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:
        return stripes
    if kind == 1:
        across = (np.sin((-x * np.sin(angle) + y * np.cos(angle)) * 2 * np.pi / period) > 0)
        return np.logical_xor(stripes > 0, across).astype(np.float32)
    blotches = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), rng.uniform(3, 8))
    return ((blotches - blotches.min()) / max(float(np.ptp(blotches)), 1e-6)).astype(np.float32)


def as_pair(shading: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """Two copies of the shoe turned toe-up (as pairs are photographed from above), side by side."""
    turn = 1 if rng.random() < 0.5 else 3
    one, one_mask = np.rot90(shading, turn), np.rot90(mask, turn)
    other = one * rng.uniform(0.8, 1.0)
    gap = int(rng.integers(0, 6))
    pair = np.concatenate([one, np.zeros((one.shape[0], gap), np.float32), other[:, ::-1]], axis=1)
    pair_mask = np.concatenate([one_mask, np.zeros((one.shape[0], gap), bool), one_mask[:, ::-1]], axis=1)
    return np.ascontiguousarray(pair), np.ascontiguousarray(pair_mask)


def reshape(shading: np.ndarray, mask: np.ndarray, rng: np.random.Generator, settings: PhotoAugment):
    """Outline error, aspect stretch, rotation, a cut side and a bite: the finder's imperfections."""
    radius = int(rng.integers(settings.outline_px[0], settings.outline_px[1] + 1))
    if radius:
        grown = ndimage.binary_dilation(mask, iterations=abs(radius)) if radius > 0 else \
            ndimage.binary_erosion(mask, iterations=-radius)
        if radius > 0:  # pixels gained from the background take the edge's shading
            shading = np.where(grown & ~mask, cv2.blur(shading, (2 * radius + 1,) * 2) + 0.2, shading)
        shading, mask = np.where(grown, shading, 0.0).astype(np.float32), grown
    shading, mask = warp(shading, mask, rng, settings)
    if rng.random() < settings.cut_probability:
        mask = cut_side(mask, rng, settings)
    if rng.random() < settings.bite_probability:
        mask = bite(mask, rng)
    return np.where(mask, shading, 0.0).astype(np.float32), mask


def warp(shading: np.ndarray, mask: np.ndarray, rng: np.random.Generator, settings: PhotoAugment):
    """A random aspect change and a small rotation about the centre, on a canvas that fits them."""
    height, width = shading.shape
    aspect = np.exp(rng.uniform(-settings.stretch, settings.stretch))
    size = (max(4, round(width * aspect)), max(4, round(height / aspect)))
    shading = cv2.resize(shading, size, interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    side = int(np.hypot(*size)) + 2
    pad = ((side - size[1]) // 2, (side - size[1] + 1) // 2), ((side - size[0]) // 2, (side - size[0] + 1) // 2)
    shading, mask = np.pad(shading, pad), np.pad(mask, pad)
    turn = cv2.getRotationMatrix2D((side / 2, side / 2), rng.uniform(-settings.rotate, settings.rotate), 1.0)
    shading = cv2.warpAffine(shading, turn, (side, side), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(mask, turn, (side, side), flags=cv2.INTER_NEAREST).astype(bool)
    return shading, mask


def cut_side(mask: np.ndarray, rng: np.random.Generator, settings: PhotoAugment) -> np.ndarray:
    """The mask with a share of its extent removed from one side (top, bottom, left or right)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    share = rng.uniform(*settings.cut_share)
    cut = mask.copy()
    side = int(rng.integers(4))
    if side == 0:
        cut[:rows[0] + int(share * len(rows))] = False
    elif side == 1:
        cut[rows[-1] + 1 - int(share * len(rows)):] = False
    elif side == 2:
        cut[:, :cols[0] + int(share * len(cols))] = False
    else:
        cut[:, cols[-1] + 1 - int(share * len(cols)):] = False
    return cut if cut.sum() > 0.5 * mask.sum() else mask


def bite(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The mask without an ellipse centred on a random edge pixel."""
    edge = np.argwhere(mask & ~ndimage.binary_erosion(mask))
    y, x = edge[rng.integers(len(edge))]
    extent = max(mask.shape)
    hole = np.zeros(mask.shape, np.uint8)
    axes = (int(rng.uniform(0.05, 0.15) * extent), int(rng.uniform(0.05, 0.15) * extent))
    cv2.ellipse(hole, (int(x), int(y)), axes, rng.uniform(0, 180), 0, 360, 1, -1)
    bitten = mask & ~hole.astype(bool)
    return bitten if bitten.sum() > 0.7 * mask.sum() else mask


def frame(shading: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Crop to the mask, longest edge -> 28 (area), brightest -> 255, unsharp mask, pad centred."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = shading[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = SIZE / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    small = small / max(float(small.max()), 1e-6)
    blurred = cv2.GaussianBlur(small, (0, 0), 1.0)
    small = np.clip(small + 0.6 * (small - blurred), 0, 1)   # PIL UnsharpMask(radius 1, 60 %)
    canvas = np.zeros((SIZE, SIZE), np.float32)
    top, left = (SIZE - size[1] + 1) // 2, (SIZE - size[0] + 1) // 2
    canvas[top:top + size[1], left:left + size[0]] = small
    return (canvas * 255).round().astype(np.uint8)
