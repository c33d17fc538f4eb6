"""Ground-truth masks of MVTec-layout test images, read as the images are (any format, EXIF
orientation, bit depth): any non-zero pixel is defect; a mask must match its image's size."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .data import Sample, _open, _oriented_size, _raw, resize_crop
from .errors import PatchCoreError


def load_mask(sample: Sample, resize: int, crop: int) -> torch.Tensor:
    """Ground-truth mask -> (S, S) bool: any non-zero pixel is defect; all False if no mask."""
    if sample.mask is None:
        w, h = (crop or resize,) * 2 if resize else _oriented_size(sample.path)
        return torch.zeros(h, w, dtype=torch.bool)
    mask, image_size = _open(sample.mask), _oriented_size(sample.path)
    if mask.size != image_size:
        raise PatchCoreError(f"{sample.mask}: mask size {mask.size} differs from its image "
                             f"{Path(sample.path).name} {image_size}")
    m = torch.from_numpy(_defect_pixels(_raw(mask), sample.mask))[None].float()  # (1, H, W)
    return resize_crop(m, resize, crop, nearest=True)[0] > 0.5


def _defect_pixels(a: np.ndarray, where: str | Path) -> np.ndarray:
    """(H, W, C) raw mask -> (H, W) bool. Transparent pixels are background; a mask whose
    colour is black everywhere but whose alpha varies is read from its alpha channel."""
    if not _is_binary(a):
        warnings.warn(f"{where}: mask is not binary (more than two distinct values); every "
                      "non-zero pixel counts as defect", stacklevel=3)
    if a.shape[-1] in (2, 4):
        colour, alpha = a[..., :-1], a[..., -1]
        if not colour.any() and alpha.min() != alpha.max():
            return alpha != 0
        return colour.any(-1) & (alpha != 0)
    return a.any(-1)


def _is_binary(a: np.ndarray) -> bool:
    """At most two distinct pixel values (a pixel = all its channels), in a few linear passes."""
    flat = a.reshape(-1, a.shape[-1])  # (H * W, C)
    if len(flat) == 0:
        return True
    other = (flat != flat[0]).any(1)
    if not other.any():
        return True
    second = flat[other.argmax()]
    return not (other & (flat != second).any(1)).any()
