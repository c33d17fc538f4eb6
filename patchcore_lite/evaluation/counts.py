"""Confusion counts at a threshold, and precision, recall and F1 from them. Plain numpy.

Kept apart from metrics.py (scikit-learn, scipy) so that the live demo and the lessons can count
verdicts without loading those libraries. Anomalous means score >= threshold, everywhere.
"""

from __future__ import annotations

import numpy as np


def confusion_counts(labels, scores, threshold: float) -> dict[str, int]:
    """True/false positives/negatives at a threshold (label 1 = defective)."""
    labels = np.asarray(labels).ravel() > 0.5
    pred = np.asarray(scores, dtype=np.float64).ravel() >= threshold
    return {
        "tp": int(np.sum(pred & labels)),
        "fp": int(np.sum(pred & ~labels)),
        "tn": int(np.sum(~pred & ~labels)),
        "fn": int(np.sum(~pred & labels)),
    }


def precision_recall_f1(counts: dict[str, int]) -> dict[str, float | None]:
    """precision = tp / (tp + fp), recall = tp / (tp + fn), F1 = 2 tp / (2 tp + fp + fn).

    Each is None when its denominator is zero (undefined, not 0)."""
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    return dict(precision=tp / (tp + fp) if tp + fp else None,
                recall=tp / (tp + fn) if tp + fn else None,
                f1=2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None)
