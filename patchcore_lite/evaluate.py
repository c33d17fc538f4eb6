"""Step 6: evaluate a category by the MVTec AD protocol (image AUROC, pixel AUROC, PRO, F1).

Maps are evaluated at the model's input size (resize, then centre crop), not at the original
full resolution of the official protocol; every result records resize and crop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import metrics
from .data import Sample, good_images, load_mask, test_samples
from .model import PatchCore


@dataclass
class Evaluation:
    """Scores, maps and masks of one category's test set, plus the summary dict (JSON keys)."""

    category: str
    samples: list[Sample]
    scores: np.ndarray  # (N,)
    maps: np.ndarray  # (N, S, S)
    masks: np.ndarray | None  # (N, S, S) bool, None when some defect image has no mask
    summary: dict
    model: PatchCore

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples])


def load_masks(samples: list[Sample], resize: int, crop: int) -> np.ndarray | None:
    """(N, S, S) bool masks, or None if any defective image lacks a ground-truth mask."""
    if any(s.label and s.mask is None for s in samples):
        return None
    return torch.stack([load_mask(s, resize, crop) for s in samples]).numpy()


def evaluate(category: str | Path, model: PatchCore | None = None, **options) -> Evaluation:
    """Fit on <category>/train/good (unless `model` is given), score <category>/test/*."""
    category = Path(category)
    samples = test_samples(category)  # layout errors before any slow work
    if model is None:
        model = PatchCore(**options)
        masks = load_masks(samples, model.config.resize, model.config.crop)
        model.fit(good_images(category))
    else:
        masks = load_masks(samples, model.config.resize, model.config.crop)
    t0 = time.perf_counter()
    scores, amaps = model.predict([s.path for s in samples])
    per_image = (time.perf_counter() - t0) / len(samples)
    labels = np.array([s.label for s in samples])
    summary = summarize(model, labels, scores, amaps, masks, per_image)
    return Evaluation(category.name, samples, scores, amaps, masks, summary, model)


def summarize(model: PatchCore, labels: np.ndarray, scores: np.ndarray, amaps: np.ndarray,
              masks: np.ndarray | None, predict_seconds: float) -> dict:
    """The JSON summary of DESIGN.md section 4: metrics, sizes, timings and every setting."""
    c = model.config
    f1 = metrics.f1_threshold(labels, scores)
    has_masks = masks is not None and bool(masks.any())
    return dict(
        image_auroc=metrics.image_auroc(labels, scores),
        pixel_auroc=metrics.pixel_auroc(masks, amaps) if has_masks else None,
        pro=metrics.pro_score(masks, amaps) if has_masks else None,
        threshold=model.threshold,
        f1_threshold=f1[0] if f1 else None,
        image_f1=f1[1] if f1 else None,
        n_train=model.info.get("n_train"),
        n_test=int(len(labels)),
        n_defective=int(labels.sum()),
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
        k=c.k,
        reweight=c.reweight,
        embed_dim_option=c.embed_dim,
        resize=c.resize,
        crop=c.crop,
        device=str(model.device),
        seed=c.seed,
        evaluated_at=f"{c.input_size}x{c.input_size} after resize {c.resize}"
                     f"{f' and centre crop {c.crop}' if c.crop else ''} (not the official "
                     "full-resolution protocol)",
        model=model.describe(),
    )
