"""Benchmark images at real sizes: the embedded category rewritten at a given size and shape.

The embedded set is 256 x 256; real photos are larger (MVTec AD: 700-1024 px) and sometimes tall.
`scaled_copy` writes every image of a category at width x height (bicubic; masks nearest), so
decoding, resizing and tiling are timed on what users feed the tool.

    scaled_copy(cat, out, 900, 900)     # MVTec-like squares
    scaled_copy(cat, out, 900, 2250)    # tall parts (2.5:1), to cut into tiles
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import PatchCoreError


def parse_shape(text: str) -> tuple[int, int]:
    """'900' -> (900, 900); '900x2250' -> (900, 2250) as (width, height)."""
    try:
        w, _, h = str(text).lower().partition("x")
        size = (int(w), int(h or w))
    except ValueError:
        raise PatchCoreError(f"--image-size: expected N or WxH in pixels, got '{text}'")
    if min(size) < 32:
        raise PatchCoreError(f"--image-size: each side must be >= 32 px, got '{text}'")
    return size


def _rewrite(src: Path, dst: Path, size: tuple[int, int]) -> None:
    from PIL import Image

    mask = src.parent.parent.name == "ground_truth"
    with Image.open(src) as im:
        out = im.resize(size, Image.NEAREST if mask else Image.BICUBIC)
        out.save(dst, compress_level=1)  # 5x faster to write; decoding costs about the same


def scaled_copy(cat: str | Path, out: str | Path, width: int, height: int) -> Path:
    """Every image and mask of category `cat` at width x height under `out` (same layout, PNG);
    written once, kept while the source's image list is unchanged."""
    cat, out = Path(cat), Path(out)
    files = sorted(p for p in cat.rglob("*.png") if not p.name.startswith("."))
    stamp, want = out / ".scaled.json", dict(size=[width, height], n=len(files), src=str(cat))
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return out
    jobs = []
    for p in files:
        dst = out / p.relative_to(cat)
        dst.parent.mkdir(parents=True, exist_ok=True)
        jobs.append((p, dst, (width, height)))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda j: _rewrite(*j), jobs))
    stamp.write_text(json.dumps(want))
    return out
