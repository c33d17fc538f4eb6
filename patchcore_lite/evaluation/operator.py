"""What an operator lives with, at the model's own threshold: false alarms per 1,000 good parts,
misses per 100 defects (each with a 95% Wilson interval and its counts), recall and AUROC per
defect type, the good parts flagged when no defect may pass, and AUPIMO.

Flagged means score >= threshold; a NaN score never passes (as in `predict`).

AUPIMO (Rippel et al. 2024, "Beyond the pixel AUROC"): for each defective image, the area under
its per-image overlap curve: TPR_i(t) (the fraction of its defect pixels with map >= t) against
the shared false-positive rate FPR(t) of the good test images (the mean over good images of the
fraction of their pixels >= t), integrated over FPR in [1e-5, 1e-4] on a log scale and divided by
ln(1e-4 / 1e-5), so 1 = every defect pixel found at a 1e-5 false-positive rate. Here the curve is
exact: FPR(t) is a step function of t, and for a rate f between two achievable levels
FPR(v_{j-1}) < f <= FPR(v_j) (v_j the j-th largest distinct good pixel value) the threshold is
v_j, the highest one that reaches f. It needs 1 / 1e-5 = 100,000 good pixels (at equal sizes) to
resolve the lower end; with fewer it is None and `note` says so.
"""

from __future__ import annotations

import math

import numpy as np

from . import metrics

Z95 = 1.959963984540054  # two-sided 95% normal quantile
FPR_RANGE = (1e-5, 1e-4)  # AUPIMO's integration range, on the good images' pixels


