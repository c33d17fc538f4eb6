"""Lesson 03, the memory bank and coreset: which patches each sampling method keeps, how well
they cover the rest (the coverage radius), and what that does to the test AUROC.

Views (compute, then draw), the bank app, then the notebook's self-checks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from .. import knn, sampling
from ..data import good_images, test_samples
from ..evaluation import metrics
from ..masks import load_mask
from .checks import Verdict, choice, close, number
from .view import View, array, first_of_each, fmt, live, pca, table, weights_label

RATIOS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.25]


def toy_points(seed: int = 0) -> np.ndarray:
    """2-D stand-in for patch features: a big common cluster, a rare one, a few odd patches."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 1, (1400, 2)) * (1.6, 0.9)
    rare = rng.normal(0, 0.25, (50, 2)) + (4.5, 3.0)
    odd = rng.uniform(-5, 6, (20, 2))
    return np.concatenate([common, rare, odd]).astype(np.float32)


@dataclass
class BankLab:
    """Training patches of a few images and a small labelled test set, for sampling comparisons.

    model: the PatchCore whose scoring path scores the test set against each bank; train (N, D)
    patch features; test (T, h, w, D) patch features of T test images; labels (T,); masks
    (T, S, S) at the model's input size, optional: with them each bank also gets a pixel AUROC.
    Selections are computed once per (method, ratio) and reused (with their timing)."""

    model: object
    train: torch.Tensor
    test: torch.Tensor
    labels: np.ndarray
    masks: np.ndarray | None = None
    seed: int = 0
    subtitle: str = ""
    _selected: dict = field(default_factory=dict, repr=False)
    _results: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.labels = np.asarray(self.labels)
        self.proj2d = array(pca(self.train, 2)[0])
        self.toy = toy_points(self.seed)
        g = torch.Generator().manual_seed(self.seed)
        self.shown = torch.randperm(self.train.shape[0], generator=g)[:3000].numpy()

    def select(self, method: str, ratio: float, points: torch.Tensor | None = None):
        """Kept indices and selection seconds (cached) on the train patches or on `points`."""
        key = (method, round(float(ratio), 6), points is None)
        if key not in self._selected:
            x = self.train if points is None else points
            t = time.perf_counter()
            m = len(x) if method == "none" else sampling.n_keep(len(x), ratio)
            idx = sampling.select(x, m, method, self.seed, progress=False)
            self._selected[key] = (idx, time.perf_counter() - t)
        return self._selected[key]

    def result(self, method: str, ratio: float) -> dict:
        """Bank size, selection time, coverage radius and test AUROCs of one method."""
        key = (method, round(float(ratio), 6))
        if key not in self._results:
            idx, seconds = self.select(method, ratio)
            bank = self.train[idx]
            if method == "none":  # every patch is kept: all at distance 0
                nn_dist = torch.zeros(self.train.shape[0])
            else:  # every patch to its nearest kept patch
                nn_dist = knn.knn(self.train, bank, k=1)[0][:, 0]
            scores, amaps, _ = self.model.score_features(self.test, bank=bank, k=1)
            scores, pixel = array(scores), None
            if self.masks is not None:
                pixel = metrics.pixel_auroc(self.masks, array(amaps))
            self._results[key] = dict(
                method=method, ratio=None if method == "none" else float(ratio),
                bank_size=len(idx), n_patches=self.train.shape[0], seconds=seconds,
                coverage_radius=float(nn_dist.max()), mean_distance=float(nn_dist.mean()),
                image_auroc=metrics.image_auroc(self.labels, scores), pixel_auroc=pixel,
                nn_dist=array(nn_dist), worst=int(nn_dist.argmax()), scores=scores)
        return self._results[key]


def bank_lab(model, category: Path, n_train: int = 10, n_good: int = 8,
             per_defect: int = 4) -> BankLab:
    """A BankLab of the model's features: n_train training images, n_good good test images and
    per_defect images of each defect type, with their masks."""
    samples = test_samples(category)
    picks = first_of_each(samples, max(n_good, per_defect))
    test = [samples[i] for d, idx in picks.items() for i in idx[:n_good if d == "good"
                                                                 else per_defect]]
    c = model.config
    masks = torch.stack([load_mask(s, c.resize, c.crop) for s in test]).numpy()
    train = model.features(good_images(category)[:n_train])  # (n_train, h, w, D)
    return BankLab(model=model, train=train.reshape(-1, train.shape[-1]),
                   test=model.features([s.path for s in test]),  # (T, h, w, D)
                   labels=[s.label for s in test], masks=masks,
                   subtitle=weights_label(model.weights_used))


# ---- views ----------------------------------------------------------------------------------

def toy_coverage(lab: BankLab, method: str, ratio: float) -> dict:
    """The method on the toy 2-D points: kept points, coverage radius, worst-covered point and
    its nearest kept point."""
    toy = torch.from_numpy(lab.toy)
    idx, _ = lab.select(method, ratio, toy)
    kept = lab.toy[array(idx)]
    dist, nn = knn.knn(toy, toy[idx], k=1)
    worst = int(dist[:, 0].argmax())
    return dict(kept=kept, radius=float(dist.max()), worst=lab.toy[worst],
                nearest=kept[int(nn[worst, 0])])


