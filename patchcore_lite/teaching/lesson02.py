"""Lesson 02, patch embedding: 3x3 aggregation, fusing layers on one grid, the embedding as
colours (PCA), and what reducing its dimension keeps.

Views (compute, then draw), the PCA app, then the notebook's self-checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from .. import embedding
from ..data import test_samples
from ..evaluation import plots
from .checks import Verdict, exact, ints, number
from .view import View, array, defect_types, image_batch, layer_shapes, live, pca, table


def test_images(category: Path, resize: int = 256, crop: int = 224):
    """Two good test images and the first image of two defect types: a (4, 3, crop, crop) batch
    and its names."""
    samples = test_samples(category)
    good = [s for s in samples if s.defect == "good"][:2]
    bad = [next(s for s in samples if s.defect == d) for d in defect_types(category)[1:3]]
    return image_batch(good + bad, resize, crop)


# ---- views ----------------------------------------------------------------------------------

def aggregation_view(feat: torch.Tensor, channel: int = 0, index: int = 0,
                     subtitle: str = "") -> View:
    """One channel before and after embedding.aggregate (3x3 mean, stride 1)."""
    before = feat[index:index + 1]
    after = embedding.aggregate(before)
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    lo, hi = float(before[0, channel].min()), float(before[0, channel].max())
    for ax, f, t in zip(axes, (before, after), ("raw feature map", "after 3x3 aggregation")):
        ax.imshow(array(f[0, channel]), cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"{t}\nchannel {channel}, {f.shape[-2]}x{f.shape[-1]} grid", fontsize=9)
        ax.set_axis_off()
    if subtitle:
        fig.suptitle(subtitle, fontsize=8)
    data = dict(shape_before=tuple(before.shape), shape_after=tuple(after.shape),
                std_before=float(before[0, channel].std()),
                std_after=float(after[0, channel].std()))
    return View(data, [fig])


def pca_rgb(emb: torch.Tensor) -> tuple[np.ndarray, list[float]]:
    """(B, h, w, D) patch embeddings -> (B, h, w, 3) colours from the top 3 principal components.

    One PCA over all patches of all images, so equal colours mean similar patches everywhere."""
    b, h, w, d = emb.shape
    proj, ratio = pca(emb.reshape(-1, d), 3)
    proj = array(proj)
    if proj.shape[1] < 3:
        proj = np.pad(proj, ((0, 0), (0, 3 - proj.shape[1])))
    lo, hi = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
    rgb = np.clip((proj - lo) / np.maximum(hi - lo, 1e-9), 0, 1)
    return rgb.reshape(b, h, w, 3), [float(r) for r in ratio]


def pca_rgb_view(images: torch.Tensor, feats: dict, layers: Sequence[str], local: bool = True,
                 names: Sequence[str] | None = None, subtitle: str = "") -> View:
    """Patch embeddings of `layers` (with or without 3x3 aggregation) as a PCA-to-RGB picture."""
    layers = sorted(layers, key=list(feats).index)  # shallow first, as `feats` is ordered
    emb = embedding.embed([feats[layer] for layer in layers], local=local)  # (B, h, w, D)
    b, h, w, d = emb.shape
    rgb, ratio = pca_rgb(emb)
    s = images.shape[-1]
    fig = Figure(figsize=(2.4 * b, 5.0), layout="constrained")
    axes = fig.subplots(2, b, squeeze=False)
    for i in range(b):
        axes[0, i].imshow(plots.to_rgb(images[i]))
        axes[0, i].set_title(names[i] if names else f"image {i}", fontsize=8)
        axes[1, i].imshow(rgb[i], extent=(0, s, s, 0), interpolation="nearest")
        for ax in axes[:, i]:
            ax.set_axis_off()
    fig.suptitle(f"{' + '.join(layers)}, {'with' if local else 'without'} 3x3 aggregation: "
                 f"{h}x{w} patches of D = {d}; PCA top-3 explain "
                 f"{100 * sum(ratio):.0f}%\n{subtitle}", fontsize=9)
    data = dict(layers=list(layers), local=local, grid=(h, w), dim=d, patches_per_image=h * w,
                explained=ratio)
    return View(data, [fig])


def distances_kept(feats: Sequence[torch.Tensor], dims: Sequence[int] = (64, 192),
                   n_pairs: int = 3000, seed: int = 0) -> dict:
    """Distances of random patch pairs before and after embedding.reduce_dim to each of `dims`.

    feats: the layer maps to fuse (B, C_l, h_l, w_l). Returns rows (dim, bytes per bank patch,
    correlation of pair distances with the full ones), the full and each reduced distance."""
    fused = embedding.fuse([embedding.aggregate(f) for f in feats])  # (B, D, h, w), one grid
    per_layer = list(torch.split(fused, [f.shape[1] for f in feats], dim=1))
    full = fused.permute(0, 2, 3, 1).reshape(-1, fused.shape[1])
    g = torch.Generator().manual_seed(seed)
    i, j = torch.randint(full.shape[0], (2, n_pairs), generator=g)
    d_full = array((full[i] - full[j]).norm(dim=1))
    rows = [dict(dim=full.shape[1], bytes_per_patch=4 * full.shape[1], correlation=1.0)]
    reduced = {}
    for dim in dims:
        red = embedding.reduce_dim(per_layer, dim).permute(0, 2, 3, 1).reshape(-1, dim)
        reduced[dim] = array((red[i] - red[j]).norm(dim=1))
        rows.append(dict(dim=dim, bytes_per_patch=4 * dim,
                         correlation=float(np.corrcoef(d_full, reduced[dim])[0, 1])))
    return dict(rows=rows, full=d_full, reduced=reduced)


def reduction_view(feats: Sequence[torch.Tensor], dims: Sequence[int] = (64, 192),
                   n_pairs: int = 3000, seed: int = 0, subtitle: str = "") -> View:
    """How well embedding.reduce_dim keeps distances between patches: one scatter per dimension."""
    d = distances_kept(feats, dims, n_pairs, seed)
    fig = Figure(figsize=(3.3 * len(dims), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(dims)))
    full_dim = d["rows"][0]["dim"]
    for ax, row in zip(axes, d["rows"][1:]):
        ax.scatter(d["full"], d["reduced"][row["dim"]], s=2, alpha=0.3)
        ax.set(xlabel=f"distance, D = {full_dim}", ylabel=f"distance, D = {row['dim']}",
               title=f"reduce_dim to {row['dim']}: r = {row['correlation']:.3f}")
    if subtitle:
        fig.suptitle(subtitle, fontsize=8)
    return View(dict(rows=d["rows"]), [fig], table(d["rows"]))


# ---- apps -----------------------------------------------------------------------------------

def pca_app(images: torch.Tensor, feats: dict, names=None, subtitle: str = ""):
    """Layer-combination dropdown and aggregation checkbox over `pca_rgb_view`."""
    import ipywidgets as W

    ls = list(feats)
    combos = [(layer,) for layer in ls] + [tuple(ls[i:i + 2]) for i in range(len(ls) - 1)]
    combos += [tuple(ls)] if len(ls) > 2 else []
    options = [(" + ".join(c), c) for c in combos]
    default = ("layer2", "layer3") if ("layer2", "layer3") in combos else combos[0]
    controls = dict(layers=W.Dropdown(options=options, value=default, description="layers"),
                    local=W.Checkbox(value=True, description="3x3 aggregation"))
    return live(pca_rgb_view, controls, images=images, feats=feats, names=names,
                subtitle=subtitle)


# ---- checks ---------------------------------------------------------------------------------

def patches_and_dim(layers: Iterable[str], backbone: str = "resnet18",
                    input_size: int = 224) -> tuple[int, int]:
    """(patches per image, D) of the embedding of `layers`, from zero maps of the right shapes."""
    shapes = layer_shapes(backbone, input_size)
    emb = embedding.embed([torch.zeros(1, *shapes[layer]) for layer in layers])
    return emb.shape[1] * emb.shape[2], emb.shape[3]


def check_patches_and_dim(answer, layers: Iterable[str] = ("layer2", "layer3"),
                          backbone: str = "resnet18", input_size: int = 224) -> Verdict:
    """(patches per image, D) of the embedding of `layers`."""
    truth = patches_and_dim(tuple(layers), backbone, input_size)
    hints = [(lambda a: len(a) == 2 and a[0] == truth[0],
              "Patch count right; D is the sum of the layers' channels."),
             (lambda a: len(a) == 2 and a[1] == truth[1],
              "D right; the grid is the finest (shallowest) layer's grid.")]
    return exact(ints(answer), truth, f"{truth[0]} patches of {truth[1]} numbers per image.",
                 "the grid comes from the shallowest layer, D from all of them.",
                 "a tuple (patches per image, D)", hints, shown=answer)


def corner_count() -> int:
    """How many grid cells embedding.aggregate averages for a corner cell (probed, not stored)."""
    probe = torch.zeros(9, 1, 5, 5)  # each of the 9 cells near the corner set to 1 in turn
    for n in range(9):
        probe[n, 0, n // 3, n % 3] = 1.0
    return int((embedding.aggregate(probe)[:, 0, 0, 0] > 0).sum())


def check_corner_count(answer) -> Verdict:
    """How many grid cells does embedding.aggregate average for a corner cell?"""
    truth = corner_count()
    return number(answer, truth, f"{truth} cells lie inside the grid; the 5 padded ones count "
                  "as zeros (the sum is divided by 9, as in the official code), so corner "
                  "patches are damped, alike in training and test images.",
                  "which cells of a 3x3 window centred on a corner lie inside the grid?",
                  "a whole number", rel=0)
