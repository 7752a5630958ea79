"""Photo-like copies of Fashion-MNIST images: what the real-photo path (workbench.segment and
workbench.framing) hands the model, imitated from the 28x28 images themselves.

    images, labels = expand(train_images, train_labels, copies=2, seed=0)   # originals + 2 copies each
    copy = photo_like(image, rng)                                           # one uint8 (28, 28)

The finder cuts the garment out of a photo along an imperfect outline, negates its gray shading,
stretches it between two percentiles onto [floor, 1] and frames it with the longest edge at 28.
So each copy takes the image's silhouette and
  - changes its shape a little: eroded or dilated (a loose or tight outline), gaps closed, made
    wider (flat lays) or taller, tilted in perspective, rotated a few degrees, sometimes cut off on one side
    (the frame cut it) or with a bite out of its edge (a shadow or fold counted as background);
  - replaces its intensities: its own shading with a random gamma, sometimes inverted (a white
    garment's folds are dark, a black one's bright), overlaid with a print (stripes, checks,
    blotches) or flattened to near a silhouette, then stretched as framing does;
  - for footwear, shows it as shoes are photographed: a pair from above (toe up, side by side: what
    the finder keeps when two shoes touch), a pair from the side (one behind the other), or one
    shoe from above turned flat (what it keeps of a split pair); a view from above is made from the
    side view (the width along the shoe follows the side view's height).
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
    stretch: tuple[float, float] = (-0.1, 0.3)  # log-aspect change, + = wider: flat-lay dev photos are
                                          # ~0.75x as tall (h/w) as Fashion-MNIST's product shots
    perspective: float = 0.08             # corner jitter (share of the side): the camera's tilt
    close_probability: float = 0.3        # gaps (between sleeve and body, legs) bridged as GrabCut does
    rotate: float = 10.0                  # max degrees of rotation (photos are roughly upright)
    cut_probability: float = 0.15         # one side cut off by the frame ...
    cut_share: tuple[float, float] = (0.05, 0.25)  # ... by this share of its length
    bite_probability: float = 0.2         # an elliptical bite out of the outline (shadow, fold)
    invert_probability: float = 0.3       # shading inverted (the garment's own gray, negated or not)
    print_probability: float = 0.3        # a print (stripes, checks, blotches) over the shading
    flat_probability: float = 0.15        # nearly a silhouette: little shading survives
    floor: tuple[float, float] = (0.25, 0.5)  # framing lifts the faintest garment pixel to this share
    pair_probability: float = 0.3         # footwear only: a pair seen from above, toe up
    side_pair_probability: float = 0.25   # footwear only: a pair from the side, one behind the other
    above_probability: float = 0.15       # footwear only: one shoe from above, turned flat (a split pair)


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
    if label in FOOTWEAR:
        shading, mask = footwear_view(shading, mask, rng, settings)
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


def footwear_view(shading: np.ndarray, mask: np.ndarray, rng: np.random.Generator, settings: PhotoAugment):
    """A side-view shoe as people photograph shoes: a pair from above (toe up), a pair from the side,
    one shoe from above turned flat (what the finder keeps of a split pair), or as it is."""
    draw = rng.random()
    if draw < settings.pair_probability:
        one, one_mask = top_view(shading, mask, rng)
        return side_by_side(np.rot90(one, 3), np.rot90(one_mask, 3), rng)
    draw -= settings.pair_probability
    if draw < settings.side_pair_probability:
        return one_behind_other(shading, mask, rng)
    draw -= settings.side_pair_probability
    if draw < settings.above_probability:
        return top_view(shading, mask, rng)
    return shading, mask


def top_view(shading: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """A shoe seen from above, made from its side view (toe left). Along the length the width
    follows the side view's height; across it, the middle shows the top of the shoe and the edges
    its sole, so each side-view column is laid out from its top (middle) down to the sole (edges):
    a sandal's open straps stay open, a sneaker stays solid."""
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    side_mask = mask[rows[0]:rows[-1] + 1, columns]
    side_shading = shading[rows[0]:rows[-1] + 1, columns]
    heights = side_mask.sum(axis=0).astype(np.float32)
    widest = rng.uniform(0.33, 0.48) * len(columns)      # a shoe is ~0.38 as wide as long; perspective widens
    half = np.maximum(0.5 * widest * np.sqrt(heights / max(heights.max(), 1)), 0.5)
    across = np.abs(np.arange(int(np.ceil(widest)) + 2, dtype=np.float32) - (np.ceil(widest) + 1) / 2)[:, None]
    first = side_mask.argmax(axis=0).astype(np.float32)   # the column's top in the side view
    depth = np.clip(across / half[None, :], 0, 1) * (len(side_mask) - 1 - first)[None, :] + first[None, :]
    depth = depth.round().astype(int)
    index = np.arange(len(columns))[None, :]
    view_mask = (across <= half[None, :]) & side_mask[depth, index]
    view = np.where(view_mask, side_shading[depth, index] * (1.0 - 0.3 * (across / half[None, :]) ** 2), 0.0)
    return np.ascontiguousarray(view.astype(np.float32)), np.ascontiguousarray(view_mask)


