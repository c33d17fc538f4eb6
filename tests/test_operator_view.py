"""The operator view of the course: the threshold slider's numbers (rates, intervals, per defect
type) against hand counts and scipy, the curves' bands, and the regions view."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.stats import binomtest

from patchcore_lite import PatchCore
from patchcore_lite.data import good_images
from patchcore_lite.evaluation import protocol
from patchcore_lite.teaching import operator as op_view

LABELS = np.array([0] * 6 + [1] * 4)
SCORES = np.array([0.1, 0.2, 0.3, 0.35, 0.5, 0.8, 0.4, 0.6, 0.7, 0.9])
DEFECTS = ["good"] * 6 + ["crack", "crack", "hole", "hole"]


@pytest.fixture(scope="module")
def ev(tiny_category_ro):
    model = PatchCore(weights=None, resize=64, crop=0, sampling="random", progress=False)
    return protocol.evaluate(tiny_category_ro, model.fit(good_images(tiny_category_ro)))


def test_numbers_at_a_threshold_by_hand():
    n = op_view.operator_numbers(LABELS, SCORES, DEFECTS, 0.45)
    fa, miss = n["false_alarms_per_1000"], n["misses_per_100"]
    assert (fa["count"], fa["n"], fa["value"]) == (2, 6, 1000 * 2 / 6)  # 0.5 and 0.8 flagged
    assert (miss["count"], miss["n"], miss["value"]) == (1, 4, 25.0)  # the crack at 0.4
    ci = binomtest(1, 4).proportion_ci(method="wilson")
    assert miss["ci95"] == pytest.approx([100 * ci.low, 100 * ci.high])
    assert n["per_defect_type"]["crack"]["recall"] == 0.5
    assert n["per_defect_type"]["hole"]["recall"] == 1.0


def test_curves_are_monotone_and_inside_their_bands():
    grid = np.linspace(0, 1, 41)
    c = op_view.rate_curves(LABELS, SCORES, grid)
    fa, miss = c["false_alarms_per_1000"], c["misses_per_100"]
    assert np.all(np.diff(fa[:, 0]) <= 0) and np.all(np.diff(miss[:, 0]) >= 0)
    for r in (fa, miss):
        assert np.all(r[:, 1] <= r[:, 0] + 1e-9) and np.all(r[:, 0] <= r[:, 2] + 1e-9)
    assert fa[0, 0] == 1000 and miss[-1, 0] == 100  # everything flagged / everything passed


def test_view_caption_and_figure():
    v = op_view.operator_view(LABELS, SCORES, DEFECTS, 0.45, default=0.6, subtitle="toy")
    assert v.data["threshold"] == 0.45 and len(v.figures) == 1
    assert isinstance(v.figures[0], Figure) and len(v.figures[0].axes) == 2
    assert "333" in v.caption and "| crack | 2 | 0.5 |" in v.caption


def test_app_follows_the_slider(ev):
    app = op_view.operator_app(ev)
    slider = app.children[0].children[0]
    assert app.view.data["threshold"] == pytest.approx(ev.model.threshold)
    slider.value = slider.max
    assert app.view.data["false_alarms_per_1000"]["count"] == 0
    assert app.view.data["misses_per_100"]["count"] == int(ev.labels.sum())


def test_regions_view_matches_the_model(ev):
    v = op_view.regions_view(ev, n=3)
    names = list(v.data["regions"])
    assert len(names) == 2 and names[-1].startswith("good/")  # one broken, one good
    for name, found in v.data["regions"].items():
        i = next(j for j, s in enumerate(ev.samples) if f"{s.defect}/{s.path.name}" == name)
        assert bool(found) == bool(ev.scores[i] >= ev.model.threshold)
    assert isinstance(v.figures[0], Figure) and "bbox" in v.caption
