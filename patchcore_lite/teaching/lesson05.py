"""Lesson 05, evaluation and thresholds: ROC and PRO, two ways to pick a threshold, and what a
threshold does to each test image (caught, missed, false alarm).

Views (compute, then draw), the threshold app, then the notebook's self-checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from .. import calibration
from ..data import load_image
from ..evaluation import metrics, plots, protocol
from ..evaluation.counts import confusion_counts, precision_recall_f1
from .checks import Verdict, choice, close, unanswered
from .view import Interactive, View, fmt, live, plotly_title, sample_name, table


def evaluate(category: str | Path, model) -> protocol.Evaluation:
    """The model on every test image of the category: labels, scores, maps and masks."""
    return protocol.evaluate(category, model=model)


# ---- views ----------------------------------------------------------------------------------

def roc_plotly(labels, scores, names: Sequence[str] | None = None, title: str = "Image ROC"):
    """Interactive ROC curve: hover shows the threshold of each point."""
    import plotly.graph_objects as go
    from sklearn.metrics import roc_curve

    labels, scores = np.asarray(labels).ravel() > 0.5, np.asarray(scores).ravel()
    fpr, tpr, thr = roc_curve(labels, scores)
    auroc = metrics.image_auroc(labels, scores)
    fig = go.Figure(go.Scatter(x=fpr, y=tpr, mode="lines+markers", customdata=thr,
                               name=f"AUROC {auroc:.3f}",
                               hovertemplate="threshold %{customdata:.4g}<br>FPR %{x:.3f}"
                                             "<br>TPR %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash",
                             color="gray"), hoverinfo="skip", showlegend=False))
    fig.update_layout(title=plotly_title(title), width=520, height=460,
                      xaxis_title="false positive rate (good images flagged)",
                      yaxis_title="true positive rate (defects caught)",
                      margin=dict(l=10, r=10, t=60, b=10))
    return Interactive(fig, plots.roc_figure(labels, scores, title=title.split("<br>")[0]))


def pixel_view(ev: protocol.Evaluation, max_fpr: float = 0.3) -> View:
    """Pixel AUROC and PRO with the PRO curve; a folder without masks says so (no crash)."""
    s = ev.summary
    if ev.masks is None or s.get("pixel_auroc") is None:
        return View(dict(pixel_auroc=None, pro=None), [], "**No ground-truth masks** in this "
                    "folder: pixel AUROC and PRO need them (masks are optional; the image "
                    "metrics and thresholds below do not need them).")
    caption = (f"pixel AUROC **{s['pixel_auroc']:.3f}**; PRO (FPR <= {max_fpr:g}) "
               f"**{fmt(s['pro'])}**")
    return View(dict(pixel_auroc=s["pixel_auroc"], pro=s["pro"]), [pro_figure(ev, max_fpr)],
                caption)


def pro_figure(ev: protocol.Evaluation, max_fpr: float = 0.3) -> Figure:
    """The PRO curve of an evaluation up to max_fpr, titled with its model."""
    return plots.pro_figure(ev.masks, ev.maps, max_fpr, subtitle=ev.model.describe())


def threshold_rows(labels, scores, quantile_threshold: float) -> list[dict]:
    """Counts at the model's quantile threshold and at the F1-optimal one (when there is one)."""
    rows = [dict(rule="quantile of good training scores (model default)",
                 threshold=quantile_threshold,
                 **confusion_counts(labels, scores, quantile_threshold))]
    f1 = metrics.f1_threshold(labels, scores)
    if f1 is not None:
        rows.append(dict(rule=f"F1-optimal on this test set (F1 {f1[1]:.3f})", threshold=f1[0],
                         f1=f1[1], **confusion_counts(labels, scores, f1[0])))
    return rows


def thresholds_view(labels, scores, quantile_threshold: float, subtitle: str = "") -> View:
    """The F1-optimal threshold vs a quantile of good training scores, on the score histogram."""
    rows = threshold_rows(labels, scores, quantile_threshold)
    fig = plots.score_histogram(scores, labels, quantile_threshold,
                                title="Image scores of the test set", subtitle=subtitle)
    best = rows[1] if len(rows) > 1 else None
    if best is not None:
        ax = fig.axes[0]
        ax.axvline(best["threshold"], color="tab:purple", ls=":",
                   label=f"F1-optimal = {best['threshold']:.4g}")
        ax.legend(fontsize=8)
    data = dict(rows=rows, f1_threshold=best["threshold"] if best else None,
                f1=best["f1"] if best else None)
    return View(data, [fig], table(rows, ("rule", "threshold", "tp", "fn", "fp", "tn")))


