"""Saving and loading model files in a safe format: tensors plus a JSON header, no pickle.

A model file is a safetensors archive: named tensors, and string metadata holding the JSON header
(key `patchcore_lite`) and a sha256 over header and tensors (key `sha256`). The checksum detects
damage (truncation, bit rot, a partial copy), not tampering. This module knows nothing of the
model: it writes and reads verified files. Writes replace the target only when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import PatchCoreError

FORMAT = 1  # bump when the file layout changes; read_model_file refuses other formats
TENSORS = ("patches", "image", "pos")


def checksum(header_json: str, tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the header text and the tensors' bytes, in the fixed order of TENSORS."""
    h = hashlib.sha256(header_json.encode())
    for name in TENSORS:
        h.update(tensors[name].contiguous().numpy().tobytes())
    return h.hexdigest()


def write_atomic(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call write(tmp) on a unique temporary file beside `path`, then rename it over `path`.

    Only regular files (or new paths) are replaced this way, keeping the old file's mode; a device
    or pipe (/dev/null, /dev/stdout) is written directly, and a symlink is followed, not replaced.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if path.exists() and not path.is_file():
        if path.is_dir():
            raise PatchCoreError(f"{path}: is a folder, not a file")
        write(str(path))  # character device, pipe: no rename possible
        return path
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        if mode is None:  # a new file gets the usual mode (mkstemp makes 0600)
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically (see write_atomic)."""
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_model_file(path: str | Path, header: dict, tensors: dict[str, torch.Tensor]) -> Path:
    """Write header (JSON-safe dict) and the TENSORS to `path`; an old file is replaced whole."""
    tensors = {k: tensors[k].cpu().contiguous() for k in TENSORS}
    text = json.dumps(dict(header, format=FORMAT), sort_keys=True)
    meta = dict(patchcore_lite=text, sha256=checksum(text, tensors))
    return write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_model_file(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Header and tensors of a model file, verified: format, then checksum."""
    path = Path(path)
    if not path.is_file():
        raise PatchCoreError(f"--model: file not found: {path}")
    if not os.access(path, os.R_OK):
        raise PatchCoreError(f"--model: {path}: permission denied")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for bad files
        raise PatchCoreError(f"{path}: not a readable patchcore-lite model, truncated or "
                             f"corrupted ({str(e).splitlines()[0][:120]})")
    try:
        header = json.loads(meta["patchcore_lite"])
    except (KeyError, ValueError):
        raise PatchCoreError(f"{path}: not a patchcore-lite model (no valid header)")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        version = header.get("version") if isinstance(header, dict) else None
        fmt = header.get("format") if isinstance(header, dict) else None
        raise PatchCoreError(
            f"{path}: saved by patchcore-lite {version} in model format {fmt}; this version "
            f"reads format {FORMAT}: fit the model again")
    if set(tensors) != set(TENSORS) or meta.get("sha256") != checksum(meta["patchcore_lite"],
                                                                       tensors):
        raise PatchCoreError(f"{path}: model file is damaged or was modified after it was saved "
                             "(checksum mismatch); refusing to load it")
    return header, tensors
