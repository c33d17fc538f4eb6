"""Metrics against hand-computed values, sklearn, and naive reference implementations."""

from bisect import bisect

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from patchcore_lite.evaluation.counts import confusion_counts, precision_recall_f1
from patchcore_lite.evaluation.metrics import (
    f1_threshold,
    image_auroc,
    pixel_auroc,
    pro_curve,
    pro_score,
)

# ---------------------------------------------------------------- references


def naive_pro_curve(masks, maps):
    """Loop over every distinct threshold, highest first; (0, 0) prepended."""
    masks = masks > 0.5
    regions = []
    for i, mask in enumerate(masks):
        labeled, n = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += [(i, labeled == k) for k in range(1, n + 1)]
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        fprs.append((pred & ~masks).sum() / (~masks).sum())
        pros.append(np.mean([(pred[i] & r).sum() / r.sum() for i, r in regions]))
    return np.array(fprs), np.array(pros)


def official_area(x, y, x_max):
    """Port of trapezoid_area from the MVTec AD evaluation code, divided by x_max."""
    correction = 0.0
    if x_max not in x:
        ins = bisect(x, x_max)
        y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    keep = x <= x_max
    x, y = x[keep], y[keep]
    return (np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction) / x_max


def random_case(seed, n=4, size=24, decimals=1):
    """Blobby masks (one all-good image) and noisy maps rounded so that scores tie."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(size=(n, size, size)), sigma=(0, 2, 2))
    masks = noise > np.quantile(noise, 0.85)
    masks[0] = False
    maps = np.round(rng.random((n, size, size)) + masks * rng.random(), decimals)
    return masks, maps


# ---------------------------------------------------------------- PRO


def two_region_case():
    """Image 0: region A (2x2, 4 px), region B (4x4, 16 px); image 1: all good. 108 good px.

    Map: 2 of A's pixels at 1.0, all of B at 0.8, 3 false positives at 0.6, the rest
    (including A's other 2 pixels) at 0.0."""
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[0, 0:2, 0:2] = True  # A
    masks[0, 3:7, 3:7] = True  # B, not touching A even diagonally
    maps = np.zeros((2, 8, 8))
    maps[0, 0, 0:2] = 1.0
    maps[0, 3:7, 3:7] = 0.8
    maps[0, 7, 0] = maps[1, 0, 0] = maps[1, 5, 5] = 0.6
    return masks, maps


def test_pro_curve_hand_computed():
    fpr, pro = pro_curve(*two_region_case(), max_fpr=None)
    k = 3 / 108
    np.testing.assert_allclose(fpr, [0, 0, 0, k, 1])
    # t=1.0: A half covered, B not -> (0.5 + 0) / 2; t=0.8: (0.5 + 1) / 2; t=0.0: all
    np.testing.assert_allclose(pro, [0, 0.25, 0.75, 0.75, 1])


def test_pro_score_hand_computed_with_interpolation():
    k, max_fpr = 3 / 108, 0.1
    y_end = 0.75 + 0.25 * (max_fpr - k) / (1 - k)  # on the segment (k, 0.75) -> (1, 1)
    fpr, pro = pro_curve(*two_region_case(), max_fpr=max_fpr)
    np.testing.assert_allclose(fpr, [0, 0, 0, k, max_fpr])
    np.testing.assert_allclose(pro, [0, 0.25, 0.75, 0.75, y_end])
    area = 0.75 * max_fpr + 0.5 * (max_fpr - k) * (y_end - 0.75)
    assert pro_score(*two_region_case(), max_fpr=max_fpr) == pytest.approx(area / max_fpr)
    assert area / max_fpr == pytest.approx(0.756706, abs=1e-6)


def test_pro_all_good_image_only_adds_to_fpr():
    masks, maps = two_region_case()
    fpr_one, pro_one = pro_curve(masks[:1], maps[:1], max_fpr=None)
    np.testing.assert_allclose(pro_one, [0, 0.25, 0.75, 0.75, 1])
    np.testing.assert_allclose(fpr_one, [0, 0, 0, 1 / 44, 1])  # one false positive of 44


def test_pro_uses_8_connectivity():
    mask = np.zeros((6, 6), dtype=bool)
    mask[1, 1] = True
    mask[2:4, 2:4] = True  # touches (1, 1) only diagonally: one region of 5 pixels
    amap = mask * 0.5
    amap[1, 1] = 1.0
    _, pro = pro_curve(mask, amap, max_fpr=None)
    assert pro[1] == pytest.approx(1 / 5)  # 4-connectivity would give (1 + 0) / 2


def test_pro_perfect_and_constant_maps():
    masks, _ = random_case(0)
    assert pro_score(masks, masks.astype(float)) == pytest.approx(1.0)
    for max_fpr in (0.3, 0.05, 1.0):  # one threshold: straight line (0, 0) -> (1, 1)
        assert pro_score(masks, np.full(masks.shape, 0.7), max_fpr) == pytest.approx(max_fpr / 2)


def test_pro_undefined_cases():
    masks, maps = random_case(1)
    assert pro_score(np.zeros_like(masks), maps) is None  # no defect regions
    assert pro_curve(np.ones_like(masks), maps) is None  # no good pixels
    with pytest.raises(ValueError):
        pro_score(masks[:, :10], maps)
    with pytest.raises(ValueError):
        pro_curve(masks, maps, max_fpr=0)


@pytest.mark.parametrize("seed", range(5))
def test_pro_curve_matches_naive_loop(seed):
    masks, maps = random_case(seed)
    fpr, pro = pro_curve(masks.astype(np.uint8), maps, max_fpr=None)
    ref_fpr, ref_pro = naive_pro_curve(masks, maps)
    np.testing.assert_allclose(fpr, ref_fpr, atol=1e-12)
    np.testing.assert_allclose(pro, ref_pro, atol=1e-12)
    for max_fpr in (0.3, 0.1, 0.01):
        expected = official_area(ref_fpr, ref_pro, max_fpr)
        assert pro_score(masks, maps, max_fpr) == pytest.approx(expected, abs=1e-12)
        assert pro_curve(masks, maps, max_fpr)[0][-1] == max_fpr


def test_pro_curve_is_monotone_without_ties():
    masks, maps = random_case(7, decimals=12)
    fpr, pro = pro_curve(masks, maps, max_fpr=None)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0)
    assert fpr[-1] == 1.0 and pro[-1] == pytest.approx(1.0)