@dataclass
class ThresholdLab:
    """Everything the threshold slider shows: labels, scores, names, maps, masks, images.

    images: a list of (3, S, S) tensors / (S, S, 3) arrays, or of paths loaded on first use."""

    labels: np.ndarray
    scores: np.ndarray
    names: list[str]
    maps: np.ndarray | None = None  # (N, S, S)
    masks: np.ndarray | None = None  # (N, S, S) bool
    images: list | None = None
    resize: int = 256
    crop: int = 224
    subtitle: str = ""
    _loaded: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_evaluation(cls, ev: protocol.Evaluation) -> ThresholdLab:
        """The lab of an evaluation: its scores, maps, masks and test images."""
        c = ev.model.config
        return cls(ev.labels, ev.scores, [sample_name(s) for s in ev.samples], ev.maps,
                   ev.masks, [s.path for s in ev.samples], c.resize, c.crop, ev.model.describe())

    def image(self, i: int) -> np.ndarray:
        """Test image i as an (S, S, 3) float array (loaded once)."""
        if i not in self._loaded:
            im = self.images[i]
            if isinstance(im, (str, Path)):
                im = load_image(im, self.resize, self.crop)
            self._loaded[i] = plots.to_rgb(im)
        return self._loaded[i]


def threshold_counts(labels, scores, threshold: float) -> dict[str, int]:
    """tp, fp, tn, fn of the image verdicts at a threshold (score >= threshold flags)."""
    return confusion_counts(labels, scores, threshold)


def verdicts(lab: ThresholdLab, threshold: float) -> dict:
    """Counts, precision, recall, F1, the missed and falsely flagged names, and the images in
    the order the overlays show them (missed, false alarms, caught, passed good)."""
    labels = np.asarray(lab.labels).ravel() > 0.5
    scores = np.asarray(lab.scores).ravel()
    counts = threshold_counts(labels, scores, threshold)
    flagged = scores >= threshold
    groups = [labels & ~flagged, ~labels & flagged, labels & flagged, ~labels & ~flagged]
    precision, recall, f1 = precision_recall_f1(counts).values()
    return dict(threshold=float(threshold), counts=counts,
                missed=[lab.names[i] for i in np.flatnonzero(groups[0])],
                false_alarms=[lab.names[i] for i in np.flatnonzero(groups[1])],
                precision=precision, recall=recall, f1=f1,
                order=[int(i) for g in groups for i in np.flatnonzero(g)],
                verdict=[("MISSED", "FALSE ALARM", "caught", "ok")[int(np.argmax(col))]
                         for col in np.stack(groups, axis=1)])


