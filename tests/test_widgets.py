"""Widget callbacks are plain functions: call them as the notebooks' widgets would, no browser."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from patchcore_lite import PatchCore, backbone, data, knn, sampling
from patchcore_lite.evaluation.counts import confusion_counts
from patchcore_lite.teaching import widgets

matplotlib.use("Agg")

OPTS = dict(weights=None, resize=64, crop=0, sampling="random", sampling_ratio=0.5,
            progress=False)


@pytest.fixture(scope="module")
def tiny_model(tiny_category_ro):
    return PatchCore(**OPTS).fit(data.good_images(tiny_category_ro))


def _png(view: widgets.View) -> None:
    """Every figure of the view renders (matplotlib to PNG bytes)."""
    from IPython.display import Image

    objs = view.rendered()
    pngs = [o for o in objs if isinstance(o, Image)]
    assert len(pngs) == sum(isinstance(f, Figure) for f in view.figures)
    assert all(p.data.startswith(b"\x89PNG") for p in pngs)


# ---- threshold slider (notebook 05) ---------------------------------------------------------

def _threshold_lab(n=30, seed=0, with_maps=True):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(int)
    scores = np.round(rng.normal(1 + labels, 0.6), 1)  # rounding makes ties
    names = [f"img{i}" for i in range(n)]
    if not with_maps:
        return widgets.ThresholdLab(labels, scores, names)
    masks = np.zeros((n, 16, 16), bool)
    masks[labels == 1, 4:8, 4:8] = True
    maps = rng.random((n, 16, 16)) * scores[:, None, None]
    images = [rng.random((16, 16, 3)) for _ in range(n)]
    return widgets.ThresholdLab(labels, scores, names, maps, masks, images)


@pytest.mark.parametrize("seed", range(4))
def test_threshold_counts_sum_to_n_and_are_monotone(seed):
    lab = _threshold_lab(seed=seed, with_maps=False)
    n = len(lab.labels)
    grid = np.concatenate([np.unique(lab.scores), np.linspace(lab.scores.min() - 1,
                                                              lab.scores.max() + 1, 9)])
    previous = None
    for t in np.sort(grid):
        view = widgets.threshold_view(lab, t)
        c = view.data["counts"]
        assert sum(c.values()) == n
        assert c["tp"] + c["fn"] == int(lab.labels.sum())
        assert len(view.data["missed"]) == c["fn"]
        assert len(view.data["false_alarms"]) == c["fp"]
        if previous is not None:  # rising threshold: fewer flags, more passes
            assert c["tp"] <= previous["tp"] and c["fp"] <= previous["fp"]
            assert c["fn"] >= previous["fn"] and c["tn"] >= previous["tn"]
        previous = c
    lowest = widgets.threshold_view(lab, lab.scores.min()).data["counts"]
    assert lowest["tn"] == lowest["fn"] == 0  # score >= threshold: everything flagged
    above = widgets.threshold_view(lab, lab.scores.max() + 1e-9).data["counts"]
    assert above["tp"] == above["fp"] == 0


def test_threshold_view_figures_and_lists():
    lab = _threshold_lab()
    t = float(np.median(lab.scores))
    view = widgets.threshold_view(lab, t, n_overlays=5)
    assert len(view.figures) == 2  # confusion matrix + segmentation overlays
    assert len(view.figures[1].axes) == 5
    flagged = lab.scores >= t
    assert view.data["missed"] == [lab.names[i] for i in np.flatnonzero((lab.labels == 1)
                                                                        & ~flagged)]
    assert 0.0 <= view.data["segmented_fraction"] <= 1.0
    c = view.data["counts"]
    assert view.data["precision"] == pytest.approx(c["tp"] / (c["tp"] + c["fp"]))
    _png(view)
    assert confusion_counts(lab.labels, lab.scores, t) == c


def test_threshold_app_moves_with_the_slider():
    lab = _threshold_lab(with_maps=False)
    box = widgets.threshold_app(lab, threshold=1.0)
    slider = box.children[0].children[0]
    seen = []
    for t in np.linspace(slider.min, slider.max, 6):
        slider.value = float(t)
        seen.append(box.view.data["counts"])
        assert box.view.data["threshold"] == pytest.approx(slider.value)
    assert seen[0]["fn"] <= seen[-1]["fn"] and seen[-1]["tp"] + seen[-1]["fp"] == 0


def test_thresholds_view_and_roc():
    lab = _threshold_lab(with_maps=False)
    view = widgets.thresholds_view(lab.labels, lab.scores, 1.5, subtitle="weights: test")
    assert [r["threshold"] for r in view.data["rows"]][0] == 1.5
    assert len(view.data["rows"]) == 2 and view.data["f1"] > 0
    _png(view)
    fig = widgets.roc_plotly(lab.labels, lab.scores)
    assert fig.data[0].x[0] == 0 and fig.data[0].y[-1] == 1


# ---- live(): controls drive the callback ----------------------------------------------------

def test_live_renders_first_and_on_every_change():
    import ipywidgets as W

    calls = []

    def callback(a, b, scale=1):
        calls.append((a, b))
        return widgets.View(dict(total=scale * (a + b)))

    a, b = W.IntSlider(1, 0, 10), W.IntSlider(2, 0, 10)

    def update(change, controls):  # b follows a (a dependent control): no extra redraw
        if change["owner"] is controls["a"]:
            controls["b"].value = controls["a"].value

    box = widgets.live(callback, dict(a=a, b=b), update, scale=10)
    assert calls == [(1, 2)] and box.view.data["total"] == 30
    a.value = 5
    assert calls[-1] == (5, 5) and len(calls) == 2 and box.view.data["total"] == 100
    b.value = 7
    assert calls[-1] == (5, 7) and len(calls) == 3


def test_live_raises_a_broken_first_render():
    import ipywidgets as W

    def broken(a):
        raise ValueError("no such defect")

    with pytest.raises(ValueError, match="no such defect"):
        widgets.live(broken, dict(a=W.IntSlider(1)))


# ---- 00 data --------------------------------------------------------------------------------

def test_dataset_gallery_and_pipeline(tiny_category_ro):
    root = tiny_category_ro.parent
    view = widgets.dataset_view(root)
    assert view.data["widget"]["train"] == 6 and view.data["widget"]["test"]["broken"] == 2
    assert widgets.defect_types(tiny_category_ro) == ["good", "broken"]
    g = widgets.gallery(root, "widget", "broken", resize=64, crop=48)
    assert len(g.data["paths"]) == 2 and all(f > 0 for f in g.data["defect_fraction"])
    good = widgets.gallery(root, "widget", "good", resize=64, crop=48)
    assert good.data["defect_fraction"] == [0.0, 0.0]
    _png(g)
    with pytest.raises(ValueError):
        widgets.gallery(root, "widget", "nonexistent", resize=64)
    app = widgets.gallery_app(root, "widget")
    assert app.view.data["defect"] == "broken"
    assert isinstance(widgets.pipeline_figure(), Figure)


def test_first_look(tiny_model, tiny_category_ro):
    samples = data.test_samples(tiny_category_ro)
    view = widgets.first_look(tiny_model, samples[:3])
    assert len(view.data["scores"]) == 3
    assert "RANDOM-INIT" in view.figures[0].get_suptitle()  # the weights are named
    _png(view)


# ---- 01 backbone ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet():
    net, used = backbone.load_backbone("resnet18", None)
    return net, used


def test_feature_views(resnet):
    net, used = resnet
    x = torch.rand(2, 3, 64, 64)
    layers = ("layer1", "layer2", "layer3", "layer4")
    feats = backbone.FeatureExtractor(net, layers)(x)
    table = widgets.shape_table(layers, feats, 64)
    assert [r["stride"] for r in table.data["rows"]] == [4, 8, 16, 32]
    fmaps = dict(zip(layers, feats))
    view = widgets.feature_view(x, fmaps, "layer2", 500, subtitle=widgets.weights_label(used))
    assert view.data["channel"] == 127 and view.data["shape"] == (128, 8, 8)  # clamped
    _png(view)
    app = widgets.feature_app(x, fmaps, layer="layer1")
    layer, channel = app.children[0].children
    layer.value = "layer4"
    assert channel.max == 511 and app.view.data["layer"] == "layer4"
    assert "RANDOM-INIT" in widgets.weights_label("random")


def test_early_stop_and_hooks(resnet):
    net, _ = resnet
    x = torch.rand(1, 3, 64, 64)
    with backbone.FeatureExtractor(net, ("layer2",), hooks=True) as extractor:
        assert extractor(x)[0].shape[1] == 128
    assert net(x).shape == (1, 1000)  # hooks removed: the full pass works
    assert widgets.modules_run(net, ("layer2", "layer3"), x)[-1] == "layer3"
    view = widgets.early_stop_view(net, ("layer2", "layer3"), x, repeats=1)
    assert view.data["skipped"] == ["layer4", "avgpool", "fc"]
    assert view.data["params_ran"] < view.data["params_total"] / 2
    assert module_names(widgets.module_table(net)) == [n for n, _ in net.named_children()]
    assert not any(m._forward_hooks for m in net.modules())  # the caller's net is untouched


def module_names(view):
    return [r["module"] for r in view.data["rows"]]


# ---- 02 embedding ---------------------------------------------------------------------------

def test_embedding_views():
    g = torch.Generator().manual_seed(0)
    feats = {"layer1": torch.rand(2, 8, 16, 16, generator=g),
             "layer2": torch.rand(2, 16, 8, 8, generator=g),
             "layer3": torch.rand(2, 32, 4, 4, generator=g)}
    x = torch.rand(2, 3, 64, 64, generator=g)
    view = widgets.pca_rgb_view(x, feats, ("layer3", "layer2"), local=True)
    assert view.data["layers"] == ["layer2", "layer3"]  # shallow first, on the finest grid
    assert view.data["grid"] == (8, 8) and view.data["dim"] == 48
    assert 0 < sum(view.data["explained"]) <= 1
    _png(view)
    rgb, _ = widgets.pca_rgb(torch.rand(2, 4, 4, 6, generator=g))
    assert rgb.shape == (2, 4, 4, 3) and rgb.min() >= 0 and rgb.max() <= 1
    agg = widgets.aggregation_view(feats["layer2"], channel=3)
    assert agg.data["shape_before"] == agg.data["shape_after"]
    assert agg.data["std_after"] < agg.data["std_before"]  # averaging smooths
    red = widgets.reduction_view([feats["layer2"], feats["layer3"]], dims=(8, 24), n_pairs=200)
    assert [r["dim"] for r in red.data["rows"]] == [48, 8, 24]
    assert all(-1 <= r["correlation"] <= 1 for r in red.data["rows"])
    app = widgets.pca_app(x, feats)
    assert app.view.data["layers"] == ["layer2", "layer3"]


# ---- 03 memory bank -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bank_lab(tiny_model):
    g = torch.Generator().manual_seed(0)
    train = torch.randn(600, 16, generator=g)
    test = torch.randn(6, 4, 5, 16, generator=g)
    test[3:, :2, :2] += 6.0  # three test images with four far-off patches each
    s = tiny_model.config.input_size
    masks = np.zeros((6, s, s), bool)  # maps come at the model's input size
    masks[3:, :s // 2, :s // 2] = True
    return widgets.BankLab(tiny_model, train, test, [0, 0, 0, 1, 1, 1], masks)


def test_bank_lab_results(bank_lab):
    full = bank_lab.result("none", 1.0)
    assert full["bank_size"] == 600 and full["coverage_radius"] == 0.0
    assert full["image_auroc"] == 1.0 and full["pixel_auroc"] > 0.9
    rand, core = bank_lab.result("random", 0.1), bank_lab.result("coreset", 0.1)
    assert rand["bank_size"] == core["bank_size"] == sampling.n_keep(600, 0.1)
    assert core["coverage_radius"] < rand["coverage_radius"]
    idx, _ = bank_lab.select("coreset", 0.1)
    radius = float(knn.knn(bank_lab.train, bank_lab.train[idx], 1)[0].max())
    assert core["coverage_radius"] == pytest.approx(radius)
    assert bank_lab.select("coreset", 0.1)[0] is idx  # computed once


def test_bank_views(bank_lab):
    for method in sampling.SAMPLING_METHODS:
        view = widgets.bank_view(bank_lab, method, 0.05)
        assert view.data["method"] == method and "nn_dist" not in view.data
        assert len(view.figures) == 1
    _png(view)
    table = widgets.sampling_table(bank_lab, [("none", 1.0), ("random", 0.05),
                                              ("coreset", 0.05)])
    assert [r["method"] for r in table.data["rows"]] == ["none", "random", "coreset"]
    app = widgets.bank_app(bank_lab, "random", 0.1)
    method, ratio = app.children[0].children
    method.value = "coreset"
    assert app.view.data["method"] == "coreset"


# ---- 04 kNN scoring and the "why is this anomalous" view ------------------------------------

@pytest.fixture(scope="module")
def explain_lab(tiny_model, tiny_category_ro):
    return widgets.ExplainLab(tiny_model, data.test_samples(tiny_category_ro))


def test_explain_pixel_points_at_the_real_training_patch(explain_lab, tiny_model):
    lab, model = explain_lab, tiny_model
    i = lab.index("broken/000.png")
    y, x = lab.hottest(i)
    view = widgets.explain_pixel(lab, i, 1, y, x)
    h, w = model.bank.grid
    cell = model.config.input_size // h
    assert view.data["cell"] == (y // cell, x // cell)
    _, feats, _ = lab.image(i)
    dist, idx = knn.knn(feats[y // cell, x // cell][None], model.bank.patches, 1)
    assert view.data["bank_index"] == int(idx[0, 0])
    assert view.data["score"] == pytest.approx(float(dist[0, 0]))
    # provenance: the training image and cell the view names really give that bank vector
    ty, tx = view.data["train_cell"]
    train_feats = model.embed(data.load_image(view.data["train_image"], 64, 0)[None])[0]
    assert torch.allclose(train_feats[ty, tx], model.bank.patches[view.data["bank_index"]],
                          atol=1e-5)
    _png(view)


def test_explain_k_and_scoring_steps(explain_lab, tiny_model):
    lab = explain_lab
    i = lab.index("broken/001.png")
    one = widgets.explain_pixel(lab, i, 1, 10, 20)
    three = widgets.explain_pixel(lab, i, 3, 10, 20)
    assert len(three.data["neighbours"]) == 3 and three.data["score"] >= one.data["score"]
    assert three.data["distances"] == sorted(three.data["distances"])
    assert three.data["distances"][0] == pytest.approx(one.data["score"])
    assert (lab.patch_scores(i, 3) >= lab.patch_scores(i, 1) - 1e-6).all()
    steps = widgets.scoring_steps(lab, i)
    scores, _ = tiny_model.predict([lab.samples[i].path])
    assert steps.data["image_score"] == pytest.approx(float(scores[0]), rel=1e-5)
    edge = widgets.explain_pixel(lab, i, 1, 10_000, -5)  # clamped into the image
    assert edge.data["pixel"] == (63, 0)
    img, _, mask = lab.image(i)
    fig = widgets.heatmap_plotly(img, lab.anomaly_map(i), mask)
    assert len(fig.data) == 3  # image, heatmap, ground-truth contour
    app = widgets.explain_app(lab, image="good/000.png")
    image, k, py, px = app.children[0].children
    image.value = i
    assert (py.value, px.value) == lab.hottest(i) and app.view.data["pixel"] == lab.hottest(i)


def test_toy_points_and_source():
    pts = widgets.toy_points()
    assert pts.shape[1] == 2 and len(pts) > 1000
    assert "def aggregate" in widgets.source(widgets.embedding.aggregate).data
