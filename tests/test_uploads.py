"""The Predict page's store records: pixels round-trip, and a box drawn on the displayed photo maps
back to the photo's own pixels (plotly's drawrect and a dragged box), with junk refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from workbench.preprocess import DISPLAY_SIZE
from workbench.uploads import chosen, decode, drawn_box, encode


def test_pixels_round_trip_through_the_store():
    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    assert np.array_equal(decode(encode(image)), image)


def test_a_drawn_box_is_scaled_to_the_photos_pixels():
    item = {"size": [4 * DISPLAY_SIZE, 2 * DISPLAY_SIZE]}  # shown at DISPLAY_SIZE: 4 photo px per shown px
    drawn = {"shapes": [{"type": "rect", "x0": 50, "y0": 100, "x1": 10, "y1": 20}]}  # dragged right to left
    assert drawn_box(drawn, item) == (40, 80, 200, 400)
    moved = {"shapes[0].x0": 0, "shapes[0].x1": 300, "shapes[0].y0": 5, "shapes[0].y1": 600}
    assert drawn_box(moved, item) == (0, 20, 1024, 512)  # clipped to the photo


@pytest.mark.parametrize("relayout", [None, {"autosize": True}, {"shapes": [{"x0": "a", "x1": 1, "y0": 0, "y1": 9}]},
                                      {"shapes": [{"x0": 1}]}, {"shapes": [{"x0": 3, "x1": 3, "y0": 0, "y1": 9}]}])
def test_no_box_from_junk_or_an_empty_box(relayout):
    assert drawn_box(relayout, {"size": [200, 100]}) is None


def test_a_tiny_box_is_kept_for_the_finder_to_refuse_in_words():
    from workbench.preprocess import ImageError, prepare_image

    box = drawn_box({"shapes": [{"x0": 0, "x1": 5, "y0": 0, "y1": 5}]}, {"size": [200, 100]})
    assert box == (0, 0, 5, 5)
    photo = Image.new("RGB", (200, 100), "white")
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    with pytest.raises(ImageError, match="28x28") as raised:
        prepare_image(buffer.getvalue(), box=box)
    assert raised.value.code == "bad_box"


def test_chosen_falls_back_to_the_first_item():
    store = {"items": [{"name": "a"}, {"name": "b"}]}
    assert chosen(store, 1)["name"] == "b" and chosen(store, 7)["name"] == "a" and chosen(store, "x")["name"] == "a"
    assert chosen({}, 0) is None


def test_an_upload_over_the_limit_names_the_files_left_out_and_same_names_are_told_apart():
    import base64

    from pages.predict_loading import MAX_FILES, load_uploads, uploads_gone

    photo = Image.new("RGB", (60, 60), "white")
    photo.paste((20, 20, 20), (15, 10, 45, 50))  # a dark garment on white
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    content = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    names = ["shirt.png", "shirt.png"] + [f"p{i}.png" for i in range(MAX_FILES)]
    store = load_uploads([content] * len(names), names)
    assert [item["name"] for item in store["items"][:3]] == ["shirt.png", "shirt.png (2)", "p0.png"]
    assert len(store["items"]) == MAX_FILES
    assert store["errors"] == [f"{len(names)} files uploaded; only the first {MAX_FILES} are shown (not shown: "
                               f"p{MAX_FILES - 2}.png, p{MAX_FILES - 1}.png). Upload the rest next, or classify "
                               "many at once with `workbench predict`"]
    assert "the 3 photos uploaded" in uploads_gone("3")["errors"][0]
    assert "the photo uploaded" in uploads_gone("junk")["errors"][0]


def test_uploads_are_listed_by_file_name_with_numbers_in_order():
    from pages.predict_loading import in_name_order

    names = ["IMG_10.jpg", "img_2.jpg", "b.png", "IMG_1.jpg", "a.png"]
    contents, ordered = in_name_order([f"data:{name}" for name in names], names)
    assert ordered == ["a.png", "b.png", "IMG_1.jpg", "img_2.jpg", "IMG_10.jpg"]
