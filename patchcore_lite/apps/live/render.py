"""Live demo pictures: heat colours on one fixed scale, ground-truth outlines, the overlay, PNG.

Plain numpy compositing (matplotlib only maps values to colours): a few milliseconds per frame
instead of a matplotlib figure, and no scipy import before the first frame.

    render_overlay(image (S, S, 3) uint8, amap (S, S), mask (S, S) | None, vmin, vmax)
        -> (S, 2S + gap, 3) uint8: camera image | heatmap overlay
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

GAP = 8  # pixels between the camera image and its overlay
HEAT_ALPHA = 0.5
MASK_RGB = (0, 255, 255)  # cyan ground-truth outline, absent from the inferno colormap


def to_png(im: Image.Image) -> bytes:
    """A PIL image as PNG bytes (fast compression: frames are made on every step)."""
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """PNG bytes as a data: URI for an <img> inside HTML."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def heat_rgb(amap: np.ndarray, vmin: float, vmax: float, cmap: str = "inferno") -> np.ndarray:
    """(H, W) scores -> (H, W, 3) uint8 colours on one fixed scale (matplotlib maps values only)."""
    from matplotlib import colormaps

    norm = np.clip((np.asarray(amap, np.float64) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    lut = (colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)
    return lut[(norm * 255).round().astype(np.intp)]


def _outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """Boundary pixels of a bool mask, `width` pixels thick, inside the region (numpy erosion
    with a 4-neighbourhood: no scipy import before the first frame)."""
    inner = mask
    for _ in range(width):
        p = np.pad(inner, 1, constant_values=False)
        inner = inner & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def render_overlay(image: np.ndarray, amap: np.ndarray, mask: np.ndarray | None, vmin: float,
                   vmax: float, alpha: float = HEAT_ALPHA, gap: int = GAP) -> np.ndarray:
    """Image | heatmap overlay side by side, ground truth outlined in cyan on both panels:
    (S, S, 3) uint8 -> (S, 2S + gap, 3) uint8."""
    image = np.asarray(image, np.uint8)
    heat = heat_rgb(amap, vmin, vmax)
    blend = ((1 - alpha) * image + alpha * heat).round().astype(np.uint8)
    left, right = image.copy(), blend
    if mask is not None and np.any(mask):
        edge = _outline(np.asarray(mask) > 0.5)
        left[edge] = MASK_RGB
        right[edge] = MASK_RGB
    sep = np.full((image.shape[0], gap, 3), 255, np.uint8)
    return np.concatenate([left, sep, right], axis=1)
