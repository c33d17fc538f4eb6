"""End to end through the command line: synth, evaluate each embedded category, demo report.

Random-init resnet18 (weights none), the default settings otherwise. What the method must reach,
and why (measured figures: benchmarks/RESULTS.md, "End-to-end AUROC over three seeds"):

- Image AUROC at least IMAGE_FLOOR, halfway from chance (0.5) to perfect: a defective image
  out-ranks a good one at least three times in four.
- Pixel AUROC at least halfway from NO_LOCALISATION to perfect. A map that knows which images
  are defective but not where (its image's score on every pixel, images ranked perfectly) puts
  every defect pixel above the normal pixels of good images and ties with those of defective
  images: AUROC (1 + g) / 2, g the share of normal pixels that lie in good images. A map must
  point at the defect to pass.
- The coreset (the default) at least random sampling's image AUROC minus SEED_SPREAD: it keeps
  the patches that cover the normal ones best, so it may not lose to random by more than the
  seed alone moves one setting's AUROC.
"""

import json

import pytest
from helpers import run_in_process

from patchcore_lite.datasets.synth import CATEGORIES

IMAGE_FLOOR = 0.75
# The largest move of one category's image AUROC between seeds 0, 1 and 2, either sampling
# (the seed sets the random-init backbone and the sampling): benchmarks/RESULTS.md.
SEED_SPREAD = 0.05
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


def no_localisation(category_dir) -> float:
    """(1 + g) / 2, g = good test images / all test images (defects are a few % of pixels)."""
    images = [p for p in (category_dir / "test").rglob("*") if p.is_file()]
    good = [p for p in images if p.parent.name == "good"]
    return (1 + len(good) / len(images)) / 2


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
    pixel_floor = (no_localisation(data_dir / category) + 1) / 2
    for r in (res, rnd):
        assert r["image_auroc"] >= IMAGE_FLOOR, r
        assert r["pixel_auroc"] >= pixel_floor, (r, pixel_floor)
        assert 0.0 <= r["pro"] <= 1.0
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
