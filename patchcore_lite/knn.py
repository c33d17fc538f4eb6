"""Step 4: nearest-neighbour scoring against the memory bank.

A test patch is anomalous when even its nearest normal patch is far away. Distances are
computed block by block (query block x bank block), so memory stays bounded whatever the
bank size. On a CPU, large banks are searched exactly but faster: a cheap lower bound (bounds.py,
a few principal coordinates) rules out most bank patches, and only the rest get a full distance.
"""

from __future__ import annotations

import numpy as np
import torch

from . import bounds

BOUND_DIM = 64  # principal coordinates in the lower bound (65 numbers per patch instead of D)
MIN_DIM_FOR_BOUNDS = 128  # narrower features: a bound of D/4 coordinates rules out too little
MIN_BANK_FOR_BOUNDS = 2048  # smaller banks: plain matrix products are already cheap
BOUND_BLOCK = 2**24  # lower bounds (q, M) held at once (64 MB): fewer, wider blocks, 1.4x faster
CHUNK = 32768  # candidate pairs whose full differences are held at once (48 MiB at 384 dims)


def bank_bounds(bank: torch.Tensor, p: int | None = None) -> tuple[bounds.Axes, torch.Tensor]:
    """Principal axes of the bank and its (M, p+1) bound coordinates, to reuse across searches;
    p defaults to BOUND_DIM, or D/4 for narrower features (128-dim: 32, 4x faster than brute)."""
    ax = bounds.principal_axes(bank, p or min(BOUND_DIM, bank.shape[1] // 4))
    return ax, bounds.bound_coords(bank, ax)


@torch.inference_mode()
def knn(queries: torch.Tensor, bank: torch.Tensor, k: int = 1, q_block: int = 2048,
        b_block: int = 16384, bound: tuple[bounds.Axes, torch.Tensor] | None = None
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest bank rows for each query: distances (Q, k) ascending and indices (Q, k).

    On a CPU, 1-NN against a large bank prunes with a lower bound (`bound` = bank_bounds(bank),
    computed here when omitted); a GPU has the flops to compare every pair.
    """
    k = min(k, bank.shape[0])
    if (k == 1 and bank.device.type == "cpu" and bank.shape[0] >= MIN_BANK_FOR_BOUNDS
            and bank.shape[1] >= MIN_DIM_FOR_BOUNDS):
        return _pruned_nn(queries, bank, bound or bank_bounds(bank))
    dists, idxs = [], []
    for q0 in range(0, queries.shape[0], q_block):
        q = queries[q0:q0 + q_block]  # (q, D)
        _, best_i = _block_topk(q, bank, k, b_block)
        exact = ((q[:, None, :] - bank[best_i]) ** 2).sum(-1)  # (q, k) exact recompute
        exact, order = exact.sort(dim=1)
        dists.append(exact.sqrt())
        idxs.append(best_i.gather(1, order))
    return torch.cat(dists), torch.cat(idxs)


def _sqdist_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b  # (C, D)
    return np.einsum("cd,cd->c", d, d)  # (C,) exact, from the direct difference


def _block_topk(q: torch.Tensor, bank: torch.Tensor, k: int, b_block: int):
    """Running top-k (smallest squared distance) of q against the bank, one bank block at a time."""
    q_sq = (q * q).sum(1, keepdim=True)  # (q, 1)
    bank_sq = (bank * bank).sum(1)  # (M,)
    best_d = best_i = None
    for b0 in range(0, bank.shape[0], b_block):
        d2 = torch.addmm(q_sq + bank_sq[None, b0:b0 + b_block], q, bank[b0:b0 + b_block].T,
                         alpha=-2.0)  # (q, b) = |q|^2 + |b|^2 - 2 q.b
        d, i = d2.topk(min(k, d2.shape[1]), dim=1, largest=False)
        i = i + b0
        if best_d is not None:
            d, j = torch.cat([best_d, d], 1).topk(min(k, best_d.shape[1] + d.shape[1]), dim=1,
                                                  largest=False)  # < k while b_block < k
            i = torch.cat([best_i, i], 1).gather(1, j)
        best_d, best_i = d, i
    return best_d, best_i


def _pruned_nn(queries: torch.Tensor, bank: torch.Tensor, bound) -> tuple[torch.Tensor, ...]:
    """Exact nearest bank row of each query, computing full distances only where needed.

    Lower bounds |zq - zb|^2 for every pair cost one (p+3)-dim product; the bank row with the
    smallest bound gives an upper bound U on the nearest distance, and only rows whose bound is
    below U (about ten per query on patch features) get a full distance. All in numpy: its BLAS
    and reductions are faster on CPUs, and one thread pool avoids contention with torch's.
    """
    ax, zb = bound
    ax = bounds.Axes(ax.mean.numpy(), ax.axes.numpy())
    zb = zb.numpy()
    ba = np.concatenate([zb, (zb * zb).sum(1, keepdims=True) - bounds.slack(zb),
                         np.ones_like(zb[:, :1])], 1).T.copy()  # (p+3, M)
    qs, bn = queries.numpy(), bank.numpy()
    q_block = max(16, BOUND_BLOCK // len(bn))  # (q, M) bounds stay ~64 MB
    dist, idx = [], []
    for q0 in range(0, len(qs), q_block):
        q = qs[q0:q0 + q_block]  # (q, D)
        zq = bounds.bound_coords(q, ax)  # (q, p+1)
        qa = np.concatenate([-2 * zq, np.ones_like(zq[:, :1]),
                             (zq * zq).sum(1, keepdims=True) - bounds.slack(zq)], 1)
        lb = qa @ ba  # (q, M) lower bounds on squared distances, minus rounding slack
        d = q - bn[lb.argmin(1)]  # (q, D) to the row with the smallest bound
        upper = np.einsum("qd,qd->q", d, d)  # (q,) the nearest distance is at most this
        rows, cols = np.divmod(np.flatnonzero(lb < upper[:, None]), len(bn))  # candidates
        d2 = np.concatenate([_sqdist_rows(q[rows[c:c + CHUNK]], bn[cols[c:c + CHUNK]])
                             for c in range(0, len(rows), CHUNK)] or [np.zeros(0, q.dtype)])
        order = np.lexsort((d2, rows))  # by query, then distance
        first = order[np.flatnonzero(np.diff(rows[order], prepend=-1))]  # nearest per query
        if len(first) == len(q):
            d2, cols = d2[first], cols[first]
        else:  # non-finite input left some query without a candidate: compare all pairs
            d2, cols = _block_topk(torch.from_numpy(q), bank, 1, len(bn))
            d2, cols = d2[:, 0].clamp(min=0).numpy(), cols[:, 0].numpy()
        dist.append(d2)
        idx.append(cols)
    return (torch.from_numpy(np.concatenate(dist) ** 0.5)[:, None],
            torch.from_numpy(np.concatenate(idx))[:, None])


@torch.inference_mode()
def reweight(patch_feats: torch.Tensor, patch_scores: torch.Tensor, nn_idx: torch.Tensor,
             bank: torch.Tensor, b: int = 9) -> torch.Tensor:
    """Paper Eq. 7 image score for each image.

    patch_feats (B, P, D), patch_scores (B, P), nn_idx (B, P) index of each patch's nearest bank
    patch. With m_test the worst patch and m* its nearest bank patch, the score
    s* = max patch score is scaled by 1 - softmax(|m_test - m| for m in N_b(m*))[m*], where N_b(m*)
    are the b bank patches nearest to m* (m* itself first).
    """
    s_star, worst = patch_scores.max(dim=1)  # (B,)
    rows = torch.arange(patch_feats.shape[0], device=patch_feats.device)
    m_test = patch_feats[rows, worst]  # (B, D)
    m_star = bank[nn_idx[rows, worst]]  # (B, D)
    _, support = knn(m_star, bank, k=b)  # (B, b): N_b(m*), m* itself at distance 0 first
    d = torch.linalg.vector_norm(m_test[:, None, :] - bank[support], dim=-1)  # (B, b)
    return (1.0 - torch.softmax(d, dim=1)[:, 0]) * s_star
