"""The optional faiss backend against exact blocked search; skipped without faiss except in CI."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from helpers import TINY_OPTS, hide_module

from patchcore_lite import PatchCore, ann, knn
from patchcore_lite.errors import PatchCoreError

try:
    import faiss  # noqa: F401

    HAVE_FAISS = True
except ImportError:
    HAVE_FAISS = False

# CI installs the extra (requirements.txt): there a missing faiss is a failure, not a skip.
needs_faiss = pytest.mark.skipif(not HAVE_FAISS and os.environ.get("CI") != "true",
                                 reason="faiss-cpu not installed (pip install faiss-cpu)")


def data(nq=61, nb=400, d=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(nq, d, generator=g), torch.randn(nb, d, generator=g)


@needs_faiss
@pytest.mark.parametrize("k", [1, 4])
def test_flat_matches_exact(k):
    q, b = data()
    d, i = ann.knn(q, b, k=k, kind="flat", q_block=17)
    ref_d, ref_i = knn.knn(q, b, k=k)
    assert d.shape == i.shape == (len(q), k) and i.dtype == torch.int64
    torch.testing.assert_close(d, ref_d, rtol=1e-5, atol=1e-5)
    assert (i == ref_i).float().mean() > 0.98  # float ties aside, the same neighbours
    assert bool((d.diff(dim=1) >= 0).all())


@needs_faiss
def test_ivf_close_to_exact():
    """IVF is approximate: distances never below exact, and nearly always the same neighbour."""
    q, b = data(nq=200, nb=4000, d=16, seed=1)
    d, _ = ann.knn(q, b, k=1, kind="ivf")
    ref_d, _ = knn.knn(q, b, k=1)
    assert bool((d >= ref_d - 1e-5).all())
    assert (d - ref_d).abs().lt(1e-5).float().mean() > 0.9


@needs_faiss
def test_index_is_cached_per_bank():
    q, b = data()
    ann.knn(q, b)
    first = ann._cache["index"]
    ann.knn(q, b)
    assert ann._cache["index"] is first
    b2 = b.clone()
    ann.knn(q, b2)
    assert ann._cache["index"] is not first


@needs_faiss
def test_model_with_faiss_scores_like_exact(tiny_category_ro):
    from patchcore_lite.data import good_images, test_samples

    opts = dict(TINY_OPTS, sampling="random")
    train = good_images(tiny_category_ro)
    test = [s.path for s in test_samples(tiny_category_ro)]
    exact = PatchCore(**opts).fit(train)
    fast = PatchCore(search="faiss", **opts).fit(train)
    s1, m1 = exact.predict(test)
    s2, m2 = fast.predict(test)
    np.testing.assert_allclose(s2, s1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m2, m1, rtol=1e-4, atol=1e-5)
    assert fast.threshold == pytest.approx(exact.threshold)


def test_missing_faiss_is_a_clear_error(monkeypatch):
    hide_module(monkeypatch, "faiss")
    with pytest.raises(PatchCoreError, match="pip install faiss-cpu"):
        PatchCore(weights=None, search="faiss", progress=False)


def test_unknown_search_backend():
    with pytest.raises(PatchCoreError, match="--search"):
        PatchCore(weights=None, search="annoy", progress=False)
