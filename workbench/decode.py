"""Step 1 of the photo pipeline: uploaded bytes -> an upright RGB PIL image, within memory limits.

    image = decode(open("shirt.jpg", "rb").read())    # PIL RGB, longest side <= 2048, or ImageError

Checked from the header before any pixel is decoded: size in bytes, format, pixels, the decoded size by
mode (bytes per pixel x pixels, a JPEG counted after its reduced-scale draft) and frames. The pixels are
then decoded, reduced to Limits.decode_side before any conversion (conversions copy every pixel), turned
upright by their EXIF orientation and flattened onto white. At most Limits.concurrent_large_decodes
large decodes run at once in a process, so parallel bombs cannot add up. workbench/preprocess.py runs
the later steps.
"""

from __future__ import annotations

import io
import re
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from model.errors import ImageError


@dataclass(frozen=True)
class Limits:
    """What an upload may be. Everything beyond raises ImageError before any large allocation."""
    max_bytes: int = 20 * 2**20        # 20 MiB: phone photos are 2-12 MB; more is not a photo upload
    max_pixels: int = 50_000_000       # 50 MP: above phone cameras
    max_decoded_bytes: int = 128 * 2**20  # decoded size by mode: 32 MP of RGB(A), 128 MP of gray (a JPEG
                                       # counts after its draft, so 50 MP phone photos pass); a 381 KB
                                       # 16-bit RGBA PNG of 7000x7000 (196 MB decoded) took 1.1 GB before
    min_side: int = 8                  # px: smaller images hold no recognisable shape
    max_aspect: float = 20.0           # long side / short side: a garment photo, even a panorama, is far
                                       # squarer; a 20000x10 strip shrinks to one pixel row at working size
    formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")  # what browsers and phones make
    decode_side: int = 2048            # px: decoded images are reduced to this longest side before any
                                       # conversion (the pipeline works at 384 px, displays at 256)
    large_decode_bytes: int = 16 * 2**20  # decodes bigger than this (about a 4 MP RGB photo) ...
    concurrent_large_decodes: int = 2  # ... run at most this many at once per process (memory bound)


DRAFT_SIDE = 512         # px: JPEGs decode at a power-of-2 reduction no smaller than this (the
                         # pipeline works at 384 px at most; a 12 MP photo decodes 4x faster)
FULL_SIZE = "full_size"  # PIL info key: the upright size before a reduced decode (boxes and outlines
                         # are in the photo's own pixels)

# Bytes per pixel of each Pillow mode in memory: one for "1", "L", "P", two for 16-bit gray, four for
# every other mode (Pillow stores RGB, LA and 16-bit RGB(A) PNGs in four bytes a pixel as well).
MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
_LARGE_DECODES: dict[int, threading.BoundedSemaphore] = {}  # one semaphore per concurrency setting
_LARGE_DECODES_LOCK = threading.Lock()


def decode(data: bytes, limits: Limits = Limits()) -> Image.Image:
    """Bytes -> an upright RGB PIL image (longest side at most limits.decode_side), or ImageError
    naming what is wrong with the file."""
    if not data:
        raise ImageError("the file is empty (0 bytes)", "empty")
    if len(data) > limits.max_bytes:
        raise ImageError(f"the file is {len(data) / 2**20:.1f} MiB; the limit is {limits.max_bytes / 2**20:.0f} MiB",
                         "too_large")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise too_many_pixels(exc, limits) from exc
        except UnidentifiedImageError as exc:
            if is_heif(data):
                raise ImageError("a HEIC/HEIF photo (the iPhone camera's own format), which this app cannot read: "
                                 "save or share it as JPEG (on an iPhone: Settings > Camera > Formats > Most "
                                 "Compatible) and upload that", "unsupported_format") from exc
            raise ImageError("not an image: the file is in no image format this app can read (JPEG, PNG, "
                             "WebP, GIF, BMP, TIFF and more)",
                             "not_an_image") from exc
        except Exception as exc:  # corrupt headers raise SyntaxError, ValueError, struct.error ...
            if "truncated" in str(exc).lower():
                raise ImageError("the image is truncated: the file ends inside its header (the upload or "
                                 "download was cut short?)", "truncated") from exc
            raise ImageError("not a readable image: its header is damaged", "not_an_image") from exc
        full_size = upright_size(image)
        check_header(image, limits)
        if decoded_bytes(image) <= limits.large_decode_bytes:
            return remember_size(load_upright(image, limits), full_size)
        with large_decode_slot(limits):
            return remember_size(load_upright(image, limits), full_size)


def is_heif(data: bytes) -> bool:
    """An ISO media file of a HEIF brand (HEIC, HEIF, AVIF): 'ftyp' at byte 4, then the brand."""
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the undecoded image once its EXIF orientation is applied."""
    try:
        turned = image.getexif().get(0x0112) in (5, 6, 7, 8)
    except Exception:
        turned = False
    return image.size[::-1] if turned else image.size


def remember_size(rgb: Image.Image, full_size: tuple[int, int]) -> Image.Image:
    """Note the photo's own size on an image decoded or reduced to fewer pixels."""
    if rgb.size != tuple(full_size):
        rgb.info[FULL_SIZE] = tuple(full_size)
    return rgb


