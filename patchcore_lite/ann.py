"""Optional faiss backend for nearest-neighbour scoring (`--search faiss`, extra `faiss-cpu`).

`knn.knn` is exact and memory-bounded but its time grows with bank size x queries. For banks
too large for that (no subsampling, or thousands of training images), faiss searches faster:
an exact `IndexFlatL2` up to IVF_MIN_ROWS bank rows, an inverted-file index `IndexIVFFlat`
(approximate: only NPROBE of the nlist clusters are visited) above. The index of a bank is built
once and reused while that tensor is alive and unmodified. As in `knn.knn`, the k distances
returned are recomputed exactly in float32 for the neighbours found.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch

from .errors import PatchCoreError

IVF_MIN_ROWS = 100_000  # banks with at least this many rows get an IVF index
NPROBE = 16  # IVF clusters visited per query
INDEX_KINDS = ("auto", "flat", "ivf")
_cache: dict = {}  # the last index built: {"ref", "version", "kind", "index"}


def require(who: str = "--search faiss:"):
    """The faiss module, or a PatchCoreError (starting with `who`) that says how to install it."""
    try:
        import faiss
    except ImportError:
        raise PatchCoreError(f"{who} faiss is not installed: install it "
                             "(pip install faiss-cpu, or pip install 'patchcore-lite[faiss]')")
    return faiss


def _as_numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().float().cpu().numpy())


def build_index(bank: torch.Tensor, kind: str = "auto", seed: int = 0):
    """A faiss index over the rows of `bank` (M, D): flat (exact) or IVF (approximate)."""
    faiss = require()
    if kind not in INDEX_KINDS:
        raise PatchCoreError(f"index: unknown kind '{kind}' (one of {', '.join(INDEX_KINDS)})")
    m, d = bank.shape
    if kind == "auto":
        kind = "ivf" if m >= IVF_MIN_ROWS else "flat"
    data = _as_numpy(bank)
    if kind == "flat":
        index = faiss.IndexFlatL2(d)
    else:
        nlist = max(1, min(m // 39, int(4 * math.sqrt(m))))  # faiss wants >= 39 points per list
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
        index.cp.seed = seed
        index.train(data)
        index.nprobe = min(NPROBE, nlist)
    index.add(data)
    return index


def _index_for(bank: torch.Tensor, kind: str):
    """The cached index of this very tensor (same object, not modified since), else a new one."""
    hit = _cache.get("ref")
    if (hit is not None and hit() is bank and _cache["version"] == _version(bank)
            and _cache["kind"] == kind):
        return _cache["index"]
    index = build_index(bank, kind)
    _cache.update(ref=weakref.ref(bank), version=_version(bank), kind=kind, index=index)
    return index


def _version(t: torch.Tensor) -> int | None:
    """In-place modification counter (None for inference tensors, which cannot be modified)."""
    try:
        return t._version
    except RuntimeError:
        return None


@torch.inference_mode()
def knn(queries: torch.Tensor, bank: torch.Tensor, k: int = 1, q_block: int = 16384,
        kind: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """k nearest bank rows per query via faiss: distances (Q, k) ascending, indices (Q, k).

    Same contract as `knn.knn`; exact with a flat index, approximate with IVF.
    """
    k = min(k, bank.shape[0])
    index = _index_for(bank, kind)
    dists, idxs = [], []
    for q0 in range(0, queries.shape[0], q_block):
        q = queries[q0:q0 + q_block]
        _, found = index.search(_as_numpy(q), k)  # (q, k) int64; -1 if IVF found too few
        i = torch.from_numpy(found).to(bank.device)
        i = torch.where(i < 0, i[:, :1].clamp(min=0), i)  # pad misses with the nearest found
        exact = ((q[:, None, :] - bank[i]) ** 2).sum(-1).sqrt()  # (q, k) exact recompute
        exact, order = exact.sort(dim=1)
        dists.append(exact)
        idxs.append(i.gather(1, order))
    return torch.cat(dists), torch.cat(idxs)
