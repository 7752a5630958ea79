"""Images for the browser: uint8 arrays -> base64 PNG data URLs, heatmap overlays, upscaling.

    src = png_data_url(image, scale=4)                        # a 28x28 uint8 image as a 112x112 PNG
    src = png_data_url(overlay(image, heatmap, opacity=0.5))  # Grad-CAM on top of the image

Galleries are plain `html.Img` elements with these data URLs: one PNG per image is far lighter
in the browser than a plotly heatmap per image.
"""

from __future__ import annotations

import base64
import functools
import io

import numpy as np
from PIL import Image

DEFAULT_COLORMAP = "jet"  # the usual Grad-CAM look: blue = ignored, red = decisive
DEFAULT_OPACITY = 0.6     # hottest pixels 60% colour, 40% garment: both stay readable
DISPLAY_SCALE = 4         # 28 px -> 112 px, nearest neighbour so pixels stay crisp


def upscale(image: np.ndarray, scale: int = DISPLAY_SCALE) -> np.ndarray:
    """Nearest-neighbour upscaling of an (H, W) or (H, W, C) array by an integer factor."""
    if scale <= 1:
        return image
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def png_bytes(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W) grayscale or (H, W, 3) RGB array."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, received dtype {image.dtype}")
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, received shape {image.shape}")
    buffer = io.BytesIO()
    # compress_level 1: these PNGs are tiny and made on every request, so speed beats size
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def png_data_url(image: np.ndarray, scale: int = DISPLAY_SCALE) -> str:
    """A `data:image/png;base64,...` URL for html.Img, upscaled for display."""
    encoded = base64.b64encode(png_bytes(upscale(image, scale))).decode("ascii")
    return f"data:image/png;base64,{encoded}"


@functools.lru_cache(maxsize=8)
def colormap_table(name: str = DEFAULT_COLORMAP) -> np.ndarray:
    """A (256, 3) uint8 lookup table of a matplotlib colormap."""
    import matplotlib

    cmap = matplotlib.colormaps[name]
    return (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def colorize(heatmap: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """A heatmap in [0, 1] (H, W) -> RGB uint8 (H, W, 3)."""
    levels = (np.clip(np.nan_to_num(heatmap), 0.0, 1.0) * 255).astype(np.uint8)
    return colormap_table(colormap)[levels]


def overlay(image: np.ndarray, heatmap: np.ndarray, opacity: float = DEFAULT_OPACITY,
            colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """Blend a colourised heatmap over a grayscale uint8 image: RGB uint8 of the same size.

    The colour's weight is opacity x heat: hot regions are coloured, the garment stays visible
    where the model does not look (a uniform blend tints the whole image blue).
    """
    image = np.asarray(image)
    if image.shape != heatmap.shape:
        raise ValueError(f"image {image.shape} and heatmap {heatmap.shape} differ in shape")
    heat = np.clip(np.nan_to_num(heatmap), 0.0, 1.0).astype(np.float32)[..., None]
    alpha = float(np.clip(opacity, 0.0, 1.0)) * heat
    gray = np.repeat(image[..., None].astype(np.float32), 3, axis=-1)
    blended = (1.0 - alpha) * gray + alpha * colorize(heatmap, colormap).astype(np.float32)
    return blended.round().clip(0, 255).astype(np.uint8)
