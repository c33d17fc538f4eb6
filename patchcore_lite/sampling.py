"""Step 3: choose which training patches the memory bank keeps.

`random_subsample` keeps a uniform random fraction (the original teaching version: 10%).
`greedy_coreset` keeps a k-center coreset: it repeatedly adds the patch farthest from those
already chosen, so rare normal patterns survive. Selection runs on the full embedding (or a
fixed random projection, `proj_dim`) and keeps one running vector of min-distances (O(N) memory,
never an N x N matrix). The exact loop (`coreset-exact`) is fast per step: a cheap lower bound
on distances (top principal coordinates plus the norm of the rest) rules out almost every patch,
so only a few are recomputed. But it still reads a bound for all N patches at each of the M
steps (N x M: minutes at 784,000 patches), so the default (`coreset`) splits feature space into
cells of at most `cell_size` patches (median cuts on principal coordinates), runs the exact loop
in each cell with a little spare budget, and keeps the M picks made at the largest radii over
all cells: every cell ends covered to about the same radius, as the global greedy leaves it
(coverage within a few % of the exact greedy's; N x cell_size work instead of N x M).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from . import bounds, knn
from .errors import PatchCoreError

SAMPLING_METHODS = ("none", "random", "coreset", "coreset-exact")
CHUNK = 32768  # rows of full-dimensional differences held at once (48 MiB at 384 dims)
CELL_SIZE = 16384  # default coreset: most patches in one cell of the exact loop
MARGIN = 1.25  # each cell first gets this much more than its share of the picks
EXACT_UP_TO = 200_000  # `coreset` runs the exact loop up to this many patches (~30 s on 2 cores,
# about 255 images): the cells change which patches are kept (image AUROC moved by up to 0.05 on
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
        return greedy_cells(x.float().contiguous(), m, cell_size, seed, bar.update, bound_dim)


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
    """
    z = bounds.bound_coords(x, bounds.principal_axes(x, p))  # (N, p+1)
    return _pruned_loop(x, z, m, i, tick)[0]


def _pruned_loop(x: torch.Tensor, z: torch.Tensor, m: int, i: int, tick):
    """greedy_pruned's loop on bound coordinates z (N, p+1). Returns the picks (m,), each pick's
    squared min-distance when it was picked (m,; inf first) and the final min-distances (N,)."""
    zsq = (z * z).sum(1)  # (N,)
    tol = bounds.slack(z)
    mind = torch.full_like(zsq, float("inf"))  # (N,) exact squared distance to the chosen set
    half = torch.full_like(zsq, -float("inf"))  # (N,) (|z|^2 - mind - tol) / 2
    xp, (x, zt, zsq, mind, half) = _arrays(x, z.T.contiguous(), zsq, mind, half)  # zt (p+1, N)
    chosen, radii = [], []
    for _ in range(m):
        chosen.append(i)
        radii.append(float(mind[i]))  # a copy: mind[i] of a tensor is a view
        g = zt[:, i] @ zt  # (N,) z.z_i
        g -= half  # bound < mind + tol  <=>  z.z_i - half > |z_i|^2 / 2
        cand = _flatnonzero(g > zsq[i] / 2)  # (C,) the few patches that may move closer
        for c0 in range(0, len(cand), CHUNK):  # all N at the first steps: bound the memory
            c = cand[c0:c0 + CHUNK]
            d = x[c] - x[i]  # (c, D)
            d2 = xp.minimum(mind[c], xp.einsum("cd,cd->c", d, d))  # (c,) exact, direct
            mind[c] = d2
            half[c] = (zsq[c] - d2 - tol) / 2
        i = int(mind.argmax())
        tick(1)
    return (torch.tensor(chosen, dtype=torch.long), torch.tensor(radii, dtype=torch.float64),
            torch.as_tensor(mind))


