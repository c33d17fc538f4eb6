"""Defect regions: hand-made maps with known components, the crop mapped back to the original
pixels, and `predict`'s JSON against the verdicts and the ground-truth masks (resnet18 and
mobilenet_v2, plain, cropped and tiled models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import FAST, run_in_process
from matplotlib.figure import Figure
from PIL import Image
from scipy import ndimage

from patchcore_lite import regions
from patchcore_lite.data import resize_crop
from patchcore_lite.evaluation import plots

MOBILENET = ["--backbone", "mobilenet_v2", "--layers", "features.6,features.13"]


def _two_blobs() -> np.ndarray:
    """A 20 x 30 map: background 1, a 3 x 4 blob peaking at 9 and a 2 x 2 one of 5."""
    m = np.ones((20, 30))
    m[2:5, 10:14] = 6.0
    m[3, 12] = 9.0
    m[15:17, 20:22] = 5.0
    return m


def test_components_boxes_areas_and_peaks_by_hand():
    found = regions.find(_two_blobs(), threshold=4.0)
    assert found == [dict(bbox=[10, 2, 4, 3], area=12, peak=9.0),
                     dict(bbox=[20, 15, 2, 2], area=4, peak=5.0)]
    diagonal = np.zeros((5, 5))
    diagonal[[0, 1, 2], [0, 1, 2]] = 1.0  # touching corners: one 8-connected region
    assert [r["area"] for r in regions.find(diagonal, 0.5)] == [3]


def test_min_area_keeps_the_peak_region():
    m = _two_blobs()
    assert [r["area"] for r in regions.find(m, 4.0, min_area=5)] == [12]
    m[15:17, 20:22] = 10.0  # the small blob now holds the peak: kept whatever its size
    assert [r["area"] for r in regions.find(m, 4.0, min_area=100)] == [4]


def test_a_flagged_image_always_has_a_region_and_a_passing_one_none():
    m = _two_blobs()  # map peak 9 (the blur lowered it); the image score is 12
    found = regions.find(m, threshold=10.0, score=12.0, normalize=lambda v: v / 20)
    assert found and found[0]["peak"] == 12.0 and found[0]["normalized_peak"] == 0.6
    x, y, w, h = found[0]["bbox"]
    assert x <= 12 < x + w and y <= 3 < y + h  # the map's peak pixel
    assert regions.find(m, threshold=12.5, score=12.0) == []  # score < threshold: passes
    # the stretch is monotone, fixed at and below the median: a level set of the map itself
    s = regions.stretched(m, 12.0)
    assert s.max() == 12.0 and np.array_equal(s[m <= 1.0], m[m <= 1.0])
    assert np.array_equal(np.argsort(s, axis=None, kind="stable"),
                          np.argsort(m, axis=None, kind="stable"))
    nan_score = regions.find(m, threshold=50.0, score=float("nan"))
    assert len(nan_score) == 1 and nan_score[0]["peak"] is None and nan_score[0]["area"] == 1


def test_crop_mapped_back_to_the_original_pixels():
    """A defect drawn in a 60 x 100 original goes through the model's resize and centre crop;
    its region, mapped back, is the drawn box (to one resized pixel); outside the crop: none."""
    h, w, resize, crop = 60, 100, 64, 48
    mask = np.zeros((h, w), np.float32)
    mask[20:40, 30:50] = 1.0
    amap = resize_crop(torch.from_numpy(mask)[None], resize, crop, nearest=True)[0].numpy()
    orig = regions.to_original(amap, (h, w), resize, crop)
    (r,) = regions.find(orig, 0.5)
    tol = np.ceil([w / resize, h / resize, w / resize, h / resize])
    assert np.all(np.abs(np.array(r["bbox"]) - [30, 20, 20, 20]) <= tol), r
    t = (resize - crop) / 2
    inside_x = (np.arange(w) + 0.5) * resize / w
    inside_x = (inside_x >= t) & (inside_x < t + crop)
    assert np.array_equal(np.isfinite(orig).any(axis=0), inside_x)  # -inf outside the crop
    edge = np.zeros((h, w), np.float32)
    edge[:, :5] = 1.0  # a defect in the left margin, which the crop never shows
    amap = resize_crop(torch.from_numpy(edge)[None], resize, crop, nearest=True)[0].numpy()
    assert regions.find(regions.to_original(amap, (h, w), resize, crop), 0.5) == []


def test_boxes_are_drawn_where_they_belong():
    fig = plots.overlay(np.zeros((20, 30, 3)), _two_blobs(), boxes=[[10, 2, 4, 3]])
    assert isinstance(fig, Figure)
    (box,) = fig.axes[0].patches
    assert (box.get_x(), box.get_y(), box.get_width(), box.get_height()) == (9.5, 1.5, 4, 3)


def _lines(text: str) -> list[dict]:
    return [json.loads(x) for x in text.splitlines()]


def _mask(category, line: dict) -> np.ndarray | None:
    """The ground-truth mask of a predicted test image at its original size (None if good)."""
    name = line["path"].split("/")
    if name[-2] == "good":
        return None
    return np.asarray(Image.open(category / "ground_truth" / name[-2] /
                                 f"{name[-1][:-4]}_mask.png")) > 0


@pytest.mark.parametrize("opts", [FAST, ["--weights", "none", "--resize", "80", "--crop", "64",
                                         "--sampling", "random", *MOBILENET],
                                  [*FAST, "--tile", "40"]],
                         ids=["resnet18", "mobilenet-crop", "tiled"])
def test_predict_regions_follow_the_verdicts_and_the_masks(tiny_category_ro, tmp_path, opts):
    model, out = tmp_path / "m.pclite", tmp_path / "overlays"
    assert run_in_process("fit", tiny_category_ro, "--model", model, *opts).returncode == 0
    r = run_in_process("predict", "--model", model, tiny_category_ro / "test", "--out", out)
    assert r.returncode == 0, r.stderr
    lines = _lines(r.stdout)
    for x in lines:
        assert bool(x["regions"]) == x["anomalous"], x  # none for a pass, >= 1 when flagged
        if x["regions"]:
            assert x["regions"][0]["peak"] == pytest.approx(x["score"], rel=1e-6)
            assert x["regions"][0]["normalized_peak"] == pytest.approx(x["normalized_score"])
        mask = _mask(tiny_category_ro, x)
        if mask is not None and x["regions"]:
            bx, by, bw, bh = max(x["regions"], key=lambda g: g["area"])["bbox"]
            assert mask[by:by + bh, bx:bx + bw].any(), x  # the largest region meets the defect
            assert bx + bw <= mask.shape[1] and by + bh <= mask.shape[0]  # original pixels
    assert sum(bool(x["regions"]) for x in lines if _mask(tiny_category_ro, x) is not None) >= 1
    assert len(list(out.rglob("*_overlay.png"))) == len(lines)
    big = _lines(run_in_process("predict", "--model", model, tiny_category_ro / "test",
                                "--min-area", "100000").stdout)
    assert [len(x["regions"]) for x in big] == [int(x["anomalous"]) for x in lines]


def test_min_area_must_be_a_whole_number(tiny_category_ro, tmp_path):
    r = run_in_process("predict", "--model", tmp_path / "m.pclite", tiny_category_ro,
                       "--min-area", "-3")
    assert r.returncode == 2 and "--min-area" in r.stderr and r.stderr.count("error:") == 1


def test_python_api_regions_match_scipy_labels(tiny_category_ro):
    from patchcore_lite import PatchCore
    from patchcore_lite.data import good_images

    model = PatchCore(weights=None, resize=64, crop=0, sampling="random", progress=False)
    model.fit(good_images(tiny_category_ro))
    scores, maps = model.predict(sorted((tiny_category_ro / "test" / "broken").iterdir()))
    thr = float(np.min(scores))  # every image flagged
    for s, m in zip(scores, maps):
        found = model.regions(m, thr, float(s))
        level = regions.stretched(m, float(s)) >= thr
        labels, n = ndimage.label(level, structure=np.ones((3, 3)))
        assert len(found) == n and sum(r["area"] for r in found) == int(level.sum())