def flagged(scores, threshold: float) -> np.ndarray:
    """(N,) bool: score >= threshold, NaN scores flagged."""
    return ~(np.asarray(scores, dtype=np.float64).ravel() < threshold)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion k / n (None for n = 0)."""
    if n == 0:
        return None
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(k: int, n: int, per: int) -> dict:
    """k events out of n, per `per` parts: value, 95% Wilson interval, and the counts."""
    ci = wilson(k, n)
    return dict(value=per * k / n if n else None,
                ci95=[per * ci[0], per * ci[1]] if ci else None, count=int(k), n=int(n))


def at_threshold(labels, scores, threshold: float) -> dict:
    """false_alarms_per_1000 (good flagged) and misses_per_100 (defective passed)."""
    labels, flag = np.asarray(labels).ravel() > 0.5, flagged(scores, threshold)
    return dict(false_alarms_per_1000=rate(int((flag & ~labels).sum()), int((~labels).sum()),
                                           1000),
                misses_per_100=rate(int((~flag & labels).sum()), int(labels.sum()), 100))


def per_defect_type(defects, labels, scores, threshold: float) -> dict:
    """{type: {count, recall at the threshold, image AUROC against the good test images}}."""
    defects, labels = np.asarray(defects), np.asarray(labels).ravel() > 0.5
    scores, flag = np.asarray(scores, dtype=np.float64).ravel(), flagged(scores, threshold)
    out = {}
    for d in sorted(set(defects[labels].tolist())):
        sel = labels & (defects == d)
        both = sel | ~labels
        out[d] = dict(count=int(sel.sum()), recall=float(flag[sel].mean()),
                      image_auroc=metrics.image_auroc(labels[both], scores[both]))
    return out


def good_flagged_at_full_recall(labels, scores) -> float | None:
    """Fraction of good images flagged at the highest threshold that flags every defective one
    (the lowest defective score); None without good or defective images."""
    labels, s = np.asarray(labels).ravel() > 0.5, np.asarray(scores, dtype=np.float64).ravel()
    if labels.all() or not labels.any():
        return None
    bad = s[labels]
    t = float(np.min(bad[~np.isnan(bad)])) if (~np.isnan(bad)).any() else np.inf
    return float(flagged(s[~labels], t).mean())


def shared_fpr(good_maps) -> tuple[np.ndarray, np.ndarray]:
    """Distinct good-pixel values v (descending) and the shared FPR at each threshold v: the
    mean over good images of the fraction of their pixels >= v. NaN pixels count as +inf."""
    vals = np.concatenate([np.ravel(m) for m in good_maps]).astype(np.float64)
    weights = np.concatenate([np.full(np.size(m), 1.0 / (np.size(m) * len(good_maps)))
                              for m in good_maps])
    vals = np.where(np.isnan(vals), np.inf, vals)
    order = np.argsort(-vals, kind="stable")
    v, fpr = vals[order], np.cumsum(weights[order])
    last = np.append(v[1:] != v[:-1], True)  # the last pixel of each run of equal values
    return v[last], np.minimum(fpr[last], 1.0)


def in_range(levels: np.ndarray, fpr: np.ndarray, fpr_range: tuple[float, float] = FPR_RANGE):
    """The levels whose FPR step (fpr[j-1], fpr[j]] meets the range: (levels, step starts, ends)."""
    prev = np.concatenate([[0.0], fpr[:-1]])
    keep = (fpr > fpr_range[0]) & (prev < fpr_range[1])
    return levels[keep], prev[keep], fpr[keep]


def aupimo_image(amap, mask, steps, fpr_range: tuple[float, float] = FPR_RANGE) -> float:
    """AUPIMO of one defective image (a mask with defect pixels); `steps` from `in_range`."""
    levels, prev, fpr = steps
    lo, hi = fpr_range
    d = np.asarray(amap, dtype=np.float64)[np.asarray(mask) > 0.5]
    d = np.sort(np.where(np.isnan(d), np.inf, d))  # the image's defect pixels
    tpr = (len(d) - np.searchsorted(d, levels, side="left")) / len(d)  # fraction >= each level
    a, b = np.maximum(prev, lo), np.minimum(fpr, hi)  # the part of each step inside the range
    return float(np.sum(tpr * np.log(np.maximum(b, a) / a)) / math.log(hi / lo))


def aupimo(labels, maps, masks, names, fpr_range: tuple[float, float] = FPR_RANGE) -> dict:
    """AUPIMO of every defective image with a mask: mean, per image {name: value}, the range and
    the number of good pixels. None (with `note`) when the good pixels cannot resolve the range."""
    labels = np.asarray(labels).ravel() > 0.5
    good = [m for m, lab in zip(maps, labels) if not lab]
    bad = [(n, m, k) for n, m, k, lab in zip(names, maps, masks, labels)
           if lab and k is not None and bool(np.any(np.asarray(k) > 0.5))]
    out = dict(mean=None, per_image={}, fpr_range=list(fpr_range),
               n_good_pixels=int(sum(np.size(m) for m in good)), n_images=len(bad))
    if not good or not bad:
        return dict(out, note="needs good test images and defective ones with masks")
    levels, fpr = shared_fpr(good)
    if fpr[0] > fpr_range[0]:
        return dict(out, note=f"the good test pixels cannot resolve a false-positive rate of "
                              f"{fpr_range[0]:g} (lowest rate {fpr[0]:.2g}): about "
                              f"{1 / fpr_range[0]:,.0f} good pixels are needed")
    steps = in_range(levels, fpr, fpr_range)
    per = {str(n): aupimo_image(m, k, steps, fpr_range) for n, m, k in bad}
    return dict(out, mean=float(np.mean(list(per.values()))), per_image=per)


def operator_metrics(samples, scores, maps, masks, threshold: float) -> dict:
    """Every figure of this module for a test set at the model's default threshold (JSON keys)."""
    labels = np.array([s.label for s in samples])
    known = [s.label and s.mask is not None for s in samples]
    mask_list = [None if masks is None or not k else masks[i] for i, k in enumerate(known)]
    return dict(at_threshold(labels, scores, threshold),
                per_defect_type=per_defect_type([s.defect for s in samples], labels, scores,
                                                threshold),
                good_flagged_at_full_recall=good_flagged_at_full_recall(labels, scores),
                aupimo=aupimo(labels, maps, mask_list, [str(s.path) for s in samples]))
