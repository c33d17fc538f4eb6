"""Lesson 04, kNN scoring and heatmaps: patch scores to anomaly map, heatmaps on one colour
scale, and "why is this pixel anomalous" (the nearest normal patches, with their provenance).

Views (compute, then draw), the explain app, then the notebook's self-checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .. import maps
from ..data import Sample, load_image, test_samples
from ..evaluation import plots
from ..masks import load_mask
from .checks import Verdict, choice, close, exact, ints, number
from .view import Interactive, View, array, compare, live, plotly_title, sample_name


class ExplainLab:
    """Test images of one model, each embedded once: patch scores for any k, maps, masks."""

    def __init__(self, model, samples: Sequence[Sample]):
        self.model, self.samples = model, list(samples)
        self._img: dict = {}
        self._scores: dict = {}

    @classmethod
    def of_category(cls, model, category: str | Path) -> ExplainLab:
        """The lab of every test image of a category folder."""
        return cls(model, test_samples(category))

    @property
    def names(self) -> list[str]:
        """'defect/file.png' of each test image."""
        return [sample_name(s) for s in self.samples]

    def index(self, name: str) -> int:
        """Index of the test image called `name` ('defect/file.png')."""
        return self.names.index(name)

    def goods(self, n: int = 2) -> list[int]:
        """Indices of the first n good test images."""
        return [j for j, s in enumerate(self.samples) if s.label == 0][:n]

    def firsts(self) -> list[int]:
        """Index of the first test image of each defect type, types in name order."""
        types = sorted({s.defect for s in self.samples} - {"good"})
        return [next(j for j, s in enumerate(self.samples) if s.defect == d) for d in types]

    def image(self, i: int):
        """(image (3, S, S), patch features (h, w, D), mask (S, S) bool numpy)."""
        if i not in self._img:
            c, s = self.model.config, self.samples[i]
            img = load_image(s.path, c.resize, c.crop)
            feats = self.model.embed(img[None])[0]
            self._img[i] = (img, feats, array(load_mask(s, c.resize, c.crop)))
        return self._img[i]

    def neighbours(self, i: int, k: int):
        """Distances (h, w, k) and bank indices (h, w, k) of each patch's k nearest bank patches."""
        if (i, k) not in self._scores:
            _, feats, _ = self.image(i)
            h, w, d = feats.shape
            dist, idx = self.model.nearest(feats.reshape(-1, d), k)
            self._scores[(i, k)] = (dist.reshape(h, w, -1), idx.reshape(h, w, -1))
        return self._scores[(i, k)]

    def patch_scores(self, i: int, k: int = 1) -> torch.Tensor:
        """(h, w) patch scores: mean distance to the k nearest bank patches."""
        return self.neighbours(i, k)[0].mean(dim=-1)

    def anomaly_map(self, i: int, k: int = 1, sigma: float = maps.SIGMA) -> np.ndarray:
        """(S, S) anomaly map of test image i with k neighbours, blurred with `sigma`."""
        feats = self.image(i)[1][None]  # (1, h, w, D)
        return array(self.model.score_features(feats, k=k, sigma=sigma)[1][0])

    def hottest(self, i: int, k: int = 1) -> tuple[int, int]:
        """(y, x) pixel of the highest anomaly-map value."""
        m = self.anomaly_map(i, k)
        y, x = np.unravel_index(int(m.argmax()), m.shape)
        return int(y), int(x)

    def best_example(self, candidates: Sequence[int] | None = None, k: int = 1) -> int:
        """A defective image the model explains well: caught, its hottest pixel on the defect.

        Among `candidates` (default: all defective images), the highest-scoring one that is
        caught (score >= threshold) with its anomaly-map maximum inside its mask; failing
        that, one on the defect; failing that, the highest-scoring one (`caught` says which)."""
        pool = [i for i in (range(len(self.samples)) if candidates is None else candidates)
                if self.samples[i].label]
        if not pool:
            raise ValueError("best_example: no defective image among the candidates")
        score = {i: float(self.patch_scores(i, k).max()) for i in pool}
        on_defect = [i for i in pool if self.image(i)[2][self.hottest(i, k)]]
        caught = [i for i in on_defect if self.caught(i, k)]
        return max(caught or on_defect or pool, key=score.get)

    def caught(self, i: int, k: int = 1) -> bool:
        """Whether test image i scores at or above the model's threshold (flagged)."""
        return float(self.patch_scores(i, k).max()) >= self.model.threshold

    def verdict(self, i: int, k: int = 1) -> str:
        """One line: image i's score against the threshold, caught or missed, in 4+ digits."""
        score, thr = float(self.patch_scores(i, k).max()), self.model.threshold
        s, t = compare(score, thr)
        word = ("caught" if score >= thr else "MISSED: below the threshold") if \
            self.samples[i].label else ("false alarm" if score >= thr else "passed")
        return f"{self.names[i]}: score {s} {'>=' if score >= thr else '<'} threshold {t}, {word}"

    def train_image(self, j: int) -> torch.Tensor:
        """Training image j of the model's bank, as the model sees it (3, S, S)."""
        c = self.model.config
        key = ("train", j)
        if key not in self._img:
            self._img[key] = load_image(self.model.bank.train_images[j], c.resize, c.crop)
        return self._img[key]


