"""The memory bank: the normal patches a model keeps, and where each one came from.

A bank is made three ways, each choosing patches through `sampling.select` (the one place that
decides which algorithm runs): `build` from all training features at once, `extend` with newly
approved images (fit --append: the same random ratio, or the greedy continued from the bank),
and `stream` chunk by chunk when the features do not fit in memory. Rows are sorted by training
image, so one image's patches are one slice (`rows_of`) and leave-one-image-out scoring searches
the two slices around it without a copy (`nearest(..., exclude=)`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Subset
from tqdm.auto import tqdm

from . import ann, knn, sampling

STREAM_BYTES = 2**30  # above this much of training features (10,000 images of 784 x 384 dims are
CHUNK_BYTES = 2**29  # 12 GB), fit streams chunks of this much: memory stays near the bank's size


@dataclass
class Bank:
    """Patches plus their origin: training image and grid cell of each row."""

    patches: torch.Tensor  # (M, D)
    image: torch.Tensor  # (M,) index into train_images
    pos: torch.Tensor  # (M,) flat grid index y * w + x
    grid: tuple[int, int]  # (h, w) patch grid of one image (or tile)
    train_images: list[str] = field(default_factory=list)
    _bound: tuple | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.patches)

    def rows_of(self, image: int) -> tuple[int, int]:
        """Rows a:b holding the patches of training image `image` (rows are sorted by image)."""
        img = self.image.to(torch.int64)
        return (int(torch.searchsorted(img, image, right=False)),
                int(torch.searchsorted(img, image, right=True)))

    def bound(self):
        """Lower-bound coordinates of the patches for exact pruned search (computed once)."""
        if self._bound is None or self._bound[0] is not self.patches:
            self._bound = (self.patches, knn.bank_bounds(self.patches))
        return self._bound[1]

    def nearest(self, queries: torch.Tensor, k: int, exclude=None, search: str = "exact"
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, D) -> distances (P, k) and row indices (P, k) of the k nearest patches. `exclude`:
        row ranges [(a, b), ...] to leave out (training images'), searched around, not copied."""
        if not exclude:
            if search == "faiss":  # faiss indexes the bank once
                return ann.knn(queries, self.patches, k)
            return knn.knn(queries, self.patches, k, bound=self.bound())
        ax, zb = self.bound()
        found = [(knn.knn(queries, self.patches[s:e], k, bound=(ax, zb[s:e])), s)
                 for s, e in self.around(exclude)]
        dist = torch.cat([d for (d, _), _ in found], 1)  # (P, <= parts * k)
        idx = torch.cat([i + s for (_, i), s in found], 1)
        dist, j = dist.topk(min(k, dist.shape[1]), dim=1, largest=False)
        return dist, idx.gather(1, j)

    def around(self, exclude) -> list[tuple[int, int]]:
        """The non-empty row ranges left when the ranges `exclude` are taken out."""
        out, start = [], 0
        for a, b in sorted(exclude):
            if a > start:
                out.append((start, a))
            start = max(start, b)
        return out + ([(start, len(self))] if start < len(self) else [])

    def __add__(self, other: Bank) -> Bank:
        """This bank followed by `other` (whose image indices already count from ours)."""
        return Bank(torch.cat([self.patches, other.patches]), torch.cat([self.image, other.image]),
                    torch.cat([self.pos, other.pos]), self.grid,
                    self.train_images + other.train_images)


