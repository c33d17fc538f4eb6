"""Step 4: nearest-neighbour scoring against the memory bank.

A test patch is anomalous when even its nearest normal patch is far away. Distances are
computed block by block (query block x bank block), so memory stays bounded whatever the
bank size; the final k distances are recomputed exactly in float32.
"""

from __future__ import annotations

import torch


@torch.inference_mode()
def knn(queries: torch.Tensor, bank: torch.Tensor, k: int = 1, q_block: int = 2048,
        b_block: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest bank rows for each query: distances (Q, k) ascending and indices (Q, k)."""
    k = min(k, bank.shape[0])
    bank_sq = (bank * bank).sum(1)  # (M,)
    dists, idxs = [], []
    for q0 in range(0, queries.shape[0], q_block):
        q = queries[q0:q0 + q_block]  # (q, D)
        best_d, best_i = _block_topk(q, bank, bank_sq, k, b_block)
        exact = ((q[:, None, :] - bank[best_i]) ** 2).sum(-1).sqrt()  # (q, k) exact recompute
        exact, order = exact.sort(dim=1)
        dists.append(exact)
        idxs.append(best_i.gather(1, order))
    return torch.cat(dists), torch.cat(idxs)


def _block_topk(q: torch.Tensor, bank: torch.Tensor, bank_sq: torch.Tensor, k: int,
                b_block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Running top-k (smallest squared distance) of q against the bank, one bank block at a time."""
    q_sq = (q * q).sum(1, keepdim=True)  # (q, 1)
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
