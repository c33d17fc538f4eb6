"""Lesson 00, overview and data: the pipeline, the data set's folders, a gallery, a first look.

Views (compute, then draw), the gallery app, then the notebook's self-checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

from ..data import Sample, load_image, test_samples
from ..evaluation import plots
from ..masks import load_mask
from .checks import Verdict, choice, number
from .view import View, array, compare, defect_types, first_of_each, live, sample_name, table

# ---- views ----------------------------------------------------------------------------------

TOP = [("good training\nimages", "00"), ("ResNet, hooks on\nlayer2 + layer3", "01"),
       ("3x3 aggregation,\nfuse on 28x28", "02"), ("all patches\n(N x 784 x D)", "02"),
       ("coreset:\nmemory bank", "03")]
BOTTOM = [("test image", "00"), ("same backbone\nand embedding", "01-02"),
          ("distance to nearest\nbank patch (kNN)", "04"), ("upsample +\nblur (sigma 4)", "04"),
          ("heatmap; score\n= max; threshold", "05")]


def pipeline_figure() -> Figure:
    """PatchCore in one picture: the fit path (top), the test path (bottom), notebook numbers."""
    fig = Figure(figsize=(12, 3.6))
    ax = fig.subplots()
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 3.6)
    ax.set_axis_off()

    def box(x, y, text, nb, color):
        ax.add_patch(FancyBboxPatch((x, y), 1.75, 0.95, boxstyle="round,pad=0.05", fc=color,
                                    ec="black", lw=0.8))
        ax.text(x + 0.875, y + 0.52, text, ha="center", va="center", fontsize=8.5)
        if nb:
            ax.text(x + 0.875, y - 0.17, f"notebook {nb}", ha="center", va="center",
                    fontsize=7, color="dimgray")

    def arrow(x0, y0, x1, y1):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", lw=1.2))

    for i, (text, nb) in enumerate(TOP):
        box(0.2 + 2.35 * i, 2.35, text, nb, "#dbeafe")
        if i:
            arrow(2.35 * i - 0.1, 2.82, 0.2 + 2.35 * i, 2.82)
    for i, (text, nb) in enumerate(BOTTOM):
        box(0.2 + 2.35 * i, 0.45, text, nb, "#fde2e2" if i >= 2 else "#e5e7eb")
        if i:
            arrow(2.35 * i - 0.1, 0.92, 0.2 + 2.35 * i, 0.92)
    arrow(0.2 + 2.35 * 4 + 0.875, 2.3, 0.2 + 2.35 * 2 + 1.4, 1.45)  # bank -> kNN
    ax.text(9.2, 1.85, "searched by", fontsize=8, color="dimgray")
    ax.text(0.2, 3.45, "fit (good images only)", fontsize=9, weight="bold")
    ax.text(0.2, 1.58, "predict", fontsize=9, weight="bold")
    return fig


def dataset_counts(root: str | Path) -> dict[str, dict]:
    """Per category: training images, test images per type (good included), masks."""
    counts = {}
    for cat in sorted(p for p in Path(root).iterdir() if (p / "train" / "good").is_dir()):
        samples = test_samples(cat)
        types: dict[str, int] = {}
        for s in samples:
            types[s.defect] = types.get(s.defect, 0) + 1
        counts[cat.name] = dict(train=len(list((cat / "train" / "good").iterdir())), test=types,
                                masks=sum(s.mask is not None for s in samples))
    return counts


def dataset_view(root: str | Path) -> View:
    """Counts per category: training images, good test images, each defect type, masks."""
    counts = dataset_counts(root)
    rows = []
    for name, c in counts.items():
        defects = {d: n for d, n in c["test"].items() if d != "good"}
        rows.append(dict(category=name, train_good=c["train"], test_good=c["test"].get("good", 0),
                         defect_types=", ".join(f"{d} ({n})" for d, n in defects.items()),
                         masks=c["masks"]))
    return View(counts, [], table(rows))


def gallery_images(category: Path, defect: str, n: int = 6, resize: int = 256):
    """The first n test samples of one type with their resized images and masks (numpy)."""
    samples = [s for s in test_samples(category) if s.defect == defect][:n]
    if not samples:
        raise ValueError(f"{category}: no test images of type '{defect}'")
    images = [load_image(s.path, resize, 0) for s in samples]
    masks = [array(load_mask(s, resize, 0)) for s in samples]
    return samples, images, masks


def gallery(root: str | Path, category: str, defect: str, n: int = 6, resize: int = 256,
            crop: int = 224) -> View:
    """The first n test images of one defect type, ground truth filled and outlined in cyan.

    Images are shown after the resize; the dashed square is the centre crop the model sees."""
    samples, images, masks = gallery_images(Path(root) / category, defect, n, resize)
    fractions = [float(m.mean()) for m in masks]
    fig = Figure(figsize=(2.6 * len(samples), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(samples)))
    for ax, s, img, mask, frac in zip(axes, samples, images, masks, fractions):
        ax.imshow(plots.to_rgb(img))
        if mask.any():
            ax.imshow(np.ma.masked_where(~mask, mask), cmap="cool", alpha=0.35, vmin=0, vmax=1)
            plots.outline(ax, mask)
        if crop:
            t = (resize - crop) / 2
            ax.add_patch(Rectangle((t, t), crop, crop, fill=False, ls="--", ec="white", lw=0.8))
        ax.set_title(f"{s.path.name}\n{100 * frac:.2g}% defect pixels", fontsize=8)
        ax.set_axis_off()
    fig.suptitle(f"{category} / {defect}: ground truth in cyan; dashed = {crop}x{crop} crop",
                 fontsize=10)
    data = dict(category=category, defect=defect, paths=[str(s.path) for s in samples],
                defect_fraction=fractions)
    return View(data, [fig])


def one_per_type(samples: Sequence[Sample]) -> list[Sample]:
    """The first test image of each type: 'good' first, then each defect type."""
    return [samples[idx[0]] for idx in first_of_each(samples).values()]


def first_look(model, samples: Sequence[Sample]) -> View:
    """Heatmaps of a few test images on the model's colour scale: what the course builds."""
    c = model.config
    scores, amaps = model.predict([s.path for s in samples])
    images = [plots.to_rgb(load_image(s.path, c.resize, c.crop)) for s in samples]
    masks = [array(load_mask(s, c.resize, c.crop)) for s in samples]
    lo, hi = model.map_range
    titles = []
    for s, sc in zip(samples, scores):
        a, t = compare(float(sc), model.threshold)
        titles.append(f"{sample_name(s)}\nscore {a} {'>=' if sc >= model.threshold else '<'} "
                      f"thr {t}")
    fig = plots.overlay_grid(images, amaps, masks, titles, lo, hi, ncols=len(samples),
                             suptitle=model.describe())
    data = dict(names=[sample_name(s) for s in samples], scores=scores.tolist(),
                threshold=model.threshold)
    return View(data, [fig])


