"""Graders of notebook 05: ROC AUC from ranks (05.1), the F1-optimal threshold (05.2).

References: the kit's `metrics.image_auroc` and `metrics.f1_threshold` (its F1), with the
threshold rule of the exercise (on equal F1 the highest) applied to the kit's confusion counts.
Fixed cases: ties, one defect, perfect and inverted rankings, all scores tied, one class only,
labels as booleans, ints or floats, and a memory case where all pairs do not fit.
"""

from __future__ import annotations

import numpy as np

from ...evaluation import metrics
from ...evaluation.counts import confusion_counts
from ..coding import fail, rng, same_number, within_memory
from .runner import Learner

RANK_STEPS = {"roc_auc_score", "roc_curve", "auc", "rankdata", "mannwhitneyu",
              "average_precision_score", "precision_recall_curve", "f1_score",
              "binary_auroc", "AUROC", "rank"}
AUC_MEMORY = 16 * 2**20  # the pairs of the memory case: 144 million (1.15 GB as float64)


def _score_cases(g: np.random.Generator, hidden: bool):
    """(labels, scores) cases, fixed per exercise: see the module docstring."""
    labels = g.random(40) < 0.4
    yield labels, np.round(g.normal(labels * 1.0, 1.0), 1)  # rounding makes ties
    yield np.array([0, 0, 1, 0]), np.array([0.1, 0.4, 0.4, 0.2])  # one defect, tied
    yield np.array([0, 1, 0, 1, 1]), np.array([1.0, 2.0, 1.5, 3.0, 2.5])  # perfect
    yield np.array([1, 0, 1, 0]), np.array([0.1, 0.9, 0.2, 0.8])  # inverted
    yield np.array([1.0, 0.0, 0.0, 1.0, 0.0]), np.full(5, 0.3)  # all tied, float labels
    yield np.array([0, 0, 1, 0, 1]), np.array([8.0, 1.0, 9.0, 5.0, 2.0])  # F1 tied at 2 and 9
    if hidden:
        big = g.random(3000) < 0.2
        yield big, np.round(g.normal(big * 0.7, 1.0), 2)
        yield np.array([True, False, True, True]), np.array([2.0, 2.0, 1.0, 2.0])


def _one_class(g: np.random.Generator):
    """Only good images, then only defective ones: None either way."""
    return [(np.zeros(4, int), g.random(4)), (np.ones(3, bool), g.random(3))]


def grade_roc_auc(roc_auc, hidden: bool = False) -> None:
    """Exercise 05.1: roc_auc(labels, scores) numpy -> the image AUROC (ties count one half;
    None when only one class is present), without all n_pos x n_neg pairs in memory."""
    learner = Learner(roc_auc, "roc_auc", RANK_STEPS)
    g = rng("roc_auc" + str(hidden))
    cases = list(_score_cases(g, hidden)) + _one_class(g)
    for labels, scores in cases:
        expected = metrics.image_auroc(labels, scores)
        what = f"roc_auc on {len(labels)} images" if len(labels) > 6 else \
            f"roc_auc({labels.tolist()}, {np.round(scores, 3).tolist()})"
        same_number(learner(what, labels.copy(), scores.copy()), expected, what, rtol=1e-9)
    labels = g.random(40_000) < 0.1
    scores = np.round(g.normal(labels * 1.0, 1.0), 3)
    what = "roc_auc on 40,000 images (about 4,000 defective)"
    got, peak = learner.peak(what, labels, scores)
    within_memory(peak, AUC_MEMORY, what, "all pairs do not fit")
    same_number(got, metrics.image_auroc(labels, scores), what, rtol=1e-9)
    learner.done(len(cases) + 1)


def _best_threshold(labels, scores) -> tuple[float, float] | None:
    """The kit's F1 and, among distinct scores reaching it, the highest threshold."""
    kit = metrics.f1_threshold(labels, scores)
    if kit is None:
        return None
    best = [float(t) for t in np.unique(scores) if np.isclose(
        _f1(confusion_counts(labels, scores, t)), kit[1], rtol=1e-12, atol=1e-12)]
    return max(best), kit[1]


def _f1(c: dict) -> float:
    """F1 of confusion counts."""
    return 2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"])


def grade_f1_optimal_threshold(f1_optimal_threshold, hidden: bool = False) -> None:
    """Exercise 05.2: f1_optimal_threshold(labels, scores) -> (threshold, F1): flag when
    score >= threshold, F1 maximal, on equal F1 the highest threshold; None with no defect."""
    learner = Learner(f1_optimal_threshold, "f1_optimal_threshold", RANK_STEPS)
    g = rng("f1_optimal_threshold" + str(hidden))
    cases = list(_score_cases(g, hidden)) + [(np.zeros(3, int), g.random(3))]
    for labels, scores in cases:
        expected = _best_threshold(labels > 0.5, scores)
        what = f"f1_optimal_threshold({labels.tolist()}, {np.round(scores, 3).tolist()})" \
            if len(labels) <= 6 else f"f1_optimal_threshold on {len(labels)} images"
        got = learner(what, labels.copy(), scores.copy())
        if expected is None or got is None:
            same_number(got, expected, what)
            continue
        if not isinstance(got, tuple) or len(got) != 2:
            fail(f"{what}: return (threshold, f1), got {got!r}")
        same_number(got[1], expected[1], f"{what}, F1", rtol=1e-9)
        same_number(got[0], expected[0], f"{what}, threshold", rtol=1e-12)
    learner.done(len(cases))
