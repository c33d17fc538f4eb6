"""Step 3: choose which training patches the memory bank keeps.

One contract, `select(features, m, method, seed)`, decides which algorithm runs:
- random: a seeded uniform subset (the original teaching version);
- the greedy k-center coreset: repeatedly add the patch farthest from those already chosen, so
  rare normal patterns survive. `greedy_exact` is the textbook loop; `greedy_pruned` picks the
  same sequence but recomputes only patches that a cheap lower bound cannot rule out;
- above EXACT_UP_TO patches, `coreset` runs that loop per cell of feature space
  (`coreset_cells.py`: coverage within a few % of the exact greedy's, N x cell_size work).
Selection keeps one running vector of min-distances (O(N) memory, never an N x N matrix).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from . import bounds, coreset_cells, knn
from .errors import PatchCoreError

SAMPLING_METHODS = ("none", "random", "coreset", "coreset-exact")
ALGORITHMS = SAMPLING_METHODS + ("coreset-cells",)  # what `algorithm` may name
CELL_SIZE = 8192  # the fast coreset: most patches in one cell of its greedy loop
EXACT_UP_TO = 200_000  # `coreset` runs the exact loop up to this many patches (~30 s on 2 cores,
# about 255 images): the cells change which patches are kept (image AUROC moved by up to 0.06 on
# the 80-image embedded set), so they are used only where the exact loop becomes too slow
BOUND_DIM = 32  # principal coordinates of the lower bound
CHUNK = 32768  # candidate patches whose full differences are held at once


def check_ratio(ratio: float) -> float:
    """The ratio as a float, or an error naming --ratio when it is outside (0, 1]."""
    if not 0.0 < ratio <= 1.0:
        raise PatchCoreError(f"--ratio: sampling ratio must be in (0, 1], got {ratio}")
    return float(ratio)


def n_keep(n: int, ratio: float) -> int:
    """How many of n patches a ratio keeps (at least one)."""
    return max(1, min(n, int(round(n * check_ratio(ratio)))))


def algorithm(method: str, n: int) -> str:
    """What `select` runs for `method` on n patches: none, random, coreset-exact, or
    coreset-cells (the fast mode of `coreset`, above EXACT_UP_TO patches)."""
    if method not in ALGORITHMS:
        raise PatchCoreError(f"--sampling: unknown method '{method}' (one of {SAMPLING_METHODS})")
    if method == "coreset":
        return "coreset-cells" if n > EXACT_UP_TO else "coreset-exact"
    return method


def select(features: torch.Tensor, m: int, method: str, seed: int = 0,
           proj_dim: int | None = None, progress: bool = True,
           known: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the m rows of `features` (N, D) that the memory bank keeps, by `method`
    (SAMPLING_METHODS, or coreset-cells). Greedy picks come in selection order; `known` (K, D)
    are patches already in the bank: the greedy then continues from them (fit --append)."""
    n, how = features.shape[0], algorithm(method, features.shape[0])
    m = max(1, min(int(m), n))
    if how == "none":
        return torch.arange(n)
    if how == "random":
        g = torch.Generator().manual_seed(seed)
        return torch.randperm(n, generator=g)[:m].sort().values
    x = project(features, proj_dim, seed).float().contiguous()  # (N, d)
    mind = None
    if known is not None:  # squared distance of every patch to the bank so far
        mind = knn.knn(x, project(known, proj_dim, seed).to(x), 1)[0][:, 0] ** 2  # (N,)
    start = int(mind.argmax()) if mind is not None else int(
        torch.randint(n, (1,), generator=torch.Generator().manual_seed(seed)))
    with tqdm(total=m, desc="coreset", disable=not progress, mininterval=0.5) as bar:
        if how == "coreset-cells" and n > CELL_SIZE and mind is None:
            return coreset_cells.greedy_cells(x, m, CELL_SIZE, seed, bar.update, BOUND_DIM)
        return greedy_pruned(x, m, start, bar.update, BOUND_DIM, mind).cpu()


def random_subsample(n: int, ratio: float, seed: int = 0) -> torch.Tensor:
    """Indices of a seeded uniform random subset of range(n) (a ratio of it), sorted."""
    return select(torch.empty(n, 0), n_keep(n, ratio), "random", seed)


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


def _sqdist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return ((x - c) ** 2).sum(dim=1)  # (N,) squared distances of rows of x to c


def greedy_exact(x: torch.Tensor, m: int, i: int, tick=None, mind: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """Textbook farthest-point loop from patch i: one running vector of N min-distances
    (squared), which starts at infinity, or at `mind` to extend an existing selection."""
    chosen = torch.empty(m, dtype=torch.long)
    mind = (torch.full((x.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
            if mind is None else mind.to(x.dtype).clone())  # (N,)
    for s in range(m):
        chosen[s] = i
        torch.minimum(mind, _sqdist(x, x[i]), out=mind)
        i = int(torch.argmax(mind))
        if tick:
            tick(1)
    return chosen


def greedy_pruned(x: torch.Tensor, m: int, i: int, tick=None, p: int = BOUND_DIM,
                  mind: torch.Tensor | None = None) -> torch.Tensor:
    """greedy_exact's sequence, recomputing only patches whose lower bound is below their
    min-distance: after the first steps that is nearly all of them.

    With z = bounds.bound_coords(x) (N, p+1): |z - z_i|^2 = |z|^2 + |z_i|^2 - 2 z.z_i is at most
    |x - x_i|^2, so a patch whose bound exceeds its min-distance cannot move closer. The test is
    kept as z.z_i - half > |z_i|^2 / 2 with half = (|z|^2 - mind - tol) / 2 stored per patch:
    one (p+1)-dim matrix-vector product per step, not D-dim.
    """
    z = bounds.bound_coords(x, bounds.principal_axes(x, p))  # (N, p+1)
    zsq, tol = (z * z).sum(1), bounds.slack(z)  # (N,)
    mind = (torch.full_like(zsq, float("inf")) if mind is None else
            mind.to(zsq).clone())  # (N,) squared distance to the chosen set
    half = (zsq - mind - tol) / 2  # (N,) -inf while a patch has no distance yet
    xp, (x, z, zsq, mind, half) = bounds.arrays(x, z, zsq, mind, half)  # numpy on a CPU
    chosen = torch.empty(m, dtype=torch.long)
    for s in range(m):
        chosen[s] = i
        g = z @ z[i]  # (N,)
        g -= half
        cand = bounds.flatnonzero(g > zsq[i] / 2)  # (C,) patches the new pick may move closer
        for c0 in range(0, len(cand), CHUNK):
            c = cand[c0:c0 + CHUNK]
            d = x[c]
            d -= x[i]  # (c, D)
            mind[c] = xp.minimum(mind[c], xp.einsum("cd,cd->c", d, d))
            half[c] = (zsq[c] - mind[c] - tol) / 2
        i = int(mind.argmax())
        if tick:
            tick(1)
    return chosen


def coverage(features: torch.Tensor, chosen: torch.Tensor, block: int = 4096) -> float:
    """Largest distance from any patch to its nearest chosen patch (lower is better)."""
    dist, _ = knn.knn(features, features[chosen], k=1, q_block=block)
    return float(dist.max())
