"""Scores that mean something: a threshold set from good images, a sensitivity knob, and a
normalized score that is exactly 0.5 at the threshold.

The model keeps the leave-one-image-out scores of good training images (each scored against a
bank without its own patches): their spread is what "normal" looks like for this part.
- `target_fpr_threshold`: the threshold above which a fraction F of those good scores lies.
- `effective_threshold`: sensitivity S in [0, 1] moves the threshold linearly between
  t + (t - m) (S = 0, fewer flags) and m (S = 1, half of the good images flagged), with t the
  model's threshold and m the median good score; S = 0.5 is t itself. No refit is needed.
- `normalize`: a logistic of the raw score, 0.5 at the effective threshold, 0.1 at the median good
  score below it (width (t - m) / ln 9), monotone in the score, in [0, 1].
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .errors import PatchCoreError

LN9 = math.log(9.0)
THRESHOLD_QUANTILE = 0.99  # default threshold: this quantile of leave-one-out good scores


def check_fraction(value, flag: str, closed: bool = False) -> float:
    """A number in (0, 1) ([0, 1] when closed), or an error naming the flag."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not ((0 <= value <= 1) if closed else (0 < value < 1)):
        span = "[0, 1]" if closed else "(0, 1)"
        raise PatchCoreError(f"{flag}: must be a number in {span}, got {value!r}")
    return float(value)


def finite(value, name: str) -> float:
    """A finite real number (a bool, string or None is not one), or an error naming `name`."""
    try:
        v = None if isinstance(value, (bool, np.bool_, str, bytes)) else float(value)
    except (TypeError, ValueError, RuntimeError):  # None, arrays, tensors of several values
        v = None
    if v is None or not math.isfinite(v):
        raise PatchCoreError(f"{name}: must be a finite number, got {value!r:.60}")
    return v


def as_scores(scores) -> np.ndarray:
    """Scores as a float64 array: numbers only (NaN allowed, it is flagged), else an error."""
    a = None if scores is None or isinstance(scores, (str, bytes)) else np.asarray(scores)
    if a is None or a.dtype.kind not in "iuf":
        raise PatchCoreError(f"scores: expected numbers, got {scores!r:.60}")
    return a.astype(np.float64)


def target_fpr_threshold(good_scores, fpr: float) -> tuple[float, dict]:
    """Threshold flagging a fraction `fpr` of good images, from n leave-one-out good scores.

    The estimate is a sample quantile: its false-alarm rate has a standard error of about
    sqrt(F (1 - F) / n); below F = 1/n the quantile is the largest good score (warned)."""
    s = np.sort(np.asarray(good_scores, dtype=np.float64))
    n = len(s)
    fpr = check_fraction(fpr, "--target-fpr")
    if fpr < 1.0 / n:
        warnings.warn(f"--target-fpr {fpr:g} is below 1/n = {1 / n:.3g} for the {n} good images "
                      "scored: the threshold is their largest score, the rate is not resolved",
                      stacklevel=2)
    t = float(np.quantile(s, 1.0 - fpr))
    info = dict(method="target false-alarm rate on leave-one-image-out good scores",
                target_fpr=fpr, n_images=n, fpr_std_error=math.sqrt(fpr * (1 - fpr) / n),
                fpr_on_good=float(np.mean(s >= t)))
    return t, info


def default_threshold(good_scores, target_fpr: float | None) -> tuple[float, dict]:
    """A model's default threshold and how it was set: the THRESHOLD_QUANTILE of the
    leave-one-out good scores, or the --target-fpr quantile."""
    if target_fpr is not None:
        return target_fpr_threshold(good_scores, target_fpr)
    t = float(np.quantile(np.asarray(good_scores, dtype=np.float64), THRESHOLD_QUANTILE))
    return t, dict(method="leave-one-image-out quantile", quantile=THRESHOLD_QUANTILE,
                   n_images=len(good_scores))


def reference(good_scores, map_low: float | None) -> float:
    """The typical good score m: the median of the stored good scores (older model files: the
    low end of the heatmap colour range, itself the median good pixel)."""
    if good_scores:
        return float(np.median(np.asarray(good_scores, dtype=np.float64)))
    return float(map_low if map_low is not None else 0.0)


def width(threshold: float, ref: float) -> float:
    """Logistic width: the median good score maps to 0.1."""
    return max(threshold - ref, 1e-6 * max(abs(threshold), 1.0)) / LN9


def effective_threshold(threshold: float, ref: float, sensitivity: float = 0.5) -> float:
    """The threshold at sensitivity S (0.5 = the model's own)."""
    s = check_fraction(sensitivity, "--sensitivity", closed=True)
    return threshold - (2.0 * s - 1.0) * max(threshold - ref, 0.0)


def normalize(scores, threshold: float, w: float) -> np.ndarray:
    """Raw scores -> [0, 1], exactly 0.5 at `threshold`, monotone; NaN scores -> 1 (flagged)."""
    s, threshold = as_scores(scores), finite(threshold, "threshold")
    z = np.clip((s - threshold) / w, -700, 700)
    n = 1.0 / (1.0 + np.exp(-z))
    n = np.where(s >= threshold, np.maximum(n, 0.5), np.minimum(n, np.nextafter(0.5, 0)))
    return np.where(np.isnan(s), 1.0, n)


class Calibrated:
    """What a model that scores needs to decide: `threshold`, `good_scores` (may be empty) and
    `map_range` attributes give the effective threshold and normalized scores (PatchCore and
    the ONNX model share this)."""

    threshold: float
    good_scores: list[float]
    map_range: tuple[float, float]

    def effective_threshold(self, threshold: float | None = None,
                            sensitivity: float | None = None) -> float:
        """The threshold a prediction uses: `threshold` if given, else the model's moved by
        `sensitivity` (0-1, 0.5 = the model's own); giving both is an error."""
        if threshold is not None and sensitivity is not None:
            raise PatchCoreError("--threshold and --sensitivity exclude each other: give one")
        if threshold is not None:
            return finite(threshold, "--threshold")
        ref = reference(self.good_scores, self.map_range[0])
        return effective_threshold(self.threshold, ref,
                                   0.5 if sensitivity is None else sensitivity)

    def normalized(self, scores, threshold: float) -> np.ndarray:
        """Scores mapped to [0, 1], exactly 0.5 at `threshold` (see the module docstring)."""
        ref = reference(self.good_scores, self.map_range[0])
        return normalize(scores, threshold, width(self.threshold, ref))

    def regions(self, amap, threshold: float, score: float | None = None,
                size: tuple[int, int] | None = None, min_area: int = 0) -> list[dict]:
        """Defect regions of one anomaly map at `threshold` (see regions.py): boxes in the
        original image's pixels when its `size` (H, W) is given, else in the map's pixels. Pass
        the image `score`: the map is then stretched to peak at it, so a flagged image always
        has a region (as `predict` does)."""
        from . import regions  # scipy loads only when regions are asked for

        return regions.image_regions(self, amap, threshold, score, size, min_area)
