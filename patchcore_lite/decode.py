"""Decoding at the CPU's pace: shrink 8-bit images before they become float, decode ahead.

A 900 x 900 photo converted to float and resized with `F.interpolate` costs more than the
backbone on it; PIL's bilinear resize (antialiased like torch's) on the 8-bit pixels is several
times faster and differs by rounding (at most ~1/255 per pixel). 16-bit and float images keep
the exact float path. `Prefetch` decodes the next batches in threads (PIL, zlib and numpy
release the GIL) while the backbone runs on the current one: same batches, same order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from .errors import PatchCoreError


def default_workers() -> int:
    """Decoding threads when none are asked for: half the CPUs (the backbone keeps the rest)."""
    return max(1, min(8, (os.cpu_count() or 1) // 2))


def check_workers(workers: int | None) -> int | None:
    """`workers` itself if it is None or a whole number >= 0; else an error naming --workers."""
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise PatchCoreError(f"--workers: a whole number >= 0, got {workers!r}")
    return workers


def shrink8(raw: np.ndarray, size: int) -> torch.Tensor | None:
    """(H, W, C) uint8 pixels -> (3, size, size) float in [0, 1] resized by PIL (bilinear,
    antialiased); None for other dtypes (16-bit, float), which keep the exact float path."""
    if raw.dtype != np.uint8 or not size:
        return None
    grey = raw.shape[-1] <= 2  # grey (+ alpha): the grey channel; colour: RGB, alpha dropped
    a = np.ascontiguousarray(raw[..., 0] if grey else raw[..., :3])  # (H, W) or (H, W, 3)
    im = Image.fromarray(a)
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR, reducing_gap=None)
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255)  # (S, S) or (S, S, 3)
    return x[None].expand(3, -1, -1) if grey else x.permute(2, 0, 1)  # (3, S, S)


def ahead(dataset, workers: int, depth: int) -> Iterator:
    """dataset[0], dataset[1], ... in order, `workers` threads decoding up to `depth` items
    ahead of the one handed out; an error is raised at its item, and nothing more is decoded."""
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for i in range(len(dataset)):
                pending.append(pool.submit(dataset.__getitem__, i))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # an error or an early stop: cancel what has not started
            for f in pending:
                f.cancel()


class Prefetch:
    """Iterable of (B, 3, S, S) batches of a dataset, items decoded by `workers` threads up to
    two batches ahead; the batches are those of a DataLoader without workers."""

    def __init__(self, dataset, batch_size: int, workers: int):
        self.dataset, self.batch_size, self.workers = dataset, batch_size, workers

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        batch = []
        for x in ahead(self.dataset, self.workers, 2 * self.batch_size):
            batch.append(x)
            if len(batch) == self.batch_size:
                yield torch.stack(batch)
                batch = []
        if batch:
            yield torch.stack(batch)


def batches(dataset, batch_size: int, workers: int | None = None):
    """(B, 3, S, S) batches of `dataset` in order: decoded ahead by `workers` threads (None:
    default_workers()), or by the caller's thread with workers=0 (a plain DataLoader)."""
    workers = default_workers() if check_workers(workers) is None else workers
    if workers:
        return Prefetch(dataset, batch_size, workers)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size)
