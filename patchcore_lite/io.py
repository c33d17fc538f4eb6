"""Saving and loading model files in a safe format: tensors plus a JSON header, no pickle.

A model file is a safetensors archive: named tensors, and string metadata holding the JSON header
(key `patchcore_lite`) and a sha256 over header and tensors (key `sha256`). The checksum detects
damage (truncation, bit rot, a partial copy), not tampering: anyone who can write the file can
recompute it. Against tampering, a file can be signed with a secret key (HMAC-SHA256 over the
same bytes, metadata key `hmac`); a signed file loads only with that key, and a key given for an
unsigned file is refused (a key means a signature is required, so signing cannot be stripped).
`seal` and `verify` apply the same rule to other formats (the ONNX export). Every file a user
names is written by `write_atomic`: libraries only ever write a temporary file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import PatchCoreError

FORMAT = 2  # bump when the file layout changes; read_model_file refuses other formats
READABLE = (1, 2)  # 1: before calibration and tiling (the model upgrades its header)
TENSORS = ("patches", "image", "pos")
Chunks = Callable[[], Iterable[bytes]]  # the bytes a checksum covers, readable more than once


def as_key(key) -> bytes | None:
    """A signing key as bytes (bytes, or str as UTF-8); None means no key; empty is refused."""
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8", "surrogateescape")
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise PatchCoreError(f"key: expected bytes or str, got {type(key).__name__}")
    if not bytes(key):
        raise PatchCoreError("key: the key is empty (give at least one byte, or no key)")
    return bytes(key)


def digest(chunks: Iterable[bytes], key: bytes | None = None) -> str:
    """sha256 (or, with a key, HMAC-SHA256) over the chunks' bytes, in order."""
    h = hmac.new(key, digestmod="sha256") if key else hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def checksum(header_json: str, tensors: dict[str, torch.Tensor], key: bytes | None = None) -> str:
    """sha256 (or, with a key, HMAC-SHA256) over the header text and the tensors' bytes."""
    return digest(_model_chunks(header_json, tensors), as_key(key))


def _model_chunks(header_json: str, tensors: dict[str, torch.Tensor]) -> Iterable[bytes]:
    yield header_json.encode()
    for name in TENSORS:
        yield tensors[name].contiguous().numpy().tobytes()


def seal(chunks: Chunks, key=None) -> dict[str, str]:
    """The integrity entries of a file: {"sha256": ...}, plus {"hmac": ...} when signed."""
    key = as_key(key)
    return dict(sha256=digest(chunks()), **({"hmac": digest(chunks(), key)} if key else {}))


def verify(path: str | Path, entries: dict[str, str], chunks: Chunks, key=None) -> None:
    """Refuse a file whose checksum or signature (entries as written by `seal`) does not hold."""
    if entries.get("sha256") != digest(chunks()):
        raise PatchCoreError(f"{path}: model file is damaged or was modified after it was saved "
                             "(checksum mismatch); refusing to load it")
    key = as_key(key)
    signed = "hmac" in entries
    if signed and not key:
        raise PatchCoreError(f"{path}: model is signed; pass the signing key with --key FILE")
    if key and not signed:
        raise PatchCoreError(f"{path}: model is not signed, but a key was given (--key): "
                             "a key means a signature is required; refusing to load it")
    if signed and not hmac.compare_digest(entries["hmac"], digest(chunks(), key)):
        raise PatchCoreError(f"{path}: signature does not match this key (wrong key, or the "
                             "file was modified); refusing to load it")


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


