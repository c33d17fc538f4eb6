"""Operator metrics: Wilson intervals against scipy, rates and per-type recall by hand and against
scikit-learn, AUPIMO against a hand-computed case and against anomalib's definition (written
here from the paper's description), and `evaluate`'s JSON recomputed from `predict`'s scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import FAST, run_in_process
from scipy.integrate import trapezoid
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from patchcore_lite.apps import evaluate_all
from patchcore_lite.evaluation import operator

MOBILENET = ["--backbone", "mobilenet_v2", "--layers", "features.6,features.13"]


@pytest.mark.parametrize("k, n", [(0, 10), (1, 2), (5, 10), (3, 250), (80, 80), (1, 1)])
def test_wilson_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert operator.wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    r = operator.rate(k, n, 1000)
    assert r["value"] == 1000 * k / n and r["count"] == k and r["n"] == n
    assert r["ci95"] == pytest.approx([1000 * ci.low, 1000 * ci.high])
    assert operator.wilson(0, 0) is None and operator.rate(0, 0, 100)["value"] is None


def test_rates_per_type_and_full_recall_by_hand():
    labels = [0, 0, 0, 0, 1, 1, 1]
    scores = [0.1, 0.5, 0.7, float("nan"), 0.6, 0.9, 0.3]
    defects = ["good"] * 4 + ["crack", "crack", "hole"]
    r = operator.at_threshold(labels, scores, 0.55)
    fa = r["false_alarms_per_1000"]
    assert (fa["count"], fa["n"]) == (2, 4)  # 0.7 and NaN
    assert (r["misses_per_100"]["count"], r["misses_per_100"]["n"]) == (1, 3)  # the hole at 0.3
    assert r["misses_per_100"]["value"] == pytest.approx(100 / 3)
    finite = [0, 1, 2, 4, 5, 6]
    t = operator.per_defect_type(np.array(defects)[finite], np.array(labels)[finite],
                                 np.array(scores)[finite], 0.55)
    assert t == {"crack": dict(count=2, recall=1.0, image_auroc=5 / 6),  # 0.6 below 0.7
                 "hole": dict(count=1, recall=0.0, image_auroc=roc_auc_score(
                     [0, 0, 0, 1], [0.1, 0.5, 0.7, 0.3]))}
    # every defect caught at 0.3 (the lowest defective score): 0.5, 0.7 and NaN of 4 good flagged
    assert operator.good_flagged_at_full_recall(labels, scores) == 0.75
    assert operator.good_flagged_at_full_recall([1, 1], [0.2, 0.3]) is None


def test_aupimo_hand_computed():
    """Two good 250 x 200 images (100,000 pixels): all 0 but ten pixels 10, 9, ..., 1, so the
    shared FPR at threshold v_j = 11 - j is j / 100,000, exactly 1e-5 ... 1e-4. One defective
    image's four defect pixels score 9.5, 5.5, 5.5, 0: TPR is 1/4 for FPR in (1e-5, 5e-5] and
    3/4 in (5e-5, 1e-4], so AUPIMO = (1/4 ln 5 + 3/4 ln 2) / ln 10."""
    good = [np.zeros((250, 200)), np.zeros((250, 200))]
    good[0].flat[:10] = np.arange(10, 0, -1)
    bad, mask = np.zeros((10, 10)), np.zeros((10, 10), bool)
    bad.flat[:4], mask.flat[:4] = [9.5, 5.5, 5.5, 0.0], True
    r = operator.aupimo([0, 0, 1], [*good, bad], [None, None, mask], ["g0", "g1", "bad"])
    expected = (0.25 * math.log(5) + 0.75 * math.log(2)) / math.log(10)
    assert r["per_image"] == {"bad": pytest.approx(expected, abs=1e-12)}
    assert r["mean"] == pytest.approx(expected) and r["n_good_pixels"] == 100_000
    small = operator.aupimo([0, 1], [good[0][:100], bad], [None, mask], ["g", "bad"])
    assert small["mean"] is None and "100,000" in small["note"]  # 20,000 pixels: unresolved


def _aupimo_reference(good, bad, masks, n_thresholds=300_000, lo=1e-5, hi=1e-4):
    """anomalib's definition: thresholds evenly spaced over the good maps' range; shared FPR =
    mean over good images of the fraction of pixels >= t; per-image TPR; the thresholds whose
    FPR is closest to the bounds; trapezoid over ln FPR between them, divided by ln(hi / lo)."""
    pixels = np.concatenate([g.ravel() for g in good])
    th = np.linspace(pixels.min(), pixels.max(), n_thresholds)

    def above(values):  # fraction of values >= each threshold
        v = np.sort(np.ravel(values))
        return (v.size - np.searchsorted(v, th, side="left")) / v.size

    fpr = np.mean([above(g) for g in good], axis=0)  # descending
    i_hi, i_lo = int(np.argmin(np.abs(fpr - hi))), int(np.argmin(np.abs(fpr - lo)))
    x = np.log(fpr[i_hi:i_lo + 1][::-1])
    out = []
    for m, k in zip(bad, masks):
        y = above(m[k])[i_hi:i_lo + 1][::-1]
        out.append(trapezoid(y[np.isfinite(x)], x[np.isfinite(x)]) / math.log(hi / lo))
    return np.clip(out, 0, 1)


def test_aupimo_matches_anomalib_definition():
    rng = np.random.default_rng(0)
    good = [rng.standard_normal((100, 250)) for _ in range(4)]  # 100,000 good pixels
    bad, masks = [], []
    for shift in (3.0, 4.0, 5.5):
        m, k = rng.standard_normal((100, 250)), np.zeros((100, 250), bool)
        k[20:60, 50:120] = True
        m[k] += shift + rng.standard_normal(int(k.sum()))  # defect pixels: higher, spread out
        bad.append(m)
        masks.append(k)
    r = operator.aupimo([0] * 4 + [1] * 3, good + bad, [None] * 4 + masks, list("abcdefg"))
    got = [r["per_image"][n] for n in "efg"]
    ref = _aupimo_reference(good, bad, masks)
    assert 0.05 < got[0] < got[1] < got[2] < 0.99  # the test separates the three cases
    assert got == pytest.approx(ref, abs=3e-3)


def test_evaluate_all_table_shows_the_operator_figures(tmp_path):
    def result(fa, aup):
        return dict(image_auroc=0.9, false_alarms_per_1000=dict(value=fa, ci95=[1.0, 90.0],
                    count=1, n=40), aupimo=dict(mean=aup), weights="random")

    table = dict(categories=dict(a=result(25.0, 0.5), b=result(75.0, None)))
    table["mean"] = evaluate_all.mean_row(table["categories"])
    assert table["mean"]["false_alarms_per_1000"] == 50.0 and table["mean"]["aupimo"] == 0.5
    page = evaluate_all.write_table(tmp_path / "index.html", table).read_text()
    assert "false_alarms_per_1000" in page and "25.000 [1, 90]" in page and "aupimo" in page


def _truth(path: str) -> tuple[str, str]:
    p = Path(path)
    return p.parent.name, p.name


@pytest.mark.parametrize("opts", [FAST, ["--weights", "none", "--resize", "224", "--crop", "0",
                                         "--sampling", "random", *MOBILENET]],
                         ids=["resnet18", "mobilenet-224"])
def test_evaluate_json_recomputed_from_predict_scores(tiny_category_ro, tmp_path, opts):
    model, js, rep = tmp_path / "m.pclite", tmp_path / "ev.json", tmp_path / "report"
    assert run_in_process("fit", tiny_category_ro, "--model", model, *opts).returncode == 0
    r = run_in_process("evaluate", tiny_category_ro, "--model", model, "--json", js, "--out", rep)
    assert r.returncode == 0, r.stderr
    ev = json.loads(js.read_text())
    lines = [json.loads(x) for x in run_in_process(
        "predict", "--model", model, tiny_category_ro / "test").stdout.splitlines()]
    thr = ev["threshold"]
    assert all(x["threshold"] == thr for x in lines)
    good = [x["score"] for x in lines if _truth(x["path"])[0] == "good"]
    bad = [x["score"] for x in lines if _truth(x["path"])[0] != "good"]
    fa, miss = ev["false_alarms_per_1000"], ev["misses_per_100"]
    assert (fa["count"], fa["n"]) == (sum(s >= thr for s in good), len(good))
    assert (miss["count"], miss["n"]) == (sum(s < thr for s in bad), len(bad))
    for rate, per in ((fa, 1000), (miss, 100)):
        ci = binomtest(rate["count"], rate["n"]).proportion_ci(method="wilson")
        assert rate["value"] == per * rate["count"] / rate["n"]
        assert rate["ci95"] == pytest.approx([per * ci.low, per * ci.high])
    labels = [0] * len(good) + [1] * len(bad)
    assert ev["per_defect_type"] == {"broken": dict(
        count=len(bad), recall=pytest.approx(np.mean([s >= thr for s in bad])),
        image_auroc=pytest.approx(roc_auc_score(labels, good + bad)))}
    assert ev["good_flagged_at_full_recall"] == np.mean([s >= min(bad) for s in good])
    a = ev["aupimo"]
    if a["n_good_pixels"] >= 100_000:  # 224 px maps: the range is resolved
        assert sorted(_truth(p) for p in a["per_image"]) == sorted(
            _truth(x["path"]) for x in lines if _truth(x["path"])[0] != "good")
        assert all(0 <= v <= 1 for v in a["per_image"].values())
        assert a["mean"] == pytest.approx(np.mean(list(a["per_image"].values())))
    else:
        assert a["mean"] is None and a["note"]
    page = (rep / "index.html").read_text()
    assert "false alarms per 1,000 good parts" in page and "Per defect type" in page
