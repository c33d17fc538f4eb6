"""Step 3: choose which training patches the memory bank keeps.

`random_subsample` keeps a uniform random fraction (the original teaching version: 10%).
`greedy_coreset` keeps a k-center coreset: it repeatedly adds the patch farthest from those
already chosen, so rare normal patterns survive. Selection runs on a fixed random projection
and keeps one running vector of min-distances (O(N) memory, never an N x N matrix).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .errors import PatchCoreError

SAMPLING_METHODS = ("none", "random", "coreset")


def check_ratio(ratio: float) -> float:
    if not 0.0 < ratio <= 1.0:
        raise PatchCoreError(f"--ratio: sampling ratio must be in (0, 1], got {ratio}")
    return float(ratio)


def n_keep(n: int, ratio: float) -> int:
    """How many of n patches a ratio keeps (at least one)."""
    return max(1, min(n, int(round(n * check_ratio(ratio)))))


def random_subsample(n: int, ratio: float, seed: int = 0) -> torch.Tensor:
    """Indices of a seeded uniform random subset of range(n), sorted."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[: n_keep(n, ratio)].sort().values


def random_projection(dim_in: int, dim_out: int, seed: int = 0) -> torch.Tensor:
    """(dim_in, dim_out) Gaussian map that roughly preserves distances (Johnson-Lindenstrauss)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(dim_in, dim_out, generator=g) / dim_out**0.5


def project(features: torch.Tensor, proj_dim: int | None, seed: int = 0) -> torch.Tensor:
    """(N, D) -> (N, proj_dim) with the fixed seeded map; no projection if proj_dim is None."""
    if proj_dim is None or proj_dim >= features.shape[1]:
        return features
    w = random_projection(features.shape[1], proj_dim, seed).to(features.device, features.dtype)
    return features @ w


def greedy_coreset(features: torch.Tensor, ratio: float, proj_dim: int | None = 128,
                   seed: int = 0, exact: bool = False, progress: bool = True) -> torch.Tensor:
    """Indices (in selection order) of a greedy k-center coreset of `features` (N, D).

    Each step adds the patch farthest from the chosen set. exact=True recomputes all N distances
    every step in float64 (the textbook loop, matching a naive O(N^2) greedy); the default runs
    the same loop in float32 as one matrix-vector product per step (same picks up to near-ties).
    """
    n, m = features.shape[0], n_keep(features.shape[0], ratio)
    x = project(features, proj_dim, seed)  # (N, d)
    x = x.double() if exact else x.float().contiguous()
    start = int(torch.randint(n, (1,), generator=torch.Generator().manual_seed(seed)))
    select = _greedy_exact if exact else _greedy_fast
    bar = tqdm(total=m, desc="coreset", disable=not progress, mininterval=0.5)
    with bar:
        return select(x, m, start, bar.update)


def _sqdist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return ((x - c) ** 2).sum(dim=1)  # (N,) squared distances of rows of x to c


def _greedy_exact(x: torch.Tensor, m: int, i: int, tick) -> torch.Tensor:
    """Textbook farthest-point loop: one running vector of N min-distances."""
    chosen = torch.empty(m, dtype=torch.long)
    mind = torch.full((x.shape[0],), float("inf"), dtype=x.dtype, device=x.device)  # (N,)
    for s in range(m):
        chosen[s] = i
        torch.minimum(mind, _sqdist(x, x[i]), out=mind)
        i = int(torch.argmax(mind))
        tick(1)
    return chosen


def _greedy_fast(x: torch.Tensor, m: int, i: int, tick) -> torch.Tensor:
    """The same loop in float32 with |x|^2 - 2 x.c + |c|^2: one matrix-vector product per step."""
    chosen = torch.empty(m, dtype=torch.long)
    sq = (x * x).sum(dim=1)  # (N,)
    mind = torch.full_like(sq, float("inf"))  # (N,)
    buf = torch.empty_like(sq)
    for s in range(m):
        chosen[s] = i
        torch.addmv(sq, x, x[i], alpha=-2.0, out=buf).add_(sq[i])  # (N,) squared distances
        torch.minimum(mind, buf, out=mind)
        i = int(torch.argmax(mind))
        tick(1)
    return chosen


def coverage(features: torch.Tensor, chosen: torch.Tensor, block: int = 4096) -> float:
    """Largest distance from any patch to its nearest chosen patch (lower is better)."""
    from .knn import knn  # local import: knn is the next step of the lesson

    dist, _ = knn(features, features[chosen], k=1, q_block=block)
    return float(dist.max())


def subsample(features: torch.Tensor, method: str, ratio: float | None, seed: int = 0,
              proj_dim: int | None = 128, progress: bool = True) -> torch.Tensor:
    """Indices of the patches the memory bank keeps for `method` (none, random, coreset)."""
    if method == "none":
        return torch.arange(features.shape[0])
    if method == "random":
        return random_subsample(features.shape[0], ratio, seed)
    if method == "coreset":
        return greedy_coreset(features, ratio, proj_dim, seed, progress=progress)
    raise PatchCoreError(f"--sampling: unknown method '{method}' (one of {SAMPLING_METHODS})")