def bank_coverage(lab: BankLab, method: str, ratio: float) -> dict:
    """The method on the real patches: its result, the kept indices, and the worst-covered
    patch with its nearest kept patch (None for 'none', which keeps every patch)."""
    r = lab.result(method, ratio)
    kept = array(lab.select(method, ratio)[0])
    near = None
    if method != "none":
        w = r["worst"]
        near = int(kept[int(knn.knn(lab.train[w:w + 1], lab.train[kept], 1)[1][0, 0])])
    return dict(r, kept=kept, nearest=near)


def _draw_toy(ax, lab: BankLab, t: dict, method: str) -> None:
    """Toy points in grey, kept ones in orange with their coverage circles, the worst in red."""
    ax.scatter(*lab.toy.T, s=3, c="lightgray")
    if method != "none":
        for p in t["kept"]:
            ax.add_patch(Circle(p, t["radius"], color="tab:orange", alpha=0.08, lw=0))
    ax.scatter(*t["kept"].T, s=6, c="tab:orange")
    ax.plot(*np.stack([t["worst"], t["nearest"]]).T, c="red", lw=1.2)
    ax.scatter(*t["worst"], marker="x", c="red", s=40, zorder=3)
    lo, hi = lab.toy.min(0) - 0.5, lab.toy.max(0) + 0.5  # fixed: the same scale for every setting
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
    ax.set_aspect("equal")
    ax.set_title(f"toy 2-D data: {len(t['kept'])} of {len(lab.toy)} kept\ncoverage radius "
                 f"{t['radius']:.2f}\n(circles; red = worst-covered)", fontsize=9)


def _draw_bank(ax, lab: BankLab, b: dict, method: str, ratio: float) -> None:
    """All training patches and the kept ones on the first two principal components."""
    kept = b["kept"]
    ax.scatter(*lab.proj2d[lab.shown].T, s=2, c="lightgray", label="all training patches")
    k_shown = kept if len(kept) <= 3000 else kept[np.linspace(0, len(kept) - 1, 3000).astype(int)]
    ax.scatter(*lab.proj2d[k_shown].T, s=4, c="tab:orange", label="kept in the bank")
    if b["nearest"] is not None:
        ax.plot(*lab.proj2d[[b["worst"], b["nearest"]]].T, c="red", lw=1.2)
        ax.scatter(*lab.proj2d[b["worst"]], marker="x", c="red", s=40, zorder=3,
                   label="worst-covered patch")
    ax.legend(fontsize=7, loc="best", markerscale=2)
    ax.set_title(f"{method}{'' if method == 'none' else f' {ratio:g}'}: bank "
                 f"{b['bank_size']} of {b['n_patches']}\npatches (PCA: 2 of "
                 f"{lab.train.shape[1]} dims)", fontsize=9)


def bank_view(lab: BankLab, method: str, ratio: float) -> View:
    """Which patches a method keeps (toy 2-D and the real bank in 2-D), coverage, AUROC."""
    t, b = toy_coverage(lab, method, ratio), bank_coverage(lab, method, ratio)
    fig = Figure(figsize=(13, 4.0), layout="constrained")
    ax_toy, ax_bank, ax_hist = fig.subplots(1, 3)
    _draw_toy(ax_toy, lab, t, method)
    _draw_bank(ax_bank, lab, b, method, ratio)
    ax_hist.hist(b["nn_dist"], bins=40, color="tab:orange")
    ax_hist.axvline(b["coverage_radius"], c="red", ls="--",
                    label=f"coverage radius {b['coverage_radius']:.3g}")
    ax_hist.set(xlabel="distance to the nearest kept patch", ylabel="training patches")
    ax_hist.legend(fontsize=8)
    ax_hist.set_title(f"selection {b['seconds']:.2f} s; {len(lab.labels)} test images\nAUROC "
                      f"image {fmt(b['image_auroc'])}, pixel {fmt(b['pixel_auroc'])}",
                      fontsize=9)
    if lab.subtitle:
        fig.suptitle(lab.subtitle, fontsize=9)
    data = {k: v for k, v in b.items() if k not in ("nn_dist", "scores", "worst", "kept",
                                                    "nearest")}
    data["toy_coverage_radius"] = t["radius"]
    return View(data, [fig])


COLUMNS = ("method", "ratio", "bank_size", "seconds", "coverage_radius", "mean_distance",
           "image_auroc", "pixel_auroc")


def sampling_rows(lab: BankLab, runs: Sequence[tuple[str, float]]) -> list[dict]:
    """Bank size, selection time, coverage radius and AUROCs for each (method, ratio)."""
    return [{k: lab.result(method, ratio)[k] for k in COLUMNS} for method, ratio in runs]


