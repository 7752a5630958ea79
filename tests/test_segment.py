"""The real-photo garment finder (workbench.segment) on scenes drawn here: textured and coloured
backgrounds, a low-contrast garment, a pair of shoes, clutter at the edges; the `box` parameter,
the outline and the warnings of workbench.preprocess that come with it."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from workbench.preprocess import ImageError, prepare_array, prepare_image
from workbench.segment import FinderSettings, NothingFound, find_garment

HEIGHT, WIDTH = 480, 360


def tshirt(height=HEIGHT, width=WIDTH, centre=(180, 240), size=1.0) -> np.ndarray:
    """A T-shirt silhouette (bool mask): body and two short sleeves."""
    cx, cy = centre
    s = size
    points = np.array([(-60, -110), (-25, -120), (25, -120), (60, -110), (120, -60), (95, -20),
                       (65, -40), (65, 120), (-65, 120), (-65, -40), (-95, -20), (-120, -60)], np.float64)
    points = (points * s + (cx, cy)).round().astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


def paint(background: np.ndarray, mask: np.ndarray, colour, rng, shading: float = 12.0) -> np.ndarray:
    """The garment in `colour` with some fabric noise, over the background, lightly blurred."""
    photo = background.astype(np.float64).copy()
    fabric = np.asarray(colour, np.float64) + rng.normal(0, shading, mask.shape + (1,))
    photo[mask] = fabric[mask]
    photo = cv2.GaussianBlur(np.clip(photo, 0, 255).astype(np.uint8), (3, 3), 0.8)
    return photo


def stripes(rng, height=HEIGHT, width=WIDTH) -> np.ndarray:
    """A bed sheet: broad diagonal stripes in two colours."""
    y, x = np.mgrid[0:height, 0:width]
    band = ((x + y) // 24) % 2 == 0
    return np.where(band[..., None], (200, 60, 60), (240, 200, 120)).astype(np.float64) + \
        rng.normal(0, 6, (height, width, 3))


def wood(rng, height=HEIGHT, width=WIDTH) -> np.ndarray:
    """A wood floor: brown, grain along x, planks with dark seams."""
    y, x = np.mgrid[0:height, 0:width]
    grain = 18 * np.sin(y / 3.0 + 4 * np.sin(x / 40.0)) + rng.normal(0, 5, (height, width))
    floor = np.stack([150 + grain, 100 + 0.7 * grain, 60 + 0.4 * grain], axis=-1)
    floor[(y % 60) < 2] *= 0.5
    return floor


def noise(rng, height=HEIGHT, width=WIDTH) -> np.ndarray:
    """A speckled carpet: gray with strong per-pixel noise, blurred a little."""
    carpet = 120 + rng.normal(0, 30, (height, width, 1)).repeat(3, axis=2)
    return cv2.GaussianBlur(carpet, (5, 5), 1.0)


def iou(found: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union after bringing the drawn mask to the found mask's size."""
    truth = cv2.resize(truth.astype(np.uint8), found.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
    return float((found & truth).sum() / max((found | truth).sum(), 1))


@pytest.mark.parametrize("background, colour", [(stripes, (40, 80, 160)), (wood, (230, 230, 235)),
                                                (noise, (200, 40, 120))])
def test_finds_a_garment_on_textured_backgrounds(background, colour):
    rng = np.random.default_rng(1)
    truth = tshirt()
    found = find_garment(paint(background(rng), truth, colour, rng))
    assert iou(found.mask, truth) >= 0.8
    assert not found.pair and found.turn == 0


def test_finds_a_white_shirt_on_an_off_white_sheet():
    rng = np.random.default_rng(2)
    sheet = np.full((HEIGHT, WIDTH, 3), (214, 210, 200), np.float64) + rng.normal(0, 4, (HEIGHT, WIDTH, 3))
    truth = tshirt()
    found = find_garment(paint(sheet, truth, (242, 242, 245), rng, shading=4))
    assert iou(found.mask, truth) >= 0.8


def test_clutter_entering_from_the_border_and_a_hand_at_the_edge_are_left_out():
    rng = np.random.default_rng(3)
    truth = tshirt(size=0.85)
    photo = paint(wood(rng), truth, (30, 90, 60), rng)
    cv2.circle(photo, (0, 40), 45, (20, 20, 20), -1)               # a dark object entering at the left
    cv2.ellipse(photo, (345, 420), (40, 25), 30, 0, 360, (224, 172, 140), -1)  # a hand at the edge
    found = find_garment(photo)
    assert iou(found.mask, truth) >= 0.8


def test_a_pair_of_shoes_side_by_side_keeps_one_turned_flat():
    rng = np.random.default_rng(4)
    left, right = np.zeros((HEIGHT, WIDTH), np.uint8), np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.ellipse(left, (110, 240), (48, 130), 0, 0, 360, 1, -1)     # toe up, as shoes from above
    cv2.ellipse(right, (250, 240), (45, 125), 0, 0, 360, 1, -1)    # a touch smaller, 47 px apart
    photo = paint(noise(rng), (left | right).astype(bool), (30, 60, 200), rng)
    found = find_garment(photo)
    assert found.pair and found.turn == 1
    assert iou(found.mask, left.astype(bool)) >= 0.8
    unturned = find_garment(photo, FinderSettings(turn_pairs=False))
    assert unturned.pair and unturned.turn == 0


def test_trousers_are_not_taken_for_a_pair():
    rng = np.random.default_rng(5)
    trousers = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.fillPoly(trousers, [np.array([(100, 40), (260, 40), (280, 440), (200, 440), (180, 170),
                                      (160, 440), (80, 440)], np.int32)], 1)
    found = find_garment(paint(stripes(rng), trousers.astype(bool), (40, 60, 110), rng))
    assert not found.pair and iou(found.mask, trousers.astype(bool)) >= 0.8


def test_only_flat_images_are_refused():
    with pytest.raises(NothingFound, match="flat colour"):
        find_garment(np.full((200, 300, 3), (120, 80, 40), np.uint8))
    with pytest.raises(ImageError) as caught:
        prepare_array(np.full((200, 300, 3), (120, 80, 40), np.uint8))
    assert caught.value.code == "no_object"
    rng = np.random.default_rng(6)
    assert prepare_array(paint(noise(rng), tshirt(), (250, 250, 60), rng)).method == "finder"


def encode_jpeg(photo: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def test_the_box_limits_the_search_and_the_outline_is_in_original_pixels():
    rng = np.random.default_rng(7)
    scene = stripes(rng, 480, 720)
    left, right = tshirt(480, 720, (180, 240), 0.8), tshirt(480, 720, (540, 240), 0.65)
    photo = paint(paint(scene, left, (30, 30, 160), rng), right, (20, 140, 40), rng)
    big = cv2.resize(photo, (2160, 1440), interpolation=cv2.INTER_LINEAR)  # 3x: a reduced JPEG decode
    prepared = prepare_image(encode_jpeg(big), box=(1200, 60, 2100, 1380))
    assert prepared.image_size == (2160, 1440)
    xs, ys = np.array(prepared.outline).T
    assert xs.min() >= 1200 - 20 and xs.max() <= 2100 + 20                   # only the right shirt
    truth_x, truth_y = np.flatnonzero(right.any(axis=0)) * 3, np.flatnonzero(right.any(axis=1)) * 3
    assert abs(xs.min() - truth_x[0]) < 40 and abs(xs.max() - truth_x[-1]) < 40
    assert abs(ys.min() - truth_y[0]) < 40 and abs(ys.max() - truth_y[-1]) < 40
    whole = prepare_image(encode_jpeg(big))
    assert np.array(whole.outline)[:, 0].max() < 1200                          # without it: the larger one


@pytest.mark.parametrize("background, colour", [(stripes, (40, 80, 160)), (wood, (230, 230, 235))])
@pytest.mark.parametrize("inset", [0, 6])
def test_a_box_drawn_tight_around_the_garment_or_just_inside_keeps_its_edges(background, colour, inset):
    # the finder takes a strip along the crop's edges as background: the box is widened so that strip
    # lies outside what the user drew (without it the tight box's IoU was 0.92, the inset one's 0.81-0.88)
    rng = np.random.default_rng(3)
    truth = tshirt(size=0.9)
    photo = paint(background(rng), truth, colour, rng)
    rows, cols = np.flatnonzero(truth.any(axis=1)), np.flatnonzero(truth.any(axis=0))
    box = (cols[0] + inset, rows[0] + inset, cols[-1] + 1 - inset, rows[-1] + 1 - inset)
    prepared = prepare_image(encode_jpeg(photo), box=box)
    found = np.zeros(truth.shape, np.uint8)
    cv2.fillPoly(found, [np.array(prepared.outline, np.int32)], 1)
    assert iou(found.astype(bool), truth) > 0.93


@pytest.mark.parametrize("box, words", [
    ((50, 50, 52, 90), "holds only 2x40 pixels of the 100x100 photo; draw it around the whole garment"),
    ((90, 90, 100, 100), "holds only 10x10 pixels"),      # a tiny corner of background: no garment fits
    ((500, 500, 900, 900), "lies outside the 100x100 photo"),
    ((0, 0, 99999, 99999), "reaches beyond the 100x100 photo: x must lie within 0..100"),  # not cut silently
    ((10, 10, 101, 90), "reaches beyond the 100x100 photo"),
])
def test_a_bad_box_is_refused_in_words(box, words):
    with pytest.raises(ImageError, match="box") as caught:
        prepare_array(np.zeros((100, 100, 3), np.uint8), box=box)
    assert caught.value.code == "bad_box" and words in str(caught.value)


def test_a_box_far_longer_than_wide_is_refused_in_words():
    """A box 30 times as long as wide would shrink to a pixel row at working size (as a strip-shaped photo)."""
    with pytest.raises(ImageError) as caught:
        prepare_array(np.zeros((100, 1200, 3), np.uint8), box=(0, 10, 1200, 50))
    assert caught.value.code == "bad_box" and "1200x40 pixels, more than 20 times as long as it is wide" in str(caught.value)


def test_a_small_find_is_flagged_and_a_good_one_is_not():
    rng = np.random.default_rng(8)
    good = prepare_array(paint(wood(rng), tshirt(), (40, 40, 150), rng))
    assert good.warnings == [] and 0.15 < good.found_fraction < 0.6
    small = prepare_array(paint(wood(rng), tshirt(size=0.22), (40, 40, 150), rng))
    assert small.found_fraction < 0.06 and any("little of the picture" in w for w in small.warnings)


def test_a_box_through_the_garment_is_named_as_such_and_a_box_around_it_is_not_flagged():
    rng = np.random.default_rng(0)
    photo = paint(wood(rng), tshirt(size=1.2), (40, 40, 150), rng)
    around = prepare_array(photo, box=(60, 60, 300, 420))
    assert around.warnings == []
    through = prepare_array(photo, box=(130, 200, 230, 330))  # inside the shirt's body
    assert [w.split(":")[0] for w in through.warnings] == ["almost all of your box was kept as garment"]
    assert "try a plainer background or draw a box" not in " ".join(through.warnings)  # not the no-box advice


def test_a_worn_garment_is_flagged():
    rng = np.random.default_rng(9)
    wall = np.full((HEIGHT, WIDTH, 3), (70, 90, 120), np.float64) + rng.normal(0, 4, (HEIGHT, WIDTH, 3))
    shirt = tshirt(size=0.9)
    laid_flat = prepare_array(paint(wall, shirt, (30, 140, 60), rng))
    worn = paint(wall, shirt, (30, 140, 60), rng)
    cv2.ellipse(worn, (180, 95), (28, 40), 0, 0, 360, (224, 172, 140), -1)        # a neck and head
    for x in (55, 305):                                                           # two arms
        cv2.line(worn, (x, 200), (x, 330), (224, 172, 140), 26)
    flagged = prepare_array(worn)
    assert not any("worn" in w for w in laid_flat.warnings)
    assert any("worn" in w for w in flagged.warnings)
