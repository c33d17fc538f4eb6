"""`bench` on a tiny category: the table and JSON have every figure (no timing assertions)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import TINY_ARGS, TINY_OPTS

from patchcore_lite.apps.cli import build_parser, main
from patchcore_lite.bench import anomalib as bench_anomalib
from patchcore_lite.bench import common
from patchcore_lite.bench import run as bench
from patchcore_lite.errors import PatchCoreError

RUN_KEYS = ("n_train n_test n_patches memory_bank_size embed_dim embed_images_per_s "
            "selection_seconds knn_ms_per_image predict_ms_per_image fit_seconds "
            "fit_predict_seconds peak_rss_mb fit_peak_rss_mb image_auroc pixel_auroc weights "
            "search selection coverage_vs_exact decode_ms_per_image backbone_ms_per_image "
            "check_ms_per_image train_suspects "
            "predict_no_workers_ms_per_image").split()
ARGS = [*TINY_ARGS, "--sampling", "coreset", "--threads", "1"]


def test_bench_tiny_writes_json_and_table(tiny_category_ro, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--data", str(tiny_category_ro), "--sizes", "2,4", "--json", str(out),
               *ARGS])
    assert rc == 0
    record = json.loads(out.read_text())
    assert [r["n_train"] for r in record["runs"]] == [2, 4]
    for r in record["runs"]:
        assert set(RUN_KEYS) <= set(r), set(RUN_KEYS) - set(r)
        assert r["n_patches"] == r["n_train"] * 8 * 8 and r["embed_dim"] == 384
        assert r["peak_rss_mb"] >= r["fit_peak_rss_mb"] > 0
        assert 0.0 <= r["image_auroc"] <= 1.0 and 0.0 <= r["pixel_auroc"] <= 1.0
        # a few hundred patches: the default coreset is the exact greedy itself
        assert r["selection"] == "coreset-exact" and r["coverage_vs_exact"] == 1.0
    assert record["weights"] == "random" and record["settings"]["sampling"] == "coreset"
    assert {"cpu_count", "torch", "loadavg"} <= set(record["machine"])
    assert record["command"].startswith("python -m patchcore_lite bench") and \
        "--sizes 2,4" in record["command"] and record["sizes"] == [2, 4]
    printed = capsys.readouterr().out
    assert "predict ms/img" in printed and "peak RSS MB" in printed


@pytest.mark.parametrize("sampling", ["random", "coreset"])
def test_coverage_against_exact_of_each_mode(tiny_category_ro, monkeypatch, sampling):
    """Random 10% covers worse than the exact greedy; the cells mode (forced here, as above
    EXACT_UP_TO patches) within 1.1x of its coverage."""
    from patchcore_lite import sampling as sampling_module
    from patchcore_lite.data import good_images
    from patchcore_lite.model import PatchCore

    monkeypatch.setattr(sampling_module, "EXACT_UP_TO", 100)
    monkeypatch.setattr(sampling_module, "CELL_SIZE", 128)
    model = PatchCore(**TINY_OPTS, sampling=sampling)
    train = good_images(tiny_category_ro)
    model.fit(train)
    ratio = bench.coverage_vs_exact(model, train)
    if sampling == "random":
        assert model.info["selection"] == "random" and ratio > 1.0
    else:
        assert model.info["selection"] == "coreset-cells" and 1.0 <= ratio <= 1.1


def test_parse_sizes():
    assert bench.parse_sizes("50, 200,1000") == [50, 200, 1000]
    for bad in ("", "1", "a,b"):
        with pytest.raises(PatchCoreError, match="--sizes"):
            bench.parse_sizes(bad)


def test_too_few_training_images(tiny_category_ro):
    with pytest.raises(PatchCoreError, match="train/good has 6 images"):
        bench.bench_data(str(tiny_category_ro), None, [2, 50], 8, 0)


def test_table_aligns_and_marks_missing():
    text = common.table([dict(n_train=2, image_auroc=0.5), dict(n_train=10)], bench.COLUMNS)
    lines = text.splitlines()
    assert len({len(x) for x in lines}) == 1 and lines[-1].split()[-1] == "-"


def test_anomalib_needs_comparable_settings():
    a = build_parser().parse_args(["bench", "--anomalib", "--sampling", "random"])
    with pytest.raises(PatchCoreError, match="--sampling coreset"):
        bench_anomalib.check_comparable(a)
    bench_anomalib.check_comparable(build_parser().parse_args(["bench", "--anomalib"]))


def test_anomalib_pins_follow_this_torch():
    import torch

    pins = bench_anomalib.pins()
    assert pins["torch"] == torch.__version__.split("+")[0] and "+" not in pins["torchvision"]


def test_ratios():
    ours = dict(predict_ms_per_image=50.0, image_auroc=0.9, fit_seconds=10.0, fit_peak_rss_mb=1)
    theirs = dict(selection_seconds=100.0, ours_selection_seconds=2.0, coverage=2.0,
                  ours_coverage=2.1, predict_ms_per_image=200.0, image_auroc=0.91,
                  fit_seconds=40.0)
    r = bench_anomalib.ratios(ours, theirs)
    assert r["selection_speedup"] == 50 and r["predict_ratio"] == 0.25
    assert r["coverage_ratio"] == pytest.approx(1.05) and r["auroc_diff"] == pytest.approx(-0.01)


def test_ratios_without_their_selection_keep_only_predict():
    """Above --anomalib-max-size anomalib scores with our bank: only its predict time compares."""
    ours = dict(predict_ms_per_image=50.0, image_auroc=0.9, fit_seconds=10.0, fit_peak_rss_mb=1)
    theirs = dict(selection_seconds=None, ours_selection_seconds=None, coverage=None,
                  ours_coverage=None, predict_ms_per_image=100.0, image_auroc=0.9,
                  fit_seconds=None, their_selection=False)
    r = bench_anomalib.ratios(ours, theirs)
    assert r["predict_ratio"] == 0.5
    assert r["selection_speedup"] is r["coverage_ratio"] is r["auroc_diff"] is None


def test_tall_images_cut_into_three_tiles(tiny_category_ro, tmp_path):
    from PIL import Image

    from patchcore_lite.bench.sets import scaled_copy

    tall = scaled_copy(tiny_category_ro, tmp_path / "tall", 64, 160)  # 2.5:1
    masks = list((tall / "ground_truth").rglob("*.png"))
    assert masks and all(Image.open(p).size == (64, 160) for p in tall.rglob("*.png"))
    assert set(np.unique(np.asarray(Image.open(masks[0])))) <= {0, 255}  # masks stay binary
    spec = dict(data=str(tall), n_train=3, threads=1, model=dict(
        weights="none", resize=64, crop=0, sampling="random", tile=64))
    row = bench.worker(spec)
    assert row["n_tiles_per_image"] == 3  # starts 0, 48, 96: no crop, 25% overlap
    assert row["decode_ms_per_image"] > 0 and row["backbone_ms_per_image"] > 0