def sampling_table(lab: BankLab, runs: Sequence[tuple[str, float]]) -> View:
    """The table of `sampling_rows`, with coverage and AUROC plotted against the ratio."""
    rows = sampling_rows(lab, runs)
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax_cov, ax_auc = fig.subplots(1, 2)
    nan = lambda a: np.nan if a is None else a  # noqa: E731
    for method, color in (("random", "tab:gray"), ("coreset", "tab:orange")):
        pts = sorted((r["ratio"], r["coverage_radius"], nan(r["image_auroc"]),
                      nan(r["pixel_auroc"])) for r in rows if r["method"] == method)
        if pts:
            x, cov, img, pix = zip(*pts)
            ax_cov.plot(x, cov, "o-", c=color, label=method)
            ax_auc.plot(x, pix, "o-", c=color, label=f"{method}: pixel")
            ax_auc.plot(x, img, "s:", c=color, label=f"{method}: image")
    for r in (r for r in rows if r["method"] == "none"):
        ax_auc.axhline(nan(r["pixel_auroc"]), c="black", ls="-", lw=0.8, label="full bank: pixel")
        ax_auc.axhline(nan(r["image_auroc"]), c="black", ls=":", lw=0.8, label="full bank: image")
    values = [v for r in rows for v in (r["image_auroc"], r["pixel_auroc"]) if v is not None]
    if values:
        ax_auc.set_ylim(min(values) - 0.03, max(values) + 0.03)
    ax_cov.set(xscale="log", xlabel="sampling ratio", ylabel="coverage radius")
    ax_auc.set(xscale="log", xlabel="sampling ratio", ylabel="test AUROC")
    for ax in (ax_cov, ax_auc):
        ax.legend(fontsize=8)
    if lab.subtitle:
        fig.suptitle(lab.subtitle, fontsize=9)
    shown = [dict(r, seconds=round(r["seconds"], 3)) for r in rows]
    return View(dict(rows=rows), [fig], table(shown))


# ---- apps -----------------------------------------------------------------------------------

def bank_app(lab: BankLab, method: str = "coreset", ratio: float = 0.1):
    """Method dropdown and sampling-ratio slider over `bank_view`."""
    import ipywidgets as W

    controls = dict(
        method=W.Dropdown(options=sampling.SAMPLING_METHODS, value=method, description="method"),
        ratio=W.SelectionSlider(options=RATIOS, value=ratio, description="ratio",
                                continuous_update=False))
    return live(bank_view, controls, lab=lab)


# ---- checks ---------------------------------------------------------------------------------

def check_bank_size(answer, n_images: int = 10, patches_per_image: int = 784,
                    ratio: float = 0.1) -> Verdict:
    """How many patches does a bank keep from n_images at this sampling ratio?"""
    truth = sampling.n_keep(n_images * patches_per_image, ratio)
    return number(answer, truth, f"{n_images} x {patches_per_image} x {ratio:g} = {truth}.",
                  "patches = images x patches per image x ratio.", "a whole number of patches",
                  rel=0)


def check_nxn_memory(answer_gb, n: int = 209 * 784) -> Verdict:
    """Gigabytes (1e9 bytes) of an N x N float32 distance matrix for n patches."""
    truth = n * n * 4 / 1e9
    gib = truth * 1e9 / 2**30
    if answer_gb is not None and not close(answer_gb, truth, 0.05) and close(answer_gb, gib, 0.05):
        return Verdict(True, f"Right (in GiB): {gib:.0f} GiB = {truth:.0f} GB.")
    return number(answer_gb, truth, f"{n:,}^2 x 4 bytes = {truth:.0f} GB. The greedy coreset "
                  "keeps one vector of N distances instead.",
                  f"N = {n:,}; each entry is a 4-byte float (give gigabytes).",
                  "a number of gigabytes", rel=0.05)


def check_radius_trend(answer) -> Verdict:
    """Doubling the ratio, the coreset's coverage radius a) never grows, b) never shrinks,
    c) can go either way."""
    return choice(answer, "a", "the greedy loop with a larger ratio keeps the same first "
                  "points and adds more, and more kept points can only bring every patch "
                  "closer to one of them.", "a, b, c",
                  hint="Greedy selection is a sequence: what does a larger bank share with a "
                       "smaller one?")


def check_coverage_winner(lab: BankLab, answer, ratio: float = 0.1) -> Verdict:
    """At the same ratio, which method ('random' or 'coreset') has the smaller coverage radius?"""
    radius = {m: lab.result(m, ratio)["coverage_radius"] for m in ("random", "coreset")}
    truth = min(radius, key=radius.get)
    return choice(answer, truth, f"radius {radius[truth]:.3g} vs {max(radius.values()):.3g}. "
                  "Greedy k-center adds the worst-covered patch each step, so rare patterns get "
                  "a representative.", "'random' or 'coreset'",
                  hint=f"Compare the coverage radius column at ratio {ratio:g}.")
