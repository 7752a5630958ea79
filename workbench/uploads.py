"""What the Predict page keeps of each image, and the small pure steps around it.

The page's store holds one record per image: the 28x28 model input as base64 pixels (784 bytes),
its name, true label (test images) or upload slot (photos), the box the user drew, the photo's size
and the preprocessing's warnings; never the photo itself, which stays in the browser's upload store.

    item = chosen(store, index)           # the record shown
    image = decode(item["pixels"])        # uint8 (28, 28)
    box = drawn_box(relayout, item)       # a rectangle drawn on the displayed photo -> photo pixels
"""

from __future__ import annotations

import base64

import numpy as np
from PIL import Image

from model.data import IMAGE_SIZE
from model.errors import ImageError
from workbench.classify import decode_base64, imagenet_fields
from workbench.preprocess import DISPLAY_SIZE


def encode(image: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).decode("ascii")


def decode(pixels: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(pixels), dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def prepared_fields(prepared) -> dict:
    """What the store keeps of a prepared photo: the 28x28 pixels (784 bytes), never the photo, and
    the ImageNet view of it (workbench.classify.imagenet_fields)."""
    return {"pixels": encode(prepared.image), "inverted": bool(prepared.inverted),
            "size": list(prepared.image_size), "warnings": list(prepared.warnings), **imagenet_fields(prepared)}


def upload_bytes(content: str) -> bytes | None:
    """The file bytes of a dcc.Upload data URL ("data:<type>;base64,<data>"); None when damaged."""
    try:
        return decode_base64(content or "")
    except ImageError:
        return None


def photo_bytes(item: dict | None, photos: list | None) -> bytes | None:
    """The uploaded file of an item (None for test images, or when the upload is gone)."""
    if not item or item.get("slot") is None or not photos or item["slot"] >= len(photos):
        return None
    return upload_bytes(photos[item["slot"]])


def box_of(item: dict | None) -> tuple[int, int, int, int] | None:
    return tuple(item["box"]) if item and item.get("box") else None


def drawn_box(relayout: dict | None, item: dict) -> tuple[int, int, int, int] | None:
    """The last rectangle drawn (or moved) on the photo, in the original photo's pixels; None for
    junk or an empty one. A box too small to look in is returned, for prepare_image to refuse in words."""
    shapes = (relayout or {}).get("shapes")
    if shapes:
        shape = shapes[-1]
    else:  # an existing box dragged: {"shapes[0].x0": ..., ...}
        keys = {k.split(".")[1]: v for k, v in (relayout or {}).items() if k.startswith("shapes[")}
        shape = keys if len(keys) == 4 else None
    if not shape or not item.get("size"):
        return None
    scale = max(1.0, max(item["size"]) / DISPLAY_SIZE)  # original pixels per displayed pixel
    try:
        x0, x1 = sorted(float(shape[k]) for k in ("x0", "x1"))
        y0, y1 = sorted(float(shape[k]) for k in ("y0", "y1"))
    except (KeyError, TypeError, ValueError):  # a hand-made request: no box
        return None
    width, height = item["size"]
    box = (max(0, round(x0 * scale)), max(0, round(y0 * scale)), min(width, round(x1 * scale)),
           min(height, round(y1 * scale)))
    return box if box[2] > box[0] and box[3] > box[1] else None  # too small: prepare_image says so


def step_image(image: np.ndarray, height: int = 84) -> np.ndarray:
    """A step image scaled (nearest) to about `height` px high for the strip."""
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    width = max(1, round(pil.width * height / max(pil.height, 1)))
    return np.asarray(pil.resize((width, height), Image.Resampling.NEAREST))


def chosen(store, item_index) -> dict | None:
    items = (store or {}).get("items", [])
    if not items:
        return None
    return items[item_index if isinstance(item_index, int) and 0 <= item_index < len(items) else 0]
