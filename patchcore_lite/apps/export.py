"""Export a fitted model to ONNX (one graph: images in [0, 1] -> scores, maps) and score with it.

The graph holds the whole scoring path of `PatchCore.score_features` for k nearest neighbours:
ImageNet normalisation, the truncated backbone, patch embedding, the distance to the memory bank
(blocked over the bank, so that memory stays bounded whatever its size), image score and map.
The threshold, calibration and config travel in the ONNX metadata, so `predict --model x.onnx`
gives the same JSON as the .pclite model. Eq. 7 reweighting, faiss search and tiling are not in
the graph and are refused by name. The file carries a checksum over graph, bank and metadata,
and a signed model exports signed with its key (onnx_file.py): the same rule as a .pclite.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from .. import calibration, embedding, maps
from ..data import load_image
from ..errors import PatchCoreError
from ..model import PatchCore
from . import onnx_file

BLOCK_FLOATS = 2**23  # query patches x bank patches per block and image: 32 MiB of distances
OPSET = 18


class ScoringGraph(nn.Module):
    """(N, 3, S, S) images in [0, 1] -> image scores (N,) and anomaly maps (N, S, S)."""

    def __init__(self, model: PatchCore):
        super().__init__()
        c, bank = model.config, model.bank.patches.float().cpu()
        body = copy.deepcopy(model.extractor.body).cpu()  # the model itself stays where it is
        self.body, self.k, self.embed_dim = body, c.k, c.embed_dim
        self.register_buffer("mean", model.extractor.mean.cpu())
        self.register_buffer("std", model.extractor.std.cpu())
        self.register_buffer("bank", bank)  # (M, D)
        self.register_buffer("bank_sq", (bank * bank).sum(1))  # (M,)
        h, w = model.bank.grid
        self.block = max(self.k, BLOCK_FLOATS // (h * w))
        self.size, self.layers = c.input_size, c.layers

    def forward(self, x: torch.Tensor):
        """(N, 3, S, S) in [0, 1] -> scores (N,), maps (N, S, S): score_features' path, k-NN."""
        out = self.body((x - self.mean) / self.std)
        f = embedding.embed([out[n] for n in self.layers], self.embed_dim)  # (N, h, w, D)
        n, h, w, d = f.shape
        q = f.reshape(-1, d)  # (N*h*w, D)
        q_sq = (q * q).sum(1, keepdim=True)  # (N*h*w, 1)
        best = None
        for b0 in range(0, self.bank.shape[0], self.block):  # unrolled: the bank size is fixed
            b = self.bank[b0:b0 + self.block]  # (B, D)
            d2 = q_sq + self.bank_sq[b0:b0 + self.block][None] - 2.0 * q @ b.T  # (N*h*w, B)
            top = torch.topk(d2, min(self.k, b.shape[0]), dim=1, largest=False).values
            best = top if best is None else torch.topk(
                torch.cat([best, top], 1), self.k, dim=1, largest=False).values
        patch = best.clamp(min=0).sqrt().mean(1).reshape(n, h, w)  # (N, h, w)
        return patch.amax(dim=(1, 2)), maps.anomaly_map(patch, (self.size, self.size))


def metadata(model: PatchCore) -> dict[str, str]:
    """What `predict` needs beside the graph: threshold, calibration, config, weights."""
    return dict(patchcore_lite=json.dumps(dict(
        model.header(), train_images=[], format="onnx-1", describe=model.describe())),
        threshold=repr(model.threshold))


def check_exportable(model: PatchCore) -> None:
    """Refuse, by name, the options the graph cannot hold."""
    c = model.config
    for flag, on in (("--reweight", c.reweight), ("--search faiss", c.search == "faiss"),
                     ("--tile", c.tile is not None)):
        if on:
            raise PatchCoreError(f"export: a model fitted with {flag} cannot be exported (the "
                                 "ONNX graph has the plain k-NN scoring path only)")


def export_onnx(model: PatchCore, out: str | Path, key=None) -> Path:
    """Write the model as one ONNX graph with a dynamic batch size; metadata as above, sealed
    with a checksum, and signed when a key is given (onnx_file.py)."""
    check_exportable(model)
    graph = ScoringGraph(model).eval()
    s = model.config.input_size
    x = torch.rand(2, 3, s, s)
    batch = torch.export.Dim("batch", min=1, max=4096)
    prog = torch.onnx.export(graph, (x,), dynamo=True, input_names=["images"],
                             output_names=["scores", "maps"], opset_version=OPSET,
                             dynamic_shapes={"x": {0: batch}}, verbose=False)
    proto = prog.model_proto
    for k, v in metadata(model).items():
        proto.metadata_props.add(key=k, value=v)
    return onnx_file.write(proto, Path(out), key)


class OnnxModel(calibration.Calibrated):
    """A model exported by `export_onnx`, scored with onnxruntime: predict like PatchCore. A
    signed export loads only with its `key`; given a key, an unsigned one is refused."""

    def __init__(self, path: str | Path, key=None):
        try:
            import onnx  # noqa: F401 - reads and verifies the file (onnx_file.read)
            import onnxruntime as ort
        except ImportError:
            raise PatchCoreError("--model *.onnx: onnx or onnxruntime is not installed "
                                 "(pip install onnxruntime, or 'patchcore-lite[onnx]')")
        self.path = Path(path)
        data, header, beside = onnx_file.read(self.path, key)
        try:  # the bytes verified are the bytes run (weights beside a large model: its path)
            self.session = ort.InferenceSession(str(path) if beside else data,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise PatchCoreError(f"{path}: onnxruntime cannot load this model ({str(e)[:120]})")
        self.header, c = header, header["config"]
        self.threshold, self.good_scores = header["threshold"], header["good_scores"]
        self.map_range, self.weights_used = tuple(header["map_range"]), header["weights"]
        self.config = SimpleNamespace(**c)
        self._check_input()

    def _check_input(self) -> None:
        """The graph takes (N, 3, S, S) images at the config's input size S."""
        s = self.config.crop or self.config.resize
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape)[1:] != [3, s, s]:
            raise PatchCoreError(f"{self.path}: malformed ONNX model (its input is not "
                                 f"(N, 3, {s}, {s}) images); refusing to load it")

    def describe(self) -> str:
        """What the exported model is (weights first), as PatchCore.describe said at export."""
        return f"{self.header['describe']} (ONNX Runtime)"

    def predict(self, images, batch_size: int = 16):
        """Image scores (N,) and anomaly maps (N, S, S) for image paths."""
        scores, amaps = [], []
        for i in range(0, len(images), batch_size):
            x = torch.stack([load_image(p, self.config.resize, self.config.crop) for p in
                             images[i:i + batch_size]]).numpy()  # (B, 3, S, S) in [0, 1]
            try:
                s, m = self.session.run(["scores", "maps"], {"images": x})
            except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
                raise PatchCoreError(f"{self.path}: onnxruntime failed ({str(e)[:120]})")
            scores.append(s)
            amaps.append(m)
        return np.concatenate(scores), np.concatenate(amaps)
