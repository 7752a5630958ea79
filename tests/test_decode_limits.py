"""Decompression bombs under the pixel limit: each PNG mode refused or decoded in bounded memory, measured
as the peak RSS of a fresh process, alone and eight at once; and the decode messages in the user's words."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from model.errors import ImageError
from workbench.preprocess import Limits, decode

REPO = Path(__file__).resolve().parents[1]
SIDE = 6000  # 36 MP: under the 50 MP pixel limit; 144 MB as RGB(A), over the 128 MiB decode limit
# (PNG colour type, bit depth): gray 1/8/16 bit, RGB 8/16, palette, gray+alpha, RGBA 8/16
MODES = [(0, 1), (0, 8), (0, 16), (2, 8), (2, 16), (3, 8), (4, 8), (6, 8), (6, 16)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_bomb(side: int, color_type: int, depth: int) -> bytes:
    """A valid PNG of side x side zero pixels, its IDAT compressed in chunks (a few hundred KB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + bytes((side * CHANNELS[color_type] * depth + 7) // 8)
    packer, idat = zlib.compressobj(9), []
    for _ in range(side):
        idat.append(packer.compress(row))
    idat.append(packer.flush())
    extra = chunk(b"PLTE", bytes(range(256)) * 3) if color_type == 3 else b""
    header = struct.pack(">IIBBBBB", side, side, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b"")


# Runs in a fresh interpreter, so its peak RSS is this test's alone.
MEASURE = """
import json, resource, sys, threading
from pathlib import Path
from workbench.preprocess import decode
from model.errors import ImageError

bombs = {p.stem: p.read_bytes() for p in sorted(Path(sys.argv[1]).glob("*.png"))}
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB (Linux: KiB)
base, results = peak(), {}

def one(name, data):
    try:
        results[name] = list(decode(data).size)
    except ImageError as exc:
        results[name] = exc.code
for name, data in bombs.items():
    one(name, data)
alone = peak() - base
threads = [threading.Thread(target=one, args=(f"{i}", bombs["0-8"])) for i in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps({"results": results, "alone_mb": alone, "eight_mb": peak() - base}))
"""


@pytest.mark.slow
def test_bombs_of_every_mode_are_refused_or_bounded_in_memory(tmp_path):
    for color_type, depth in MODES:
        (tmp_path / f"{color_type}-{depth}.png").write_bytes(png_bomb(SIDE, color_type, depth))
    done = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    results = report["results"]
    for name, result in results.items():
        assert result == "too_many_pixels" or max(result) <= Limits().decode_side, (name, result)
    for rgb_or_alpha in ("2-8", "2-16", "4-8", "6-8", "6-16"):  # 196 MB in memory: over the limit
        assert results[rgb_or_alpha] == "too_many_pixels", rgb_or_alpha
    assert results["0-8"] == results["0-16"] == [2048, 2048], "a 36 MP gray image fits and is reduced"
    # Before: the 16-bit RGBA bomb alone took 1.1 GB; eight at once grew a worker by 5 GB.
    assert report["alone_mb"] < 250, report
    assert report["eight_mb"] < 250, report  # eight 36 MB decodes at once would pass 288 MB


def test_messages_are_in_the_users_words():
    with pytest.raises(ImageError) as caught:
        decode(png_bomb(12_000, 0, 1))  # 144 MP: Pillow's own bomb check
    assert caught.value.code == "too_many_pixels"
    assert str(caught.value) == "too many pixels: the image has 144 MP; the limit is 50 MP"
    small = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(small, "PNG")
    with pytest.raises(ImageError) as caught:
        decode(small.getvalue()[:-40])
    assert caught.value.code == "truncated" and "OSError" not in str(caught.value)
    assert "cut short" in str(caught.value)
