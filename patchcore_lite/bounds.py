"""Cheap lower bounds on patch distances, shared by coreset selection and kNN search.

Rotate patches onto their principal axes: the top p coordinates plus the norm of the remainder
give a (p+1)-dim point z with |z_a - z_b| <= |x_a - x_b| (orthonormal axes, reverse triangle
inequality on the remainder). Most of the variance sits in the top axes, so the bound is tight,
and it lets exact search skip almost every full-dimensional distance.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Axes(NamedTuple):
    mean: torch.Tensor  # (D,)
    axes: torch.Tensor  # (D, p) orthonormal columns


def principal_axes(x: torch.Tensor, p: int = 32, block: int = 16384) -> Axes:
    """Mean and top-p principal directions of the rows of x (N, D); covariance summed in blocks."""
    p = min(p, x.shape[1])
    mean = x.mean(0)  # (D,)
    cov = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)  # (D, D)
    for b in range(0, x.shape[0], block):
        xc = x[b:b + block] - mean  # (b, D)
        cov += (xc.T @ xc).double()
    axes = torch.linalg.eigh(cov)[1][:, -p:].to(x.dtype)  # (D, p) orthonormal to float precision
    return Axes(mean, axes)


def bound_coords(x, ax: Axes, block: int = 16384):
    """(N, D) -> (N, p + 1): principal coordinates, then the norm of what they leave out.

    Works on torch tensors and on numpy arrays (with numpy axes), in blocks of rows written
    into one preallocated result (a list of block results fragmented the heap: +2 GB RSS).
    """
    shape = (len(x), ax.axes.shape[1] + 1)
    z = np.empty(shape, x.dtype) if isinstance(x, np.ndarray) else x.new_empty(shape)
    for b in range(0, len(x), block):
        xc = x[b:b + block] - ax.mean  # (b, D)
        a = xc @ ax.axes  # (b, p)
        r = xc - a @ ax.axes.T  # (b, D) remainder, computed directly: no cancellation
        z[b:b + block, :-1] = a
        z[b:b + block, -1] = (r * r).sum(1) ** 0.5
    return z


def slack(z: torch.Tensor) -> float:
    """Rounding allowance on squared bounds: a looser bound only costs work, never exactness."""
    return 1e-5 * float((z * z).sum(1).max()) + 1e-12


def arrays(*tensors: torch.Tensor):
    """numpy views of CPU tensors (its indexing and small products cost less per call), the
    tensors themselves on a GPU; with the matching namespace."""
    if tensors[0].device.type == "cpu":
        return np, [t.numpy() for t in tensors]
    return torch, list(tensors)


def flatnonzero(mask):
    """Flat indices of the true entries of a numpy array or a tensor."""
    return np.flatnonzero(mask) if isinstance(mask, np.ndarray) else mask.flatten().nonzero(
        ).squeeze(1)
