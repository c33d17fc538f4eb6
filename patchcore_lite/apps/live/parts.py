"""Live demo, your own parts: uploaded images checked and saved, and a model taught from a few.

No widgets here: the page hands over what its upload control received (name, bytes) and shows
the message of any PatchCoreError (not an image, too large, truncated: data.open_image decides,
reading every bit depth as the rest of the kit does).

    path = save_upload(folder, "part.png", content)      # PatchCoreError for a bad upload
    model = teach_model(current_model, [path, ...])      # fitted in seconds: random sampling
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import PatchCoreError

MAX_UPLOAD_BYTES = 25 * 2**20  # one image; larger uploads are refused with a message
TEACH_MIN = 2  # the default threshold needs leave-one-out scores of at least two images
TEACH_RATIO = 0.25  # random subsampling of the taught patches: fast, and plenty for a demo


def save_upload(folder: str | Path, name: str, content: bytes,
                limit: int = MAX_UPLOAD_BYTES) -> Path:
    """Write an uploaded file to `folder` once it decodes as an image; PatchCoreError if not."""
    from ...data import open_image

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "upload"
    if len(content) > limit:
        raise PatchCoreError(f"{safe}: {len(content) / 2**20:.1f} MB is over the upload limit "
                             f"of {limit / 2**20:.0f} MB")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path, n = folder / safe, 1
    while path.exists():
        path, n = folder / f"{Path(safe).stem}-{n}{Path(safe).suffix}", n + 1
    path.write_bytes(content)
    try:
        open_image(path)  # decodes fully: not an image, truncated, too many pixels
    except PatchCoreError:
        path.unlink()
        raise
    return path


def weights_spec(model) -> str | None:
    """What `PatchCore(weights=...)` takes to build the same backbone as `model`."""
    return None if model.weights_used == "random" else model.weights_used


def teach_model(model, images: list, ratio: float = TEACH_RATIO):
    """A new model on `images` (good parts) with the current model's backbone, layers and input
    size; random subsampling of the memory bank, so it fits in seconds."""
    from ...model import PatchCore

    if len(images) < TEACH_MIN:
        raise PatchCoreError(f"teach: give at least {TEACH_MIN} good images "
                             f"({len(images)} so far)")
    c = model.config
    taught = PatchCore(backbone=c.backbone, layers=c.layers, weights=weights_spec(model),
                       sampling="random", sampling_ratio=ratio, k=1,
                       device=str(model.device), seed=c.seed, progress=False,
                       resize=c.resize, crop=c.crop)
    return taught.fit(list(images))
