"""Fit on more training images than memory holds: embed a chunk of images at a time and keep
each chunk's subsample, so only one chunk's features and the bank are ever in memory.

10,000 images of 784 patches x 384 dims are 12 GB of features; chunks of CHUNK_BYTES keep the
fit near the bank's own size. Each chunk is subsampled as the whole set would be (random ratio,
or a greedy coreset of the chunk: a composable coreset, whose union covers every chunk as well as
each chunk's own selection does). The leave-one-out threshold re-embeds the (at most 50) good
images it scores. Used by `PatchCore.fit` when all features would pass STREAM_BYTES; this
module knows nothing of the model class (it calls its `features`).
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import Subset
from tqdm.auto import tqdm

from . import sampling

STREAM_BYTES = 2**30  # above this much of training features, fit streams
CHUNK_BYTES = 2**29  # features of one chunk (512 MiB)


def needed(n_images: int, per_image: torch.Size) -> bool:
    """Whether n_images of (h, w, D) float32 features pass STREAM_BYTES."""
    return n_images * per_image.numel() * 4 > STREAM_BYTES


def chunks(n_images: int, per_image: torch.Size) -> list[range]:
    """Consecutive image ranges of about CHUNK_BYTES of features each."""
    step = max(2, CHUNK_BYTES // (per_image.numel() * 4))
    return [range(i, min(i + step, n_images)) for i in range(0, n_images, step)]


def bank(model, ds, per_image: torch.Size):
    """The memory bank's patches (M, D), image (M,) and cell (M,) indices, sorted by image, built
    chunk by chunk (progress bar with ETA); and the seconds spent embedding."""
    c, (h, w, d), n = model.config, per_image, len(ds)
    parts = chunks(n, per_image)
    keep = [len(r) * h * w if c.sampling == "none" else sampling.n_keep(len(r) * h * w,
                                                                       c.sampling_ratio)
            for r in parts]
    patches = torch.empty(sum(keep), d, device=model.device)  # (M, D), preallocated
    image = torch.empty(sum(keep), dtype=torch.int32, device=model.device)  # (M,)
    pos = torch.empty_like(image)  # (M,)
    bar = tqdm(total=n, desc="fit (streaming)", unit="image", disable=not model.progress)
    m0, t_embed = 0, 0.0
    for r, k in zip(parts, keep):
        t = time.perf_counter()
        flat = model.features(Subset(ds, r), progress=False).reshape(-1, d)  # (n_c*h*w, D)
        t_embed += time.perf_counter() - t
        idx = sampling.subsample(flat, c.sampling, c.sampling_ratio, c.seed + r.start,
                                 c.proj_dim, progress=False).sort().values.to(flat.device)
        patches[m0:m0 + k] = flat[idx]
        image[m0:m0 + k] = (r.start + idx // (h * w)).int()
        pos[m0:m0 + k] = (idx % (h * w)).int()
        m0 += k
        bar.update(len(r))
        del flat
    bar.close()
    return patches, image, pos, t_embed
