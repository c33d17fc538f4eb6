"""What defines a model: its settings (`Config`), checked by name, and the saved header's schema.

Every setting a user can get wrong is refused with the name of its command-line flag, before any
slow work. A saved header is checked against its schema before any of it is used, so a file
whose checksum is valid but whose header is malformed fails with one line, not a traceback.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, fields

import torch

from . import ann, sampling
from .calibration import check_fraction
from .errors import PatchCoreError

MAX_BATCH = 256  # images per forward pass: larger batches only cost memory
MAX_RESIZE = 1024  # model input side (an image's or a tile's): memory grows with its square
INT_FIELDS = ("k", "reweight_b", "resize", "crop", "seed", "batch_size")
SEED_MAX = 2**63 - 1  # torch.manual_seed's limit


def positive_int(text: str) -> int:
    """Command-line type: a whole number >= 1."""
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def finite_float(text: str) -> float:
    """Command-line type: a number that is not NaN or infinite."""
    v = float(text)
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return v


def option(default, help: str, cli=str, flag: str | None = None):
    """A Config field with what the command line needs: its help, its argparse type (None: a
    switch) and its flag (default: --name-with-dashes)."""
    return field(default=default, metadata=dict(help=help, type=cli, flag=flag))


def flag(name: str) -> str:
    """The command-line flag of a Config field (--ratio for sampling_ratio)."""
    meta = {f.name: f.metadata for f in fields(Config)}.get(name, {})
    return meta.get("flag") or "--" + name.replace("_", "-")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class Config:
    """Everything that defines a fitted model (saved with it), each setting written once with
    its default, type and help: `PatchCore` and the option table (options.py) derive from it."""

    backbone: str = option("resnet18", "torchvision CNN (resnet18, wide_resnet50_2, "
                           "mobilenet_v2, ...)")
    layers: tuple[str, ...] = option(("layer2", "layer3"), "comma-separated module names "
                                     "(dotted for nested ones, e.g. features.6)")
    weights: str | None = option("auto", "auto, imagenet, none or a state-dict file")
    sampling: str = option("coreset", "none, random, coreset (fast) or coreset-exact")
    sampling_ratio: float = option(0.1, "fraction of patches kept", float, "--ratio")
    k: int = option(1, "neighbours averaged for a patch's score", positive_int)
    reweight: bool = option(False, "paper Eq. 7 image-score reweighting", None)
    reweight_b: int = option(9, "neighbourhood size of Eq. 7", int)
    embed_dim: int | None = option(None, "reduce patches to this dim (default: keep the "
                                   "concatenation)", int)
    resize: int = option(256, "square resize of every image", int)
    crop: int = option(224, "centre crop; 0 keeps the whole image", int)
    seed: int = option(0, "random init, sampling and threshold seed", int)
    batch_size: int = option(16, "images per forward pass", positive_int)
    proj_dim: int | None = option(None, "select the coreset on a random projection to this "
                                  "dim (default: the full embedding)", positive_int)
    search: str = option("exact", "kNN backend: exact (blocked, pruned on CPU) or faiss (extra)")
    target_fpr: float | None = option(None, "default threshold flags this fraction of good "
                                      "images (leave-one-out estimate)", finite_float)
    tile: int | None = option(None, "cut images into square tiles of this many pixels (large "
                              "images, small defects)", positive_int)
    tile_overlap: float = option(0.25, "overlap of adjacent tiles", finite_float)

    def check(self) -> None:
        """Reject bad settings with a message that names the argument."""
        self._check_types()
        if not self.layers:
            raise PatchCoreError("--layers: give at least one layer name")
        if len(set(self.layers)) != len(self.layers):
            raise PatchCoreError(f"--layers: a layer is listed twice: {','.join(self.layers)}")
        if self.sampling not in sampling.SAMPLING_METHODS:
            raise PatchCoreError(f"--sampling: unknown method '{self.sampling}' "
                                 f"(one of {', '.join(sampling.SAMPLING_METHODS)})")
        sampling.check_ratio(self.sampling_ratio)
        for name in ("k", "reweight_b", "resize", "batch_size"):
            if getattr(self, name) < 1:
                raise PatchCoreError(f"{flag(name)}: must be >= 1, got {getattr(self, name)}")
        self._check_sizes()
        if self.search not in ("exact", "faiss"):
            raise PatchCoreError(f"--search: unknown backend '{self.search}' (exact or faiss)")
        if self.search == "faiss":
            ann.require()
        if self.target_fpr is not None:
            check_fraction(self.target_fpr, "--target-fpr")
        if self.tile is not None and (not _is_int(self.tile) or self.tile < 32):
            raise PatchCoreError(f"--tile: a whole number of pixels >= 32, got {self.tile!r}")
        if not isinstance(self.tile_overlap, (int, float)) or not 0 <= self.tile_overlap < 1:
            raise PatchCoreError(f"--tile-overlap: must be in [0, 1), got {self.tile_overlap!r}")

    def _check_types(self) -> None:
        if isinstance(self.layers, str):
            self.layers = tuple(s.strip() for s in self.layers.split(",") if s.strip())
        if not isinstance(self.layers, (tuple, list)) or not all(
                isinstance(n, str) for n in self.layers):
            raise PatchCoreError(f"--layers: expected layer names, got {self.layers!r}")
        self.layers = tuple(self.layers)
        for name in INT_FIELDS + ("embed_dim", "proj_dim"):
            v = getattr(self, name)
            if not (_is_int(v) or (v is None and name in ("embed_dim", "proj_dim"))):
                raise PatchCoreError(f"{flag(name)}: expected a whole number, got {v!r}")
        r = self.sampling_ratio
        if not isinstance(r, (int, float)) or isinstance(r, bool) or not math.isfinite(r):
            raise PatchCoreError(f"--ratio: expected a number in (0, 1], got {r!r}")
        for name in ("backbone", "sampling", "search"):
            if not isinstance(getattr(self, name), str):
                raise PatchCoreError(f"{flag(name)}: expected a name, got "
                                     f"{getattr(self, name)!r}")
        if not isinstance(self.reweight, bool):
            raise PatchCoreError(f"--reweight: expected True or False, got {self.reweight!r}")

    def _check_sizes(self) -> None:
        if self.crop < 0 or self.crop > self.resize:
            raise PatchCoreError(f"--crop: must be in [0, --resize={self.resize}], got {self.crop}")
        if self.batch_size > MAX_BATCH:
            raise PatchCoreError(f"--batch-size: at most {MAX_BATCH}, got {self.batch_size} "
                                 "(larger batches only cost memory)")
        if self.resize > MAX_RESIZE:  # with --tile, each tile is resized to --resize
            raise PatchCoreError(f"--resize: at most {MAX_RESIZE} px (of an image, or of each tile "
                                 f"with --tile), got {self.resize} (memory grows with the square "
                                 "of the input side; use --tile for large images)")
        if self.input_size < 32:
            raise PatchCoreError(f"--resize/--crop: input must be at least 32 px, got "
                                 f"{self.input_size}")
        if self.embed_dim is not None and self.embed_dim < 1:
            raise PatchCoreError(f"--embed-dim: must be >= 1, got {self.embed_dim}")
        if not 0 <= self.seed <= SEED_MAX:
            raise PatchCoreError(f"--seed: must be in [0, 2**63 - 1], got {self.seed}")

    def describe(self, weights: str) -> str:
        """One line that says what the model is, `weights` (a description) first."""
        ratio = "" if self.sampling == "none" else f" {self.sampling_ratio:g}"
        return (f"{self.backbone} [{','.join(self.layers)}], {weights}; sampling {self.sampling}"
                f"{ratio}, k={self.k}{', Eq.7 reweight' if self.reweight else ''}, "
                f"input {self.resize}->{self.crop or 'no crop'}")

    @property
    def input_size(self) -> int:
        """Side of the square model input: the crop, or the resize when there is no crop."""
        return self.crop or self.resize


HEADER_TYPES = dict(config=dict, weights=str, weights_sha256=str, threshold=float,
                    threshold_info=dict, map_range=list, grid=list, train_images=list, info=dict,
                    version=str, format=int, good_scores=list)
FORMAT_1 = ("good_scores",), ("target_fpr", "tile", "tile_overlap")  # header keys, config fields
# that format 1 (patchcore-lite 0.1.0, before calibration and tiling) did not have


def upgrade_header(header: dict) -> dict:
    """A format-1 header with the keys format 2 added, at values that keep its behaviour."""
    if header.get("format") == 1:
        header = dict(header, good_scores=[])
        header["config"] = dict(header.get("config") or {}, target_fpr=None, tile=None,
                                tile_overlap=0.25)
    return header


def check_header(header: dict, shapes: dict[str, tuple[int, ...]] | None, path) -> None:
    """Refuse a saved header that does not fit the schema, naming the file and the field
    (and tensors of other `shapes`; None: no tensors, as in an ONNX export's metadata)."""
    def bad(what: str):
        raise PatchCoreError(f"{path}: malformed model header ({what}); refusing to load it")

    if set(header) != set(HEADER_TYPES):
        bad(f"keys {sorted(set(header) ^ set(HEADER_TYPES))}")
    for key, kind in HEADER_TYPES.items():
        v = header[key]
        if not isinstance(v, kind) or isinstance(v, bool) or (kind is float and
                                                              not math.isfinite(v)):
            bad(f"'{key}' is not a {'finite number' if kind is float else kind.__name__}")
    if set(header["config"]) != {f.name for f in fields(Config)}:
        bad("config fields")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in header["good_scores"]):
        bad("good_scores")
    lo_hi, grid = header["map_range"], header["grid"]
    if len(lo_hi) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v)
                                  for v in lo_hi):
        bad("map_range")
    if len(grid) != 2 or not all(_is_int(v) and 1 <= v <= 4096 for v in grid):
        bad("grid")
    if shapes is None:
        return
    m = shapes["patches"][0] if len(shapes["patches"]) == 2 else -1
    if m < 1 or shapes["patches"][1] < 1 or shapes["image"] != (m,) or shapes["pos"] != (m,):
        bad(f"tensor shapes {shapes}")


