"""A bounded, seeded fuzz test: mutated PNG/JPEG/GIF/WebP/TIFF bytes through decode + preprocess and
through the API. Every case must be a prediction or an ImageError / a 4xx, never another exception or
a 5xx. 300 cases (the API sees every third), well under a minute."""

from __future__ import annotations

import io
import random
import shutil

import pytest
from PIL import Image, ImageDraw

from model.errors import ImageError
from workbench.app import create_app
from workbench.preprocess import prepare_image

CASES = 300
SEED = 16
FORMATS = {"PNG": {}, "JPEG": {"quality": 85}, "GIF": {}, "WEBP": {"quality": 80}, "TIFF": {}}


def garment(fmt: str, options: dict) -> bytes:
    image = Image.new("RGB", (48, 64), (235, 235, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((12, 8, 36, 56), fill=(40, 60, 120))
    draw.rectangle((4, 8, 44, 20), fill=(40, 60, 120))
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four of: flip bits, overwrite bytes, cut the end, insert or repeat a slice, poke the header."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(("flip", "overwrite", "truncate", "insert", "repeat", "header"))
        at = rng.randrange(len(data))
        if kind == "flip":
            data[at] ^= 1 << rng.randrange(8)
        elif kind == "overwrite":
            data[at:at + 4] = bytes(rng.choice((0, 0xFF, 0x7F, rng.randrange(256))) for _ in range(4))
        elif kind == "truncate":
            del data[max(8, at):]
        elif kind == "insert":
            data[at:at] = rng.randbytes(rng.randint(1, 64))
        elif kind == "repeat":
            data[at:at] = data[at:at + rng.randint(1, 256)]
        else:  # sizes, depths and chunk lengths live in the first bytes of every format
            data[rng.randrange(min(len(data), 40))] = rng.choice((0, 1, 0x10, 0x7F, 0xFF))
        if len(data) < 8:
            break
    return bytes(data)


def cases() -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    seeds = {fmt: garment(fmt, options) for fmt, options in FORMATS.items()}
    names = list(seeds)
    return [(f"case{i}.{names[i % len(names)].lower()}", mutate(seeds[names[i % len(names)]], rng))
            for i in range(CASES)]


def test_mutated_images_are_predicted_or_refused(tmp_path, default_run_dir, data_dir):
    refused = prepared = 0
    for name, data in cases():
        try:
            prepare_image(data)
            prepared += 1
        except ImageError:
            refused += 1
    assert prepared + refused == CASES
    assert refused > CASES // 3 and prepared > 10, (prepared, refused)  # the mutations reach both outcomes

    shutil.copytree(default_run_dir, tmp_path / "fast-default")
    client = create_app(tmp_path, data_dir=data_dir).server.test_client()
    statuses = {}
    for name, data in cases()[::3]:
        answer = client.post("/api/v1/predict", data={"file": (io.BytesIO(data), name)},
                             content_type="multipart/form-data")
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        assert answer.status_code == 200 or 400 <= answer.status_code < 500, (name, answer.get_json())
    assert statuses.get(200) and sum(v for k, v in statuses.items() if k >= 400), statuses


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_unmutated_seeds_are_garments(fmt):
    assert prepare_image(garment(fmt, FORMATS[fmt])).image.max() > 0
