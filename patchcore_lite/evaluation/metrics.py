"""MVTec AD metrics: image/pixel AUROC, PRO, F1-optimal threshold. Numpy in, 0-1 floats out."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.integrate import trapezoid
from sklearn.metrics import precision_recall_curve, roc_auc_score


def _binary(masks) -> np.ndarray:
    """Bool array from bool, 0/1, 0/255 or float masks (> 0.5 counts as defective)."""
    return np.asarray(masks) > 0.5


def _check_maps(masks, maps) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Masks and maps as lists of (H_i, W_i) arrays, each mask the shape of its map.

    Accepts (N, H, W) arrays, one (H, W) image, or lists of images of different sizes (maps of
    a tiled model are at each image's original size)."""
    if isinstance(maps, (list, tuple)):
        masks, maps = [_binary(m) for m in masks], [np.asarray(m) for m in maps]
    else:
        masks, maps = _binary(masks), np.asarray(maps)
        if masks.shape != maps.shape:
            raise ValueError(f"masks {masks.shape} and maps {maps.shape} differ in shape")
        if maps.ndim == 2:
            masks, maps = masks[None], maps[None]
        if maps.ndim != 3:
            raise ValueError(f"expected (N, H, W) maps, got {maps.shape}")
        return list(masks), list(maps)
    for a, b in zip(masks, maps, strict=True):
        if a.shape != b.shape or a.ndim != 2:
            raise ValueError(f"a mask {a.shape} and its map {b.shape} differ in shape")
    return masks, maps


def _flat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)


def image_auroc(labels, scores) -> float | None:
    """Area under the ROC curve (label 1 = defective); None when only one class is present."""
    labels = _binary(labels).ravel()
    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, np.asarray(scores).ravel()))


def pixel_auroc(masks, maps) -> float | None:
    """AUROC over all pixels of all images flattened together (MVTec protocol).

    Maps are not copied: pass float32 to halve memory on large test sets."""
    masks, maps = _check_maps(masks, maps)
    return image_auroc(_flat(masks), _flat(maps))


def pro_curve(masks, maps, max_fpr: float | None = 0.3) -> tuple[np.ndarray, np.ndarray] | None:
    """PRO vs FPR curve, from (0, 0) up to FPR = max_fpr (interpolated there; None = full curve).

    Like the official MVTec code: sort all pixel scores once and accumulate per-pixel
    contributions (1/num_good for good pixels, 1/(region_size * num_regions) for defect pixels)
    instead of looping over thresholds. Regions are 8-connected ground-truth components.
    Returns (fpr, pro), or None when there are no defect regions or no good pixels."""
    if max_fpr is not None and not 0 < max_fpr <= 1:
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr}")
    masks, maps = _check_maps(masks, maps)
    weights, num_regions = [], 0
    for mask in masks:
        weight = np.zeros(mask.shape, dtype=np.float64)
        regions, n = ndimage.label(mask, structure=np.ones((3, 3)))
        sizes = np.bincount(regions.ravel())
        weight[mask] = 1.0 / sizes[regions[mask]]
        weights.append(weight)
        num_regions += n
    flat_masks, flat_maps = _flat(masks).astype(bool), _flat(maps)
    num_good = flat_masks.size - int(flat_masks.sum())
    if num_regions == 0 or num_good == 0:
        return None
    order = np.argsort(flat_maps)[::-1]  # descending scores
    scores = flat_maps[order]
    fpr = np.cumsum(~flat_masks[order]) / num_good
    pro = np.cumsum(_flat(weights)[order]) / num_regions
    last = np.append(scores[1:] != scores[:-1], True)  # last index of each distinct threshold
    fpr = np.concatenate([[0.0], fpr[last]])
    pro = np.concatenate([[0.0], np.clip(pro[last], 0.0, 1.0)])
    return (fpr, pro) if max_fpr is None else _truncate(fpr, pro, max_fpr)


def _truncate(fpr: np.ndarray, pro: np.ndarray, max_fpr: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the curve up to fpr == max_fpr, adding a linearly interpolated end point if needed."""
    end = np.searchsorted(fpr, max_fpr, side="right")  # fpr[:end] <= max_fpr, fpr[0] == 0
    x, y = fpr[:end], pro[:end]
    if x[-1] < max_fpr:
        t = (max_fpr - x[-1]) / (fpr[end] - x[-1])
        x, y = np.append(x, max_fpr), np.append(y, y[-1] + t * (pro[end] - y[-1]))
    return x, y


def pro_area(fpr: np.ndarray, pro: np.ndarray) -> float:
    """Trapezoid area under a PRO curve divided by its FPR range (1.0 = perfect)."""
    return float(trapezoid(pro, fpr) / fpr[-1])


def pro_score(masks, maps, max_fpr: float = 0.3) -> float | None:
    """Normalised area under the PRO curve up to max_fpr (MVTec: 0.3); None if undefined."""
    curve = pro_curve(masks, maps, max_fpr)
    return None if curve is None else pro_area(*curve)


def f1_threshold(labels, scores) -> tuple[float, float] | None:
    """F1-optimal threshold (anomalous when score >= threshold) and the F1 there.

    None when no image is defective (F1 undefined). Picked on the data it is scored on, so
    the F1 is optimistic."""
    labels, scores = _binary(labels).ravel(), np.asarray(scores).ravel()
    if not labels.any():
        return None
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])