# ---- views ----------------------------------------------------------------------------------

def scoring(lab: ExplainLab, image: int, k: int = 1, sigma: float = maps.SIGMA) -> dict:
    """Patch scores (h, w), upsampled (S, S), blurred (S, S), and the worst cell of one image."""
    patch = array(lab.patch_scores(image, k))
    gy, gx = np.unravel_index(int(patch.argmax()), patch.shape)
    return dict(patch=patch, upsampled=lab.anomaly_map(image, k, sigma=0),
                blurred=lab.anomaly_map(image, k, sigma), worst_cell=(int(gy), int(gx)))


def _cell_box(ax, cell: tuple[int, int], size: float) -> None:
    """A lime square around grid cell (row, col) of `size` pixels."""
    ax.add_patch(Rectangle((cell[1] * size, cell[0] * size), size, size, fill=False, ec="lime",
                           lw=1.5))


def scoring_steps(lab: ExplainLab, image: int, k: int = 1, sigma: float = maps.SIGMA) -> View:
    """Patch scores -> upsampled -> blurred, on one colour scale, image score (max) marked."""
    img, _, mask = lab.image(image)
    d = scoring(lab, image, k, sigma)
    patch, up, blurred = d["patch"], d["upsampled"], d["blurred"]
    s, (h, w) = lab.model.config.input_size, patch.shape
    lo, hi = float(patch.min()), float(patch.max())  # this image's range: every step readable
    fig = Figure(figsize=(13, 3.4), layout="constrained")
    axes = fig.subplots(1, 4)
    axes[0].imshow(plots.to_rgb(img))
    plots.outline(axes[0], mask)
    axes[0].set_title(f"{lab.names[image]} (ground truth in cyan)", fontsize=9)
    im = axes[1].imshow(patch, cmap="inferno", vmin=lo, vmax=hi, extent=(0, s, s, 0),
                        interpolation="nearest")
    _cell_box(axes[1], d["worst_cell"], s / h)
    axes[1].set_title(f"{h}x{w} patch scores (k={k}); max = image score\n"
                      f"= {patch.max():.4g} (lime square)", fontsize=9)
    axes[2].imshow(up, cmap="inferno", vmin=lo, vmax=hi)
    axes[2].set_title(f"bilinear upsampling to {s}x{s}", fontsize=9)
    axes[3].imshow(blurred, cmap="inferno", vmin=lo, vmax=hi)
    plots.outline(axes[3], mask)
    axes[3].set_title(f"+ Gaussian blur sigma {sigma:g}: the anomaly map\npeak {blurred.max():.3g}",
                      fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.colorbar(im, ax=axes.tolist(), shrink=0.8, label="distance to nearest normal patch")
    fig.suptitle(f"{lab.model.describe()}\ncolour scale: this image's lowest to highest patch "
                 "score", fontsize=8)
    data = dict(image_score=float(patch.max()), grid=(h, w), worst_cell=d["worst_cell"],
                map_max=float(blurred.max()), upsampled_max=float(up.max()))
    return View(data, [fig])


def heatmaps_view(lab: ExplainLab, shown: Sequence[int]) -> View:
    """Heatmaps of the `shown` test images on the model's colour scale, scores in the titles."""
    scores = [float(lab.patch_scores(j).max()) for j in shown]
    lo, hi = lab.model.map_range
    fig = plots.overlay_grid([lab.image(j)[0] for j in shown], [lab.anomaly_map(j) for j in shown],
                             [lab.image(j)[2] for j in shown],
                             [f"{lab.names[j]}: {sc:.3g}" for j, sc in zip(shown, scores)],
                             vmin=lo, vmax=hi, ncols=len(shown), suptitle=lab.model.describe())
    return View(dict(names=[lab.names[j] for j in shown], scores=scores), [fig])


def heatmap_plotly(image, amap, mask=None, title: str = "", zrange=None):
    """Interactive heatmap over the image: hover shows each pixel's anomaly score."""
    import plotly.graph_objects as go

    rgb = (plots.to_rgb(image) * 255).astype(np.uint8)
    amap = array(amap)
    fig = go.Figure(go.Image(z=rgb, hoverinfo="skip"))
    zmin, zmax = zrange if zrange else (float(amap.min()), float(amap.max()))
    fig.add_trace(go.Heatmap(z=amap, colorscale="Inferno", opacity=0.5, zmin=zmin, zmax=zmax,
                             hovertemplate="x=%{x} y=%{y}<br>score=%{z:.3f}<extra></extra>",
                             colorbar=dict(title="score")))
    if mask is not None and array(mask).any():
        fig.add_trace(go.Contour(z=array(mask).astype(float), showscale=False, hoverinfo="skip",
                                 contours=dict(start=0.5, end=0.5, coloring="none"),  # line.color
                                 line=dict(color=plots.MASK_COLOR, width=2)))
    fig.update_layout(title=plotly_title(title), width=520, height=500,
                      margin=dict(l=10, r=10, t=60, b=10))
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    fig.update_xaxes(visible=False)
    static = plots.overlay_grid([image], [amap], [mask], [title.split("<br>")[0]], zmin, zmax,
                                ncols=1)
    return Interactive(fig, static)


def explanation(lab: ExplainLab, image: int, k: int, y: int, x: int) -> dict:
    """The pixel (clamped), its grid cell and score, and its k nearest bank patches: distance,
    bank index, training image and cell each came from (the first one is the nearest)."""
    bank, s = lab.model.bank, lab.model.config.input_size
    dist, idx = lab.neighbours(image, k)
    cell = s / dist.shape[0]
    y, x = int(min(max(y, 0), s - 1)), int(min(max(x, 0), s - 1))
    gy, gx = int(y // cell), int(x // cell)
    d, j = array(dist[gy, gx]), array(idx[gy, gx])
    neighbours = []
    for n in range(len(j)):
        ti = int(bank.image[j[n]])
        neighbours.append(dict(distance=float(d[n]), bank_index=int(j[n]), train_index=ti,
                               train_image=Path(bank.train_images[ti]).name,
                               cell=divmod(int(bank.pos[j[n]]), bank.grid[1])))
    first = neighbours[0]
    return dict(pixel=(y, x), cell=(gy, gx), cell_size=cell, score=float(d.mean()),
                distances=d.tolist(),
                train_image=str(bank.train_images[first["train_index"]]),
                train_cell=first["cell"], bank_index=first["bank_index"], neighbours=neighbours)


def _crop(img: np.ndarray, cy: float, cx: float, half: int) -> np.ndarray:
    """A (2 half, 2 half) window centred at (cy, cx), edge-padded at the borders."""
    pad = np.pad(img, ((half, half), (half, half), (0, 0)), mode="edge")
    y, x = int(round(cy)) + half, int(round(cx)) + half
    return pad[y - half:y + half, x - half:x + half]


def _draw_patch(ax, img: np.ndarray, cell: tuple[int, int], size: float, context: int,
                title: str) -> None:
    """A window of `context` pixels around grid cell (row, col), the cell framed in lime."""
    ax.imshow(_crop(img, (cell[0] + 0.5) * size, (cell[1] + 0.5) * size, context),
              interpolation="nearest")
    c0 = context - size / 2
    ax.add_patch(Rectangle((c0 - 0.5, c0 - 0.5), size, size, fill=False, ec="lime", lw=1.5))
    ax.set_title(title, fontsize=9)


def _draw_explanation(axes, lab: ExplainLab, image: int, e: dict, context: int) -> None:
    """Test image with the pixel, test patch, nearest normal patch, its training image."""
    img, _, mask = lab.image(image)
    test, first = plots.to_rgb(img), e["neighbours"][0]
    train = plots.to_rgb(lab.train_image(first["train_index"]))
    size, (lo, hi) = e["cell_size"], lab.model.map_range
    axes[0].imshow(test)
    axes[0].imshow(lab.anomaly_map(image, len(e["distances"])), cmap="inferno", alpha=0.5,
                   vmin=lo, vmax=hi)
    plots.outline(axes[0], mask)
    _cell_box(axes[0], e["cell"], size)
    axes[0].plot([e["pixel"][1]], [e["pixel"][0]], "+", c="lime", ms=10)
    axes[0].set_title(f"test {lab.names[image]}\npixel (y={e['pixel'][0]}, x={e['pixel'][1]}) "
                      f"-> cell {e['cell']}", fontsize=9)
    _draw_patch(axes[1], test, e["cell"], size, context,
                f"test patch\nscore {e['score']:.3g} (k={len(e['distances'])})")
    _draw_patch(axes[2], train, first["cell"], size, context,
                f"nearest normal patch\ndistance {first['distance']:.3g}")
    axes[3].imshow(train)
    _cell_box(axes[3], first["cell"], size)
    axes[3].set_title(f"from training image {first['train_image']}\ncell {first['cell']}",
                      fontsize=9)
    for ax in axes:
        ax.set_axis_off()


def explain_pixel(lab: ExplainLab, image: int, k: int, y: int, x: int, context: int = 24) -> View:
    """The 'why is this anomalous' view for one pixel of a test image.

    The pixel's patch (grid cell) is compared with its k nearest memory-bank patches; the first
    is shown next to it, inside the training image it came from (the bank remembers which)."""
    e = explanation(lab, image, k, y, x)
    fig = Figure(figsize=(13, 6.2 if k > 1 else 3.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=(3.4, 2.2)) if k > 1 else (fig, None)
    _draw_explanation(top.subplots(1, 4), lab, image, e, context)
    top.suptitle(lab.model.describe().replace(f"k={lab.model.config.k}", f"k={k}"), fontsize=10)
    if bottom is not None:
        size = e["cell_size"]
        for ax, nb in zip(np.atleast_1d(bottom.subplots(1, k)), e["neighbours"]):
            src = plots.to_rgb(lab.train_image(nb["train_index"]))
            ax.imshow(_crop(src, (nb["cell"][0] + 0.5) * size, (nb["cell"][1] + 0.5) * size,
                            context))
            ax.set_title(f"{nb['train_image']} {nb['cell']}\nd = {nb['distance']:.3g}",
                         fontsize=8)
            ax.set_axis_off()
        bottom.suptitle(f"the {k} nearest normal patches; the score is their mean distance",
                        fontsize=9)
    return View(e, [fig])


# ---- apps -----------------------------------------------------------------------------------

def explain_app(lab: ExplainLab, image: int | str = 0, k: int = 1):
    """Test image dropdown, k slider and pixel sliders over `explain_pixel`.

    Choosing another image moves the pixel to that image's hottest point."""
    import ipywidgets as W

    i = lab.index(image) if isinstance(image, str) else int(image)
    y, x = lab.hottest(i, k)
    s = lab.model.config.input_size
    controls = dict(
        image=W.Dropdown(options=[(n, j) for j, n in enumerate(lab.names)], value=i,
                         description="test image"),
        k=W.IntSlider(k, 1, 9, description="k", continuous_update=False),
        y=W.IntSlider(y, 0, s - 1, description="pixel y", continuous_update=False),
        x=W.IntSlider(x, 0, s - 1, description="pixel x", continuous_update=False))

    def update(change, c):
        if change["owner"] is c["image"]:
            c["y"].value, c["x"].value = lab.hottest(c["image"].value, c["k"].value)

    return live(explain_pixel, controls, update, lab=lab)


# ---- checks ---------------------------------------------------------------------------------

def check_grid_cell(y: int, x: int, answer, input_size: int = 224, grid: int = 28) -> Verdict:
    """Which cell (row, col) of the grid x grid patch grid holds pixel (y, x)?"""
    truth = (y * grid // input_size, x * grid // input_size)
    stride = input_size // grid
    swapped = (lambda a: a == truth[::-1], "Swapped: (row, col) = (y // stride, x // stride).")
    return exact(ints(answer), truth, f"cell {truth}; each cell covers {stride} pixels.",
                 f"divide by the stride ({input_size}/{grid} = {stride} pixels).",
                 "a tuple (row, col)", [swapped], shown=answer)


def check_image_score(patch_scores, answer) -> Verdict:
    """The image score from a grid of patch scores (no reweighting)."""
    truth = float(torch.as_tensor(np.asarray(patch_scores)).max())
    mean = float(np.asarray(patch_scores, dtype=np.float64).mean())
    if answer is not None and not close(answer, truth, 1e-5) and close(answer, mean, 1e-5):
        return Verdict(False, "That is the mean: one small defect would vanish among 784 "
                              "normal patches.")
    return number(answer, truth, f"{truth:.4g}, the worst patch decides.",
                  "which single patch decides?", "a number (or an expression computing it)",
                  rel=1e-5)


def check_k_effect(answer) -> Verdict:
    """Compared with k=1, a patch score with k=3 is a) never lower, b) never higher,
    c) either, depending on the patch."""
    return choice(answer, "a", "the mean of the 3 smallest distances is at least the smallest "
                  "one, so every score (and the map) can only rise with k.", "a, b, c")
