"""The embedded data set: MVTec layout, determinism, defects inside the crop, no shortcuts."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from patchcore_lite.datasets import synth
from patchcore_lite.errors import PatchCoreError

CROP = (16, 240)  # 256 -> resize 256 -> centre crop 224
MAX_SECONDS = 60  # loose guard: ~7 s measured on 2 idle cores, ~20 s on a busy machine


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """The default data set (seed 0), generated once for the whole session."""
    root = tmp_path_factory.mktemp("synth")
    t0 = time.perf_counter()
    dirs = synth.generate(root)
    seconds = time.perf_counter() - t0
    print(f"\nsynth.generate: {len(dirs)} categories in {seconds:.2f} s")
    return root, dirs, seconds


def _test_images(cat_dir):
    """(path, defect name) of every test image of a category."""
    return [(p, p.parent.name) for p in sorted((cat_dir / "test").glob("*/*.png"))]


def _mask_path(cat_dir, path):
    return cat_dir / "ground_truth" / path.parent.name / f"{path.stem}_mask.png"


def test_layout(dataset):
    _, dirs, _ = dataset
    assert [d.name for d in dirs] == list(synth.CATEGORIES)
    assert len(synth.CATEGORIES) >= 3
    for d in dirs:
        defects = synth.DEFECT_TYPES[d.name]
        assert len(defects) >= 3
        assert sorted(p.name for p in (d / "test").iterdir()) == sorted(("good", *defects))
        assert sorted(p.name for p in (d / "ground_truth").iterdir()) == sorted(defects)
        train = sorted((d / "train" / "good").glob("*.png"))
        assert len(train) == synth.N_TRAIN and train[0].name == "000.png"
        tests = _test_images(d)
        assert 40 <= len(tests) <= 60
        assert sum(name == "good" for _, name in tests) >= 12
        for path, name in tests:
            img = Image.open(path)
            assert img.mode == "RGB" and img.size == (synth.SIZE, synth.SIZE)
            mask_path = _mask_path(d, path)
            assert mask_path.exists() == (name != "good"), mask_path
            if name != "good":
                mask = np.asarray(Image.open(mask_path))
                assert mask.shape == (synth.SIZE, synth.SIZE) and mask.dtype == np.uint8
                assert set(np.unique(mask)) == {0, 255}, mask_path


def test_defects_inside_centre_crop(dataset):
    _, dirs, _ = dataset
    for d in dirs:
        for mask_path in (d / "ground_truth").glob("*/*.png"):
            ys, xs = np.nonzero(np.asarray(Image.open(mask_path)))
            assert ys.min() >= CROP[0] and ys.max() < CROP[1], mask_path
            assert xs.min() >= CROP[0] and xs.max() < CROP[1], mask_path


def test_trivial_statistics_do_not_find_defects(dataset):
    """Mean, std, min or max of pixel values as an image score (either sign): AUROC <= 0.75."""
    _, dirs, _ = dataset
    stats = {"mean": np.mean, "std": np.std, "min": np.min, "max": np.max}
    for d in dirs:
        tests = _test_images(d)
        labels = [name != "good" for _, name in tests]
        pixels = np.stack([np.asarray(Image.open(p)).ravel() for p, _ in tests]).astype(np.float32)
        for stat, fn in stats.items():
            auc = roc_auc_score(labels, fn(pixels, axis=1))
            print(f"{d.name:8s} {stat:4s} AUROC {max(auc, 1 - auc):.3f}")
            assert max(auc, 1 - auc) <= 0.75, (d.name, stat, auc)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kw = dict(n_train=3, n_test=8, categories=synth.CATEGORIES)
    a = synth.generate(tmp_path / "a", seed=3, **kw)
    b = synth.generate(tmp_path / "b", seed=3, **kw)
    c = synth.generate(tmp_path / "c", seed=4, **kw)
    for da, db, dc in zip(a, b, c):
        files = sorted(p.relative_to(da) for p in da.rglob("*.png"))
        assert files == sorted(p.relative_to(db) for p in db.rglob("*.png"))
        for f in files:
            assert (da / f).read_bytes() == (db / f).read_bytes(), f
        assert any((da / f).read_bytes() != (dc / f).read_bytes() for f in files)


def test_counts_do_not_change_other_images(tmp_path):
    """Each image has its own random stream: other counts leave the shared images as they were."""
    a = synth.generate(tmp_path / "a", n_train=2, n_test=5, categories=["hex_nut"])[0]
    b = synth.generate(tmp_path / "b", n_train=3, n_test=9, categories=["hex_nut"])[0]
    for f in sorted(a.rglob("*.png")):
        assert f.read_bytes() == (b / f.relative_to(a)).read_bytes(), f
    synth.generate(tmp_path / "b", n_train=2, n_test=5, categories=["hex_nut"])  # regenerate
    assert sorted(p.relative_to(b) for p in b.rglob("*.png")) == sorted(
        p.relative_to(a) for p in a.rglob("*.png")), "stale files left behind"


def test_bad_arguments():
    with pytest.raises(PatchCoreError, match="category"):
        synth.generate("unused", categories=["nope"])
    with pytest.raises(PatchCoreError, match="--n-test"):
        synth.generate("unused", n_test=2)
    with pytest.raises(PatchCoreError, match="--n-train"):
        synth.generate("unused", n_train=0)
    with pytest.raises(PatchCoreError, match="--seed"):
        synth.generate("unused", seed=-1)


def test_generation_time(dataset):
    *_, seconds = dataset
    assert seconds < MAX_SECONDS, f"generation took {seconds:.1f} s"


def test_docstring_lists_every_defect():
    """The module docstring's table of categories and defects stays in step with the code."""
    for category, defects in synth.DEFECT_TYPES.items():
        line = next(s for s in synth.__doc__.splitlines() if s.strip().startswith(category))
        assert all(d in line for d in defects), line


def test_cache_home_is_the_repos_data_folder(monkeypatch):
    from pathlib import Path

    from patchcore_lite.datasets import cache

    monkeypatch.delenv("PATCHCORE_LITE_HOME", raising=False)
    assert cache.home() == Path(__file__).resolve().parents[1] / "data"