def _confusion_figure(counts: dict, threshold: float, subtitle: str) -> Figure:
    """The 2x2 confusion matrix, each cell with its count and its meaning."""
    fig = Figure(figsize=(3.4, 3.0), layout="constrained")
    ax = fig.subplots()
    cm = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]])
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(1, cm.max()))
    for (r, c), v in np.ndenumerate(cm):
        word = [["ok", "false alarm"], ["missed", "caught"]][r][c]
        ax.text(c, r, f"{v}\n{word}", ha="center", va="center",
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks([0, 1], ["pass", "flag"])
    ax.set_yticks([0, 1], ["good", "defective"])
    ax.set(xlabel="verdict", ylabel="truth", title=f"threshold {threshold:.4g}")
    if subtitle:
        fig.suptitle(subtitle, fontsize=6, wrap=True)
    return fig


def _segmentation_figure(lab: ThresholdLab, v: dict, shown: Sequence[int]) -> Figure:
    """The shown images with their pixels >= threshold in red, ground truth in cyan."""
    fig = Figure(figsize=(2.4 * len(shown), 2.9), layout="constrained")
    for ax, i in zip(np.atleast_1d(fig.subplots(1, len(shown))), shown):
        seg = np.asarray(lab.maps[i]) >= v["threshold"]
        ax.imshow(lab.image(i))
        ax.imshow(np.ma.masked_where(~seg, seg), cmap=ListedColormap(["red"]), alpha=0.45)
        if lab.masks is not None:
            plots.outline(ax, lab.masks[i])
        word = v["verdict"][i]
        ax.set_title(f"{lab.names[i]}\n{float(np.ravel(lab.scores)[i]):.3g}: {word}", fontsize=8,
                     color="red" if word.isupper() else "black")
        ax.set_axis_off()
    fig.suptitle("red: pixels >= threshold; cyan: ground truth"
                 + (f"\n{lab.subtitle}" if lab.subtitle else ""), fontsize=8)
    return fig


def threshold_view(lab: ThresholdLab, threshold: float, n_overlays: int = 6) -> View:
    """Confusion matrix, missed defects and false alarms, and binary segmentations at a threshold.

    The same threshold is applied to image scores (the verdict) and to the anomaly maps (the
    red segmentation). Overlays show mistakes first (missed, then false alarms), then hits."""
    v = verdicts(lab, threshold)
    c = v["counts"]
    figs = [_confusion_figure(c, threshold, lab.subtitle)]
    shown, seg_fraction = v["order"][:n_overlays], None
    if lab.maps is not None and lab.images is not None and shown:
        figs.append(_segmentation_figure(lab, v, shown))
        seg_fraction = float((np.asarray(lab.maps) >= threshold).mean())
    caption = (f"**threshold {threshold:.4g}**: {c['tp']} caught, {c['fn']} missed, "
               f"{c['fp']} false alarms, {c['tn']} passed good; precision "
               f"{fmt(v['precision'])}, recall {fmt(v['recall'])}, F1 {fmt(v['f1'])}  \n"
               f"missed: {', '.join(v['missed']) or 'none'}  \n"
               f"false alarms: {', '.join(v['false_alarms']) or 'none'}")
    data = {k: v[k] for k in ("threshold", "counts", "missed", "false_alarms", "precision",
                              "recall", "f1")}
    return View(dict(data, segmented_fraction=seg_fraction), figs, caption)


# ---- apps -----------------------------------------------------------------------------------

def threshold_app(lab: ThresholdLab, threshold: float, steps: int = 200):
    """A threshold slider over `threshold_view`, spanning the range of the image scores."""
    import ipywidgets as W

    lo, hi = float(np.min(lab.scores)), float(np.max(lab.scores))
    pad = 0.05 * (hi - lo) or 1.0
    slider = W.FloatSlider(value=float(threshold), min=lo - pad, max=hi + pad,
                           step=(hi - lo + 2 * pad) / steps, readout_format=".4g",
                           description="threshold", continuous_update=False,
                           layout=W.Layout(width="600px"))
    return live(threshold_view, dict(threshold=slider), lab=lab)


def calibration_numbers(model, labels, scores, sensitivity: float = 0.5,
                        fprs: Sequence[float] = (0.01, 0.05, 0.2)) -> dict:
    """What the deployed model reports at a sensitivity: effective threshold, normalized scores,
    counts; and the thresholds a target false-alarm rate on good training images gives."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    t = model.effective_threshold(sensitivity=sensitivity)
    normalized = model.normalized(scores, t)
    targets = []
    for f in fprs:
        tf, info = calibration.target_fpr_threshold(model.good_scores, f)
        c = confusion_counts(labels, scores, tf)
        targets.append(dict(target_fpr=f, threshold=tf, std_error=info["fpr_std_error"],
                            test_fpr=c["fp"] / max(1, c["fp"] + c["tn"]),
                            recall=c["tp"] / max(1, c["tp"] + c["fn"])))
    return dict(sensitivity=sensitivity, threshold=t, normalized=normalized,
                counts=confusion_counts(labels, normalized, 0.5), targets=targets)


def calibration_view(model, labels, scores, sensitivity: float = 0.5) -> View:
    """Histogram of normalized scores (good vs defective) with the 0.5 line, and the table of
    thresholds set from a target false-alarm rate."""
    n = calibration_numbers(model, labels, scores, sensitivity)
    labels = np.asarray(labels)
    fig = Figure(figsize=(7, 3), layout="constrained")
    ax = fig.subplots()
    bins = np.linspace(0, 1, 41)
    ax.hist(n["normalized"][labels == 0], bins, alpha=0.6, label="good", color="tab:green")
    ax.hist(n["normalized"][labels == 1], bins, alpha=0.6, label="defective", color="tab:red")
    ax.axvline(0.5, color="k", ls="--", label="0.5 = effective threshold")
    ax.set(xlabel="normalized score", ylabel="test images",
           title=f"sensitivity {sensitivity:.2f}: threshold {n['threshold']:.4g}\n"
                 f"{model.describe()}")
    ax.legend(fontsize=12)
    c = n["counts"]
    rows = [dict(target=r["target_fpr"], threshold=fmt(r["threshold"]),
                 **{"+- (std. error)": fmt(r["std_error"]), "false alarms on test": fmt(
                     r["test_fpr"]), "recall on test": fmt(r["recall"])}) for r in n["targets"]]
    caption = (f"At sensitivity {sensitivity:.2f}: {c['tp']} caught, {c['fn']} missed, "
               f"{c['fp']} false alarms, {c['tn']} passed good.\n\n"
               f"Thresholds from a target false-alarm rate on the {len(model.good_scores)} "
               "leave-one-out good training scores:\n\n" + table(rows))
    return View(n, [fig], caption)


def calibration_app(model, labels, scores):
    """A sensitivity slider over `calibration_view` (0.5: the model's own threshold)."""
    import ipywidgets as W

    slider = W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="sensitivity",
                           continuous_update=False, layout=W.Layout(width="500px"))
    return live(calibration_view, dict(sensitivity=slider), model=model, labels=labels,
                scores=scores)


# ---- checks ---------------------------------------------------------------------------------

def check_precision_recall(counts: dict, answer) -> Verdict:
    """(precision, recall) from a dict of tp, fp, tn, fn."""
    pr = precision_recall_f1(counts)
    truth = (pr["precision"] or 0.0, pr["recall"] or 0.0)
    if answer is None:
        return unanswered("a tuple (precision, recall)")
    try:
        p, r = (float(v) for v in answer)
    except (TypeError, ValueError):
        return Verdict(False, "Give two numbers: (precision, recall).")
    if close(p, truth[0], 1e-3, 1e-3) and close(r, truth[1], 1e-3, 1e-3):
        return Verdict(True, f"Right: precision {truth[0]:.3f}, recall {truth[1]:.3f}.")
    if close(p, truth[1], 1e-3, 1e-3) and close(r, truth[0], 1e-3, 1e-3):
        return Verdict(False, "Swapped: precision = tp / (tp + fp), recall = tp / (tp + fn).")
    return Verdict(False, "Not quite: precision = tp / (tp + fp), recall = tp / (tp + fn).")


def check_missed_trend(answer) -> Verdict:
    """As the threshold rises, missed defects (fn) a) never decrease, b) never increase,
    c) can go either way."""
    return choice(answer, "a", "a higher threshold flags a subset of what a lower one flags, so "
                  "misses can only grow and false alarms only shrink.", "a, b, c")


def check_no_false_alarms(labels, scores, answer) -> Verdict:
    """A threshold with no false alarm on these images that misses as few defects as possible."""
    labels = np.asarray(labels).ravel() > 0.5
    scores = np.asarray(scores).ravel()
    if answer is None:
        return unanswered("a threshold (a number)")
    try:
        t = float(answer)
    except (TypeError, ValueError):
        return Verdict(False, f"{answer!r} is not a number.")
    best = threshold_counts(labels, scores, np.nextafter(scores[~labels].max(), np.inf))
    got = threshold_counts(labels, scores, t)
    if got["fp"]:
        return Verdict(False, f"At {t:.4g} there are still {got['fp']} false alarm(s): go above "
                              "the highest good score.")
    if got["fn"] > best["fn"]:
        return Verdict(False, f"No false alarms, but {got['fn']} missed where {best['fn']} is "
                              "possible: come down, to just above the highest good score.")
    return Verdict(True, f"Right: no false alarms, {got['fn']} of {int(labels.sum())} defects "
                         "missed. On a production line this is a choice of the business, "
                         "not of the model.")