def cells(z: torch.Tensor, cell_size: int) -> list[torch.Tensor]:
    """Split the rows of z (N, p) into cells of at most cell_size rows: halve every larger cell
    at the median of its widest coordinate (a k-d tree on principal coordinates)."""
    out, todo = [], [torch.arange(len(z), device=z.device)]
    while todo:
        idx = todo.pop()
        if len(idx) <= cell_size:
            out.append(idx)
            continue
        zc = z[idx]  # (n, p)
        order = zc[:, int(zc.std(0).argmax())].argsort()  # (n,) along the widest coordinate
        todo += [idx[order[len(idx) // 2:]], idx[order[:len(idx) // 2]]]
    return out


def greedy_cells(x: torch.Tensor, m: int, cell_size: int, seed: int = 0, tick=None,
                 p: int = 32) -> torch.Tensor:
    """Approximate greedy coreset of x (N, D): the exact loop per cell, merged by radius.

    Each cell of `cells` runs the exact loop for MARGIN times its share of m. A greedy prefix
    of a cell covers it to the radius of its next pick, so keeping the m picks made at the
    largest radii, over all cells, covers each cell to about the same radius tau, the way the
    global greedy spends its picks where patches are far apart. A cell whose budget ran out
    above tau is rerun with twice the budget. Work: N x cell_size bound reads, not N x m.
    """
    tick = tick or (lambda _: None)
    z = bounds.bound_coords(x, bounds.principal_axes(x, p))  # (N, p+1)
    parts = cells(z[:, :-1], cell_size)
    if 4 * len(parts) > m:  # too few picks to share out: the exact loop (N x m is small here)
        return _pruned_loop(x, z, m, int(torch.randint(len(x), (1,), generator=torch.Generator()
                                                      .manual_seed(seed))), tick)[0]
    g = torch.Generator().manual_seed(seed)
    starts = [int(torch.randint(len(c), (1,), generator=g)) for c in parts]
    budget = [min(len(c), 1 + int(MARGIN * m * len(c) / len(x))) for c in parts]
    runs: list = [None] * len(parts)
    while True:
        for j, c in enumerate(parts):
            if runs[j] is None or len(runs[j][0]) < budget[j]:
                chosen, radii, mind = _pruned_loop(x[c], z[c], budget[j], starts[j], tick)
                runs[j] = (c[chosen.to(c.device)].cpu(), radii, float(mind.max()))
        radii = torch.cat([r[1] for r in runs])  # (sum of budgets,) squared pick radii
        tau = float(radii.sort(descending=True).values[min(m, len(radii)) - 1])
        short = [j for j, r in enumerate(runs) if r[2] > tau and budget[j] < len(parts[j])]
        if not short:
            break
        for j in short:  # this cell still has patches farther than tau from its picks
            budget[j] = min(len(parts[j]), 2 * budget[j])
    order = radii.argsort(descending=True, stable=True)  # ties: cell order
    return _first_m(torch.cat([r[0] for r in runs])[order].numpy(), m, len(x))


def _first_m(picks: np.ndarray, m: int, n: int) -> torch.Tensor:
    """The first m distinct picks; a cell with fewer distinct patches than its budget repeats
    one (at radius 0, so last), and when even that is short, any other patches (all covered)."""
    picks = picks[np.sort(np.unique(picks, return_index=True)[1])][:m]
    if len(picks) < m:
        rest = np.ones(n, bool)
        rest[picks] = False
        picks = np.concatenate([picks, np.flatnonzero(rest)[:m - len(picks)]])
    return torch.from_numpy(picks)


def _arrays(*tensors: torch.Tensor):
    """numpy views of CPU tensors (its BLAS and reductions are faster on these small per-step
    calls), the tensors themselves on a GPU; with the matching namespace for `minimum`."""
    if tensors[0].device.type == "cpu":
        return np, [t.numpy() for t in tensors]
    return torch, list(tensors)


def _flatnonzero(mask):
    return np.flatnonzero(mask) if isinstance(mask, np.ndarray) else mask.nonzero().squeeze(1)


def coverage(features: torch.Tensor, chosen: torch.Tensor, block: int = 4096) -> float:
    """Largest distance from any patch to its nearest chosen patch (lower is better)."""
    dist, _ = knn.knn(features, features[chosen], k=1, q_block=block)
    return float(dist.max())


def subsample(features: torch.Tensor, method: str, ratio: float | None, seed: int = 0,
              proj_dim: int | None = None, progress: bool = True) -> torch.Tensor:
    """Indices of the patches the memory bank keeps for `method` (SAMPLING_METHODS): coreset
    is the exact greedy up to EXACT_UP_TO patches and the fast `greedy_cells` above,
    coreset-exact always the exact greedy (`greedy_pruned`)."""
    if method == "none":
        return torch.arange(features.shape[0])
    if method == "random":
        return random_subsample(features.shape[0], ratio, seed)
    if method == "coreset":  # exact where that is fast enough, cells above
        cells = CELL_SIZE if features.shape[0] > EXACT_UP_TO else None
        return greedy_coreset(features, ratio, proj_dim, seed, progress=progress,
                              cell_size=cells)
    if method == "coreset-exact":
        return greedy_coreset(features, ratio, proj_dim, seed, progress=progress, cell_size=None)
    raise PatchCoreError(f"--sampling: unknown method '{method}' (one of {SAMPLING_METHODS})")
