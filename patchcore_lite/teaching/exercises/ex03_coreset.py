"""Graders of notebook 03: the greedy k-center loop (03.1) and the coverage radius (03.2).

References: the kit's textbook loop `sampling.greedy_exact` and `sampling.coverage`, computed
outside the block. Fixed cases: one point, m = N, a grid of repeated points (every step a tie),
a start other than 0, and a memory case where an N x N (or N x K) matrix does not fit the budget.
"""

from __future__ import annotations

import numpy as np
import torch

from ... import coreset_cells, knn, sampling
from ..coding import rng, same_array, same_number, within_memory
from .runner import Learner
from .shortcuts import DISTANCES

BLOCK = [(sampling, "greedy_exact"), (sampling, "greedy_pruned"), (sampling, "select"),
         (coreset_cells, "step_cells"), (coreset_cells, "greedy_cells"), (sampling, "coverage"),
         (knn, "knn")]
GREEDY_MEMORY = 16 * 2**20  # the N x N matrix of the memory case is 275 MiB
COVERAGE_MEMORY = 16 * 2**20  # the N x K matrix of the memory case is 76 MiB


def _greedy_cases(g: np.random.Generator, hidden: bool):
    """(x (N, D) float64, m, start): shapes, one point, m = N, ties and repeats."""
    yield g.normal(size=(50, 2)), 5, 17
    yield g.normal(size=(200, 8)), 20, 0
    yield g.normal(size=(1, 3)), 1, 0
    yield g.normal(size=(30, 4)), 30, 29
    yield np.array([[a, b] for a in range(3) for b in range(3)] * 4, float), 12, 4  # ties
    if hidden:
        yield np.repeat(g.integers(0, 4, (6, 3)).astype(float), 3, axis=0), 10, 7
        yield g.normal(size=(500, 16)), 40, 250


def _expected_greedy(x: np.ndarray, m: int, start: int) -> np.ndarray:
    """The kit's textbook loop on the same points (float64)."""
    return sampling.greedy_exact(torch.from_numpy(x), m, start, lambda _: None).numpy()


def grade_greedy_kcenter(greedy_kcenter, hidden: bool = False) -> None:
    """Exercise 03.1: greedy_kcenter(x (N, D) numpy, m, start) -> (m,) indices in selection
    order (ties: lowest index), in O(N) memory."""
    learner = Learner(greedy_kcenter, "greedy_kcenter", DISTANCES, block=BLOCK)
    g, n = rng("greedy_kcenter" + str(hidden)), 0
    for x, m, start in _greedy_cases(g, hidden):
        expected = _expected_greedy(x, m, start)
        what = f"greedy_kcenter(x {x.shape}, m={m}, start={start})"
        got = learner(what, x.copy(), m, start)
        same_array(got, expected, what, rtol=0, atol=0)
        n += 1
    x = g.normal(size=(6000, 8))
    what = f"greedy_kcenter(x {x.shape}, m=8, start=0)"
    got, peak = learner.peak(what, x, 8, 0)
    within_memory(peak, GREEDY_MEMORY, what, "the N x N matrix does not fit")
    same_array(got, _expected_greedy(x, 8, 0), what, rtol=0, atol=0)
    learner.done(n + 1)


def _coverage_cases(g: np.random.Generator, hidden: bool):
    """(x, kept): one kept point, every point kept (radius 0), one point, repeated rows."""
    yield g.normal(size=(100, 3)), g.permutation(100)[:10]
    yield g.normal(size=(300, 16)), np.array([123])
    yield g.normal(size=(40, 2)), g.permutation(40)
    yield g.normal(size=(1, 5)), np.array([0])
    if hidden:
        yield np.repeat(g.normal(size=(20, 3)), 2, axis=0), np.arange(0, 40, 2)
        yield g.normal(size=(500, 32)) * 5, g.permutation(500)[:3]


def grade_coverage_radius(coverage_radius, hidden: bool = False) -> None:
    """Exercise 03.2: coverage_radius(x (N, D) numpy, kept (K,) indices) -> the largest distance
    from any row of x to its nearest kept row, without an N x K matrix in memory."""
    learner = Learner(coverage_radius, "coverage_radius", DISTANCES, block=BLOCK)
    g, n = rng("coverage_radius" + str(hidden)), 0
    for x, kept in _coverage_cases(g, hidden):
        expected = sampling.coverage(torch.from_numpy(x), torch.from_numpy(kept))
        what = f"coverage_radius(x {x.shape}, {len(kept)} kept)"
        got = learner(what, x.copy(), kept.copy())
        same_number(got, expected, what, rtol=1e-5, atol=1e-6)
        n += 1
    x, kept = g.normal(size=(10000, 4)), g.permutation(10000)[:1000]
    what = f"coverage_radius(x {x.shape}, 1000 kept)"
    got, peak = learner.peak(what, x, kept)
    within_memory(peak, COVERAGE_MEMORY, what, "the N x K matrix does not fit")
    same_number(got, sampling.coverage(torch.from_numpy(x), torch.from_numpy(kept)), what,
                rtol=1e-5, atol=1e-6)
    learner.done(n + 1)
