"""Patch embeddings and anomaly maps against loops and scipy.ndimage."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from patchcore_lite import PatchCoreError, embedding, maps


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def neighbourhood_mean(f):
    """3x3 mean by explicit loops over a zero-padded map (the official code's unfold, padding 1):
    at edges the missing neighbours count as zeros, the sum is still divided by 9."""
    b, c, h, w = f.shape
    padded = torch.zeros(b, c, h + 2, w + 2)
    padded[:, :, 1:-1, 1:-1] = f
    out = torch.empty_like(f)
    for y in range(h):
        for x in range(w):
            out[:, :, y, x] = padded[:, :, y:y + 3, x:x + 3].sum(dim=(2, 3)) / 9
    return out


def test_aggregate_is_local_mean():
    f = randn(2, 5, 6, 7)
    torch.testing.assert_close(embedding.aggregate(f), neighbourhood_mean(f))


def test_fuse_resizes_deeper_maps_and_keeps_the_first():
    f2, f3 = randn(2, 4, 8, 8), randn(2, 6, 4, 4, seed=1)
    fused = embedding.fuse([f2, f3])
    assert fused.shape == (2, 10, 8, 8)
    assert torch.equal(fused[:, :4], f2)


def test_fuse_uses_the_finest_grid_in_any_layer_order():
    f2, f3 = randn(2, 4, 8, 8), randn(2, 6, 4, 4, seed=1)
    shallow_first, deep_first = embedding.fuse([f2, f3]), embedding.fuse([f3, f2])
    assert deep_first.shape == (2, 10, 8, 8)
    assert torch.equal(deep_first, torch.cat([shallow_first[:, 4:], shallow_first[:, :4]], 1))


def test_fuse_of_equal_grids_is_concatenation():
    a, b = randn(1, 3, 5, 5), randn(1, 2, 5, 5, seed=1)
    assert torch.equal(embedding.fuse([a, b]), torch.cat([a, b], dim=1))


@pytest.mark.parametrize("dim", [8, 48])
def test_reduce_dim(dim):
    out = embedding.reduce_dim([randn(2, 16, 4, 4), randn(2, 32, 4, 4, seed=1)], dim)
    assert out.shape == (2, dim, 4, 4)


def test_reduce_dim_refuses_more_dims_than_the_features_have():
    with pytest.raises(PatchCoreError, match="--embed-dim: 64 is above the feature dimension 48"):
        embedding.reduce_dim([randn(2, 16, 4, 4), randn(2, 32, 4, 4, seed=1)], 64)


def test_embed_shape_and_channel_order():
    f2, f3 = randn(2, 4, 8, 8), randn(2, 6, 4, 4, seed=1)
    e = embedding.embed([f2, f3])
    assert e.shape == (2, 8, 8, 10)
    torch.testing.assert_close(e[..., :4], neighbourhood_mean(f2).permute(0, 2, 3, 1))
    assert embedding.embed([f2, f3], embed_dim=5).shape == (2, 8, 8, 5)


@pytest.mark.parametrize("shape", [(40, 37), (17, 64)])
def test_blur_matches_scipy(shape):
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    got = maps.blur(x).numpy()
    for g, a in zip(got, x.numpy().astype(np.float64)):
        ref = ndimage.gaussian_filter(a, sigma=4, mode="mirror", truncate=4.0)
        np.testing.assert_allclose(g, ref, atol=1e-5)


def test_gaussian_kernel_matches_scipy():
    delta = np.zeros(33)
    delta[16] = 1.0
    ref = ndimage.gaussian_filter1d(delta, 4.0, mode="constant", truncate=4.0)  # impulse response
    np.testing.assert_allclose(maps.gaussian_kernel(4.0).numpy(), ref, atol=1e-7)


def test_anomaly_map_size():
    m = maps.anomaly_map(torch.rand(3, 8, 8), (64, 64))
    assert m.shape == (3, 64, 64)


def test_anomaly_map_of_constant_grid_is_constant():
    m = maps.anomaly_map(torch.full((1, 4, 4), 2.5), (48, 48))
    torch.testing.assert_close(m, torch.full((1, 48, 48), 2.5))
