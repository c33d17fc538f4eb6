"""Principal-coordinate bounds never exceed the true distance, and are exact with all axes."""

import pytest
import torch

from patchcore_lite import bounds


def data(n=300, d=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = torch.logspace(1, -2, d)  # decaying spectrum, like CNN features
    return torch.randn(n, d, generator=g) * scale + 5.0


@pytest.mark.parametrize("p", [1, 8, 47])
def test_bound_never_exceeds_distance(p):
    x = data()
    z = bounds.bound_coords(x, bounds.principal_axes(x, p))
    assert z.shape == (300, p + 1)
    true = torch.cdist(x.double(), x.double())
    lower = torch.cdist(z.double(), z.double())
    assert bool((lower <= true + 1e-4).all())
    assert float((true - lower).mean()) < float(true.mean())  # not trivially zero


def test_bound_is_exact_with_every_axis():
    x = data(d=16).double()
    z = bounds.bound_coords(x, bounds.principal_axes(x, 16))
    torch.testing.assert_close(torch.cdist(z, z), torch.cdist(x, x), atol=1e-5, rtol=1e-7)
    assert float(z[:, -1].abs().max()) < 1e-6  # nothing left over


def test_axes_are_orthonormal_and_sorted_by_variance():
    x = data()
    ax = bounds.principal_axes(x, 8)
    torch.testing.assert_close(ax.axes.T @ ax.axes, torch.eye(8), atol=1e-5, rtol=0)
    var = ((x - ax.mean) @ ax.axes).var(0)
    assert var[-1] == var.max()  # eigh order: the last column carries the most variance
