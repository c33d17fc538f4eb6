"""Decoding ahead in threads changes nothing; resizing 8-bit images in PIL (before float) moves
scores by rounding only; 16-bit images keep the exact float path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import roc_auc_score

from patchcore_lite import PatchCore, data
from patchcore_lite.data import good_images, load_image
from patchcore_lite.errors import PatchCoreError

OPTS = dict(weights="none", progress=False, sampling="random", resize=48, crop=40)


def _whole(path) -> torch.Tensor:
    """The whole image as float (3, H, W): a model given it resizes it in float (torch)."""
    a = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255  # (H, W, 3)
    return torch.from_numpy(a).permute(2, 0, 1)


def _float_path(path, resize: int, crop: int) -> torch.Tensor:
    """The reference: the whole image to float, torch's antialiased resize, centre crop."""
    x = F.interpolate(_whole(path)[None], size=(resize, resize), mode="bilinear",
                      antialias=True, align_corners=False)[0]
    t = (resize - crop) // 2 if crop else 0
    return x[:, t:t + (crop or resize), t:t + (crop or resize)].clamp(0, 1)


def test_workers_give_identical_scores_and_maps(tiny_category_ro):
    model = PatchCore(workers=0, **OPTS).fit(good_images(tiny_category_ro))
    paths = [s.path for s in data.test_samples(tiny_category_ro)]
    ref = model.predict(paths, batch_size=3)
    for workers in (1, 3):
        model.workers = workers
        got = model.predict(paths, batch_size=3)
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])


def test_pil_resize_matches_the_float_path(tiny_category_ro):
    paths = good_images(tiny_category_ro)
    for p in paths:
        diff = (load_image(p, 48, 40) - _float_path(p, 48, 40)).abs()
        assert float(diff.max()) <= 2.5 / 255  # uint8 rounding and filter details only


def test_sixteen_bit_keeps_the_exact_float_path(tmp_path):
    a = (np.random.default_rng(0).random((40, 50)) * 65535).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(a).save(path)
    x = torch.from_numpy(a.astype(np.float32) / 65535)[None, None]  # (1, 1, H, W)
    ref = F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True,
                        align_corners=False)[0].clamp(0, 1).expand(3, -1, -1)
    assert torch.equal(load_image(path, 32, 0), ref)


def test_jpeg_draft_close_to_the_full_decode(tmp_path):
    rng = np.random.default_rng(1)
    coarse = rng.random((8, 8, 3))
    img = (255 * np.kron(coarse, np.ones((64, 64, 1)))).astype(np.uint8)  # (512, 512, 3)
    path = tmp_path / "big.jpg"
    Image.fromarray(img).save(path, quality=95)
    diff = (load_image(path, 128, 0) - _float_path(path, 128, 0)).abs()
    assert float(diff.mean()) < 0.01


def test_bad_workers_refused():
    with pytest.raises(PatchCoreError, match="--workers"):
        PatchCore(workers=-1, **OPTS)


@pytest.mark.slow
def test_embedded_set_scores_and_auroc_move_little(tmp_path):
    from patchcore_lite.datasets.synth import generate

    [cat] = generate(tmp_path, n_train=12, n_test=24, categories=["brick"])
    train, samples = good_images(cat), data.test_samples(cat)
    paths, labels = [s.path for s in samples], [s.label for s in samples]
    fast = PatchCore(**dict(OPTS, resize=128, crop=112)).fit(train)
    slow = PatchCore(**dict(OPTS, resize=128, crop=112))
    slow.fit([_whole(p) for p in train])
    s_fast = fast.predict(paths)[0]
    s_slow = slow.predict([_whole(p) for p in paths])[0]
    assert np.abs(s_fast / s_slow - 1).max() <= 1e-2
    auroc = roc_auc_score(labels, s_fast), roc_auc_score(labels, s_slow)
    assert abs(auroc[0] - auroc[1]) <= 0.002, auroc
