"""Large images, small defects: cut each image into square tiles, score each tile, stitch maps.

Tiles of `size` original pixels overlap by a fraction; the last tile in each direction is aligned
to the image's edge (its overlap grows), and a tile larger than the image is the whole image along
that side. Each tile goes through the model's resize (and crop) like a whole image would; its map
is resized back onto the part of the tile it covers, and overlaps are averaged. Predict holds one
batch of tiles and two (H, W) sums at a time, so its memory is the image, two maps and
`batch_size` tiles whatever the image size; an image that needs more than MAX_TILES tiles is
refused by name. The functions take the model's steps as callables (embed a batch, score one).

    boxes(500, 1235, 256, 0.25)  # -> [(y0, y1, x0, x1), ...] covering the 500 x 1235 image
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import decode
from .data import resize_crop
from .errors import PatchCoreError

MAX_TILES = 10_000  # tiles per image: above, --tile is too small or --tile-overlap too large


def starts(length: int, size: int, overlap: float) -> list[int]:
    """Start offsets of tiles of `size` along a side of `length` (last one at the edge)."""
    if size >= length:
        return [0]
    step = max(1, int(round(size * (1.0 - overlap))))
    out = list(range(0, length - size + 1, step))
    if out[-1] != length - size:
        out.append(length - size)
    return out


def boxes(h: int, w: int, size: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of every tile of an h x w image, row by row."""
    th, tw = min(size, h), min(size, w)
    return [(y, y + th, x, x + tw) for y in starts(h, size, overlap)
            for x in starts(w, size, overlap)]


def covered(box: tuple[int, int, int, int], resize: int, crop: int) -> tuple[int, int, int, int]:
    """The part of a tile that its (resized, centre-cropped) map shows, in image pixels."""
    y0, y1, x0, x1 = box
    if not crop:
        return box
    lo, hi = (resize - crop) / 2 / resize, (resize + crop) / 2 / resize  # fractions of the tile
    th, tw = y1 - y0, x1 - x0
    return (y0 + round(lo * th), y0 + round(hi * th), x0 + round(lo * tw), x0 + round(hi * tw))


def place(total: torch.Tensor, count: torch.Tensor, tile_maps: torch.Tensor, bs: list,
          resize: int, crop: int) -> None:
    """Add (T, S, S) tile maps into the (H, W) sums `total` and `count`, each resized onto the
    part of its tile that it covers."""
    for m, box in zip(tile_maps, bs):
        y0, y1, x0, x1 = covered(box, resize, crop)
        up = F.interpolate(m[None, None], size=(y1 - y0, x1 - x0), mode="bilinear",
                           align_corners=False)[0, 0]
        total[y0:y1, x0:x1] += up
        count[y0:y1, x0:x1] += 1


def average(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """The stitched (H, W) map: overlaps averaged; pixels no map covers (a crop's margins) take
    the lowest covered value."""
    seen = count > 0
    out = torch.where(seen, total / count.clamp(min=1), total.new_tensor(0.0))
    if bool(seen.all()):  # no crop: every pixel is covered
        return out
    return torch.where(seen, out, out[seen].min() if bool(seen.any()) else out)


def stitch(tile_maps: torch.Tensor, bs: list, shape: tuple[int, int], resize: int,
           crop: int) -> torch.Tensor:
    """(T, S, S) tile maps -> one (H, W) map (`place` then `average`)."""
    total = torch.zeros(shape, dtype=tile_maps.dtype, device=tile_maps.device)  # (H, W)
    count = torch.zeros_like(total)
    place(total, count, tile_maps, bs, resize, crop)
    return average(total, count)


def layout(shape: tuple[int, int], c) -> list[tuple[int, int, int, int]]:
    """The tile boxes of an image of `shape` (H, W) under config c, refused above MAX_TILES."""
    bs = boxes(shape[0], shape[1], c.tile, c.tile_overlap)
    if len(bs) > MAX_TILES:
        raise PatchCoreError(f"--tile/--tile-overlap: an image of {shape[1]} x {shape[0]} px "
                             f"needs {len(bs):,} tiles of {c.tile} px at overlap "
                             f"{c.tile_overlap:g} (at most {MAX_TILES:,}): raise --tile or lower "
                             "--tile-overlap")
    return bs


def batches(image: torch.Tensor, bs: list, c, batch_size: int):
    """(3, H, W) original -> batches of at most batch_size tiles (B, 3, S, S) through the model's
    resize and crop, with their boxes: only one batch of tiles is ever in memory."""
    for b0 in range(0, len(bs), batch_size):
        part = bs[b0:b0 + batch_size]
        yield torch.stack([resize_crop(image[:, y0:y1, x0:x1], c.resize, c.crop)
                           for y0, y1, x0, x1 in part]), part


Embed = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, S, S) -> (B, h, w, D)


def features(embed: Embed, ds, c, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor,
                                                                  list]:
    """Patch embeddings of every tile of every image (T, h, w, D), the image of each tile (T,),
    and per image its (boxes, (H, W)) for stitching."""
    feats, owner, lay = [], [], []
    for i in tqdm(range(len(ds)), desc="embed tiles", unit="image", disable=not progress):
        image = ds[i]  # (3, H, W) original
        bs = layout(tuple(image.shape[-2:]), c)
        feats += [embed(t) for t, _ in batches(image, bs, c, c.batch_size)]
        owner += [i] * len(bs)
        lay.append((bs, tuple(image.shape[-2:])))
    return torch.cat(feats), torch.tensor(owner), lay


def predict(embed: Embed, score, ds, c, batch_size: int, progress: bool = True,
            workers: int | None = 0):
    """Image scores (N,) and stitched maps at the original sizes: one (N, H, W) array when every
    image has the same size, else a list of (H_i, W_i) arrays. Score = max of the stitched map.
    `score` maps (B, h, w, D) features to (B, S, S) tile maps; tiles go batch by batch while
    `workers` threads decode the next originals (None: decode.default_workers())."""
    workers = decode.default_workers() if workers is None else workers
    scores, amaps = [], []
    originals = decode.ahead(ds, workers, 2) if workers else (ds[i] for i in range(len(ds)))
    for image in tqdm(originals, total=len(ds), desc="predict tiles", unit="image",
                      disable=not progress):  # the next originals decode while this one scores
        shape = tuple(image.shape[-2:])
        bs = layout(shape, c)
        total = torch.zeros(shape)  # (H, W) sums of tile maps, and how many cover each pixel
        count = torch.zeros(shape)
        for tiles, part in batches(image, bs, c, batch_size):
            place(total, count, score(embed(tiles)).cpu(), part, c.resize, c.crop)
        del image
        m = average(total, count)
        scores.append(float(m.max()))
        amaps.append(m.numpy())
    same = len({a.shape for a in amaps}) == 1
    return np.array(scores), (np.stack(amaps) if same else amaps)