# ---------------------------------------------------------------- AUROC


def test_image_auroc_matches_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 50)
    scores = rng.random(50) + 0.3 * labels
    assert image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert image_auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0


def test_pixel_auroc_matches_sklearn_on_flattened():
    masks, maps = random_case(3)
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert pixel_auroc(masks, maps) == pytest.approx(expected)
    assert pixel_auroc(masks.astype(np.uint8) * 255, maps.astype(np.float32)) == pytest.approx(
        expected
    )


def test_auroc_single_class_is_none():
    assert image_auroc([0, 0, 0], [0.1, 0.5, 0.2]) is None
    assert image_auroc([1, 1], [0.1, 0.5]) is None
    assert pixel_auroc(np.zeros((2, 4, 4)), np.random.rand(2, 4, 4)) is None


# ---------------------------------------------------------------- F1 and counts


def brute_f1(labels, scores):
    """Best F1 over every candidate threshold (each distinct score)."""
    best = 0.0
    for t in np.unique(scores):
        c = confusion_counts(labels, scores, t)
        best = max(best, 2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_f1_threshold_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 40)
    scores = np.round(rng.random(40) + 0.4 * labels, 2)
    threshold, f1 = f1_threshold(labels, scores)
    assert f1 == pytest.approx(brute_f1(labels, scores))
    c = confusion_counts(labels, scores, threshold)
    assert 2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]) == pytest.approx(f1)


def test_f1_threshold_edge_cases():
    assert f1_threshold([0, 1, 1], [0.1, 0.5, 0.9]) == (0.5, 1.0)
    assert f1_threshold([1, 1], [0.3, 0.2]) == (0.2, 1.0)
    assert f1_threshold([0, 0], [0.3, 0.2]) is None


def test_confusion_counts():
    counts = confusion_counts([0, 0, 1, 1, 1], [0.1, 0.6, 0.5, 0.4, 0.9], 0.5)
    assert counts == {"tp": 2, "fp": 1, "tn": 1, "fn": 1}
    assert all(type(v) is int for v in counts.values())


def test_precision_recall_f1_by_hand():
    c = dict(tp=3, fp=1, tn=5, fn=2)
    assert precision_recall_f1(c) == dict(precision=0.75, recall=0.6, f1=6 / 9)
    assert precision_recall_f1(dict(tp=0, fp=0, tn=4, fn=0)) == dict(precision=None,
                                                                      recall=None, f1=None)