# ---- the one writer ------------------------------------------------------------------------
def write_atomic(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call write(tmp) on a new temporary file, then put its bytes at `path` as the target
    requires: a regular file (or a new path) is replaced whole by a rename, keeping its mode; a
    character device or a pipe (/dev/null, /dev/stdout) gets the bytes written into it. A
    symlink is followed, never replaced; a block device, socket or read-only file is refused."""
    path = Path(path)
    st = _stat(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        _write_into(path, st.st_mode, write)
        return path
    real = Path(os.path.realpath(path))  # where a symlink (even a dangling one) points
    if st is not None and not os.access(real, os.W_OK):
        raise PatchCoreError(f"{path}: permission denied (read-only file); not replaced")
    mode = stat.S_IMODE(st.st_mode) if st is not None else None
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    except OSError as e:
        raise PatchCoreError(f"{path}: cannot write ({e.strerror or e})")
    os.close(fd)
    try:
        _write_or_say(write, tmp, path)
        if mode is None:  # a new file gets the usual mode (mkstemp makes 0600)
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _stat(path: Path) -> os.stat_result | None:
    """What `path` is once symlinks are followed; None when nothing is there yet."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:  # a parent that is a file, a symlink loop, no permission
        raise PatchCoreError(f"{path}: cannot write ({e.strerror or e})")


def _write_into(path: Path, mode: int, write: Callable[[str], None]) -> None:
    """Write into a character device or pipe (no rename possible); refuse anything else."""
    if stat.S_ISDIR(mode):
        raise PatchCoreError(f"{path}: is a folder, not a file")
    if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        kind = "block device" if stat.S_ISBLK(mode) else "socket or special file"
        raise PatchCoreError(f"{path}: is a {kind}, not a file; refusing to write onto it")
    fd, tmp = tempfile.mkstemp(suffix=".tmp")
    os.close(fd)
    try:
        _write_or_say(write, tmp, path)
        with open(tmp, "rb") as src, open(os.open(path, os.O_WRONLY), "wb") as dst:  # no create
            shutil.copyfileobj(src, dst)
    except OSError as e:
        raise PatchCoreError(f"{path}: cannot write ({e.strerror or e})")
    finally:
        os.unlink(tmp)


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


def check_folder(path: str | Path, flag: str) -> Path:
    """Fail now, naming `flag`, if files could not be written into folder `path` later."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PatchCoreError(f"{flag}: {path} is a file, not a folder")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise PatchCoreError(f"{flag}: {path}: permission denied")
    if not path.exists():
        check_writable(path, flag)
    return path


def _write_or_say(write: Callable[[str], None], target: str, path: Path) -> None:
    """write(target), with an OSError (disk full, read-only) named by the user's path."""
    try:
        write(target)
    except OSError as e:
        raise PatchCoreError(f"{path}: cannot write ({e.strerror or e})")


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` (see write_atomic)."""
    return write_bytes(path, text.encode("utf-8", "surrogateescape"))


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` (see write_atomic)."""
    return write_atomic(path, lambda tmp: Path(tmp).write_bytes(data))


# ---- model files ---------------------------------------------------------------------------
def write_model_file(path: str | Path, header: dict, tensors: dict[str, torch.Tensor],
                     key=None) -> Path:
    """Write header (JSON-safe dict) and the TENSORS to `path`, signed when a key is given; an
    old file is replaced whole."""
    tensors = {k: tensors[k].cpu().contiguous() for k in TENSORS}
    text = json.dumps(dict(header, format=FORMAT), sort_keys=True)
    meta = dict(patchcore_lite=text, **seal(lambda: _model_chunks(text, tensors), key))
    return write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_model_file(path: str | Path, key=None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Header and tensors of a model file, verified: format, checksum, then signature."""
    path, key = Path(path), as_key(key)
    meta, tensors = _open_model(path)
    try:
        header = json.loads(meta["patchcore_lite"])
    except (KeyError, ValueError):
        raise PatchCoreError(f"{path}: not a patchcore-lite model (no valid header)")
    if not isinstance(header, dict):
        raise PatchCoreError(f"{path}: not a patchcore-lite model (its header is a JSON "
                             f"{type(header).__name__}, not an object)")
    if header.get("format") not in (*READABLE, FORMAT):
        raise PatchCoreError(
            f"{path}: saved by patchcore-lite {header.get('version')} in model format "
            f"{header.get('format')}; this version reads formats "
            f"{', '.join(map(str, READABLE))}: fit the model again")
    if set(tensors) != set(TENSORS):
        raise PatchCoreError(f"{path}: model file is damaged or was modified after it was saved "
                             f"(tensors {sorted(tensors)}); refusing to load it")
    verify(path, meta, lambda: _model_chunks(meta["patchcore_lite"], tensors), key)
    return header, tensors


def _open_model(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The metadata and tensors of a safetensors file, or one line saying why not."""
    if not path.is_file():
        raise PatchCoreError(f"--model: file not found: {path}")
    if not os.access(path, os.R_OK):
        raise PatchCoreError(f"--model: {path}: permission denied")
    if path.suffix.lower() == ".onnx":
        raise PatchCoreError(f"--model: {path} is an ONNX export: it can only predict "
                             "(use the .pclite model it was exported from)")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
    except PermissionError:
        raise PatchCoreError(f"--model: {path}: permission denied")
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for bad files
        raise PatchCoreError(f"{path}: not a readable patchcore-lite model, truncated or "
                             f"corrupted ({str(e).splitlines()[0][:120]})")
