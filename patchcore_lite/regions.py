"""Where the defect is: the connected regions of an anomaly map at or above the threshold, in the
original image's pixels, each with its bounding box, area and peak score.

- Regions are 8-connected components of the pixels whose map value is >= the threshold (a NaN
  pixel counts as above it, as a NaN score never passes).
- The map is first stretched so that its maximum equals the image score: the image score is the
  worst patch before the Gaussian blur, which lowers the map's peak (Eq. 7 reweighting moves
  the score too). Values at or below the map's median stay, the peak becomes the score, values
  in between scale linearly; the stretch is monotone, so a region is a level set of the map
  itself. An image has a region exactly when it is flagged, and the region around the map's
  peak has `peak` == the image score.
- Resize + centre crop models see only the crop. The map is put back into the resized frame and
  each original pixel takes the map pixel its centre falls on (nearest neighbour): original
  pixel x lies in map column floor((x + 0.5) * resize / W) - (resize - crop) // 2. Pixels
  outside the crop were never scored, so no region lies there: a defect in the margins is not
  found (fit with --crop 0 to see the whole image). Tiled models' maps are at the original size.
- `min_area` drops regions smaller than that many (original) pixels, except the region holding
  the map's peak, which is always kept: a flagged image always has at least one region.

    find(amap, threshold, score)  # -> [{"bbox": [x, y, w, h], "area", "peak"}, ...] peak first
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEFAULT_MIN_AREA = 0  # keep every region; the peak region is kept whatever its size
EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity, as for ground-truth regions in PRO


def _nearest(n: int, resize: int, crop: int) -> np.ndarray:
    """Map index of each of n original pixels along one side (outside the crop: < 0 or >= side)."""
    t = (resize - crop) // 2 if crop else 0
    return np.floor((np.arange(n) + 0.5) * resize / n).astype(np.int64) - t


def to_original(amap, size: tuple[int, int], resize: int, crop: int) -> np.ndarray:
    """(S, S) map of a resize (+ centre crop) model -> (H, W) map in the original image's pixels,
    nearest neighbour; -inf outside the crop (never part of a region)."""
    amap = np.asarray(amap, dtype=np.float32)
    h, w = size
    side = crop or resize
    iy, ix = _nearest(h, resize, crop), _nearest(w, resize, crop)  # (H,), (W,)
    vy, vx = (iy >= 0) & (iy < side), (ix >= 0) & (ix < side)
    out = np.full((h, w), -np.inf, dtype=np.float32)
    out[np.ix_(vy, vx)] = amap[np.ix_(iy[vy], ix[vx])]
    return out


def stretched(amap, score: float | None) -> np.ndarray:
    """The map (float64) stretched above its median so that its largest finite value is the
    image score: values at or below the median b stay, the rest map to b + (m - b) (score - b) /
    (max - b). Monotone, so regions stay level sets of the map. A NaN score marks the map's peak
    as NaN (flagged). Unchanged without a score."""
    m = np.asarray(amap, dtype=np.float64)
    finite = np.isfinite(m)
    if score is None or not finite.any():
        return m
    top = float(m[finite].max())
    if score != score:  # NaN: the image is flagged, its peak pixel must be in a region
        return np.where(m == top, np.nan, m)
    b = min(float(np.median(m[finite])), float(score))
    if top <= b:  # a flat map: its peak pixels become the score
        return np.where(m == top, float(score), m)
    return np.where(m > b, b + (m - b) * ((float(score) - b) / (top - b)), m)


def find(amap, threshold: float, score: float | None = None, min_area: int = DEFAULT_MIN_AREA,
         normalize: Callable[[float], float] | None = None) -> list[dict]:
    """Regions of one (H, W) map at `threshold`, the region of the peak first, then by peak.

    Each: bbox [x, y, w, h] and area in the map's pixels, peak (on the image-score scale once
    `score` is given; None for NaN) and, with `normalize`, normalized_peak."""
    from scipy import ndimage  # loaded on first use: the command line starts faster

    m = stretched(amap, score)
    above = ~(m < threshold) & ~np.isneginf(m)  # NaN counts as above; -inf: outside the crop
    labels, n = ndimage.label(above, structure=EIGHT)
    if n == 0:
        return []
    top = np.where(np.isnan(m), np.inf, m)  # NaN is the worst value
    peak_label = labels[np.unravel_index(np.argmax(np.where(above, top, -np.inf)), m.shape)]
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    out = []
    for j, sl in enumerate(ndimage.find_objects(labels), start=1):
        if areas[j] < min_area and j != peak_label:
            continue
        vals = top[sl][labels[sl] == j]
        peak = float(vals.max())
        (y0, y1), (x0, x1) = ((s.start, s.stop) for s in sl)
        r = dict(bbox=[int(x0), int(y0), int(x1 - x0), int(y1 - y0)], area=int(areas[j]),
                 peak=None if peak == np.inf else peak)
        if normalize is not None:
            r["normalized_peak"] = float(normalize(peak if peak != np.inf else np.nan))
        out.append((j != peak_label, -peak, r))
    return [r for *_, r in sorted(out, key=lambda t: t[:2])]


def image_regions(model, amap, threshold: float, score: float | None = None,
                  size: tuple[int, int] | None = None, min_area: int = DEFAULT_MIN_AREA
                  ) -> list[dict]:
    """Regions of one of `model`'s maps: in the original image's pixels when `size` (H, W) is
    given (maps of resize/crop models mapped back), else in the map's pixels."""
    c = model.config
    if size is not None and not getattr(c, "tile", None):  # tiled maps: original size already
        amap = to_original(amap, size, c.resize, c.crop)
    return find(amap, threshold, score, min_area,
                lambda v: float(model.normalized(np.array([v]), threshold)[0]))


def original_map(model, amap, size: tuple[int, int]) -> np.ndarray:
    """One of `model`'s maps in the original image's pixels, for an overlay: NaN (drawn
    transparent) outside the crop, which was never scored."""
    c = model.config
    if getattr(c, "tile", None):  # tiled maps are at the original size already
        return np.asarray(amap, dtype=np.float32)
    m = to_original(amap, size, c.resize, c.crop)
    m[np.isneginf(m)] = np.nan
    return m


def for_images(model, paths, scores, amaps, threshold: float,
               min_area: int = DEFAULT_MIN_AREA) -> list[list[dict]]:
    """Regions of each predicted image in its original pixels (what `predict` writes)."""
    from .data import image_size

    return [model.regions(m, threshold, float(s), image_size(p), min_area)
            for p, s, m in zip(paths, scores, amaps)]
