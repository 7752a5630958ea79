"""Find the garment in an ordinary photo: beds, carpets, wood floors, coloured sheets, hands.

    found = find_garment(rgb)            # rgb: uint8 (H, W, 3), any size
    found.mask                           # bool (h, w) at found.scale x the input size
    found.fraction, found.warnings       # share of the picture found; human text for poor finds

The clean product-photo path in workbench.preprocess measures distance from a smooth background;
real backgrounds are textured and coloured, so this module uses colour models instead: OpenCV's
GrabCut (a Gaussian-mixture colour model for garment and background, cut along image edges) seeded
with a border strip as sure background (people frame the garment; what touches the edge is
backdrop) and everything inside it as probable garment. (Seeding only colours unlike the border's
plus a central ellipse as garment, `seed="colour"`, lost garments whose colours the backdrop shares:
47.8 % against 53.9 % on the odd dev half.) A small opening cuts thin bridges (a hand, a hanger),
and the largest part is kept with its holes filled. A pair of shoes seen from above splits into two
similar parts side by side: one is kept, and (`turn_pairs`) turned so its long axis lies flat with
the toe, usually at the top in such photos, to the left as in Fashion-MNIST.

It runs at `FinderSettings.side` pixels (GrabCut's cost grows with area), so any photo takes about
the same time. Skin-coloured regions are measured, so a worn garment can be flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class FinderSettings:
    """How the garment is separated; chosen on the odd half of the real-photo dev set."""
    side: int = 160                 # px, longest side GrabCut works at: ~100 ms on one core (220: 150 ms,
                                    # no better on the odd half)
    iterations: int = 4             # GrabCut rounds: more changed < 1 % of masks on the dev set
    border: float = 0.04            # share of each side taken as sure background (the frame); 0.02 and
                                    # 0.07 were within 2 photos of it on the odd half
    centre: float = 0.22            # half-axes of the central ellipse seeded as probable garment
    seed: str = "rect"              # "rect": all inside the frame probable garment; "colour": see seed_mask
    colour_far: float = 2.5         # Lab distance, in border-spread units, that seeds "garment"
    open_radius: float = 0.012      # share of the side: opening that cuts thin bridges (a hand)
    min_fraction: float = 0.01      # found less than this share: other seeds; at last the frame's inside
    poor_fraction: float = 0.06     # found less than this share: flag the answer
    full_fraction: float = 0.8      # found more than this share: the background was not separable
    pair_ratio: float = 0.45        # second part at least this share of the first: a pair
    pair_overlap: float = 0.35      # ... whose column ranges overlap at most this much: side by side
    valley_depth: float = 0.15      # touching pair: the middle column under this share of the peaks
                                    # (0.35 also split trousers at the crotch: 12 -> 8 of 15 right)
    turn_pairs: bool = True         # turn a shoe kept from a pair so its long axis is horizontal
    skin_fraction: float = 0.06     # skin-coloured share in and around the find that flags "worn"


@dataclass
class Found:
    """The garment's mask at the finder's size and what is known about its quality."""
    mask: np.ndarray                          # bool (h, w): the garment, holes filled
    scale: float                              # mask pixels per input pixel
    fraction: float                           # mask area / picture area
    pair: bool = False                        # one of two similar parts was kept
    turn: int = 0                             # quarter turns (np.rot90 k) applied to the crop
    warnings: list[str] = field(default_factory=list)


class NothingFound(ValueError):
    """No region stands out from the background; the message says why in the user's words."""


def find_garment(rgb: np.ndarray, settings: FinderSettings = FinderSettings(), boxed: bool = False) -> Found:
    """uint8 (H, W, 3) RGB -> Found, or NothingFound for an image with nothing to separate. `boxed`: the
    picture is the inside of a box the user drew (the warnings then speak of the box)."""
    small, scale = reduce(rgb, settings.side)
    if float(small.std(axis=(0, 1)).max()) < 2.0:
        raise NothingFound("nothing stands out from the background: the picture is one flat colour")
    mask = separate(small, settings)
    mask, pair = keep_one_of_pair(mask, settings)
    found = Found(mask=mask, scale=scale, fraction=float(mask.mean()), pair=pair)
    found.turn = 1 if pair and settings.turn_pairs and is_upright(mask) else 0
    found.warnings = quality_warnings(small, found, settings, boxed)
    return found


