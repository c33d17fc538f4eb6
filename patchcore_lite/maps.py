"""Step 5: from a grid of patch scores to a pixel anomaly map.

The (h, w) patch-score grid is upsampled bilinearly to the input size and smoothed with a
Gaussian (sigma 4, as in the paper) so that heatmaps follow defects rather than grid cells.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SIGMA = 4.0


def gaussian_kernel(sigma: float = SIGMA, truncate: float = 4.0) -> torch.Tensor:
    """1-D normalised Gaussian with radius int(truncate * sigma + 0.5), like scipy.ndimage."""
    r = int(truncate * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).float()


def blur(maps: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """(B, H, W) -> (B, H, W) separable Gaussian blur, mirror padding (scipy mode='mirror')."""
    if sigma <= 0:
        return maps
    k = gaussian_kernel(sigma).to(maps.device, maps.dtype)
    r = k.numel() // 2
    x = maps[:, None]  # (B, 1, H, W)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    return x[:, 0]


def anomaly_map(patch_scores: torch.Tensor, size: tuple[int, int],
                sigma: float = SIGMA) -> torch.Tensor:
    """(B, h, w) patch scores -> (B, H, W) smoothed pixel scores at the input size."""
    up = F.interpolate(patch_scores[:, None], size=size, mode="bilinear", align_corners=False)
    return blur(up[:, 0], sigma)


def color_scale(good_maps: torch.Tensor, threshold: float) -> tuple[float, float]:
    """One heatmap colour range per model: the median good pixel is dark, the threshold mid-scale.

    Using the same range for every image keeps good parts dark instead of stretching noise.
    """
    lo = float(good_maps.flatten()[:: max(1, good_maps.numel() // 1_000_000)].median())
    hi = lo + 2.0 * max(threshold - lo, 1e-6)
    return lo, hi
