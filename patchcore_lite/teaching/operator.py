"""The operator's view of a model: at a threshold, how many good parts per 1,000 are flagged and
how many defects per 100 pass, each with a 95% Wilson interval (a handful of test images says
little), which defect types are caught, and where on each image the defect is (regions).

Views (compute, then draw) and the threshold app; the numbers come from
evaluation/operator.py and regions.py, the same code `evaluate` and `predict` run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .. import regions
from ..data import image_size, load_image
from ..evaluation import operator, plots, protocol
from .view import View, fmt, live, sample_name, table


def operator_numbers(labels, scores, defects: Sequence[str], threshold: float) -> dict:
    """At a threshold: false_alarms_per_1000, misses_per_100 (value, ci95, count, n) and
    per_defect_type (count, recall, image AUROC against the good test images)."""
    return dict(threshold=float(threshold), **operator.at_threshold(labels, scores, threshold),
                per_defect_type=operator.per_defect_type(defects, labels, scores, threshold))


def rate_curves(labels, scores, thresholds) -> dict[str, np.ndarray]:
    """Both rates and their intervals over a grid of thresholds: (T, 3) arrays value, low, high."""
    out: dict[str, list] = {"false_alarms_per_1000": [], "misses_per_100": []}
    for t in thresholds:
        for k, r in operator.at_threshold(labels, scores, t).items():
            out[k].append([np.nan] * 3 if r["value"] is None else [r["value"], *r["ci95"]])
    return {k: np.array(v, dtype=np.float64) for k, v in out.items()}


def _rates_figure(labels, scores, threshold: float, default: float | None,
                  subtitle: str) -> Figure:
    """The two rates against the threshold with their 95% bands; the chosen threshold marked."""
    s = np.asarray(scores, dtype=np.float64)
    lo, hi = float(np.nanmin(s)), float(np.nanmax(s))
    pad = 0.05 * (hi - lo) or 1.0
    grid = np.linspace(lo - pad, hi + pad, 121)
    curves = rate_curves(labels, scores, grid)
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    for ax, (key, c), colour in zip(fig.subplots(1, 2), curves.items(), ("tab:orange", "tab:red")):
        ax.plot(grid, c[:, 0], color=colour, label=key.replace("_", " "))
        ax.fill_between(grid, c[:, 1], c[:, 2], color=colour, alpha=0.25, label="95% interval")
        ax.axvline(threshold, color="k", label=f"threshold {threshold:.4g}")
        if default is not None:
            ax.axvline(default, color="grey", ls="--", label=f"model's {default:.4g}")
        ax.set(xlabel="threshold", ylabel=key.replace("_", " "))
        ax.legend(fontsize=8)
    if subtitle:
        fig.suptitle(subtitle, fontsize=8)
    return fig


def operator_view(labels, scores, defects: Sequence[str], threshold: float,
                  default: float | None = None, subtitle: str = "") -> View:
    """The rates at a threshold with their intervals and counts, the curves, and per defect type
    the count, recall and image AUROC."""
    n = operator_numbers(labels, scores, defects, threshold)
    fa, miss = n["false_alarms_per_1000"], n["misses_per_100"]

    def line(r: dict, what: str) -> str:
        if r["value"] is None:
            return f"no {what} in the test set"
        return (f"**{r['value']:.3g}** (95% interval {r['ci95'][0]:.3g} to {r['ci95'][1]:.3g}; "
                f"{r['count']} of {r['n']} {what})")

    rows = [{"defect type": d, **t} for d, t in n["per_defect_type"].items()]
    caption = (f"**threshold {threshold:.4g}**  \nfalse alarms per 1,000 good parts: "
               f"{line(fa, 'good test images flagged')}  \nmisses per 100 defects: "
               f"{line(miss, 'defective test images passed')}\n\n"
               + (table(rows, ["defect type", "count", "recall", "image_auroc"]) if rows else ""))
    return View(n, [_rates_figure(labels, scores, threshold, default, subtitle)], caption)


def operator_app(ev: protocol.Evaluation, steps: int = 200):
    """A threshold slider over `operator_view`, starting at the model's default threshold."""
    import ipywidgets as W

    s = np.asarray(ev.scores, dtype=np.float64)
    lo, hi = float(np.nanmin(s)), float(np.nanmax(s))
    pad = 0.05 * (hi - lo) or 1.0
    start = float(np.clip(ev.model.threshold, lo - pad, hi + pad))
    slider = W.FloatSlider(value=start, min=lo - pad, max=hi + pad,
                           step=(hi - lo + 2 * pad) / steps, readout_format=".4g",
                           description="threshold", continuous_update=False,
                           layout=W.Layout(width="600px"))
    return live(operator_view, dict(threshold=slider), labels=ev.labels, scores=ev.scores,
                defects=[x.defect for x in ev.samples], default=ev.model.threshold,
                subtitle=ev.model.describe())


def shown_images(ev: protocol.Evaluation, n: int = 4) -> list[int]:
    """Up to n test images: the first of each defect type, then one good image."""
    first: dict[str, int] = {}
    for i, x in enumerate(ev.samples):
        first.setdefault(x.defect, i)
    bad = [i for d, i in sorted(first.items()) if d != "good"]
    return (bad[:n - 1] + [first["good"]] if "good" in first else bad[:n])[:n]


def regions_view(ev: protocol.Evaluation, n: int = 4, min_area: int = 0) -> View:
    """Test images in their original pixels with the defect regions `predict` writes (boxes), at
    the model's default threshold, and the table of regions."""
    model, thr, idx = ev.model, ev.model.threshold, shown_images(ev, n)
    images, amaps, found, rows = [], [], {}, []
    for i in idx:
        x, size = ev.samples[i], image_size(ev.samples[i].path)
        r = model.regions(ev.maps[i], thr, float(ev.scores[i]), size, min_area)
        images.append(load_image(x.path, 0, 0).permute(1, 2, 0).numpy())
        amaps.append(regions.original_map(model, ev.maps[i], size))
        found[sample_name(x)] = r
        rows += [dict(image=sample_name(x), bbox=str(g["bbox"]), area=g["area"],
                      peak=fmt(g["peak"]), normalized=fmt(g["normalized_peak"])) for g in r]
    lo, hi = model.map_range
    titles = [f"{sample_name(ev.samples[i])}\n{ev.scores[i]:.3g}: {len(found[k])} regions"
              for i, k in zip(idx, found)]
    fig = plots.overlay_grid(images, amaps, None, titles, lo, hi, ncols=len(idx),
                             suptitle=f"green boxes: defect regions at threshold {thr:.4g}",
                             boxes=[[g["bbox"] for g in r] for r in found.values()])
    caption = (f"{model.describe()}  \nRegions in the original image's pixels, as `predict` "
               "writes them (`bbox` = [x, y, width, height]):\n\n"
               + (table(rows) if rows else "no region"))
    return View(dict(threshold=thr, regions=found), [fig], caption)
