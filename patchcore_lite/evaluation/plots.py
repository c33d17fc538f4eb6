"""Figures for the kit: heatmap overlays, ROC, score histograms, PRO curve. Agg-safe.

Functions build `matplotlib.figure.Figure` objects without pyplot, so nothing piles up in
pyplot's figure list and notebooks show each figure once; `save` writes a PNG."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from .metrics import image_auroc, pro_area, pro_curve

MASK_COLOR = "cyan"  # ground-truth outline; absent from the inferno colormap
BOX_COLOR = "lime"  # defect-region boxes (regions.py); absent from inferno too


def printable(text: str) -> str:
    """`text` with undecodable bytes of file names (surrogates) shown as U+FFFD, so that any
    name can be drawn or written as UTF-8."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _title(ax, title: str | None, subtitle: str | None) -> None:
    """Title with an optional second line (e.g. which weights were used)."""
    text = printable("\n".join(t for t in (title, subtitle) if t))
    if text:
        ax.set_title(text, fontsize=9 if subtitle else None)


def to_rgb(image) -> np.ndarray:
    """(H, W, 3) float image in [0, 1] from uint8 or float, HWC or CHW, grey or colour."""
    if hasattr(image, "detach"):  # a torch tensor, without importing torch here
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = image.transpose(1, 2, 0)  # CHW (a torch tensor's layout) -> HWC
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.dtype == np.uint8:
        return image / 255.0
    return np.clip(image.astype(np.float64), 0.0, 1.0)


def outline(ax, mask) -> None:
    """Outline the ground-truth mask (anything > 0.5) on `ax` in MASK_COLOR; None draws nothing."""
    if mask is None:
        return
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask) > 0.5
    if mask.any():
        ax.contour(mask, levels=[0.5], colors=MASK_COLOR, linewidths=1)


def draw_boxes(ax, boxes) -> None:
    """Draw defect-region boxes [x, y, w, h] (pixel edges) on `ax` in BOX_COLOR; None: nothing."""
    from matplotlib.patches import Rectangle

    for x, y, w, h in boxes or ():
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor=BOX_COLOR, lw=1.5))


def overlay(
    image,
    amap,
    mask=None,
    vmin=None,
    vmax=None,
    ax=None,
    title=None,
    alpha=0.5,
    subtitle=None,
    cmap="inferno",
    colorbar=True,
    boxes=None,
) -> Figure:
    """Anomaly heatmap over the image, ground truth outlined, defect-region `boxes` ([x, y, w, h]
    in the image's pixels) drawn; returns the figure drawn on.

    Pass one vmin/vmax for all images of a model so good parts stay dark; with both None the
    map is scaled to its own min/max (every image then shows a 'hot spot')."""
    image, amap = to_rgb(image), np.asarray(amap)
    if amap.shape != image.shape[:2]:
        raise ValueError(f"map {amap.shape} does not match image {image.shape[:2]}")
    if ax is None:
        ax = Figure(figsize=(4, 4)).subplots()
    ax.imshow(image)
    heat = ax.imshow(amap, cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax)
    outline(ax, mask)
    draw_boxes(ax, boxes)
    ax.set_axis_off()
    _title(ax, title, subtitle)
    if colorbar:
        ax.figure.colorbar(heat, ax=ax, fraction=0.046, pad=0.04)
    return ax.figure


def overlay_grid(
    images,
    maps,
    masks=None,
    titles=None,
    vmin=None,
    vmax=None,
    ncols=4,
    suptitle=None,
    alpha=0.5,
    cmap="inferno",
    boxes=None,
) -> Figure:
    """Grid of overlays on one colour scale (default: min/max over all maps) with one colorbar.

    masks, titles and boxes (each image's region boxes) are optional, and so is any single
    entry of them."""
    n = len(images)
    masks = [None] * n if masks is None else masks
    titles = [None] * n if titles is None else titles
    boxes = [None] * n if boxes is None else boxes
    vmin = float(min(np.min(m) for m in maps)) if vmin is None else vmin
    vmax = float(max(np.max(m) for m in maps)) if vmax is None else vmax
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3 * ncols, 3 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, image, amap, mask, title, box in zip(axes[:n], images, maps, masks, titles, boxes,
                                                 strict=True):
        overlay(image, amap, mask, vmin, vmax, ax, title, alpha, cmap=cmap, colorbar=False,
                boxes=box)
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.colorbar(axes[0].images[-1], ax=axes.tolist(), shrink=0.8, label="anomaly score")
    if suptitle:
        fig.suptitle(printable(suptitle))
    return fig


def roc_figure(labels, scores, title="Image ROC", subtitle=None) -> Figure:
    """ROC curve with the AUROC in the legend (label 1 = defective)."""
    fig = Figure(figsize=(4.5, 4), layout="constrained")
    ax = fig.subplots()
    auroc = image_auroc(labels, scores)
    if auroc is None:
        ax.text(0.5, 0.5, "ROC needs good and defective samples", ha="center", va="center")
    else:
        fpr, tpr, _ = roc_curve(np.asarray(labels).ravel() > 0.5, np.asarray(scores).ravel())
        ax.plot(fpr, tpr, label=f"AUROC = {auroc:.3f}")
        ax.legend(loc="lower right")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
    _title(ax, title, subtitle)
    return fig


def score_histogram(
    scores, labels, threshold=None, title="Image scores", subtitle=None, bins=30
) -> Figure:
    """Histograms of good vs defective scores on shared bins, with the threshold marked."""
    scores, labels = np.asarray(scores).ravel(), np.asarray(labels).ravel() > 0.5
    fig = Figure(figsize=(5.5, 3.5), layout="constrained")
    ax = fig.subplots()
    edges = np.histogram_bin_edges(scores, bins=bins)
    for name, sel, color in (("good", ~labels, "tab:green"), ("defective", labels, "tab:red")):
        if sel.any():
            ax.hist(scores[sel], bins=edges, alpha=0.6, color=color, label=f"{name} ({sel.sum()})")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", label=f"threshold = {threshold:.4g}")
    ax.set(xlabel="anomaly score", ylabel="images")
    ax.legend()
    _title(ax, title, subtitle)
    return fig


def pro_figure(masks, maps, max_fpr=0.3, title="PRO curve", subtitle=None) -> Figure:
    """PRO vs FPR up to max_fpr with the normalised area (the PRO score) shaded."""
    fig = Figure(figsize=(4.5, 4), layout="constrained")
    ax = fig.subplots()
    curve = pro_curve(masks, maps, max_fpr)
    if curve is None:
        ax.text(0.5, 0.5, "PRO needs defect regions and good pixels", ha="center", va="center")
    else:
        fpr, pro = curve
        ax.plot(fpr, pro, label=f"PRO (FPR <= {max_fpr}) = {pro_area(fpr, pro):.3f}")
        ax.fill_between(fpr, pro, alpha=0.3)
        ax.legend(loc="lower right")
    ax.set(
        xlabel="false positive rate (pixels)",
        ylabel="per-region overlap",
        xlim=(0, max_fpr),
        ylim=(0, 1.02),
    )
    _title(ax, title, subtitle)
    return fig


def save(fig: Figure, path) -> Path:
    """Write the figure as PNG (dpi 100, tight box) through the kit's one writer (folders
    created, devices and symlinks never replaced), then close it."""
    from .. import io

    try:
        return io.write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100,
                                                             bbox_inches="tight"))
    finally:
        plt.close(fig)
