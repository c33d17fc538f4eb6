"""Graders of notebook 04: blocked nearest-neighbour search (04.1), image score and anomaly map
(04.2). References: the kit's `knn.knn` (distances) with a stable brute-force order for the
indices, and the kit's one scoring path `PatchCore.score_features`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ... import ann, knn
from ..coding import fail, rng, same_array, same_number, torch_rng, within_memory
from .runner import Learner
from .shortcuts import DISTANCES

NEAREST_MEMORY = 48 * 2**20  # the Q x M matrix of the memory case: 122 MiB (float32: 61)
KNN_BLOCK = [(knn, "knn"), (knn, "_block_topk"), (knn, "_pruned_nn"), (ann, "knn")]


def _nearest_cases(g: np.random.Generator, hidden: bool):
    """(queries, bank, k): k = 1, k > 1, one query, k = M, and a bank of repeated rows."""
    yield g.normal(size=(5, 3)), g.normal(size=(7, 3)), 1
    yield g.normal(size=(30, 8)), g.normal(size=(50, 8)), 3
    yield g.normal(size=(1, 4)), g.normal(size=(10, 4)), 4
    yield g.normal(size=(20, 5)), g.normal(size=(6, 5)), 6
    yield g.normal(size=(7, 3)), np.tile(g.normal(size=(5, 3)), (12, 1)), 12  # ties everywhere
    if hidden:
        yield g.normal(size=(600, 6)), g.normal(size=(300, 6)), 2
        yield g.normal(size=(9, 2)), np.repeat(g.normal(size=(4, 2)), 8, axis=0), 8


def _expected_nearest(q: np.ndarray, bank: np.ndarray, k: int):
    """Distances from the kit's knn.knn; indices in stable brute-force order (ties: lowest)."""
    dist, _ = knn.knn(torch.from_numpy(q), torch.from_numpy(bank), k)
    d2 = ((q[:, None] - bank[None]) ** 2).sum(-1)
    return dist.numpy(), np.argsort(d2, axis=1, kind="stable")[:, :k]


def grade_nearest_distances(nearest_distances, hidden: bool = False) -> None:
    """Exercise 04.1: nearest_distances(queries (Q, D), bank (M, D), k) numpy -> distances
    (Q, k) ascending and bank indices (Q, k) (ties: lowest index first), never Q x M at once."""
    learner = Learner(nearest_distances, "nearest_distances", DISTANCES, block=KNN_BLOCK)
    g, n = rng("nearest_distances" + str(hidden)), 0
    for q, bank, k in _nearest_cases(g, hidden):
        dist, order = _expected_nearest(q, bank, k)
        what = f"nearest_distances(queries {q.shape}, bank {bank.shape}, k={k})"
        got = learner(what, q.copy(), bank.copy(), k)
        _same_pair(got, dist, order, what)
        n += 1
    q, bank = g.normal(size=(4000, 8)), g.normal(size=(4000, 8))
    what = "nearest_distances(queries (4000, 8), bank (4000, 8), k=1)"
    got, peak = learner.peak(what, q, bank, 1)
    dist, _ = knn.knn(torch.from_numpy(q), torch.from_numpy(bank), 1)
    within_memory(peak, NEAREST_MEMORY, what, "the Q x M matrix does not fit")
    same_array(as_pair(got, what)[0], dist.numpy(), f"{what}, distances", rtol=1e-5, atol=1e-6)
    learner.done(n + 1)


def as_pair(got, what: str) -> tuple:
    """The (distances, indices) pair a nearest-neighbour function returns."""
    if not isinstance(got, tuple) or len(got) != 2:
        fail(f"{what}: return (distances, indices), got {type(got).__name__}")
    return got


def _same_pair(got, dist: np.ndarray, order: np.ndarray, what: str) -> None:
    """Distances and indices both as expected."""
    got = as_pair(got, what)
    same_array(got[0], dist, f"{what}, distances", rtol=1e-5, atol=1e-6)
    same_array(got[1], order, f"{what}, indices", rtol=0, atol=0)


@functools.cache
def _model():
    """A PatchCore whose scoring path is the reference (random init: no fit is needed)."""
    from ...model import PatchCore

    return PatchCore(weights=None, progress=False)


SCORE_CASES = [((8, 8, 6), 40, 1, 64), ((4, 6, 3), 10, 3, 48), ((1, 1, 4), 5, 2, 32),
               ((7, 7, 5), 3, 3, 56)]
SCORE_HIDDEN = [((5, 3, 4), 12, 4, 40), ((2, 9, 3), 9, 9, 36)]


def grade_image_score_and_map(image_score_and_map, hidden: bool = False) -> None:
    """Exercise 04.2: image_score_and_map(feats (h, w, D), bank (M, D), k, size) -> (image score,
    (size, size) anomaly map), as the kit's scoring path computes them."""
    from ...model import PatchCore

    learner = Learner(image_score_and_map, "image_score_and_map",
                      allow=("patchcore_lite.knn.knn", "patchcore_lite.maps"),
                      block=[(PatchCore, "score_features"), (PatchCore, "predict")])
    g = torch_rng("image_score_and_map" + str(hidden))
    cases = SCORE_CASES + (SCORE_HIDDEN if hidden else [])
    for (h, w, d), m, k, size in cases:
        feats, bank = torch.randn(h, w, d, generator=g), torch.randn(m, d, generator=g)
        model = _model()
        model.config.resize, model.config.crop = size, 0  # maps at size x size
        scores, amaps, _ = model.score_features(feats[None], bank=bank, k=k)
        what = f"image_score_and_map(feats {(h, w, d)}, bank ({m}, {d}), k={k}, size={size})"
        got = learner(what, feats.clone(), bank.clone(), k, size)
        if not isinstance(got, tuple) or len(got) != 2:
            fail(f"{what}: return (score, map), got {type(got).__name__}")
        same_number(got[0], float(scores[0]), f"{what}, image score", rtol=1e-5)
        same_array(got[1], amaps[0], f"{what}, map", rtol=1e-4, atol=1e-5)
    learner.done(len(cases))
