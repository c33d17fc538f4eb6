"""Saving and loading fitted models in a safe format: tensors plus a JSON header, no pickle.

The file is a safetensors archive. Its metadata holds the config, default threshold, library
version and the identity of the backbone weights; a sha256 over header and tensors detects any
change. Writes go to a temporary file that replaces the target only when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import PatchCoreError

FORMAT = 1  # bump when the file layout changes; load refuses other formats
TENSORS = ("patches", "image", "pos")


def _checksum(header_json: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(header_json.encode())
    for name in TENSORS:
        h.update(tensors[name].contiguous().numpy().tobytes())
    return h.hexdigest()


def save_model(model, path: str | Path) -> Path:
    """Write `model` to `path` atomically: an existing file is replaced only by a complete one."""
    if model.bank is None:
        raise PatchCoreError("model: nothing to save, call fit() first")
    path = Path(path)
    b = model.bank
    tensors = dict(patches=b.patches.float().cpu().contiguous(), image=b.image.int().cpu(),
                   pos=b.pos.int().cpu())
    header = json.dumps(dict(model.header(), format=FORMAT), sort_keys=True)
    meta = dict(patchcore_lite=header, sha256=_checksum(header, tensors))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_model_file(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Header and tensors of a model file, verified: format, then checksum."""
    path = Path(path)
    if not path.is_file():
        raise PatchCoreError(f"--model: file not found: {path}")
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
    if header.get("format") != FORMAT:
        raise PatchCoreError(
            f"{path}: saved by patchcore-lite {header.get('version')} in model format "
            f"{header.get('format')}; this version reads format {FORMAT}: fit the model again")
    if set(tensors) != set(TENSORS) or meta.get("sha256") != _checksum(meta["patchcore_lite"],
                                                                        tensors):
        raise PatchCoreError(f"{path}: model file was modified after it was saved "
                             "(checksum mismatch); refusing to load it")
    return header, tensors


def load_model(cls, path: str | Path, device: str = "cpu", progress: bool = True):
    """Rebuild a saved model; refuses backbone weights other than those the bank was built with."""
    from .model import Bank

    header, t = read_model_file(path)
    cfg = dict(header["config"])
    weights = {"random": "none", "imagenet": "imagenet"}.get(header["weights"], header["weights"])
    cfg["weights"] = weights
    model = cls(device=device, progress=progress, **cfg)
    if model.weights_sha256 != header["weights_sha256"]:
        raise PatchCoreError(
            f"{path}: backbone weights ({model.weights_used}, sha256 {model.weights_sha256[:12]}) "
            f"differ from those the memory bank was built with ({header['weights']}, "
            f"sha256 {header['weights_sha256'][:12]})")
    model.config.weights = header["config"]["weights"]
    dev = model.device
    model.bank = Bank(t["patches"].to(dev), t["image"].to(dev), t["pos"].to(dev),
                      tuple(header["grid"]), header["train_images"])
    model.threshold, model.map_range = header["threshold"], tuple(header["map_range"])
    model.threshold_info, model.info = header["threshold_info"], header["info"]
    return model
