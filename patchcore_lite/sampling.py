"""Step 3: choose which training patches the memory bank keeps.

`random_subsample` keeps a uniform random fraction (the original teaching version: 10%).
`greedy_coreset` keeps a k-center coreset: it repeatedly adds the patch farthest from those
already chosen, so rare normal patterns survive. Selection runs on the full embedding (or a
fixed random projection, `proj_dim`) and keeps one running vector of min-distances (O(N) memory,
never an N x N matrix). The exact loop (`coreset-exact`) is fast per step: a cheap lower bound
on distances (top principal coordinates plus the norm of the rest) rules out almost every patch,
so only a few are recomputed. But it still reads a bound for all N patches at each of the M
steps (N x M: minutes at 784,000 patches), so above EXACT_UP_TO patches the default (`coreset`)
runs that loop per cell of feature space and merges the cells' picks by radius
(`coreset_cells.py`: coverage within a few % of the exact greedy's, N x cell_size work).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from . import coreset_cells, knn
from .errors import PatchCoreError

SAMPLING_METHODS = ("none", "random", "coreset", "coreset-exact")
CELL_SIZE = 8192  # the fast coreset: most patches in one cell of its greedy loop
EXACT_UP_TO = 200_000  # `coreset` runs the exact loop up to this many patches (~30 s on 2 cores,
# about 255 images): the cells change which patches are kept (image AUROC moved by up to 0.06 on
# the 80-image embedded set), so they are used only where the exact loop becomes too slow


def check_ratio(ratio: float) -> float:
    """The ratio as a float, or an error naming --ratio when it is outside (0, 1]."""
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


def greedy_coreset(features: torch.Tensor, ratio: float, proj_dim: int | None = None,
                   seed: int = 0, exact: bool = False, progress: bool = True,
                   bound_dim: int = 32, cell_size: int | None = CELL_SIZE) -> torch.Tensor:
    """Indices (in selection order) of a greedy k-center coreset of `features` (N, D).

    Each step adds the patch farthest from the chosen set. exact=True is the textbook loop in
    float64 (all N distances every step). cell_size=None picks the same sequence in float32 but
    recomputes only the patches that a `bound_dim`-dimensional lower bound cannot rule out
    (`coreset-exact`). The default runs that loop per cell of at most `cell_size` patches
    (`greedy_cells`); with N <= cell_size it is the same loop. proj_dim selects on a seeded
    random projection instead of the full embedding.
    """
    n, m = features.shape[0], n_keep(features.shape[0], ratio)
    x = project(features, proj_dim, seed)  # (N, d)
    start = int(torch.randint(n, (1,), generator=torch.Generator().manual_seed(seed)))
    bar = tqdm(total=m, desc="coreset", disable=not progress, mininterval=0.5)
    with bar:
        if exact:
            return greedy_exact(x.double(), m, start, bar.update)
        if cell_size is None or n <= cell_size:
            return greedy_pruned(x.float().contiguous(), m, start, bar.update, bound_dim)
        return coreset_cells.greedy_cells(x.float().contiguous(), m, cell_size, seed,
                                          bar.update, bound_dim)


def _sqdist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return ((x - c) ** 2).sum(dim=1)  # (N,) squared distances of rows of x to c


def greedy_exact(x: torch.Tensor, m: int, i: int, tick, mind: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """Textbook farthest-point loop: one running vector of N min-distances (squared), which
    starts at infinity, or at `mind` to extend an existing selection (fit --append)."""
    chosen = torch.empty(m, dtype=torch.long)
    mind = (torch.full((x.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
            if mind is None else mind.to(x.dtype).clone())  # (N,)
    for s in range(m):
        chosen[s] = i
        torch.minimum(mind, _sqdist(x, x[i]), out=mind)
        i = int(torch.argmax(mind))
        tick(1)
    return chosen


def greedy_pruned(x: torch.Tensor, m: int, i: int, tick, p: int = 32) -> torch.Tensor:
    """The textbook loop, recomputing only patches whose lower bound is below their min-distance.

    With z = bounds.bound_coords(x): |z - z_i|^2 = |z|^2 + |z_i|^2 - 2 z.z_i <= |x - x_i|^2, so a
    patch whose bound already exceeds its current min-distance cannot change; after the first
    steps that is nearly all of them. One (p+1)-dim matrix-vector product per step, not D-dim.
    It is the fast mode's loop (`coreset_cells.step_cells`) with all patches in one cell.
    """
    s = coreset_cells.pack(x, [torch.arange(len(x), device=x.device)], [i], p)
    return coreset_cells.step_cells(s, torch.zeros(1, dtype=torch.long, device=x.device), m,
                                    tick)[0][0].cpu()


def coverage(features: torch.Tensor, chosen: torch.Tensor, block: int = 4096) -> float:
    """Largest distance from any patch to its nearest chosen patch (lower is better)."""
    dist, _ = knn.knn(features, features[chosen], k=1, q_block=block)
    return float(dist.max())


def algorithm(method: str, n: int) -> str:
    """What `subsample` runs for `method` on n patches: none, random, coreset-exact, or
    coreset-cells (the fast mode, above EXACT_UP_TO patches)."""
    if method not in SAMPLING_METHODS:
        raise PatchCoreError(f"--sampling: unknown method '{method}' (one of {SAMPLING_METHODS})")
    return "coreset-cells" if method == "coreset" and n > EXACT_UP_TO else (
        "coreset-exact" if method == "coreset" else method)


def subsample(features: torch.Tensor, method: str, ratio: float | None, seed: int = 0,
              proj_dim: int | None = None, progress: bool = True) -> torch.Tensor:
    """Indices of the patches the memory bank keeps for `method` (SAMPLING_METHODS): coreset
    is the exact greedy up to EXACT_UP_TO patches and the fast cells mode above
    (`algorithm`), coreset-exact always the exact greedy (`greedy_pruned`)."""
    return select(features, algorithm(method, features.shape[0]), ratio, seed, proj_dim,
                  progress)


def select(features: torch.Tensor, how: str, ratio: float | None, seed: int = 0,
           proj_dim: int | None = None, progress: bool = True) -> torch.Tensor:
    """Indices kept by the algorithm `how` names (what `algorithm` returns), at any size."""
    if how == "none":
        return torch.arange(features.shape[0])
    if how == "random":
        return random_subsample(features.shape[0], ratio, seed)
    return greedy_coreset(features, ratio, proj_dim, seed, progress=progress,
                          cell_size=CELL_SIZE if how == "coreset-cells" else None)
