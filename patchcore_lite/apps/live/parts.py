"""Live demo, your own parts: uploads checked and saved, their folder, a model taught from a few.

No widgets here: the page hands over what its upload control received (name, bytes) and shows
the message of any PatchCoreError (not an image, too large, truncated: data.open_image decides,
reading every bit depth as the rest of the kit does). Each upload keeps its own file name, in a
numbered subfolder of one temp folder per kernel; the folder goes when the kernel ends.

    folder = upload_folder()                             # /tmp/pcl-uploads-<pid>-*, removed at exit
    path = save_upload(folder, "part.png", content)      # PatchCoreError for a bad upload
    model = teach_model(current_model, [path, ...])      # fitted in seconds: random sampling
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path

from ...errors import PatchCoreError

MAX_UPLOAD_BYTES = 25 * 10**6  # one image (25 MB); larger files are refused with a message
TEACH_MIN = 2  # the default threshold needs leave-one-out scores of at least two images
TEACH_RATIO = 0.25  # random subsampling of the taught patches: fast, and plenty for a demo
PREFIX = "pcl-uploads-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def remove_stale(root: str | Path | None = None) -> None:
    """Remove upload folders of kernels that ended without cleaning up (killed, crashed)."""
    for old in Path(root or tempfile.gettempdir()).glob(PREFIX + "*"):
        pid = old.name[len(PREFIX):].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def upload_folder() -> str:
    """A new temp folder for this kernel's uploads, removed when the kernel's process exits."""
    remove_stale()
    folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _file_name(name: str) -> str:
    """The upload's own name, without any folder part (a browser sends a bare name anyway)."""
    base = Path(str(name).replace("\\", "/").replace("\0", "")).name
    return base if base not in ("", ".", "..") else "upload"


def check_size(name: str, size: int, limit: int = MAX_UPLOAD_BYTES) -> None:
    """PatchCoreError naming the file when it is over the per-file upload limit."""
    if size > limit:
        raise PatchCoreError(f"{_file_name(name)}: {size / 1e6:.1f} MB is over the upload "
                             f"limit of {limit / 1e6:.0f} MB per file")


def save_upload(folder: str | Path, name: str, content: bytes,
                limit: int = MAX_UPLOAD_BYTES) -> Path:
    """Write an upload to a new numbered subfolder of `folder` under its own name, once it
    decodes as an image; PatchCoreError (naming the file) if not."""
    from ...data import open_image

    check_size(name, len(content), limit)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = sum(1 for _ in folder.iterdir())
    while (folder / f"{n:05d}").exists():
        n += 1
    path = folder / f"{n:05d}" / _file_name(name)
    path.parent.mkdir()
    path.write_bytes(content)
    try:
        open_image(path)  # decodes fully: not an image, truncated, too many pixels
    except PatchCoreError as e:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise PatchCoreError(re.sub(re.escape(str(path)), path.name, str(e))) from None
    return path


def aspect_of(paths) -> float:
    """Width / height of the images a model learned from (the median; 1.0 when unknown).
    Only headers are read: camera frames are cropped to this before the model squashes them."""
    from PIL import Image

    ratios = []
    for p in list(paths)[:50]:
        try:
            with Image.open(p) as im:
                ratios.append(im.width / im.height)
        except (OSError, ValueError, ZeroDivisionError):
            continue
    return sorted(ratios)[len(ratios) // 2] if ratios else 1.0


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
