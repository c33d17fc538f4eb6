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

from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

MAX_IMAGES = 1000  # images scored; above, an evenly spaced sample of this many
SUSPECT_K = 6.0  # robust z-score above which an image is a suspect
MIN_FOR_SUSPECTS = 8  # fewer scored images say too little about what is normal
MAX_ROUNDS = 4


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


def check(score: Callable[[list[int], list[int]], list], ids: list[int], progress: bool = True,
          rounds: int = MAX_ROUNDS, chunk: int = 32) -> tuple[list[float], list, list[int]]:
    """Leave-one-out scores and maps of images `ids`, and the suspects among them.

    score(chunk, out) gives (score, map) for each image i of `chunk`, scored against the bank
    without the patches of images [i] + out. Returns the last round's scores and maps (one per
    id) and the suspects' ids."""
    suspects: list[int] = []
    for _ in range(rounds):
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
