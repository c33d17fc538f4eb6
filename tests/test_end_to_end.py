"""End to end through the command line: synth, evaluate each embedded category, demo report.

Random-init resnet18 (weights none), the default settings otherwise (coreset sampling). What
the method must reach, and why (measured figures: benchmarks/RESULTS.md, "End-to-end AUROC over
three seeds"):

- Image AUROC above chance by a margin: above what a random ranking of these test images
  exceeds with probability 1%, 0.5 + 2.33 sigma with sigma = sqrt((n_good + n_bad + 1) / (12
  n_good n_bad)) (the Mann-Whitney null; about 0.71 for 16 good and 32 defective images). With
  random-init weights the seed moves a category's AUROC by up to 0.17, down to 0.73 (grass, seed
  2), so a floor near one seed's figure would test the seed, not the method.
- Pixel AUROC at least halfway from the best map that cannot localise to perfect. A map that
  knows which images are defective but not where (its image's score on every pixel, images
  ranked perfectly) puts every defect pixel above the normal pixels of good images and ties with
  those of defective images: AUROC (1 + g) / 2, g the share of normal pixels that lie in good
  images. A map must point at the defect to pass.
- The coreset at least random sampling's image AUROC minus SEED_SPREAD. It keeps the patches
  that cover the normal ones best, so it should not lose to random; what one run of each may
  differ by chance is how much their difference moves with the seed (the seed sets the backbone
  and the sampling's picks alike, so the two are compared at the same seed).
"""

import json
import math

import pytest
from helpers import run_in_process

from patchcore_lite.datasets.synth import CATEGORIES

Z_1_PERCENT = 2.326  # one-sided 1% quantile of the standard normal
# Largest range, over seeds 0, 1 and 2, of one category's image AUROC difference coreset - random
# (gravel: +0.033, +0.064, -0.014; benchmarks/RESULTS.md). Each setting's own AUROC moves more
# with the seed (up to 0.172), but the backbone, the larger part of that move, is the same for
# both at one seed.
SEED_SPREAD = 0.078
JSON_KEYS = ("image_auroc", "pixel_auroc", "pro", "threshold", "f1_threshold", "image_f1",
             "n_train", "n_test", "memory_bank_size", "embed_dim", "fit_seconds",
             "predict_seconds_per_image", "weights", "backbone", "layers", "sampling", "ratio",
             "k", "resize", "crop", "device", "seed")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("embedded")
    r = run_in_process("synth", root, "--seed", "0")
    assert r.returncode == 0, r.stderr
    return root


def evaluate(category_dir, out, sampling: str) -> dict:
    r = run_in_process("evaluate", category_dir, "--weights", "none", "--sampling", sampling,
                       "--json", out)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(out.read_text())


def count_test_images(category_dir) -> tuple[int, int]:
    """(good, defective) test images, counted from the folders."""
    images = [p for p in (category_dir / "test").rglob("*") if p.is_file()]
    good = sum(p.parent.name == "good" for p in images)
    return good, len(images) - good


def image_floor(category_dir) -> float:
    """The image AUROC a random ranking exceeds with probability 1%."""
    n0, n1 = count_test_images(category_dir)
    return 0.5 + Z_1_PERCENT * math.sqrt((n0 + n1 + 1) / (12 * n0 * n1))


def pixel_floor(category_dir) -> float:
    """Halfway from (1 + g) / 2 to 1, g = good / all test images (defects are few pixels)."""
    n0, n1 = count_test_images(category_dir)
    return (1 + (1 + n0 / (n0 + n1)) / 2) / 2


@pytest.mark.slow
@pytest.mark.parametrize("category", CATEGORIES)
def test_evaluate_category(data_dir, tmp_path, category):
    res = evaluate(data_dir / category, tmp_path / "coreset.json", "coreset")
    assert set(JSON_KEYS) <= set(res)
    assert res["weights"] == "random" and res["backbone"] == "resnet18"
    assert res["layers"] == ["layer2", "layer3"] and res["sampling"] == "coreset"
    assert res["memory_bank_size"] == round(0.1 * res["n_train"] * 28 * 28)
    rnd = evaluate(data_dir / category, tmp_path / "random.json", "random")
    print(f"{category}: image AUROC {res['image_auroc']:.3f} (random {rnd['image_auroc']:.3f}), "
          f"pixel AUROC {res['pixel_auroc']:.3f}, PRO {res['pro']:.3f}")
    assert res["image_auroc"] >= image_floor(data_dir / category)
    assert res["pixel_auroc"] >= pixel_floor(data_dir / category)
    assert 0.0 <= res["pro"] <= 1.0
    assert res["image_auroc"] >= rnd["image_auroc"] - SEED_SPREAD


@pytest.mark.slow
def test_demo_report(tmp_path):
    out = tmp_path / "demo"
    r = run_in_process("demo", "--out", out, "--weights", "none", "--n-train", "16",
                       "--n-test", "12")
    assert r.returncode == 0, r.stderr
    page = (out / "index.html").read_text()
    assert "RANDOM-INIT" in page and "NOT pretrained" in page
    results = json.loads((out / "results.json").read_text())
    assert sorted(results) == sorted(CATEGORIES)
    for cat in CATEGORIES:
        assert results[cat]["weights"] == "random"
        for kind in ("overlays", "roc", "histogram", "pro"):
            png = out / f"{cat}_{kind}.png"
            assert png.stat().st_size > 5000 and png.name in page
        assert (out / "models" / f"{cat}.pclite").is_file()