def check_bank_size(m: int, k: int, c: Config) -> None:
    """k neighbours, and Eq. 7's b, need at least that many bank patches."""
    if k > m:
        raise PatchCoreError(f"--k: {k} neighbours but the memory bank has only {m} patches")
    if c.reweight and c.reweight_b > m:
        raise PatchCoreError(f"--reweight-b: {c.reweight_b} neighbours for Eq. 7 but the memory "
                             f"bank has only {m} patches (raise --ratio or drop --reweight)")


def check_batch_size(batch_size) -> None:
    """A batch size given when scoring: None (the model's) or a whole number in [1, MAX_BATCH]."""
    if batch_size is not None and not (_is_int(batch_size) and 1 <= batch_size <= MAX_BATCH):
        raise PatchCoreError(f"--batch-size: a whole number in [1, {MAX_BATCH}], got "
                             f"{batch_size!r}")


def check_device(device) -> torch.device:
    """cpu, cuda or cuda:N, checked: other devices (mps, xpu, meta) are refused by name."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise PatchCoreError(f"--device: unknown device '{device}' (cpu, cuda or cuda:N)")
    if dev.type not in ("cpu", "cuda"):
        raise PatchCoreError(f"--device: '{device}' is not supported (cpu, cuda or cuda:N)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PatchCoreError("--device: cuda requested but no CUDA device is available")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise PatchCoreError(f"--device: {device}: only {torch.cuda.device_count()} CUDA devices")
    return dev


def check_tensors(t: dict, header: dict, path) -> None:
    """Every bank patch names a saved training image and a cell of the grid."""
    h, w = header["grid"]
    n = len(header["train_images"])
    if t["patches"].dtype != torch.float32 or not bool(torch.isfinite(t["patches"]).all()):
        raise PatchCoreError(f"{path}: malformed model (bank patches are not finite float32)")
    for name, top in (("image", n), ("pos", h * w)):
        v = t[name]
        if v.dtype != torch.int32 or (len(v) and (int(v.min()) < 0 or int(v.max()) >= top)):
            raise PatchCoreError(f"{path}: malformed model ('{name}' indices out of range)")


def checked_config(header: dict, t: dict, path) -> dict:
    """PatchCore keyword arguments of a saved model, after its header (schema, settings) and
    tensors (shapes, dtypes, index ranges) are checked; the file is named in any error."""
    check_header(header, {k: tuple(v.shape) for k, v in t.items()}, path)
    check_tensors(t, header, path)
    cfg = dict(header["config"])
    cfg["weights"] = {"random": "none"}.get(header["weights"], header["weights"])
    if cfg["search"] == "faiss":  # a valid model that needs an optional extra
        ann.require(f"{path}: fitted with --search faiss, but")
    try:
        Config(**{k: v for k, v in cfg.items() if k != "weights"}).check()
    except PatchCoreError as e:
        raise PatchCoreError(f"{path}: malformed model header ({e}); refusing to load it")
    return cfg


def check_embedding(t: dict, header: dict, embedded: tuple[int, int, int], path) -> None:
    """The bank's width and the header's grid are those of the config's embedding: `embedded`
    is (h, w, D) of one input through the rebuilt backbone."""
    (h, w, d), width = embedded, t["patches"].shape[1]
    if width != d or tuple(header["grid"]) != (h, w):
        raise PatchCoreError(f"{path}: malformed model (bank patches of width {width} on a "
                             f"{header['grid']} grid; this config embeds {d} on {[h, w]}); "
                             "refusing to load it")
