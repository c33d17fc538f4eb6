"""Leave one image out: score good training images against the bank without their own patches.

Those scores are what a good image scores when the model has not seen it, so they set the
default threshold (a high quantile) and check the training set itself. A defective part in the
"good" folder puts its defect patches in the bank; left out, it scores like a defect: an outlier
among the others (a *suspect*). The rule is robust (median and median absolute deviation, so the
suspects themselves do not move it): score > median + SUSPECT_K * 1.4826 * MAD. Suspects of the
same kind cover each other in the bank, so the check runs in rounds: each round also leaves out
the suspects found so far, until no new one appears.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Subset
from tqdm.auto import tqdm

from .errors import PatchCoreError

MAX_IMAGES = 1000  # images scored; above, an evenly spaced sample of this many
SUSPECT_K = 8.0  # robust z above which an image is a suspect: clean embedded categories reach
# at most 6 (random-init resnet18, 80 images each); planted defects score 30-120
MIN_FOR_SUSPECTS = 8  # fewer scored images say too little about what is normal
MAX_ROUNDS = 4
MAP_PIXELS = 224 * 224  # pixels of each good map kept for the colour scale (a tiled image's
# map at its original size is thinned to about this many: 1,000 maps stay near 200 MB)


def sample(n_images: int, most: int = MAX_IMAGES) -> list[int]:
    """Indices of the images to score: all of them, or `most` evenly spaced ones."""
    if n_images <= most:
        return list(range(n_images))
    return sorted(set(np.linspace(0, n_images - 1, most).round().astype(int).tolist()))


def outliers(scores: list[float], k: float = SUSPECT_K) -> list[int]:
    """Positions of the scores above median + k * 1.4826 * MAD (none with too few scores)."""
    s = np.asarray(scores, dtype=np.float64)
    if len(s) < MIN_FOR_SUSPECTS:
        return []
    med = float(np.median(s))
    mad = 1.4826 * float(np.median(np.abs(s - med)))  # a standard deviation for normal data
    spread = max(mad, 1e-6 * max(abs(med), 1.0))
    return np.flatnonzero(s > med + k * spread).tolist()


def rounds(score: Callable[[list[int], list[int]], list], ids: list[int], progress: bool = True,
           most: int = MAX_ROUNDS, chunk: int = 32) -> tuple[list[float], list, list[int]]:
    """Leave-one-out scores and maps of images `ids`, and the suspects among them.

    score(chunk, out) gives (score, map) for each image i of `chunk`, scored against the bank
    without the patches of images [i] + out. Returns the last round's scores and maps (one per
    id) and the suspects' ids."""
    suspects: list[int] = []
    for _ in range(most):
        found = []
        with tqdm(total=len(ids), desc="check training set", unit="image",
                  disable=not progress) as bar:
            for c0 in range(0, len(ids), chunk):
                found += score(ids[c0:c0 + chunk], suspects)
                bar.update(len(ids[c0:c0 + chunk]))
        scores, maps = [s for s, _ in found], [m for _, m in found]
        new = [ids[j] for j in outliers(scores) if ids[j] not in suspects]
        if not new:
            break
        suspects = sorted(suspects + new)
    return scores, maps, suspects


def check(score: Callable[[list[int], list[int]], list], ids: list[int], names: list[str],
          n_images: int, progress: bool = True) -> tuple[list[float], list, dict]:
    """The training-set check of images `ids` (of n_images; `names` by bank image): warns once
    per suspect and once if only a sample was scored. Returns the scores and maps of the other
    images (they set the threshold) and the model's info about the check."""
    scores, maps, suspects = rounds(score, ids, progress)
    for i, s in zip(ids, scores):
        if i in suspects:
            warnings.warn(f"suspect training image {names[i]}: leave-one-out score {s:.4g} is an "
                          "outlier among the good images (a defect?)", stacklevel=4)
    if len(ids) < n_images:
        warnings.warn(f"training-set check: scored an evenly spaced sample of {len(ids)} of "
                      f"{n_images} images", stacklevel=4)
    info = dict(train_checked=len(ids), train_suspects=[
        dict(path=names[i], score=s) for i, s in zip(ids, scores) if i in suspects])
    kept = [j for j, i in enumerate(ids) if i not in suspects]
    return [scores[j] for j in kept], [maps[j] for j in kept], info


def leave_one_out(bank, score, stitch, images: list[int], f: torch.Tensor, lay
                  ) -> tuple[float, torch.Tensor]:
    """Score and flat map (about MAP_PIXELS of it) of image images[0] from its features
    f (T, h, w, D), against the bank without the patches of `images`: score(f, exclude) ->
    (scores (T,), maps (T, S, S)); a tiled image scores the max of its stitched map,
    stitch(maps, layout)."""
    out = [bank.rows_of(j) for j in images]
    if not bank.around(out):
        raise PatchCoreError("images: the memory bank holds the patches of one image only; give "
                             "more good images or raise --ratio")
    s, m = score(f, out)
    if lay is not None:
        m = stitch(m, lay)[None]
        s = m.amax()[None]
    if not bool(torch.isfinite(s).all()):
        raise PatchCoreError(f"images: training image {bank.train_images[images[0]]} scores NaN "
                             "or inf (non-finite pixel values?)")
    m = m.flatten()
    return float(s.max()), m[::max(1, len(m) // MAP_PIXELS)].clone()  # not a view of the map


def check_bank(bank, ds, embed, score, stitch, given=None, first: int = 0,
               progress: bool = True) -> tuple[list[float], list, dict]:
    """`check` of the training images ds holds (bank images first, first+1, ...) against
    `bank`. given: their (features (T, h, w, D), owners (T,), layouts by image); else each
    chunk is re-embedded with embed(dataset) -> the same three."""
    ids = [first + i for i in sample(len(ds))]

    def score_chunk(chunk: list[int], out: list[int]):
        if given is not None:
            f, own, lay = given
        else:
            f, own, lay = embed(Subset(ds, [i - first for i in chunk]))
            own, lay = torch.tensor(chunk)[own], lay and dict(zip(chunk, lay))
        return [leave_one_out(bank, score, stitch, [i] + out, f[own == i], lay[i] if lay else None)
                for i in chunk]

    return check(score_chunk, ids, bank.train_images, len(ds), progress)
