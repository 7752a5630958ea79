"""Predict page, its images: what goes into the page's store for a test image or an upload (no
callbacks; predict.py uses these). The store holds the prepared 28x28 images, never the uploads.

    store = test_from_url("123")              # test image 123 as the store, or a message
    store = load_uploads(contents, names)     # every upload prepared; bad ones become messages
    store = uploads_gone(2)                   # an address that named uploads (Back, Forward, a reload)
"""

from __future__ import annotations

import re

import numpy as np

from workbench import TEST_IMAGES, DataError, artifacts
from workbench.classify import prepare_uploads
from workbench.components import settings
from workbench.limits import ApiLimits
from workbench.uploads import encode, prepared_fields, upload_bytes

MAX_FILES = ApiLimits().max_files   # images per upload, as the API takes; more is a batch job for the CLI


def load_test_item(index: int) -> dict:
    """A test image as the store's single item."""
    try:
        images = artifacts.test_images(settings()["data_dir"])
        labels = artifacts.test_labels(settings()["data_dir"])
    except DataError as exc:
        return {"items": [], "errors": [f"test images unavailable: {exc}"]}
    if not 0 <= index < len(images):
        return {"items": [], "errors": [f"test image {index} does not exist: the test set has images 0 to "
                                        f"{len(images) - 1:,}"]}
    return {"items": [{"name": f"test image #{index}", "pixels": encode(images[index]),
                       "label": int(labels[index]), "slot": None}], "errors": []}


def test_from_url(test: str) -> dict:
    """The store for `/predict?test=N`: test image N, or a message saying which numbers exist; its
    "test" is the URL's value, so the page can tell whether the URL names the image shown."""
    text = test.strip() if isinstance(test, str) else ""
    if not (text.isascii() and text.isdigit()) or len(text) > 6:  # int() refuses > 4,300 digits anyway
        return {"items": [], "errors": [f"?test= needs a test image number from 0 to 9,999; received "
                                        f"{text[:20]!r}{'...' if len(text) > 20 else ''}"], "source": "test",
            "test": test}
    return {**load_test_item(int(text)), "source": "test", "test": test}


def load_uploads(contents: list[str], filenames: list[str]) -> dict:
    """Prepare every upload (the classify path's first step); bad ones become messages, good ones items."""
    errors = []
    filenames = distinct(filenames)
    if len(contents) > MAX_FILES:
        left = ", ".join(filenames[MAX_FILES:MAX_FILES + 5]) + (" …" if len(contents) > MAX_FILES + 5 else "")
        errors.append(f"{len(contents)} files uploaded; only the first {MAX_FILES} are shown (not shown: {left}). "
                      "Upload the rest next, or classify many at once with `workbench predict`")
    decoded = [(slot, name, upload_bytes(content))
               for slot, (content, name) in enumerate(zip(contents[:MAX_FILES], filenames[:MAX_FILES]))]
    errors += [f"{name}: the upload arrived damaged (bad base64); try again" for _, name, data in decoded if data is None]
    good = [(slot, name, data) for slot, name, data in decoded if data is not None]
    items = []
    for (slot, _, _), item in zip(good, prepare_uploads([(name, data) for _, name, data in good])):
        if item.error is not None:
            errors.append(f"{item.name}: {item.error}")
            continue
        items.append({"name": item.name, "label": None, "slot": slot, "box": None, **prepared_fields(item.prepared)})
    return {"items": items, "errors": errors}


def in_name_order(contents: list[str], names: list[str]) -> tuple[list[str], list[str]]:
    """The uploads sorted by file name, numbers compared as numbers ("photo 2" before "photo 10"):
    dcc.Upload lists files in the order they finished reading, which varies from one try to the
    next; the file dialog shows them by name, so that is the order a person expects (and which
    files are the "first" MAX_FILES)."""
    def key(index: int):
        return [(0, int(part), "") if part.isdigit() else (1, 0, part)
                for part in re.split(r"(\d+)", names[index].casefold())]
    order = sorted(range(len(contents)), key=key)
    return [contents[i] for i in order], [names[i] for i in order]


def distinct(names: list[str]) -> list[str]:
    """Names told apart: a second "shirt.jpg" in one upload becomes "shirt.jpg (2)"."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def uploads_gone(photos: str) -> dict:
    """The store for an address that named uploaded photos (photos=N, written at each upload): they
    are not in the address, so Back, Forward, a reload or a shared link cannot bring them back."""
    count = int(photos) if isinstance(photos, str) and photos.isascii() and photos.isdigit() else 0
    what = f"the {count} photos uploaded" if count > 1 else "the photo uploaded"
    return {"items": [], "errors": [f"This address showed {what} here. Uploads are not kept in the address, so "
                                    "Back, Forward, reloading or a link cannot bring them back: upload again."],
            "title": "Your photos are no longer here"}


def message_title(store: dict) -> str:
    """The title over the store's messages: a test image link, some files refused, or all of them."""
    if store.get("source") == "test":
        return "No such test image"
    if store.get("title"):  # set where the messages arise: a rejected upload, a box not used
        return store["title"]
    return "Some files were not used" if store.get("items") else "Upload rejected"


def random_test_index() -> int:
    """A test image number drawn at random (the test split's size when it can be read)."""
    try:
        count = len(artifacts.test_labels(settings()["data_dir"]))
    except DataError:
        count = TEST_IMAGES  # the page then says why the image cannot be shown
    return int(np.random.default_rng().integers(count))
