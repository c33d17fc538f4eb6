"""Step 6: evaluate a category by the MVTec AD protocol (image AUROC, pixel AUROC, PRO, F1).

Maps are evaluated at the model's input size (resize, then centre crop), not at the original
full resolution of the official protocol; every result records resize and crop. Masks are
optional: pixel metrics use the test images whose ground truth is known (good images count as
all-good), and the number of defective images without a mask is reported.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import Sample, good_images, test_samples
from ..masks import load_mask
from ..model import PatchCore
from . import metrics
from .operator import operator_metrics


@dataclass
class Evaluation:
    """Scores, maps and masks of one category's test set, plus the summary dict (JSON keys)."""

    category: str
    samples: list[Sample]
    scores: np.ndarray  # (N,)
    maps: np.ndarray  # (N, S, S)
    masks: np.ndarray | None  # (N, S, S) bool (all False where unknown), None without any mask
    summary: dict
    model: PatchCore

    @property
    def labels(self) -> np.ndarray:
        """(N,) 1 = defective."""
        return np.array([s.label for s in self.samples])


def known_masks(samples: list[Sample]) -> np.ndarray:
    """(N,) bool: the ground truth of each test image is known (a good image, or a mask file)."""
    return np.array([not s.label or s.mask is not None for s in samples], dtype=bool)


def load_masks(samples: list[Sample], resize: int, crop: int):
    """(N, S, S) bool masks (all False where no mask is known), or None if no defect has one.

    resize 0: masks at each image's original size (tiled models), a list where sizes differ."""
    if not any(s.label and s.mask is not None for s in samples):
        return None
    masks = [load_mask(s, resize, crop).numpy() for s in samples]
    return np.stack(masks) if len({m.shape for m in masks}) == 1 else masks


def pick(arrays, keep: np.ndarray):
    """arrays[keep] for an (N, ...) array or a list of arrays."""
    return arrays[keep] if isinstance(arrays, np.ndarray) else [a for a, k in zip(arrays, keep)
                                                                if k]


def mask_set(samples: list[Sample], model: PatchCore):
    """The test masks at the size the model's maps come at (original size for tiled models)."""
    c = model.config
    return load_masks(samples, 0, 0) if c.tile else load_masks(samples, c.resize, c.crop)


def score_test_set(samples: list[Sample], scores: np.ndarray, maps: np.ndarray,
                   masks: np.ndarray | None, threshold: float | None = None) -> dict:
    """The protocol's figures for predictions on a test set: AUROCs, PRO, F1-optimal threshold;
    with the model's `threshold`, the operator's figures too (operator.py).

    Pixel metrics use the images whose ground truth is known; a warning names the defective
    images without a mask, and `n_masks_missing` counts them."""
    labels, known = np.array([s.label for s in samples]), known_masks(samples)
    missing = [str(s.path) for s, k in zip(samples, known) if not k]
    if missing and masks is not None:
        warnings.warn(f"{len(missing)} defective test images have no mask (e.g. {missing[0]}); "
                      "pixel metrics use the other images", stacklevel=2)
    pixel = masks is not None and any(bool(m.any()) for m in pick(masks, known))
    f1 = metrics.f1_threshold(labels, scores)
    return dict(
        image_auroc=metrics.image_auroc(labels, scores),
        pixel_auroc=metrics.pixel_auroc(pick(masks, known), pick(maps, known)) if pixel else None,
        pro=metrics.pro_score(pick(masks, known), pick(maps, known)) if pixel else None,
        f1_threshold=f1[0] if f1 else None,
        image_f1=f1[1] if f1 else None,
        n_test=int(len(labels)), n_defective=int(labels.sum()), n_masks_missing=len(missing),
        **({} if threshold is None else operator_metrics(samples, scores, maps, masks,
                                                           threshold)))


def evaluate(category: str | Path, model: PatchCore | None = None, drop_suspects: bool = False,
             **options) -> Evaluation:
    """Fit on <category>/train/good (unless `model` is given; drop_suspects fits again without
    suspect training images), score <category>/test/*.

    With a model, `options` may hold only what applies when scoring: k and batch_size."""
    category = Path(category)
    samples = test_samples(category)  # layout errors before any slow work
    scoring = {}
    if model is None:
        model = PatchCore(**options)
        masks = mask_set(samples, model)
        model.fit(good_images(category), drop_suspects=drop_suspects)
    else:
        scoring = dict(options)
        masks = mask_set(samples, model)
    t0 = time.perf_counter()
    scores, amaps = model.predict([s.path for s in samples], **scoring)
    per_image = (time.perf_counter() - t0) / len(samples)
    summary = dict(score_test_set(samples, scores, amaps, masks, model.threshold),
                   **settings(model, per_image, scoring.get("k")))
    return Evaluation(category.name, samples, scores, amaps, masks, summary, model)


def settings(model: PatchCore, predict_seconds: float, scoring_k: int | None = None) -> dict:
    """The rest of `evaluate`'s JSON summary: threshold, sizes, timings and every setting."""
    c = model.config
    return dict(
        threshold=model.threshold,
        n_train=model.info.get("n_train"),
        train_suspects=model.info.get("train_suspects", []),
        dropped_suspects=model.info.get("dropped_suspects", 0),
        memory_bank_size=int(model.bank.patches.shape[0]),
        embed_dim=int(model.bank.patches.shape[1]),
        fit_seconds=model.info.get("fit_seconds"),
        predict_seconds_per_image=predict_seconds,
        weights=model.weights_used,
        weights_requested=c.weights,
        backbone=c.backbone,
        layers=list(c.layers),
        sampling=c.sampling,
        ratio=None if c.sampling == "none" else c.sampling_ratio,
        k=c.k if scoring_k is None else scoring_k,
        reweight=c.reweight,
        embed_dim_option=c.embed_dim,
        resize=c.resize,
        crop=c.crop,
        device=str(model.device),
        seed=c.seed,
        evaluated_at=(f"original resolution, {c.tile} px tiles (overlap {c.tile_overlap:g}) "
                      "stitched" if c.tile else
                      f"{c.input_size}x{c.input_size} after resize {c.resize}"
                      f"{f' and centre crop {c.crop}' if c.crop else ''} (not the official "
                      "full-resolution protocol)"),
        model=model.describe(),
    )
