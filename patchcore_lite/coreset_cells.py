"""The fast default coreset (`--sampling coreset` on large sets): the greedy loop run per cell.

The exact greedy reads a bound for all N patches at each of its M steps (N x M). Here feature
space is cut into cells of at most `cell_size` patches (median cuts on principal coordinates),
and every cell runs the exact loop (`sampling.greedy_pruned`'s step, the same bound test, batched
over cells) on its own patches, with bounds from its own principal axes
(tighter than global ones: a cell is narrow along the global axes). A greedy prefix of a cell
covers it to the radius of its next pick, so keeping the M picks made at the largest radii over
all cells covers every cell to about the same radius tau, as the global greedy leaves it: cells
make part of their share of M, then those whose next pick is farthest continue, in rounds. Cells
run in lockstep, a group at a time (one batched product per step for the group, on a copy of
their patches made once, so the exact distances read contiguous memory). Work: N x cell_size,
not N x M.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from . import bounds

GROUP_BYTES = 2**24  # patches of the cells stepped together (16 MiB: one 384-dim cell, 5 of 128)
SPLIT_AXES_FROM = 32768  # patches the axes of the split are estimated from
CHUNK = 32768  # candidate rows whose full differences are held at once
FIRST, MORE = 0.5, 0.125  # picks of the first round, and of each further one, per share


class Cells(NamedTuple):
    """Every cell's loop state, one padded row per cell (K cells of at most n patches)."""
    x: torch.Tensor  # (K, n, D) each cell's patches, contiguous (a copy of the features)
    index: torch.Tensor  # (K, n) patch index of each slot (padding: the cell's first patch)
    zt: torch.Tensor  # (K, p+1, n) the cell's bound coordinates, transposed
    zsq: torch.Tensor  # (K, n) |z|^2
    mind: torch.Tensor  # (K, n) squared distance to the cell's picks (padding: -inf)
    half: torch.Tensor  # (K, n) (|z|^2 - mind - tol) / 2 (padding: +inf, never a candidate)
    tol: torch.Tensor  # (K, 1) rounding allowance of each cell's bounds
    cur: torch.Tensor  # (K,) slot of each cell's next pick
    size: torch.Tensor  # (K,) patches in each cell


def split(z: torch.Tensor, cell_size: int) -> list[torch.Tensor]:
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


def pack(x: torch.Tensor, parts: list[torch.Tensor], starts: list[int], p: int) -> Cells:
    """The loop state of every cell before its first pick; bounds on each cell's own axes.
    A single cell must hold all patches in order: it uses x without a copy."""
    k, n, dev = len(parts), max(len(c) for c in parts), x.device
    index = torch.stack([torch.cat([c, c[:1].expand(n - len(c))]) for c in parts])  # (K, n)
    zt = x.new_zeros(k, min(p, x.shape[1]) + 1, n)  # (K, p+1, n)
    tol = x.new_empty(k, 1)
    for j, c in enumerate(parts):
        xj = x if k == 1 else x[c]  # (n_j, D)
        z = bounds.bound_coords(xj, bounds.principal_axes(xj, p))  # (n_j, p+1)
        zt[j, :, :len(c)] = z.T
        tol[j] = bounds.slack(z)
    size = torch.tensor([len(c) for c in parts], device=dev)
    valid = torch.arange(n, device=dev) < size[:, None]  # (K, n)
    inf = float("inf")
    xc = x[None] if k == 1 else x[index.flatten()].view(k, n, -1)  # (K, n, D)
    return Cells(xc, index, zt, (zt * zt).sum(1), torch.where(valid, inf, -inf).to(x.dtype),
                 torch.where(valid, -inf, inf).to(x.dtype), tol,
                 torch.tensor(starts, device=dev), size)


