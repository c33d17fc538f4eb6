"""Saving and loading model files in a safe format: tensors plus a JSON header, no pickle.

A model file is a safetensors archive: named tensors, and string metadata holding the JSON header
(key `patchcore_lite`) and a sha256 over header and tensors (key `sha256`). The checksum detects
damage (truncation, bit rot, a partial copy), not tampering: anyone who can write the file can
recompute it. Against tampering, a file can be signed with a secret key (HMAC-SHA256 over the
same bytes, metadata key `hmac`); a signed file loads only with that key. This module knows
nothing of the model: it writes and reads verified files. Writes replace the target only when
complete.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import PatchCoreError

FORMAT = 2  # bump when the file layout changes; read_model_file refuses other formats
READABLE = (1, 2)  # 1: before calibration and tiling (the model upgrades its header)
TENSORS = ("patches", "image", "pos")


def checksum(header_json: str, tensors: dict[str, torch.Tensor], key: bytes | None = None) -> str:
    """sha256 (or, with a key, HMAC-SHA256) over the header text and the tensors' bytes."""
    h = hmac.new(key, digestmod="sha256") if key else hashlib.sha256()
    h.update(header_json.encode())
    for name in TENSORS:
        h.update(tensors[name].contiguous().numpy().tobytes())
    return h.hexdigest()


def read_key(path: str | Path | None) -> bytes | None:
    """The signing key in file `path` (--key FILE), or None without one."""
    if path is None:
        return None
    try:
        key = Path(path).read_bytes()
    except OSError as e:
        raise PatchCoreError(f"--key: cannot read {path} ({e.strerror or e})")
    if not key.strip():
        raise PatchCoreError(f"--key: {path} is empty")
    return key


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
        _write_or_say(write, str(path), path)  # character device, pipe: no rename possible
        return path
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        _write_or_say(write, tmp, path)
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


def check_writable(path: str | Path, flag: str) -> Path:
    """Fail now, naming `flag` and the path, if a file could not be written there later."""
    path = Path(path)
    if path.is_dir():
        raise PatchCoreError(f"{flag}: {path} is a folder, not a file")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise PatchCoreError(f"{flag}: {path}: permission denied")
        return path
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise PatchCoreError(f"{flag}: {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PatchCoreError(f"{flag}: {path}: permission denied in {parent}")
    return path


def _write_or_say(write: Callable[[str], None], target: str, path: Path) -> None:
    """write(target), with an OSError (disk full, read-only) named by the user's path."""
    try:
        write(target)
    except OSError as e:
        raise PatchCoreError(f"{path}: cannot write ({e.strerror or e})")


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically (see write_atomic)."""
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_model_file(path: str | Path, header: dict, tensors: dict[str, torch.Tensor],
                     key: bytes | None = None) -> Path:
    """Write header (JSON-safe dict) and the TENSORS to `path`, signed when a key is given; an
    old file is replaced whole."""
    tensors = {k: tensors[k].cpu().contiguous() for k in TENSORS}
    text = json.dumps(dict(header, format=FORMAT), sort_keys=True)
    meta = dict(patchcore_lite=text, sha256=checksum(text, tensors))
    if key:
        meta["hmac"] = checksum(text, tensors, key)
    return write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_model_file(path: str | Path, key: bytes | None = None
                    ) -> tuple[dict, dict[str, torch.Tensor]]:
    """Header and tensors of a model file, verified: format, checksum, then signature."""
    path = Path(path)
    if not path.is_file():
        raise PatchCoreError(f"--model: file not found: {path}")
    if not os.access(path, os.R_OK):
        raise PatchCoreError(f"--model: {path}: permission denied")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except PermissionError:
        raise PatchCoreError(f"--model: {path}: permission denied")
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for bad files
        raise PatchCoreError(f"{path}: not a readable patchcore-lite model, truncated or "
                             f"corrupted ({str(e).splitlines()[0][:120]})")
    try:
        header = json.loads(meta["patchcore_lite"])
    except (KeyError, ValueError):
        raise PatchCoreError(f"{path}: not a patchcore-lite model (no valid header)")
    if not isinstance(header, dict) or header.get("format") not in (*READABLE, FORMAT):
        version = header.get("version") if isinstance(header, dict) else None
        fmt = header.get("format") if isinstance(header, dict) else None
        raise PatchCoreError(
            f"{path}: saved by patchcore-lite {version} in model format {fmt}; this version "
            f"reads formats {', '.join(map(str, READABLE))}: fit the model again")
    if set(tensors) != set(TENSORS) or meta.get("sha256") != checksum(meta["patchcore_lite"],
                                                                       tensors):
        raise PatchCoreError(f"{path}: model file is damaged or was modified after it was saved "
                             "(checksum mismatch); refusing to load it")
    _check_signature(path, meta, tensors, key)
    return header, tensors


def _check_signature(path: Path, meta: dict, tensors: dict, key: bytes | None) -> None:
    signed = "hmac" in meta
    if signed and not key:
        raise PatchCoreError(f"{path}: model is signed; pass the signing key with --key FILE")
    if signed and not hmac.compare_digest(meta["hmac"],
                                          checksum(meta["patchcore_lite"], tensors, key)):
        raise PatchCoreError(f"{path}: signature does not match this key (wrong key, or the "
                             "file was modified); refusing to load it")
    if key and not signed:
        warnings.warn(f"{path}: model is not signed; loaded without a signature check",
                      stacklevel=3)