def too_many_pixels(exc: Exception, limits: Limits) -> ImageError:
    """Pillow's own bomb check (far above ours) in the user's words: pixels, megapixels, the limit."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)) / 1e6:,.0f} MP" if found else "more pixels than Pillow will open"
    return ImageError(f"too many pixels: the image has {size}; the limit is {limits.max_pixels / 1e6:.0f} MP",
                      "too_many_pixels")


def decoded_bytes(image: Image.Image) -> int:
    """The memory the decoded pixels take (after a JPEG draft), by mode: bytes per pixel x pixels."""
    return image.width * image.height * MODE_BYTES.get(image.mode, 4)  # 4: every multi-band mode


def large_decode_slot(limits: Limits) -> threading.BoundedSemaphore:
    """The semaphore that bounds how many large decodes run at once in this process."""
    with _LARGE_DECODES_LOCK:
        return _LARGE_DECODES.setdefault(limits.concurrent_large_decodes,
                                         threading.BoundedSemaphore(limits.concurrent_large_decodes))


def check_header(image: Image.Image, limits: Limits) -> None:
    """Format, size, decoded bytes and frame count, checked from the header before any pixel is decoded."""
    if image.format not in limits.formats:
        raise ImageError(f"unsupported format {image.format}; accepted: {', '.join(limits.formats)}",
                         "unsupported_format")
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageError(f"too many pixels: {width}x{height} is {width * height / 1e6:,.1f} MP; the limit is "
                         f"{limits.max_pixels / 1e6:.0f} MP", "too_many_pixels")
    if min(width, height) < limits.min_side:
        raise ImageError(f"the image is {width}x{height}; each side needs at least {limits.min_side} px",
                         "too_small")
    if max(width, height) > limits.max_aspect * min(width, height):
        raise ImageError(f"the image is {width}x{height}, {max(width, height) / min(width, height):,.0f} times as "
                         f"long as it is wide; at most {limits.max_aspect:g} times is read: crop it nearer the garment",
                         "too_narrow")
    if image.format == "JPEG":
        try:
            image.draft("RGB", (DRAFT_SIDE, DRAFT_SIDE))  # decode big JPEGs at a reduced scale: far faster
        except Exception as exc:
            raise ImageError("the image data is corrupt: its JPEG header is damaged", "corrupt") from exc
    if decoded_bytes(image) > limits.max_decoded_bytes:
        raise ImageError(f"the image is too big to decode: {width}x{height} in {image.mode} takes "
                         f"{decoded_bytes(image) / 1e6:,.0f} MB; the limit is {limits.max_decoded_bytes / 1e6:,.0f} MB "
                         "(save it smaller, or as a JPEG)", "too_many_pixels")
    try:
        frames = getattr(image, "n_frames", 1)  # TIFF and GIF walk their frames here: damage shows
    except Exception as exc:
        raise ImageError("the image data is corrupt: its frames cannot be read", "corrupt") from exc
    if frames > 1:
        raise ImageError(f"animated or multi-page image ({frames} frames); upload a single still image", "animated")


def load_upright(image: Image.Image, limits: Limits = Limits()) -> Image.Image:
    """Decode the pixels, reduce to limits.decode_side, apply the EXIF orientation, flatten onto white RGB."""
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise too_many_pixels(exc, limits) from exc
    except Exception as exc:  # Pillow raises OSError for truncated data, others for corrupt streams
        if "truncated" in str(exc).lower() or isinstance(exc, EOFError):
            raise ImageError("the image is truncated: the file ends before its last pixels (the upload or "
                             "download was cut short?)", "truncated") from exc
        raise ImageError("the image data is corrupt: its pixels cannot be decoded", "corrupt") from exc
    try:
        image = reduce_to(image, limits.decode_side)  # before any conversion: conversions copy every pixel
    except Exception as exc:  # decoded, but in a state Pillow cannot resample (damaged mode or palette)
        raise ImageError("the image data is corrupt: its pixels cannot be used", "corrupt") from exc
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a damaged EXIF block only loses the rotation, not the upload
        pass
    try:
        return to_rgb(image)
    except Exception as exc:
        raise ImageError("the image data is corrupt: its colours cannot be converted", "corrupt") from exc


def reduce_to(image: Image.Image, side: int) -> Image.Image:
    """The image box-averaged down to at most `side` on its longest edge (metadata kept), in any mode."""
    if max(image.size) <= side:
        return image
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    reduced = image.resize(size, Image.Resampling.BOX)  # "P" and "1" resample by nearest, palette kept
    reduced.info = dict(image.info)  # EXIF orientation and transparency
    return reduced


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency composited onto white, 16-bit and float scaled to 8-bit."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.nan_to_num(np.asarray(image, dtype=np.float32))
        # float images are usually 0..1 (scientific TIFFs); whole numbers 0..255, or 16-bit up to their maximum
        high = 1.0 if image.mode == "F" and values.max() <= 1.0 else values.max() if values.max() > 255 else 255.0
        image = Image.fromarray((np.clip(values, 0, None) * (255.0 / max(high, 1e-9))).astype(np.uint8))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")
