"""Large images, small defects: cut each image into square tiles, score each tile, stitch maps.

Tiles of `size` original pixels overlap by a fraction; the last tile in each direction is aligned
to the image's edge (its overlap grows), and a tile larger than the image is the whole image along
that side. Each tile goes through the model's resize (and crop) like a whole image would; its map
is resized back onto the part of the tile it covers, and overlaps are averaged.

    boxes(500, 1235, 256, 0.25)  # -> [(y0, y1, x0, x1), ...] covering the 500 x 1235 image
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import decode
from .data import resize_crop


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


def cut(image: torch.Tensor, size: int, overlap: float) -> tuple[list[torch.Tensor], list]:
    """(3, H, W) image -> its tiles (each (3, th, tw)) and their boxes."""
    bs = boxes(image.shape[-2], image.shape[-1], size, overlap)
    return [image[:, y0:y1, x0:x1] for y0, y1, x0, x1 in bs], bs


def stitch(tile_maps: torch.Tensor, bs: list, shape: tuple[int, int], resize: int,
           crop: int) -> torch.Tensor:
    """(T, S, S) tile maps -> one (H, W) map: each resized onto what it covers, overlaps averaged;
    pixels no map covers (a crop's margins) take the lowest covered value."""
    total = torch.zeros(shape, dtype=tile_maps.dtype, device=tile_maps.device)  # (H, W)
    count = torch.zeros_like(total)
    for m, box in zip(tile_maps, bs):
        y0, y1, x0, x1 = covered(box, resize, crop)
        up = F.interpolate(m[None, None], size=(y1 - y0, x1 - x0), mode="bilinear",
                           align_corners=False)[0, 0]
        total[y0:y1, x0:x1] += up
        count[y0:y1, x0:x1] += 1
    seen = count > 0
    out = torch.where(seen, total / count.clamp(min=1), total.new_tensor(0.0))
    if bool(seen.all()):  # no crop: every pixel is covered
        return out
    return torch.where(seen, out, out[seen].min() if bool(seen.any()) else out)


def _tile_batch(model, image: torch.Tensor) -> tuple[torch.Tensor, list]:
    """(3, H, W) original -> (T, 3, S, S) tiles through the model's resize and crop, and boxes."""
    c = model.config
    parts, bs = cut(image, c.tile, c.tile_overlap)
    return torch.stack([resize_crop(t, c.resize, c.crop) for t in parts]), bs


def _embed_tiles(model, tiles: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(T, 3, S, S) -> (T, h, w, D), batch_size tiles per forward pass."""
    return torch.cat([model.embed(tiles[i:i + batch_size])
                      for i in range(0, len(tiles), batch_size)])


def features(model, ds) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Patch embeddings of every tile of every image (T, h, w, D), the image of each tile (T,),
    and per image its (boxes, (H, W)) for stitching."""
    feats, owner, layout = [], [], []
    bar = tqdm(range(len(ds)), desc="embed tiles", unit="image", disable=not model.progress)
    for i in bar:
        image = ds[i]  # (3, H, W) original
        tiles, bs = _tile_batch(model, image)
        feats.append(_embed_tiles(model, tiles, model.config.batch_size))
        owner += [i] * len(tiles)
        layout.append((bs, tuple(image.shape[-2:])))
    return torch.cat(feats), torch.tensor(owner), layout


def predict(model, ds, batch_size: int | None, progress: bool | None, k: int | None):
    """Image scores (N,) and stitched maps at the original sizes: one (N, H, W) array when every
    image has the same size, else a list of (H_i, W_i) arrays. Score = max of the stitched map."""
    c = model.config
    show = model.progress if progress is None else progress
    scores, amaps = [], []
    workers = decode.default_workers() if model.workers is None else model.workers
    originals = decode.ahead(ds, workers, 2) if workers else (ds[i] for i in range(len(ds)))
    for image in tqdm(originals, total=len(ds), desc="predict tiles", unit="image",
                      disable=not show):  # the next originals decode while this one scores
        tiles, bs = _tile_batch(model, image)
        f = _embed_tiles(model, tiles, batch_size or c.batch_size)  # (T, h, w, D)
        _, tile_maps, _ = model.score_features(f, k=k)  # (T, S, S)
        m = stitch(tile_maps, bs, tuple(image.shape[-2:]), c.resize, c.crop)
        scores.append(float(m.max()))
        amaps.append(m.cpu().numpy())
    same = len({a.shape for a in amaps}) == 1
    return np.array(scores), (np.stack(amaps) if same else amaps)