def step_cells(s: Cells, rows: torch.Tensor, steps: int, tick) -> tuple[torch.Tensor, ...]:
    """`steps` greedy picks in each of the cells `rows` of s at once, updating their state in
    place. Returns the picks (G, steps; patch indices) and each pick's squared min-distance when
    it was picked (G, steps; inf first)."""
    n, sub = s.index.shape[1], [t[rows] for t in s[1:-1]]  # the group's state, copied
    xp, (xs, index, zt, zsq, mind, half, tol, cur) = bounds.arrays(
        s.x.view(-1, s.x.shape[2]), *sub)
    g_rows, base = bounds.arrays(torch.arange(len(rows), device=rows.device), rows * n)[1]  # (G,)
    picks, radii = [], []
    for _ in range(steps):
        picks.append(index[g_rows, cur])
        radii.append(mind[g_rows, cur])
        g = (zt[g_rows, :, cur][:, None] @ zt)[:, 0]  # (G, n) z.z_i, one product per cell
        g -= half  # bound < mind + tol  <=>  z.z_i - half > |z_i|^2 / 2
        flat = bounds.flatnonzero(g > zsq[g_rows, cur][:, None] / 2)  # (C,) may move closer
        xi = xs[base + cur]  # (G, D) each cell's new pick
        for c0 in range(0, len(flat), CHUNK):
            c = flat[c0:c0 + CHUNK]
            cell = c // n
            d = xs[base[cell] + c % n]
            d -= xi[cell]  # (c, D)
            d2 = xp.minimum(mind.reshape(-1)[c], xp.einsum("cd,cd->c", d, d))
            mind.reshape(-1)[c] = d2
            half.reshape(-1)[c] = (zsq.reshape(-1)[c] - d2 - tol[cell, 0]) / 2
        cur = mind.argmax(1)
        tick(len(rows))
    s.mind[rows], s.half[rows], s.cur[rows] = (torch.as_tensor(a) for a in (mind, half, cur))
    return torch.as_tensor(xp.stack(picks, 1)), torch.as_tensor(xp.stack(radii, 1)).double()


def run(s: Cells, which: torch.Tensor, steps: int, tick):
    """step_cells for the cells `which`, a group of about GROUP_BYTES of patches at a time.
    Returns the picks and radii (len(which), steps)."""
    k, n, d = s.x.shape
    per = max(1, GROUP_BYTES // (n * d * s.x.element_size()))
    out = [step_cells(s, which[g0:g0 + per], steps, tick) for g0 in range(0, len(which), per)]
    return torch.cat([p for p, _ in out]), torch.cat([r for _, r in out])


def greedy_cells(x: torch.Tensor, m: int, cell_size: int, seed: int = 0, tick=None,
                 p: int = 32) -> torch.Tensor:
    """Approximate greedy coreset of x (N, D): m patch indices, largest pick radius first.

    Every cell first makes FIRST of its share of the m picks; then, while some cell's next pick
    radius is above tau (the m-th largest pick radius so far) or fewer than m picks were made,
    the farther half of those cells continue by MORE of a share: picks go where patches are far
    apart, as in the global greedy, and few are made below the final tau.
    """
    tick = tick or (lambda _: None)
    ax = bounds.principal_axes(x[::1 + len(x) // SPLIT_AXES_FROM], p)  # any axes split
    parts = split(bounds.bound_coords(x, ax)[:, :-1], cell_size)
    if 4 * len(parts) > m:  # too few picks to share out: one cell, the exact loop (N x m small)
        parts = [torch.arange(len(x), device=x.device)]
    g = torch.Generator().manual_seed(seed)
    s = pack(x, parts, [int(torch.randint(len(c), (1,), generator=g)) for c in parts], p)
    share = m * s.index.shape[1] / len(x)  # picks per cell if all were alike
    which = torch.arange(len(parts), device=x.device)
    picks, radii = [[] for _ in parts], [[] for _ in parts]
    steps = 1 + int(FIRST * share)
    while len(which):
        p_new, r_new = run(s, which, steps, tick)
        for j, pk, rd in zip(which.tolist(), p_new, r_new):
            picks[j].append(pk)
            radii[j].append(rd)
        done = torch.tensor([sum(len(r) for r in rs) for rs in radii], device=x.device)
        every = torch.cat([r for rs in radii for r in rs])  # all pick radii so far
        tau = float(every.sort(descending=True).values[min(m, len(every)) - 1])
        left = s.mind[torch.arange(len(parts)), s.cur]  # (K,) each cell's next pick radius
        ok = ((left > tau) | (len(every) < m)) & (done < s.size)  # may still be among the m
        which = (ok & (left >= left[ok].median())).nonzero().squeeze(1) if ok.any() else ok[:0]
        steps = 1 + int(MORE * share)
    order = every.argsort(descending=True, stable=True).cpu()  # ties: cell order
    every_pick = torch.cat([pk for ps in picks for pk in ps]).cpu()
    return first_m(every_pick[order].numpy(), m, len(x))


def first_m(picks: np.ndarray, m: int, n: int) -> torch.Tensor:
    """The first m distinct picks; a cell with fewer distinct patches than its budget repeats
    one (at radius 0, so last), and when even that is short, any other patches (all covered)."""
    picks = picks[np.sort(np.unique(picks, return_index=True)[1])][:m]
    if len(picks) < m:
        rest = np.ones(n, bool)
        rest[picks] = False
        picks = np.concatenate([picks, np.flatnonzero(rest)[:m - len(picks)]])
    return torch.from_numpy(picks)