def side_by_side(one: np.ndarray, one_mask: np.ndarray, rng: np.random.Generator):
    """Two copies next to each other (the second mirrored, a little dimmer), a small gap between."""
    gap = int(rng.integers(0, 6))
    spacer = np.zeros((one.shape[0], gap), np.float32)
    pair = np.concatenate([one, spacer, one[:, ::-1] * rng.uniform(0.8, 1.0)], axis=1)
    pair_mask = np.concatenate([one_mask, spacer.astype(bool), one_mask[:, ::-1]], axis=1)
    return np.ascontiguousarray(pair), np.ascontiguousarray(pair_mask)


def one_behind_other(shading: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """Two side views, the second shifted up and along and hidden behind the first where they meet."""
    height, width = shading.shape
    dy, dx = int(rng.uniform(0.1, 0.35) * height), int(rng.uniform(0.1, 0.4) * width)
    canvas = np.zeros((height + dy, width + dx), np.float32)
    canvas_mask = np.zeros(canvas.shape, bool)
    canvas[:height, dx:] = shading * rng.uniform(0.75, 0.95)
    canvas_mask[:height, dx:] = mask
    front = np.zeros(canvas.shape, bool)
    front[dy:, :width] = mask
    canvas[dy:, :width] = np.where(mask, shading, canvas[dy:, :width])
    return canvas, canvas_mask | front


def reshape(shading: np.ndarray, mask: np.ndarray, rng: np.random.Generator, settings: PhotoAugment):
    """Outline error, aspect stretch, rotation, a cut side and a bite: the finder's imperfections."""
    radius = int(rng.integers(settings.outline_px[0], settings.outline_px[1] + 1))
    if radius:
        grown = ndimage.binary_dilation(mask, iterations=abs(radius)) if radius > 0 else \
            ndimage.binary_erosion(mask, iterations=-radius)
        if radius > 0:  # pixels gained from the background take the edge's shading
            shading = np.where(grown & ~mask, cv2.blur(shading, (2 * radius + 1,) * 2) + 0.2, shading)
        shading, mask = np.where(grown, shading, 0.0).astype(np.float32), grown
    if rng.random() < settings.close_probability:
        shading, mask = close_gaps(shading, mask, rng)
    shading, mask = warp(shading, mask, rng, settings)
    if rng.random() < settings.cut_probability:
        mask = cut_side(mask, rng, settings)
    if rng.random() < settings.bite_probability:
        mask = bite(mask, rng)
    return np.where(mask, shading, 0.0).astype(np.float32), mask


def close_gaps(shading: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """A morphological closing of the outline; new pixels take the blurred shading around them."""
    size = int(rng.uniform(0.06, 0.16) * max(mask.shape)) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
    weight = cv2.blur(mask.astype(np.float32), (size, size))
    filled = cv2.blur(shading, (size, size)) / np.maximum(weight, 1e-3)
    return np.where(closed & ~mask, filled, shading).astype(np.float32), closed


def warp(shading: np.ndarray, mask: np.ndarray, rng: np.random.Generator, settings: PhotoAugment):
    """A random aspect change, a small rotation and a perspective tilt, on a canvas that fits them."""
    height, width = shading.shape
    aspect = np.exp(rng.uniform(*settings.stretch))
    size = (max(4, round(width * aspect)), max(4, round(height / aspect)))
    shading = cv2.resize(shading, size, interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    side = int(np.hypot(*size)) + 2
    pad = ((side - size[1]) // 2, (side - size[1] + 1) // 2), ((side - size[0]) // 2, (side - size[0] + 1) // 2)
    shading, mask = np.pad(shading, pad), np.pad(mask, pad)
    turn = np.vstack([cv2.getRotationMatrix2D((side / 2, side / 2),
                                              rng.uniform(-settings.rotate, settings.rotate), 1.0), [0, 0, 1]])
    corners = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    tilted = corners + rng.uniform(-settings.perspective, settings.perspective, (4, 2)).astype(np.float32) * side
    matrix = cv2.getPerspectiveTransform(corners, tilted) @ turn
    shading = cv2.warpPerspective(shading, matrix, (side, side), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(mask, matrix, (side, side), flags=cv2.INTER_NEAREST).astype(bool)
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
