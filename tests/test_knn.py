"""Blocked kNN against brute force (torch.cdist, sklearn) and Eq. 7 against a direct formula."""

import math

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from patchcore_lite import knn

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def data(nq=53, nb=237, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(nq, d, generator=g), torch.randn(nb, d, generator=g)


def brute(q, b, k):
    """float64 cdist + topk: distances (Q, k) ascending, indices (Q, k)."""
    d = torch.cdist(q.double(), b.double())
    return d.topk(min(k, b.shape[0]), dim=1, largest=False)


def untied(q, b, k, gap=1e-4):
    """Rows whose k+1 nearest reference distances are pairwise apart: indices are unambiguous."""
    d = brute(q, b, k + 1)[0]
    return d.diff(dim=1).min(dim=1).values > gap


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("blocks", [dict(), dict(q_block=7, b_block=50)])
def test_knn_matches_cdist(k, blocks):
    q, b = data()
    d, i = knn.knn(q, b, k=k, **blocks)
    ref_d, ref_i = brute(q, b, k)
    assert d.shape == i.shape == (len(q), k)
    torch.testing.assert_close(d.double(), ref_d, rtol=1e-5, atol=1e-5)
    ok = untied(q, b, k)
    assert ok.float().mean() > 0.9
    assert torch.equal(i[ok], ref_i[ok])


@pytest.mark.parametrize("k", [1, 5])
def test_knn_matches_sklearn(k):
    q, b = data(seed=1)
    d, i = knn.knn(q, b, k=k, q_block=7, b_block=50)
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(b.double().numpy())
    ref_d, ref_i = nn.kneighbors(q.double().numpy())
    np.testing.assert_allclose(d.numpy(), ref_d, rtol=1e-5, atol=1e-5)
    ok = untied(q, b, k).numpy()
    np.testing.assert_array_equal(i.numpy()[ok], ref_i[ok])


def test_knn_self_queries_have_zero_distance():
    _, b = data()
    d, i = knn.knn(b, b, k=1, q_block=7, b_block=50)
    assert torch.equal(i[:, 0], torch.arange(len(b)))
    assert float(d.abs().max()) < 1e-3


def test_k_larger_than_bank_is_clipped():
    q, b = data(nb=4)
    d, i = knn.knn(q, b, k=10, b_block=3)
    ref_d, ref_i = brute(q, b, 10)
    assert d.shape == (len(q), 4)
    torch.testing.assert_close(d.double(), ref_d, rtol=1e-5, atol=1e-5)
    assert torch.equal(i.sort(dim=1).values, torch.arange(4).expand(len(q), 4))


def test_bank_block_smaller_than_k():
    q, b = data(nb=11)
    d, i = knn.knn(q, b, k=5, b_block=2)
    ref_d, _ = brute(q, b, 5)
    torch.testing.assert_close(d.double(), ref_d, rtol=1e-5, atol=1e-5)


def eq7_reference(feats, bank, b):
    """Paper Eq. 7 written out, float64, one image at a time."""
    out = []
    for f in feats.double():
        dist = torch.cdist(f, bank.double())  # (P, M)
        patch = dist.min(dim=1).values
        worst = int(patch.argmax())
        s_star, m_test = float(patch[worst]), f[worst]
        j_star = int(dist[worst].argmin())
        m_star = bank.double()[j_star]
        hood = torch.cdist(m_star[None], bank.double())[0].argsort()[:b]  # N_b(m*), m* first
        assert int(hood[0]) == j_star
        num = math.exp(float((m_test - m_star).norm()))
        den = sum(math.exp(float((m_test - bank.double()[j]).norm())) for j in hood.tolist())
        out.append((1 - num / den) * s_star)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("b", [1, 3, 9])
def test_reweight_matches_eq7(b):
    g = torch.Generator().manual_seed(2)
    feats, bank = torch.randn(4, 30, 8, generator=g), torch.randn(60, 8, generator=g)
    dist, idx = knn.knn(feats.reshape(-1, 8), bank, k=1)
    scores = knn.reweight(feats, dist[:, 0].reshape(4, 30), idx[:, 0].reshape(4, 30), bank, b=b)
    torch.testing.assert_close(scores.double(), eq7_reference(feats, bank, b),
                               rtol=1e-5, atol=1e-6)


@cuda
@pytest.mark.parametrize("k", [1, 5])
def test_knn_cuda_equals_cpu(k):
    q, b = data()
    d, i = knn.knn(q, b, k=k, q_block=7, b_block=50)
    dc, ic = knn.knn(q.cuda(), b.cuda(), k=k, q_block=7, b_block=50)
    torch.testing.assert_close(dc.cpu(), d, rtol=1e-5, atol=1e-5)
    ok = untied(q, b, k)
    assert torch.equal(ic.cpu()[ok], i[ok])


def features(n, d=192, seed=0):
    """Patch-like rows: a decaying spectrum around a common offset, so the bound has work to do."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * torch.logspace(0.5, -1.5, d) + 2.0


@pytest.mark.parametrize("seed, dim", [(0, 192), (1, 192), (0, 128)])
def test_pruned_search_matches_sklearn(seed, dim, monkeypatch):
    """Banks large enough for the lower-bound path (CPU, k=1) give the brute-force neighbours;
    128-dim features (mobilenet_v2) take it too, with a 32-dim bound."""
    b = features(knn.MIN_BANK_FOR_BOUNDS + 500, d=dim, seed=seed)
    q = torch.cat([features(300, d=dim, seed=seed + 10), b[:50],
                   features(30, d=dim, seed=seed + 20) * 3])
    taken, pruned = [], knn._pruned_nn
    monkeypatch.setattr(knn, "_pruned_nn", lambda q, b, bound: taken.append(
        bound[1].shape[1]) or pruned(q, b, bound))
    d, i = knn.knn(q, b, k=1)
    assert taken == [min(knn.BOUND_DIM, dim // 4) + 1]  # the lower-bound path, p + 1 coords
    nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(b.double().numpy())
    ref_d, ref_i = nn.kneighbors(q.double().numpy())
    np.testing.assert_allclose(d.numpy(), ref_d, rtol=1e-5, atol=1e-4)
    ok = untied(q, b, 1).numpy()
    assert ok.mean() > 0.9
    np.testing.assert_array_equal(i.numpy()[ok], ref_i[ok])
    assert torch.equal(i[300:350, 0], torch.arange(50))  # bank rows find themselves


def test_pruned_search_with_precomputed_bound_and_subset():
    """A bound computed once for the bank stays valid for any subset of its rows."""
    b = features(3000, seed=3)
    q = features(200, seed=4)
    ax, zb = knn.bank_bounds(b)
    keep = torch.arange(3000) % 3 != 0
    d, i = knn.knn(q, b[keep], k=1, bound=(ax, zb[keep]))
    ref_d, ref_i = brute(q, b[keep], 1)
    torch.testing.assert_close(d.double(), ref_d, rtol=1e-5, atol=1e-4)
    ok = untied(q, b[keep], 1)
    assert torch.equal(i[ok], ref_i[ok])


def test_pruned_search_survives_non_finite_queries():
    b = features(knn.MIN_BANK_FOR_BOUNDS)
    q = features(20, seed=5)
    q[3] = float("nan")
    d, i = knn.knn(q, b, k=1)
    assert d.shape == i.shape == (20, 1)
    ref_d, _ = brute(q[4:], b, 1)
    torch.testing.assert_close(d[4:].double(), ref_d, rtol=1e-5, atol=1e-4)


def test_pruned_search_in_small_chunks_is_unchanged(monkeypatch):
    b = features(knn.MIN_BANK_FOR_BOUNDS + 100, seed=6)
    q = torch.cat([features(100, seed=7), features(20, seed=8) * 4])  # far queries: many pairs
    d, i = knn.knn(q, b, k=1)
    monkeypatch.setattr(knn, "CHUNK", 5)
    d2, i2 = knn.knn(q, b, k=1)
    assert torch.equal(i, i2) and torch.equal(d, d2)