def separate(small: np.ndarray, settings: FinderSettings) -> np.ndarray:
    """GrabCut's cleaned mask. When the colour models settle on "all background" (a plaid shirt on
    a patterned carpet), other seeds and another k-means start are tried; when all fail, the
    inside of the frame is kept, which the quality check flags as not separated."""
    other = replace(settings, seed="colour" if settings.seed == "rect" else "rect")
    for attempt, rng_seed in ((settings, 0), (other, 0), (settings, 1)):
        mask = clean(run_grabcut(small, seed_mask(small, attempt), settings.iterations, rng_seed), settings)
        if mask.mean() >= settings.min_fraction:
            return mask
    return ~frame_mask(small.shape[:2], settings.border)


def reduce(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """A copy whose longest side is `side` (area averaging), and the factor applied."""
    scale = min(1.0, side / max(rgb.shape[:2]))
    if scale == 1.0:
        return np.ascontiguousarray(rgb), 1.0
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def seed_mask(small: np.ndarray, settings: FinderSettings) -> np.ndarray:
    """GrabCut's starting labels: the frame sure background, the rest probable garment ("rect"); or
    ("colour") only colours unlike the frame's and a central ellipse, the rest probable background."""
    height, width = small.shape[:2]
    if settings.seed == "rect":
        far = np.ones((height, width), bool)
    else:
        far = colour_distance_from_border(small, settings.border) > settings.colour_far
    y, x = np.ogrid[0:height, 0:width]
    ellipse = ((y - height / 2) / (settings.centre * height)) ** 2 + \
              ((x - width / 2) / (settings.centre * width)) ** 2 <= 1
    seeds = np.where(far | ellipse, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    frame = frame_mask((height, width), settings.border)
    seeds[frame] = cv2.GC_BGD
    return seeds


def frame_mask(shape: tuple[int, int], border: float) -> np.ndarray:
    """True on a strip `border` x each side wide (at least 1 px) around the picture."""
    height, width = shape
    dy, dx = max(1, round(border * height)), max(1, round(border * width))
    frame = np.ones(shape, bool)
    frame[dy:height - dy, dx:width - dx] = False
    return frame


def colour_distance_from_border(small: np.ndarray, border: float) -> np.ndarray:
    """Per pixel, the Lab distance to the nearest of a few border colours, in units of the border's
    own spread: a patterned sheet has several colours, each one close to some border colour."""
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    strip = lab[frame_mask(small.shape[:2], border)]
    count = min(4, len(strip))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    _, labels, centres = cv2.kmeans(strip, count, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    spread = np.median(np.linalg.norm(strip - centres[labels.ravel()], axis=1)) + 2.0
    distances = np.linalg.norm(lab[:, :, None, :] - centres[None, None], axis=-1).min(axis=-1)
    return distances / (3.0 * spread)


def run_grabcut(small: np.ndarray, seeds: np.ndarray, iterations: int, rng_seed: int = 0) -> np.ndarray:
    """GrabCut from the seed labels -> bool garment mask (sure or probable foreground)."""
    labels = seeds.copy()
    if not (labels == cv2.GC_PR_FGD).any():
        return np.zeros(labels.shape, bool)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(small[:, :, ::-1])
    cv2.setRNGSeed(rng_seed)  # GrabCut's k-means start uses OpenCV's global generator: same photo, same mask
    cv2.grabCut(bgr, labels, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def clean(mask: np.ndarray, settings: FinderSettings) -> np.ndarray:
    """Thin bridges cut (an opening), the largest part and any similar second part kept, holes filled."""
    radius = max(1, round(settings.open_radius * max(mask.shape)))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, disk).astype(bool)
    labels, count = ndimage.label(opened)
    if count == 0:
        return opened
    areas = ndimage.sum_labels(opened, labels, index=np.arange(1, count + 1))
    order = np.argsort(areas)[::-1]
    keep = [order[0] + 1]
    if count > 1 and areas[order[1]] >= settings.pair_ratio * areas[order[0]]:
        keep.append(order[1] + 1)  # a possible pair: decided in keep_one_of_pair
    return ndimage.binary_fill_holes(np.isin(labels, keep))


def keep_one_of_pair(mask: np.ndarray, settings: FinderSettings) -> tuple[np.ndarray, bool]:
    """Two similar parts side by side (a pair of shoes) -> the larger one alone. Parts that touch
    are looked for by eroding the mask a few times; each pixel then goes to its nearest part."""
    for radius in (0, 2, 4, 6):
        eroded = ndimage.binary_erosion(mask, iterations=radius) if radius else mask
        parts = two_parts_side_by_side(eroded, settings)
        if parts is None:
            continue
        first, second = parts
        if radius:  # give every pixel of the full mask to the nearer eroded part
            _, (rows, cols) = ndimage.distance_transform_edt(~(first | second), return_indices=True)
            first = mask & first[rows, cols]
        return ndimage.binary_fill_holes(first), True
    return split_at_valley(largest_part(mask), settings)


def split_at_valley(mask: np.ndarray, settings: FinderSettings) -> tuple[np.ndarray, bool]:
    """Two shoes touching side by side: the column profile dips deeply between two similar halves;
    the larger half is kept."""
    profile = mask.sum(axis=0).astype(np.float64)
    cols = np.flatnonzero(profile)
    if len(cols) < 10:
        return mask, False
    start, stop = cols[0] + len(cols) // 3, cols[0] + 2 * len(cols) // 3
    cut = start + int(np.argmin(profile[start:stop]))
    left, right = profile[:cut].sum(), profile[cut:].sum()
    deep = profile[cut] < settings.valley_depth * min(profile[:cut].max(), profile[cut:].max())
    if not deep or min(left, right) < settings.pair_ratio * max(left, right):
        return mask, False
    half = np.zeros_like(mask)
    half[:, :cut] = left >= right
    half[:, cut:] = left < right
    return largest_part(mask & half), True


def two_parts_side_by_side(mask: np.ndarray, settings: FinderSettings):
    """The two largest parts when they are similar in area and their column ranges barely overlap."""
    labels, count = ndimage.label(mask)
    if count < 2:
        return None
    areas = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    big, small = np.argsort(areas)[::-1][:2] + 1
    if areas[small - 1] < settings.pair_ratio * areas[big - 1]:
        return None
    first, second = labels == big, labels == small
    cols = [np.flatnonzero(part.any(axis=0)) for part in (first, second)]
    overlap = min(cols[0][-1], cols[1][-1]) - max(cols[0][0], cols[1][0]) + 1
    if overlap > settings.pair_overlap * min(len(cols[0]), len(cols[1])):
        return None
    return first, second


def largest_part(mask: np.ndarray) -> np.ndarray:
    """The largest connected part of the mask (all of it when it is one part)."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    areas = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    return labels == int(np.argmax(areas)) + 1


def is_upright(mask: np.ndarray) -> bool:
    """The part is clearly taller than wide (a shoe seen from above, toe up or down)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (rows[-1] - rows[0] + 1) > 1.3 * (cols[-1] - cols[0] + 1)


def quality_warnings(small: np.ndarray, found: Found, settings: FinderSettings, boxed: bool = False) -> list[str]:
    """Human sentences for finds that should not be trusted with a confident label."""
    warnings = []
    if found.fraction < settings.poor_fraction:
        warnings.append(f"little of your box ({found.fraction:.0%}) was found to be garment: draw the box "
                        "around the whole garment" if boxed else
                        f"little of the picture ({found.fraction:.0%}) could be separated from the "
                        "background: the garment may be cut off or lost in the background")
    if found.fraction > settings.full_fraction:
        warnings.append("almost all of your box was kept as garment: if the box cuts through the garment, "
                        "draw it around the whole garment" if boxed else
                        "the garment could not be separated from the background (almost the whole "
                        "picture was kept); try a plainer background or draw a box around it")
    if skin_share(small, found.mask) >= settings.skin_fraction:
        warnings.append("the garment seems to be worn (skin-coloured parts next to it); the models "
                        "know garments laid flat, so the answer is less reliable")
    return warnings


def skin_share(small: np.ndarray, mask: np.ndarray) -> float:
    """Share of skin-coloured pixels (a classic YCrCb box) in and just around the found region:
    arms, necks and hands of a worn garment. 0 when the frame itself has skin-like colours (wood
    floors, beige carpets, pink sheets) or most of the find does (a beige or pink garment)."""
    ycrcb = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb)
    skin = cv2.inRange(ycrcb, (40, 138, 80), (250, 173, 127)).astype(bool)
    band = ndimage.binary_dilation(mask, iterations=max(2, mask.shape[0] // 20))
    share = float(skin[band].mean())
    if skin[frame_mask(mask.shape, 0.04)].mean() > 0.03 or share > 0.5:
        return 0.0
    return share
