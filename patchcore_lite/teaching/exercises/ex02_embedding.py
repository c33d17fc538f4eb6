"""Graders of notebook 02: 3x3 aggregation with zero padding counted (02.1), fusing layers on
the finest grid (02.2). The references are the kit's `embedding.aggregate` and `embedding.fuse`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ... import embedding
from ..coding import fail, same_array, torch_rng
from .runner import Learner

POOLING = {"avg_pool1d", "avg_pool2d", "avg_pool3d", "AvgPool2d", "AvgPool1d",
           "adaptive_avg_pool2d", "AdaptiveAvgPool2d", "lp_pool2d", "LPPool2d", "conv1d",
           "conv2d", "Conv2d", "conv_transpose2d", "unfold", "Unfold", "fold", "Fold",
           "uniform_filter", "convolve", "convolve2d", "correlate", "correlate2d",
           "sliding_window_view", "as_strided", "aggregate", "embed"}
# shapes: a 1x1 grid (every neighbour is padding), non-square grids, B > 1, C > 1, a 2x2 grid
AGG_CASES = [(1, 1, 1, 1), (2, 3, 5, 7), (1, 4, 2, 2), (3, 2, 8, 6), (1, 5, 1, 9)]
AGG_HIDDEN = [(2, 1, 3, 3), (1, 2, 9, 1), (1, 3, 12, 10)]
# layer lists: deeper map first and last, three layers, equal grids, non-square grids
FUSE_CASES = [[(2, 4, 8, 8), (2, 6, 4, 4)], [(1, 6, 4, 4), (1, 3, 8, 8)],
              [(1, 2, 16, 16), (1, 3, 8, 8), (1, 4, 4, 4)], [(2, 3, 6, 6), (2, 2, 6, 6)],
              [(1, 3, 6, 10), (1, 5, 3, 5)]]
FUSE_HIDDEN = [[(1, 2, 4, 4), (1, 3, 16, 16), (1, 1, 8, 8)], [(2, 2, 7, 5), (2, 3, 14, 10)]]


def grade_aggregate3x3(aggregate3x3, hidden: bool = False) -> None:
    """Exercise 02.1: aggregate3x3(feat (B, C, h, w)) -> (B, C, h, w), the mean of each 3x3
    window with zero padding counted (a border cell's sum is divided by 9 too)."""
    learner = Learner(aggregate3x3, "aggregate3x3", POOLING,
                      block=[(embedding, "aggregate"), (embedding, "embed"), (F, "avg_pool2d"),
                             (torch.nn.AvgPool2d, "forward")])
    g = torch_rng("aggregate3x3" + str(hidden))
    shapes = AGG_CASES + (AGG_HIDDEN if hidden else [])
    for shape in shapes:
        x = torch.randn(*shape, generator=g)
        expected = embedding.aggregate(x)
        what = f"aggregate3x3 on input {shape}"
        given = x.clone()
        got = learner(what, given)
        if not torch.equal(given, x):
            fail(f"{what}: your function changed its input; leave feat as it is")
        same_array(got, expected, what)
    learner.done(len(shapes))


def grade_fuse_finest(fuse_finest, hidden: bool = False) -> None:
    """Exercise 02.2: fuse_finest(feats) -> (B, sum C_l, h, w): every map resized bilinearly
    (align_corners=False) to the finest grid, channels concatenated in the given order."""
    learner = Learner(fuse_finest, "fuse_finest", {"fuse", "embed"},
                      block=[(embedding, "fuse"), (embedding, "embed")])
    g = torch_rng("fuse_finest" + str(hidden))
    cases = FUSE_CASES + (FUSE_HIDDEN if hidden else [])
    for shapes in cases:
        feats = [torch.randn(*s, generator=g) for s in shapes]
        expected = embedding.fuse(feats)
        what = f"fuse_finest on maps {shapes}"
        got = learner(what, [f.clone() for f in feats])
        same_array(got, expected, what)
    learner.done(len(cases))
