"""The HTML report: a metrics table, heatmap overlays, ROC curves and score histograms.

Every page and figure states the backbone and what its weights are (pretrained or random init).
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np

from .. import io
from ..backbone import describe_weights
from ..data import load_image
from . import plots
from .protocol import Evaluation, known_masks, pick

METRICS = ("image_auroc", "pixel_auroc", "pro", "image_f1", "threshold", "memory_bank_size",
           "fit_seconds", "predict_seconds_per_image")


def pick_examples(ev: Evaluation, n_good: int = 4, n_bad: int = 8, seed: int = 0) -> list[int]:
    """A fixed sample of test images: some good ones and defective ones across defect types."""
    rng = np.random.default_rng(seed)
    good = [i for i, s in enumerate(ev.samples) if not s.label]
    by_defect: dict[str, list[int]] = {}
    for i, s in enumerate(ev.samples):
        if s.label:
            by_defect.setdefault(s.defect, []).append(i)
    bad = []
    while len(bad) < n_bad and any(by_defect.values()):
        for idx in by_defect.values():
            if idx and len(bad) < n_bad:
                bad.append(idx.pop(int(rng.integers(len(idx)))))
    return sorted(rng.permutation(good)[:n_good].tolist()) + bad


def overlay_figure(ev: Evaluation, idx: list[int]):
    """Overlays of test images idx on the model's colour scale, titled with score and verdict."""
    model = ev.model
    c, thr = model.config, model.threshold
    size = (0, 0) if c.tile else (c.resize, c.crop)  # tiled models: maps at the original size
    images = [load_image(ev.samples[i].path, *size).permute(1, 2, 0).numpy() for i in idx]
    masks = [None if ev.masks is None else ev.masks[i] for i in idx]
    titles = [f"{ev.samples[i].defect}: {ev.scores[i]:.3g} "
              f"{'pass' if ev.scores[i] < thr else 'FLAG'}" for i in idx]
    boxes = [[r["bbox"] for r in model.regions(ev.maps[i], thr, float(ev.scores[i]))]
             for i in idx]  # in the maps' pixels, as the images are shown
    lo, hi = model.map_range
    return plots.overlay_grid(images, [ev.maps[i] for i in idx], masks, titles, lo, hi,
                              suptitle=f"{ev.category}: {model.describe()}\n"
                                       "cyan outline = ground truth, green boxes = defect "
                                       "regions", boxes=boxes)


def category_figures(ev: Evaluation, out: Path) -> dict[str, str]:
    """Write the category's PNGs under out/; returns {kind: file name}."""
    model = ev.model
    sub, figs = model.describe(), {}
    labels = ev.labels
    figs["overlays"] = overlay_figure(ev, pick_examples(ev))
    figs["roc"] = plots.roc_figure(labels, ev.scores, f"{ev.category}: image ROC", sub)
    figs["histogram"] = plots.score_histogram(ev.scores, labels, model.threshold,
                                              f"{ev.category}: image scores", sub)
    if ev.summary.get("pro") is not None:
        known = known_masks(ev.samples)
        figs["pro"] = plots.pro_figure(pick(ev.masks, known), pick(ev.maps, known),
                                       title=f"{ev.category}: PRO", subtitle=sub)
    return {k: plots.save(f, out / f"{ev.category}_{k}.png").name for k, f in figs.items()}


def _h(text: str) -> str:
    """HTML text of any name, undecodable file-name bytes included."""
    return html.escape(plots.printable(text))


def rate_text(r: dict | None, what: str) -> str:
    """'12.5 [3.1, 45.2] (1 of 80 good parts flagged)': a rate, its 95% interval and counts."""
    if not r or r.get("value") is None:
        return "n/a"
    lo, hi = r["ci95"]
    return f"{r['value']:.3g} [{lo:.3g}, {hi:.3g}] ({r['count']} of {r['n']} {what})"


def operator_html(summary: dict) -> str:
    """The operator's table at the default threshold and the per-defect-type table (HTML)."""
    if "false_alarms_per_1000" not in summary:
        return ""
    a = summary.get("aupimo") or {}
    rows = [("false alarms per 1,000 good parts", rate_text(
                summary["false_alarms_per_1000"], "good parts flagged")),
            ("misses per 100 defects", rate_text(summary["misses_per_100"], "defects passed")),
            ("good flagged at full recall", _fmt(summary.get("good_flagged_at_full_recall"))),
            (f"AUPIMO (FPR {a.get('fpr_range')}, {a.get('n_images')} images)",
             _fmt(a.get("mean")) + (f" ({a['note']})" if a.get("note") else ""))]
    head = (f"<h3>Operator view at the default threshold {_fmt(summary.get('threshold'))} "
            "(95% Wilson intervals)</h3><table>")
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                    for k, v in rows) + "</table>"
    types = "".join(f"<tr><td>{html.escape(d)}</td><td>{t['count']}</td>"
                    f"<td>{_fmt(t['recall'])}</td><td>{_fmt(t['image_auroc'])}</td></tr>"
                    for d, t in (summary.get("per_defect_type") or {}).items())
    return (head + table + "<h3>Per defect type</h3><table><tr><th>defect type</th><th>count"
            "</th><th>recall</th><th>image AUROC vs good</th></tr>" + types + "</table>")


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def write_report(out: str | Path, results: list[Evaluation],
                 title: str = "patchcore-lite report") -> Path:
    """Write out/index.html (and figures, and results.json) for evaluated categories."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, sections = [], []
    for ev in results:
        model = ev.model
        files = category_figures(ev, out)
        rows.append("<tr><td>" + _h(ev.category) + "</td>" +
                    "".join(f"<td>{_fmt(ev.summary.get(m))}</td>" for m in METRICS) + "</tr>")
        imgs = "".join(f'<img src="{quote(os.fsencode(f))}" alt="{k}">' for k, f in files.items())
        sections.append(f"<h2>{_h(ev.category)}</h2><p>{_h(model.describe())}"
                        f"</p>{operator_html(ev.summary)}{imgs}")
    first = results[0].model
    weights_note = f"Backbone: {describe_weights(first.weights_used)}" + (
        ": these are NOT pretrained results; the paper's figures need ImageNet weights"
        if first.weights_used == "random" else "")
    head = "".join(f"<th>{m}</th>" for m in ("category", *METRICS))
    io.write_text(out / "index.html", f"""<!doctype html><html><head><meta charset="utf-8">
<title>{_h(title)}</title><style>body{{font-family:sans-serif;margin:2em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
img{{max-width:100%;margin:4px;vertical-align:top}} .weights{{font-weight:bold;color:#a00}}
</style></head><body><h1>{_h(title)}</h1>
<p class="weights">Weights: {html.escape(weights_note)}</p>
<p>Model: {html.escape(first.describe())}. Maps evaluated at {html.escape(
        results[0].summary["evaluated_at"])}. Scores are on the model's distance scale;
metrics on a 0-1 scale.</p><table><tr>{head}</tr>{''.join(rows)}</table>
{''.join(sections)}</body></html>""")
    summary = {ev.category: ev.summary for ev in results}
    io.write_text(out / "results.json", json.dumps(summary, indent=2))
    return out / "index.html"