# ---- apps -----------------------------------------------------------------------------------

def gallery_app(root: str | Path, category: str = "hex_nut", defect: str | None = None):
    """Category and defect-type dropdowns over `gallery` (defect types follow the category)."""
    import ipywidgets as W

    cats = sorted(p.name for p in Path(root).iterdir() if (p / "test").is_dir())
    types = defect_types(Path(root) / category)
    controls = dict(
        category=W.Dropdown(options=cats, value=category, description="category"),
        defect=W.Dropdown(options=types, value=defect or types[-1], description="defect"))

    def update(change, c):
        if change["owner"] is c["category"]:
            new = defect_types(Path(root) / c["category"].value)
            old = c["defect"].value
            c["defect"].options = new
            c["defect"].value = old if old in new else new[-1]

    return live(gallery, controls, update, root=root)


# ---- checks ---------------------------------------------------------------------------------

def check_training_data(answer) -> Verdict:
    """Which images does PatchCore need to fit? a) good and defective images with masks,
    b) good images only, c) defective images only."""
    return choice(answer, "b", "PatchCore learns from good images only; defects and masks are "
                  "needed only to *evaluate* it.", "a, b, c")


def check_crop_fraction(answer, resize: int = 256, crop: int = 224) -> Verdict:
    """What fraction of a resized image's area does the centre crop keep?"""
    truth = (crop / resize) ** 2
    return number(answer, truth, f"({crop}/{resize})^2 = {truth:.3f}: a defect in the outer "
                  f"ring of {resize - crop} pixels is never seen (hence `--crop 0`).",
                  "both sides shrink: square the ratio of the sides.", "a fraction, e.g. 0.5")


def check_why_good_tests(answer) -> Verdict:
    """Why does a test set need good images? a) to fit the model, b) to measure false alarms,
    c) to compute the masks."""
    return choice(answer, "b", "without good test images a model that flags everything would "
                  "look perfect; they count the false alarms (and the image AUROC needs both "
                  "classes).", "a, b, c", hint="Fitting uses train/good only. What would a model "
                  "that flags every image score on defects alone?")


def check_defect_types(category: str | Path, answer) -> Verdict:
    """How many defect types does the category's test set have ('good' is not a defect)?"""
    truth = len({s.defect for s in test_samples(category)} - {"good"})
    return number(answer, truth, f"{Path(category).name} has {truth} defect types.",
                  "count the folders of test/ other than good/.", "a whole number", rel=0)


def check_good_test_images(category: str | Path, answer) -> Verdict:
    """How many good (defect-free) test images does the category have?"""
    truth = sum(s.label == 0 for s in test_samples(category))
    return number(answer, truth, f"{truth} good test images; they measure false alarms.",
                  "count the images whose label is 0 (data.test_samples gives each image's "
                  "label).", "a whole number", rel=0)