def from_picks(flat: torch.Tensor, idx: torch.Tensor, owner: torch.Tensor, grid, names) -> Bank:
    """Bank of the patches flat[idx] (flat: T images or tiles of h*w patches each, (T*h*w, D));
    owner (T,) is the training image of each."""
    h, w = grid
    idx = idx.to(flat.device).sort().values  # by image, then cell: an image's rows are one slice
    return Bank(flat[idx].clone(), owner.to(idx.device)[idx // (h * w)].int(),
                (idx % (h * w)).int(), (h, w), list(names))


def keep(n: int, c) -> int:
    """How many of n patches the bank keeps with config c (all of them without sampling)."""
    return n if c.sampling == "none" else sampling.n_keep(n, c.sampling_ratio)


def build(feats: torch.Tensor, owner: torch.Tensor, names, c, progress: bool = True) -> Bank:
    """Bank of feats (T, h, w, D) of images `owner` (T,), subsampled as config c says."""
    flat = feats.reshape(-1, feats.shape[-1])  # (T*h*w, D)
    idx = sampling.select(flat, keep(len(flat), c), c.sampling, c.seed, c.proj_dim, progress)
    return from_picks(flat, idx, owner, feats.shape[1:3], names)


def extend(bank: Bank, feats: torch.Tensor, owner: torch.Tensor, names, c,
           progress: bool = True) -> Bank:
    """The bank with the patches it would keep of new images' features feats (T, h, w, D) of
    images `owner` (T,; counted from 0): all, the same random ratio (seeded by the image
    count), or the greedy continued from the bank's patches."""
    n0, flat = len(bank.train_images), feats.reshape(-1, feats.shape[-1])  # (N*h*w, D)
    known = bank.patches if c.sampling.startswith("coreset") else None
    idx = sampling.select(flat, keep(len(flat), c), c.sampling, c.seed + n0, c.proj_dim,
                          progress, known=known)
    return bank + from_picks(flat, idx, owner + n0, feats.shape[1:3], names)


def needed(n_images: int, per_image: torch.Size) -> bool:
    """Whether n_images of (h, w, D) float32 features pass STREAM_BYTES (then fit streams)."""
    return n_images * per_image.numel() * 4 > STREAM_BYTES


def chunks(n_images: int, per_image: torch.Size) -> list[range]:
    """Consecutive image ranges of about CHUNK_BYTES of (h, w, D) float32 features each."""
    step = max(2, CHUNK_BYTES // (per_image.numel() * 4))
    return [range(i, min(i + step, n_images)) for i in range(0, n_images, step)]


def stream(embed: Callable[[range], torch.Tensor], n_images: int, per_image: torch.Size, names,
           c, device, progress: bool = True) -> tuple[Bank, float]:
    """Bank built chunk by chunk: `embed(r)` gives the features (len(r), h, w, D) of images r,
    each chunk is subsampled as the whole set would be (a composable coreset), and only one
    chunk and the bank are ever in memory. Returns the bank and the seconds spent embedding."""
    (h, w, d), parts = per_image, chunks(n_images, per_image)
    sizes = [keep(len(r) * h * w, c) for r in parts]
    patches = torch.empty(sum(sizes), d, device=device)  # (M, D), preallocated
    image = torch.empty(sum(sizes), dtype=torch.int32, device=device)  # (M,)
    pos = torch.empty_like(image)  # (M,)
    bar = tqdm(total=n_images, desc="fit (streaming)", unit="image", disable=not progress)
    m0, t_embed = 0, 0.0
    for r, m in zip(parts, sizes):
        t = time.perf_counter()
        flat = embed(r).reshape(-1, d)  # (n_c*h*w, D)
        t_embed += time.perf_counter() - t
        idx = sampling.select(flat, m, c.sampling, c.seed + r.start, c.proj_dim, False)
        part = from_picks(flat, idx, torch.arange(r.start, r.stop), (h, w), [])
        patches[m0:m0 + m], image[m0:m0 + m], pos[m0:m0 + m] = part.patches, part.image, part.pos
        m0 += m
        bar.update(len(r))
        del flat
    bar.close()
    return Bank(patches, image, pos, (h, w), list(names)), t_embed


def make(ds, train_features, embed, c, device, progress: bool = True):
    """The bank of the training images ds: in memory, or chunk by chunk when their features
    pass STREAM_BYTES. train_features(dataset, show) -> features (T, h, w, D), owners (T,),
    layouts; embed(batch) probes one image's size. Returns the bank, the (features, owners,
    layouts) when in memory (else None), and what the fit's info records."""
    t0 = time.perf_counter()
    per_image = None if c.tile else embed(ds[0][None]).shape[1:]  # (h, w, D)
    if per_image is not None and needed(len(ds), per_image):
        hw = per_image[:2].numel()
        b, t_embed = stream(lambda r: train_features(Subset(ds, r))[0], len(ds), per_image,
                            names(ds.images), c, device, progress)
        chunk = max(len(r) for r in chunks(len(ds), per_image)) * hw
        return b, None, dict(n_patches=len(ds) * hw, streamed=True, n_tiles=None,
                             embed_seconds=t_embed, selection=sampling.algorithm(c.sampling, chunk),
                             sampling_seconds=time.perf_counter() - t0 - t_embed)
    feats, owner, layout = train_features(ds, progress)  # (T, h, w, D), (T,) image of each
    t1 = time.perf_counter()
    b, n = build(feats, owner, names(ds.images), c, progress), feats.shape[:3].numel()
    return b, (feats, owner, layout), dict(
        n_patches=n, n_tiles=len(feats) if c.tile else None, embed_seconds=t1 - t0,
        sampling_seconds=time.perf_counter() - t1, selection=sampling.algorithm(c.sampling, n))


def names(images) -> list[str]:
    """Printable names of training images (paths as given; in-memory images by index)."""
    return [str(im) if isinstance(im, (str, Path)) else f"<image {i}>"
            for i, im in enumerate(images)]
