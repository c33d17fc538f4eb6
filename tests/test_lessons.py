"""Lesson views are plain functions: call them as the notebooks' widgets would, no browser.

Each v's compute function is asserted on directly; the v must show the same numbers."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from helpers import TINY as OPTS
from matplotlib.figure import Figure

from patchcore_lite import PatchCore, backbone, data, embedding, knn, sampling
from patchcore_lite.evaluation.counts import confusion_counts
from patchcore_lite.teaching import lesson00, lesson01, lesson02, lesson03, lesson04, lesson05, view

matplotlib.use("Agg")



@pytest.fixture(scope="module")
def tiny_model(tiny_category_ro):
    return PatchCore(**OPTS).fit(data.good_images(tiny_category_ro))


def _png(v: view.View) -> None:
    """Every figure of the v renders (matplotlib to PNG bytes)."""
    from IPython.display import Image

    objs = v.rendered()
    pngs = [o for o in objs if isinstance(o, Image)]
    assert len(pngs) == sum(isinstance(f, Figure) for f in v.figures)
    assert all(p.data.startswith(b"\x89PNG") for p in pngs)


# ---- threshold slider (notebook 05) ---------------------------------------------------------

def _threshold_lab(n=30, seed=0, with_maps=True):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(int)
    scores = np.round(rng.normal(1 + labels, 0.6), 1)  # rounding makes ties
    names = [f"img{i}" for i in range(n)]
    if not with_maps:
        return lesson05.ThresholdLab(labels, scores, names)
    masks = np.zeros((n, 16, 16), bool)
    masks[labels == 1, 4:8, 4:8] = True
    maps = rng.random((n, 16, 16)) * scores[:, None, None]
    images = [rng.random((16, 16, 3)) for _ in range(n)]
    return lesson05.ThresholdLab(labels, scores, names, maps, masks, images)


@pytest.mark.parametrize("seed", range(4))
def test_threshold_counts_sum_to_n_and_are_monotone(seed):
    lab = _threshold_lab(seed=seed, with_maps=False)
    n = len(lab.labels)
    grid = np.concatenate([np.unique(lab.scores), np.linspace(lab.scores.min() - 1,
                                                              lab.scores.max() + 1, 9)])
    previous = None
    for t in np.sort(grid):
        v = lesson05.threshold_view(lab, t)
        c = v.data["counts"]
        assert sum(c.values()) == n
        assert c["tp"] + c["fn"] == int(lab.labels.sum())
        assert len(v.data["missed"]) == c["fn"]
        assert len(v.data["false_alarms"]) == c["fp"]
        if previous is not None:  # rising threshold: fewer flags, more passes
            assert c["tp"] <= previous["tp"] and c["fp"] <= previous["fp"]
            assert c["fn"] >= previous["fn"] and c["tn"] >= previous["tn"]
        previous = c
    lowest = lesson05.threshold_view(lab, lab.scores.min()).data["counts"]
    assert lowest["tn"] == lowest["fn"] == 0  # score >= threshold: everything flagged
    above = lesson05.threshold_view(lab, lab.scores.max() + 1e-9).data["counts"]
    assert above["tp"] == above["fp"] == 0


def test_threshold_view_figures_and_lists():
    lab = _threshold_lab()
    t = float(np.median(lab.scores))
    v = lesson05.threshold_view(lab, t, n_overlays=5)
    assert len(v.figures) == 2  # confusion matrix + segmentation overlays
    assert len(v.figures[1].axes) == 5
    flagged = lab.scores >= t
    assert v.data["missed"] == [lab.names[i] for i in np.flatnonzero((lab.labels == 1)
                                                                        & ~flagged)]
    assert 0.0 <= v.data["segmented_fraction"] <= 1.0
    c = v.data["counts"]
    assert v.data["precision"] == pytest.approx(c["tp"] / (c["tp"] + c["fp"]))
    _png(v)
    assert confusion_counts(lab.labels, lab.scores, t) == c


def test_threshold_app_moves_with_the_slider():
    lab = _threshold_lab(with_maps=False)
    box = lesson05.threshold_app(lab, threshold=1.0)
    slider = box.children[0].children[0]
    seen = []
    for t in np.linspace(slider.min, slider.max, 6):
        slider.value = float(t)
        seen.append(box.view.data["counts"])
        assert box.view.data["threshold"] == pytest.approx(slider.value)
    assert seen[0]["fn"] <= seen[-1]["fn"] and seen[-1]["tp"] + seen[-1]["fp"] == 0


def test_thresholds_view_and_roc():
    lab = _threshold_lab(with_maps=False)
    v = lesson05.thresholds_view(lab.labels, lab.scores, 1.5, subtitle="weights: test")
    assert [r["threshold"] for r in v.data["rows"]][0] == 1.5
    assert len(v.data["rows"]) == 2 and v.data["f1"] > 0
    _png(v)
    fig = lesson05.roc_plotly(lab.labels, lab.scores)
    assert fig.data[0].x[0] == 0 and fig.data[0].y[-1] == 1


# ---- live(): controls drive the callback ----------------------------------------------------

def test_live_renders_first_and_on_every_change():
    import ipywidgets as W

    calls = []

    def callback(a, b, scale=1):
        calls.append((a, b))
        return view.View(dict(total=scale * (a + b)))

    a, b = W.IntSlider(1, 0, 10), W.IntSlider(2, 0, 10)

    def update(change, controls):  # b follows a (a dependent control): no extra redraw
        if change["owner"] is controls["a"]:
            controls["b"].value = controls["a"].value

    box = view.live(callback, dict(a=a, b=b), update, scale=10)
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
        view.live(broken, dict(a=W.IntSlider(1)))


# ---- 00 data --------------------------------------------------------------------------------

def test_dataset_gallery_and_pipeline(tiny_category_ro):
    root = tiny_category_ro.parent
    v = lesson00.dataset_view(root)
    assert v.data["widget"]["train"] == 6 and v.data["widget"]["test"]["broken"] == 2
    assert view.defect_types(tiny_category_ro) == ["good", "broken"]
    g = lesson00.gallery(root, "widget", "broken", resize=64, crop=48)
    assert len(g.data["paths"]) == 2 and all(f > 0 for f in g.data["defect_fraction"])
    good = lesson00.gallery(root, "widget", "good", resize=64, crop=48)
    assert good.data["defect_fraction"] == [0.0, 0.0]
    _png(g)
    with pytest.raises(ValueError):
        lesson00.gallery(root, "widget", "nonexistent", resize=64)
    app = lesson00.gallery_app(root, "widget")
    assert app.view.data["defect"] == "broken"
    assert isinstance(lesson00.pipeline_figure(), Figure)


def test_first_look(tiny_model, tiny_category_ro):
    samples = data.test_samples(tiny_category_ro)
    v = lesson00.first_look(tiny_model, samples[:3])
    assert len(v.data["scores"]) == 3
    assert "RANDOM-INIT" in v.figures[0].get_suptitle()  # the weights are named
    _png(v)


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
    table = lesson01.shape_table(layers, feats, 64)
    assert [r["stride"] for r in table.data["rows"]] == [4, 8, 16, 32]
    fmaps = dict(zip(layers, feats))
    v = lesson01.feature_view(x, fmaps, "layer2", 500, subtitle=view.weights_label(used))
    assert v.data["channel"] == 127 and v.data["shape"] == (128, 8, 8)  # clamped
    _png(v)
    app = lesson01.feature_app(x, fmaps, layer="layer1")
    layer, channel = app.children[0].children
    layer.value = "layer4"
    assert channel.max == 511 and app.view.data["layer"] == "layer4"
    assert "RANDOM-INIT" in view.weights_label("random")


def test_early_stop_and_hooks(resnet):
    net, _ = resnet
    x = torch.rand(1, 3, 64, 64)
    with backbone.FeatureExtractor(net, ("layer2",), hooks=True) as extractor:
        assert extractor(x)[0].shape[1] == 128
    assert net(x).shape == (1, 1000)  # hooks removed: the full pass works
    assert lesson01.modules_run(net, ("layer2", "layer3"), x)[-1] == "layer3"
    v = lesson01.early_stop_view(net, ("layer2", "layer3"), x, repeats=1)
    assert v.data["skipped"] == ["layer4", "avgpool", "fc"]
    assert v.data["params_ran"] < v.data["params_total"] / 2
    assert module_names(lesson01.module_table(net)) == [n for n, _ in net.named_children()]
    assert not any(m._forward_hooks for m in net.modules())  # the caller's net is untouched


def module_names(v):
    return [r["module"] for r in v.data["rows"]]


# ---- 02 embedding ---------------------------------------------------------------------------

def test_embedding_views():
    g = torch.Generator().manual_seed(0)
    feats = {"layer1": torch.rand(2, 8, 16, 16, generator=g),
             "layer2": torch.rand(2, 16, 8, 8, generator=g),
             "layer3": torch.rand(2, 32, 4, 4, generator=g)}
    x = torch.rand(2, 3, 64, 64, generator=g)
    v = lesson02.pca_rgb_view(x, feats, ("layer3", "layer2"), local=True)
    assert v.data["layers"] == ["layer2", "layer3"]  # shallow first, on the finest grid
    assert v.data["grid"] == (8, 8) and v.data["dim"] == 48
    assert 0 < sum(v.data["explained"]) <= 1
    _png(v)
    rgb, _ = lesson02.pca_rgb(torch.rand(2, 4, 4, 6, generator=g))
    assert rgb.shape == (2, 4, 4, 3) and rgb.min() >= 0 and rgb.max() <= 1
    agg = lesson02.aggregation_view(feats["layer2"], channel=3)
    assert agg.data["shape_before"] == agg.data["shape_after"]
    assert agg.data["std_after"] < agg.data["std_before"]  # averaging smooths
    red = lesson02.reduction_view([feats["layer2"], feats["layer3"]], dims=(8, 24), n_pairs=200)
    assert [r["dim"] for r in red.data["rows"]] == [48, 8, 24]
    assert all(-1 <= r["correlation"] <= 1 for r in red.data["rows"])
    app = lesson02.pca_app(x, feats)
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
    return lesson03.BankLab(tiny_model, train, test, [0, 0, 0, 1, 1, 1], masks)


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
        v = lesson03.bank_view(bank_lab, method, 0.05)
        assert v.data["method"] == method and "nn_dist" not in v.data
        assert len(v.figures) == 1
    _png(v)
    fig = lesson03.bank_view(bank_lab, "coreset", 0.05).figures[0]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(view.legible(fig))  # the sizes and resolution the learner sees
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes[:3]]
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), "subplot titles overlap"
    table = lesson03.sampling_table(bank_lab, [("none", 1.0), ("random", 0.05),
                                              ("coreset", 0.05)])
    assert [r["method"] for r in table.data["rows"]] == ["none", "random", "coreset"]
    app = lesson03.bank_app(bank_lab, "random", 0.1)
    method, ratio = app.children[0].children
    method.value = "coreset"
    assert app.view.data["method"] == "coreset"


# ---- 04 kNN scoring and the "why is this anomalous" v ------------------------------------

@pytest.fixture(scope="module")
def explain_lab(tiny_model, tiny_category_ro):
    return lesson04.ExplainLab(tiny_model, data.test_samples(tiny_category_ro))


def test_explain_pixel_points_at_the_real_training_patch(explain_lab, tiny_model):
    lab, model = explain_lab, tiny_model
    i = lab.index("broken/000.png")
    y, x = lab.hottest(i)
    v = lesson04.explain_pixel(lab, i, 1, y, x)
    h, w = model.bank.grid
    cell = model.config.input_size // h
    assert v.data["cell"] == (y // cell, x // cell)
    _, feats, _ = lab.image(i)
    dist, idx = knn.knn(feats[y // cell, x // cell][None], model.bank.patches, 1)
    assert v.data["bank_index"] == int(idx[0, 0])
    assert v.data["score"] == pytest.approx(float(dist[0, 0]))
    # provenance: the training image and cell the v names really give that bank vector
    ty, tx = v.data["train_cell"]
    train_feats = model.embed(data.load_image(v.data["train_image"], 64, 0)[None])[0]
    assert torch.allclose(train_feats[ty, tx], model.bank.patches[v.data["bank_index"]],
                          atol=1e-5)
    _png(v)


def test_explain_k_and_scoring_steps(explain_lab, tiny_model):
    lab = explain_lab
    i = lab.index("broken/001.png")
    one = lesson04.explain_pixel(lab, i, 1, 10, 20)
    three = lesson04.explain_pixel(lab, i, 3, 10, 20)
    assert len(three.data["neighbours"]) == 3 and three.data["score"] >= one.data["score"]
    assert three.data["distances"] == sorted(three.data["distances"])
    assert three.data["distances"][0] == pytest.approx(one.data["score"])
    assert (lab.patch_scores(i, 3) >= lab.patch_scores(i, 1) - 1e-6).all()
    steps = lesson04.scoring_steps(lab, i)
    scores, _ = tiny_model.predict([lab.samples[i].path])
    assert steps.data["image_score"] == pytest.approx(float(scores[0]), rel=1e-5)
    edge = lesson04.explain_pixel(lab, i, 1, 10_000, -5)  # clamped into the image
    assert edge.data["pixel"] == (63, 0)
    img, _, mask = lab.image(i)
    fig = lesson04.heatmap_plotly(img, lab.anomaly_map(i), mask)
    assert len(fig.data) == 3  # image, heatmap, ground-truth contour
    app = lesson04.explain_app(lab, image="good/000.png")
    image, k, py, px = app.children[0].children
    image.value = i
    assert (py.value, px.value) == lab.hottest(i) and app.view.data["pixel"] == lab.hottest(i)


def test_toy_points_and_source():
    pts = lesson03.toy_points()
    assert pts.shape[1] == 2 and len(pts) > 1000
    assert "def aggregate" in view.source(embedding.aggregate).data
    title = view.plotly_title("Image ROC<br><sub>resnet18, random-init weights</sub>")
    assert "<sub>" not in title["text"] and f"font-size:{view.MIN_PX}px" in title["text"]


# ---- compute functions: the numbers each view draws ------------------------------------------

def test_view_helpers(tiny_category_ro):
    samples = data.test_samples(tiny_category_ro)
    firsts = view.first_of_each(samples, n=2)
    assert list(firsts) == ["good", "broken"] and all(len(i) == 2 for i in firsts.values())
    assert [samples[i].defect for i in firsts["broken"]] == ["broken", "broken"]
    x, names = view.image_batch(samples[:3], resize=64, crop=48)
    assert x.shape == (3, 3, 48, 48) and names[0] == view.sample_name(samples[0])
    assert view.table([dict(a=1.23456, b=None)]).splitlines()[-1] == "| 1.235 | - |"
    assert view.category_dir(folder=tiny_category_ro) == tiny_category_ro
    assert np.array_equal(view.array(torch.ones(2)), np.ones(2))


def test_lesson00_compute(tiny_category_ro):
    counts = lesson00.dataset_counts(tiny_category_ro.parent)
    assert counts["widget"] == dict(train=6, test={"good": 2, "broken": 2}, masks=2)
    samples = data.test_samples(tiny_category_ro)
    assert [s.defect for s in lesson00.one_per_type(samples)] == ["good", "broken"]
    picked, images, masks = lesson00.gallery_images(tiny_category_ro, "broken", n=1, resize=64)
    assert len(picked) == 1 and images[0].shape == (3, 64, 64)
    assert masks[0].mean() == pytest.approx(16 * 16 / 64**2)  # the 16 x 16 defect of conftest


def test_lesson01_compute(resnet):
    net, _ = resnet
    x = torch.rand(1, 3, 64, 64)
    d = lesson01.early_stop(net, ("layer2", "layer3"), x, repeats=1)
    assert d["skipped"] == ["layer4", "avgpool", "fc"] and d["ran"][-1] == "layer3"
    assert d["params_ran"] == sum(r["parameters"] for r in d["rows"] if r["runs"] == "yes")
    assert d["full_seconds"] > 0 and d["hooked_seconds"] > 0
    rows = lesson01.parameter_counts(net)
    assert sum(r["parameters"] for r in rows) == sum(p.numel() for p in net.parameters())
    layers = ("layer1", "layer2")
    feats = dict(zip(layers, backbone.FeatureExtractor(net, layers)(x)))
    m = lesson01.feature_maps(feats, "layer2", -3)
    assert m["channel"] == 0 and m["chan"].shape == (1, 8, 8) and m["energy"].min() >= 0
    assert lesson01.layer_shapes("resnet18", 224)["layer3"] == (256, 14, 14)


def test_lesson02_compute():
    g = torch.Generator().manual_seed(0)
    feats = [torch.rand(2, 16, 8, 8, generator=g), torch.rand(2, 32, 4, 4, generator=g)]
    d = lesson02.distances_kept(feats, dims=(8, 48), n_pairs=300)
    assert [r["dim"] for r in d["rows"]] == [48, 8, 48] and d["full"].shape == (300,)
    assert d["rows"][0]["correlation"] == 1.0 and set(d["reduced"]) == {8, 48}
    assert lesson02.patches_and_dim(("layer2", "layer3")) == (784, 384)
    assert lesson02.corner_count() == 4
    proj, ratio = lesson02.pca(torch.randn(200, 5, generator=g), 2)
    assert proj.shape == (200, 2) and ratio[0] >= ratio[1]


def test_lesson03_compute(bank_lab, tiny_model, tiny_category_ro):
    toy = lesson03.toy_coverage(bank_lab, "coreset", 0.05)
    dist = np.linalg.norm(bank_lab.toy[:, None] - toy["kept"][None], axis=-1).min(1)
    assert toy["radius"] == pytest.approx(float(dist.max()), rel=1e-5)
    assert np.linalg.norm(toy["worst"] - toy["nearest"]) == pytest.approx(toy["radius"], rel=1e-5)
    b = lesson03.bank_coverage(bank_lab, "random", 0.1)
    assert b["nearest"] in set(b["kept"].tolist())
    gap = (bank_lab.train[b["worst"]] - bank_lab.train[b["nearest"]]).norm()
    assert float(gap) == pytest.approx(b["coverage_radius"], rel=1e-5)
    assert lesson03.bank_coverage(bank_lab, "none", 1.0)["nearest"] is None
    rows = lesson03.sampling_rows(bank_lab, [("none", 1.0), ("coreset", 0.1)])
    assert [r["bank_size"] for r in rows] == [600, sampling.n_keep(600, 0.1)]
    lab = lesson03.bank_lab(tiny_model, tiny_category_ro, n_train=2, n_good=1, per_defect=1)
    assert tuple(lab.test.shape[:1]) == (2,) and list(lab.labels) == [0, 1]
    assert lab.train.shape[0] == 2 * tiny_model.bank.grid[0] * tiny_model.bank.grid[1]


def test_lesson04_compute(explain_lab, tiny_model, tiny_category_ro):
    lab = explain_lab
    i = lab.index("broken/000.png")
    d = lesson04.scoring(lab, i)
    assert d["patch"].shape == tuple(tiny_model.bank.grid)
    assert d["patch"][d["worst_cell"]] == pytest.approx(d["patch"].max())
    assert d["blurred"].max() <= d["upsampled"].max() + 1e-6  # a blur never raises the peak
    e = lesson04.explanation(lab, i, 2, 5, 6)
    assert e["distances"] == [n["distance"] for n in e["neighbours"]]
    assert e["score"] == pytest.approx(np.mean(e["distances"]))
    assert e["cell"] == (int(5 // e["cell_size"]), int(6 // e["cell_size"]))
    assert lab.goods() == [lab.index("good/000.png"), lab.index("good/001.png")]
    assert lab.firsts() == [lab.index("broken/000.png")]
    assert lesson04.ExplainLab.of_category(tiny_model, tiny_category_ro).names == lab.names
    heat = lesson04.heatmaps_view(lab, [0, i])
    assert heat.data["scores"][1] == pytest.approx(float(lab.patch_scores(i).max()))
    _png(heat)


def test_lesson05_compute(tiny_model, tiny_category_ro):
    lab = _threshold_lab()
    t = float(np.median(lab.scores))
    v = lesson05.verdicts(lab, t)
    assert sorted(v["order"]) == list(range(len(lab.labels)))
    first = [v["verdict"][i] for i in v["order"][:len(v["missed"])]]
    assert first == ["MISSED"] * len(v["missed"])
    assert v["counts"] == lesson05.threshold_counts(lab.labels, lab.scores, t)
    assert v["verdict"].count("FALSE ALARM") == v["counts"]["fp"]
    rows = lesson05.threshold_rows(lab.labels, lab.scores, 1.5)
    assert rows[0]["threshold"] == 1.5 and rows[1]["f1"] > 0
    assert sum(rows[1][k] for k in ("tp", "fp", "tn", "fn")) == len(lab.labels)
    ev = lesson05.evaluate(tiny_category_ro, tiny_model)
    assert sorted(ev.labels) == [0, 0, 1, 1]
    assert isinstance(lesson05.pro_figure(ev), Figure)
    tlab = lesson05.ThresholdLab.from_evaluation(ev)
    assert tlab.image(0).shape == (64, 64, 3)


# ---- walkthrough fixes -----------------------------------------------------------------------

def test_notebook_05_without_masks(tiny_category):
    """A folder without ground_truth/: pixel metrics say so, nothing crashes (TypeError before)."""
    import shutil

    shutil.rmtree(tiny_category / "ground_truth")
    model = PatchCore(**OPTS).fit(data.good_images(tiny_category))
    ev = lesson05.evaluate(tiny_category, model)
    v = lesson05.pixel_view(ev)
    assert v.data["pixel_auroc"] is None and "No ground-truth masks" in v.caption
    tlab = lesson05.ThresholdLab.from_evaluation(ev)
    assert lesson05.threshold_view(tlab, model.threshold).data["counts"]


def test_one_data_setting_for_every_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv(view.DATA_ENV, str(tmp_path))
    assert view.category_dir() == tmp_path
    assert view.category_dir(folder="elsewhere") == Path("elsewhere")


def test_compare_never_rounds_a_difference_away():
    assert view.compare(3.2961, 3.3012) == ("3.296", "3.301")
    a, b = view.compare(3.30001, 3.30004)
    assert a != b and float(a) < float(b)


def test_figures_are_legible_at_100_percent():
    from matplotlib.text import Text

    fig = lesson00.pipeline_figure()
    dpi = view.legible(fig)
    assert fig.get_figwidth() * dpi <= view.MAX_WIDTH_PX
    sizes = [t.get_fontsize() * dpi / 72 for t in fig.findobj(Text) if t.get_text()]
    assert min(sizes) >= view.MIN_PX - 1e-6


def test_toy_plot_keeps_its_scale(bank_lab):
    limits = []
    for method, ratio in (("coreset", 0.01), ("random", 0.25), ("none", 1.0)):
        fig = lesson03.bank_view(bank_lab, method, ratio).figures[0]
        limits.append((fig.axes[0].get_xlim(), fig.axes[0].get_ylim()))
    assert limits[0] == limits[1] == limits[2]


def test_explain_title_shows_the_chosen_k(explain_lab):
    v = lesson04.explain_pixel(explain_lab, 0, 2, 5, 5)
    title = v.figures[0].subfigs[0].get_suptitle() if v.figures[0].subfigs else ""
    assert "k=2" in title and f"k={explain_lab.model.config.k}," not in title.replace("k=2", "")


def test_interactive_figures_carry_a_static_png():
    lab = _threshold_lab(with_maps=False)
    bundle = lesson05.roc_plotly(lab.labels, lab.scores)._repr_mimebundle_()
    assert "application/vnd.plotly.v1+json" in bundle and len(bundle["image/png"]) > 1000


def test_calibration_view_numbers(tiny_category_ro):
    from patchcore_lite import PatchCore
    from patchcore_lite.data import good_images, walk_images
    from patchcore_lite.teaching import lesson05

    model = PatchCore(weights=None, resize=64, crop=0, sampling="random", sampling_ratio=0.5,
                      progress=False).fit(good_images(tiny_category_ro))
    paths = walk_images([tiny_category_ro / "test"])
    scores, _ = model.predict(paths)
    labels = np.array(["broken" in str(p) for p in paths], int)
    mid = lesson05.calibration_numbers(model, labels, scores, 0.5)
    assert mid["threshold"] == model.threshold
    assert np.array_equal(mid["normalized"] >= 0.5, scores >= model.threshold)
    high = lesson05.calibration_numbers(model, labels, scores, 1.0)
    assert high["threshold"] < mid["threshold"]
    assert sum(high["counts"].values()) == len(paths)
    assert [r["target_fpr"] for r in mid["targets"]] == [0.01, 0.05, 0.2]
    view = lesson05.calibration_view(model, labels, scores, 0.7)
    assert view.figures and "target false-alarm" in view.caption
