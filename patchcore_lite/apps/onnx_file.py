"""The .onnx file of an export, integrity-checked like a .pclite: checksum, optional signature.

The file is the serialised ONNX model (graph, memory bank, metadata) followed by one or two
metadata entries, `sha256` and, when signed, `hmac` (io.seal): in protobuf, appended entries of a
repeated field extend it, so the file is still one valid ONNX model. Both cover every byte before
them (and the `<name>.data` file of weights a model over protobuf's 2 GB limit keeps beside it):
a metadata edit, a zeroed bank or a stripped signature is refused at load (io.verify).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

from .. import io
from ..config import Config, check_header
from ..errors import PatchCoreError

SEAL_KEYS = ("sha256", "hmac")
META_KEYS = ("patchcore_lite", "threshold")  # what `predict` reads beside the graph
HEADER_EXTRA = dict(format="onnx-1", describe=str)  # keys an export's header adds to a model's
INLINE_MAX = 2**31 - 2**26  # protobuf's 2 GB limit: larger models keep their weights beside
BLOCK = 2**24  # bytes read at a time when checksumming a weights file


def write(proto, out: Path, key=None) -> Path:
    """Write ONNX model `proto` to `out`, sealed; weights beside it when over INLINE_MAX."""
    from onnx import external_data_helper as ext

    staged = []
    with tempfile.TemporaryDirectory() as tmp:
        if proto.ByteSize() > INLINE_MAX:
            ext.convert_model_to_external_data(proto, location=f"{out.name}.data")
            ext.write_external_data_tensors(proto, tmp)  # tmp/<name>.data; raw bytes moved there
            staged = [Path(tmp) / f"{out.name}.data"]
        body = proto.SerializeToString()
        tail = _tail(io.seal(lambda: _chunks(body, staged), key))
        for f in staged:
            io.write_atomic(out.parent / f.name, lambda t, f=f: shutil.copyfile(f, t))
        return io.write_bytes(out, body + tail)


def read(path: Path, key=None) -> tuple[bytes, dict, bool]:
    """The verified bytes of an export, its header, and whether weights are beside it."""
    import onnx

    try:
        data = path.read_bytes()
        proto = onnx.ModelProto.FromString(data)
    except Exception as e:  # noqa: BLE001 - any failure means this is not an ONNX file
        raise PatchCoreError(f"{path}: not a patchcore-lite ONNX model ({str(e)[:120]})")
    if not proto.HasField("graph"):
        raise PatchCoreError(f"{path}: not a patchcore-lite ONNX model (empty, or no graph)")
    props = [(p.key, p.value) for p in proto.metadata_props]
    n = next((i for i in range(len(props), 0, -1) if props[i - 1][0] not in SEAL_KEYS), 0)
    seal, meta = dict(props[n:]), dict(props[:n])
    tail = _tail(seal)
    if "sha256" not in seal or len(seal) != len(props) - n or not data.endswith(tail):
        raise PatchCoreError(f"{path}: no valid checksum (not written by this version's export, "
                             "or modified): export the .pclite model again")
    body, beside = data[:len(data) - len(tail)], _weights_files(proto, path)
    io.verify(path, seal, lambda: _chunks(body, beside), key)
    return data, check_metadata(meta, path), bool(beside)


def check_metadata(meta: dict[str, str], path) -> dict:
    """The export's header, with every metadata key checked; one line naming the file if not."""
    def bad(what: str):
        raise PatchCoreError(f"{path}: malformed ONNX model metadata ({what}); refusing to load it")

    if set(meta) != set(META_KEYS):
        bad(f"keys {sorted(set(meta) ^ set(META_KEYS))}")
    try:
        header, threshold = json.loads(meta["patchcore_lite"]), float(meta["threshold"])
    except ValueError as e:
        bad(str(e)[:80])
    if not isinstance(header, dict) or header.get("format") != HEADER_EXTRA["format"]:
        bad("'patchcore_lite' is not an export header")
    if not isinstance(header.get("describe"), str):
        bad("'describe' is not a str")
    rest = {k: v for k, v in header.items() if k not in HEADER_EXTRA}
    check_header(dict(rest, format=io.FORMAT), None, path)
    if not math.isfinite(threshold) or threshold != header["threshold"]:
        bad("'threshold' differs from the header's")
    cfg = {k: v for k, v in header["config"].items() if k != "weights"}
    try:
        Config(**cfg).check()
    except PatchCoreError as e:
        bad(str(e))
    if cfg["search"] != "exact" or cfg["tile"] is not None or cfg["reweight"]:
        bad("options the graph cannot hold")
    return header


def _tail(seal: dict[str, str]) -> bytes:
    """The serialised metadata entries of `seal`, in order (appended to the model's bytes)."""
    import onnx

    m = onnx.ModelProto()
    for k, v in seal.items():
        m.metadata_props.add(key=k, value=v)
    return m.SerializeToString()


def _weights_files(proto, path: Path) -> list[Path]:
    """The weights files an export keeps beside it (plain names in its folder), sorted."""
    from onnx import external_data_helper as ext

    names = sorted({ext.ExternalDataInfo(t).location for t in proto.graph.initializer
                    if ext.uses_external_data(t)})
    for n in names:
        if Path(n).name != n or not (path.parent / n).is_file():
            raise PatchCoreError(f"{path}: weights file '{n}' is missing or not beside the model")
    return [path.parent / n for n in names]


def _chunks(body: bytes, files: list[Path]):
    """The bytes a checksum covers: the model without its seal, then any weights files."""
    yield body
    for f in files:
        with open(f, "rb") as fh:
            while block := fh.read(BLOCK):
                yield block
