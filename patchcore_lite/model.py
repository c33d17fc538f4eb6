"""PatchCore in one object: fit a memory bank of normal patches, score new images against it.

fit:     images -> backbone features -> patch embeddings -> subsample -> memory bank
predict: images -> patch embeddings -> distance to nearest bank patch -> image score + map
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import ann, calibration, decode, embedding, io, knn, maps, sampling, streaming, tiling
from ._version import __version__
from .backbone import FeatureExtractor, describe_weights, load_backbone, state_dict_hash
from .config import (
    MAX_BATCH,
    Config,
    check_bank_size,
    check_device,
    check_header,
    check_tensors,
    upgrade_header,
)
from .data import ImageSet
from .errors import PatchCoreError

THRESHOLD_QUANTILE = 0.99  # default threshold: this quantile of leave-one-out good scores
THRESHOLD_MAX_IMAGES = 50  # training images scored (without their own patches) to learn it


@dataclass
class Bank:
    """The memory bank: patches plus where each came from (training image, grid cell)."""

    patches: torch.Tensor  # (M, D)
    image: torch.Tensor  # (M,) index into train_images
    pos: torch.Tensor  # (M,) flat grid index y * w + x
    grid: tuple[int, int]  # (h, w) patch grid of one image
    train_images: list[str] = field(default_factory=list)


class PatchCore(calibration.Calibrated):
    """PatchCore anomaly detector (Roth et al., CVPR 2022) with a from-scratch pipeline."""

    def __init__(self, backbone: str = "resnet18", layers=("layer2", "layer3"),
                 weights: str | None = "auto", sampling: str = "coreset",
                 sampling_ratio: float = 0.1, k: int = 1, device: str = "cpu", seed: int = 0,
                 progress: bool = True, workers: int | None = None, **options):
        self.config = Config(backbone=backbone, layers=layers, weights=weights, sampling=sampling,
                             sampling_ratio=sampling_ratio, k=k, seed=seed, **options)
        self.config.check()
        self.device = check_device(device)
        self.progress = progress
        self.workers = decode.check_workers(workers)  # decoding threads (None: default)
        self.net, self.weights_used = load_backbone(backbone, weights, seed)  # the full network
        # channels-last convolutions run ~1.4x faster on CPUs (oneDNN), and suit GPUs too
        self.extractor = FeatureExtractor(self.net, self.config.layers).to(
            self.device, memory_format=torch.channels_last)
        self.weights_sha256 = state_dict_hash(self.net)
        self.bank: Bank | None = None
        self._bound = None  # (bank tensor, its lower-bound coordinates) for pruned kNN
        self.threshold: float | None = None
        self.good_scores: list[float] = []  # leave-one-image-out scores of good training images
        self.map_range: tuple[float, float] | None = None
        self.info: dict = {}

    # ---- what the model is -------------------------------------------------------------
    @property
    def pretrained(self) -> bool:
        """True unless the backbone is randomly initialised."""
        return self.weights_used != "random"

    def describe(self) -> str:
        """One line that says what the model is, weights first: never hide a random init."""
        c = self.config
        w = describe_weights(self.weights_used, c.seed)
        ratio = "" if c.sampling == "none" else f" {c.sampling_ratio:g}"
        return (f"{c.backbone} [{','.join(c.layers)}], {w}; sampling {c.sampling}{ratio}, "
                f"k={c.k}{', Eq.7 reweight' if c.reweight else ''}, "
                f"input {c.resize}->{c.crop or 'no crop'}")

    # ---- features ----------------------------------------------------------------------
    def loader(self, images, batch_size: int | None = None) -> torch.utils.data.DataLoader:
        """Batches of preprocessed (B, 3, S, S) images in [0, 1] (resize, then centre crop)."""
        ds = images if isinstance(images, torch.utils.data.Dataset) else ImageSet(
            images, self.config.resize, self.config.crop)
        if batch_size is not None and not (isinstance(batch_size, int) and
                                           1 <= batch_size <= MAX_BATCH):
            raise PatchCoreError(f"--batch-size: a whole number in [1, {MAX_BATCH}], got "
                                 f"{batch_size!r}")
        return decode.batches(ds, batch_size or self.config.batch_size, self.workers)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, h, w, D) locally aware patch embeddings."""
        feats = self.extractor(x.to(self.device, memory_format=torch.channels_last))
        return embedding.embed(feats, self.config.embed_dim)

    def features(self, images, desc: str = "features", batch_size: int | None = None,
                 progress: bool | None = None) -> torch.Tensor:
        """All patch embeddings of `images`: (N, h, w, D), written into one preallocated tensor."""
        loader, out, n = self.loader(images, batch_size), None, 0
        for x in self._bar(loader, desc, progress):
            f = self.embed(x)  # (B, h, w, D)
            if out is None:
                out = torch.empty((len(loader.dataset), *f.shape[1:]), device=f.device)
            out[n:n + len(f)] = f
            n += len(f)
        return out

    def _bar(self, loader, desc: str, progress: bool | None):
        show = self.progress if progress is None else progress
        return tqdm(loader, desc=desc, disable=not show, unit="batch")

    # ---- fit ---------------------------------------------------------------------------
    def fit(self, images) -> PatchCore:
        """Build the memory bank from good images and learn the default threshold."""
        t0 = time.perf_counter()
        ds = self._dataset(images, need=2)  # checked before any work
        if self.config.tile and self.config.crop:
            warnings.warn(f"--tile with --crop {self.config.crop}: each tile's border outside "
                          "the centre crop is not seen (consider --crop 0)", stacklevel=2)
        c = self.config
        if not c.tile:  # more features than memory holds: fit chunk by chunk
            per_image = self.embed(ds[0][None]).shape[1:]  # (h, w, D)
            if streaming.needed(len(ds), per_image):
                return self._fit_streaming(ds, per_image, t0)
        feats, owner, layout = self._train_features(ds)  # (T, h, w, D), (T,) image of each
        t1 = time.perf_counter()
        flat = feats.reshape(-1, feats.shape[-1])  # (T*h*w, D)
        idx = sampling.subsample(flat, c.sampling, c.sampling_ratio, c.seed, c.proj_dim,
                                 self.progress).to(flat.device)
        t2 = time.perf_counter()
        check_bank_size(len(idx), c.k, c)
        self.bank = _bank(flat, idx, owner, feats.shape[1:3], _names(ds.images))
        del flat
        self.good_scores = []
        self._learn_threshold(feats, owner, layout)
        n, (t, h, w, d) = len(ds), feats.shape
        self.info = dict(n_train=n, n_patches=t * h * w, memory_bank_size=len(idx), embed_dim=d,
                         embed_seconds=t1 - t0, sampling_seconds=t2 - t1,
                         selection=sampling.algorithm(c.sampling, t * h * w),
                         fit_seconds=time.perf_counter() - t0, n_tiles=t if c.tile else None)
        return self

    def _fit_streaming(self, ds: ImageSet, per_image: torch.Size, t0: float) -> PatchCore:
        """fit for more features than memory holds (streaming.py); the threshold re-embeds the
        good images it scores."""
        patches, image, pos, t_embed = streaming.bank(self, ds, per_image)
        check_bank_size(len(patches), self.config.k, self.config)
        self.bank = Bank(patches, image, pos, tuple(per_image[:2]), _names(ds.images))
        g = torch.Generator().manual_seed(self.config.seed)
        chosen = torch.randperm(len(ds), generator=g)[:THRESHOLD_MAX_IMAGES].sort().values
        self.good_scores = []
        self._learn_threshold(self.features(torch.utils.data.Subset(ds, chosen.tolist()),
                                            progress=False), chosen)
        (m, d), hw = patches.shape, per_image[0] * per_image[1]
        chunk = max(len(r) for r in streaming.chunks(len(ds), per_image)) * hw  # patches
        self.info = dict(n_train=len(ds), n_patches=len(ds) * hw, memory_bank_size=m,
                         embed_dim=d, embed_seconds=t_embed, streamed=True,
                         selection=sampling.algorithm(self.config.sampling, chunk),
                         sampling_seconds=time.perf_counter() - t0 - t_embed,
                         fit_seconds=time.perf_counter() - t0, n_tiles=None)
        return self

    def append(self, images) -> PatchCore:
        """Add newly approved good images to a fitted bank without refitting: their patches are
        kept as the fit would (all, the same random ratio, or a greedy extension of the coreset),
        and the threshold is re-learned from the stored good scores plus the new images'."""
        if self.bank is None:
            raise PatchCoreError("--append: the model has no memory bank yet; fit it first")
        t0 = time.perf_counter()
        ds = self._dataset(images, need=1)
        feats, owner, layout = self._train_features(ds)
        n0, c = len(self.bank.train_images), self.config
        flat = feats.reshape(-1, feats.shape[-1])  # (T*h*w, D) the new patches
        m = sampling.n_keep(len(flat), c.sampling_ratio) if c.sampling != "none" else len(flat)
        if c.sampling == "random":
            idx = sampling.random_subsample(len(flat), c.sampling_ratio, c.seed + n0)
        elif c.sampling != "none":
            idx = _extend_coreset(flat, self.bank.patches, m)
        else:
            idx = torch.arange(len(flat))
        new = _bank(flat, idx.to(flat.device), owner + n0, feats.shape[1:3], _names(ds.images))
        b = self.bank
        self.bank = Bank(torch.cat([b.patches, new.patches]), torch.cat([b.image, new.image]),
                         torch.cat([b.pos, new.pos]), b.grid, b.train_images + new.train_images)
        scores, _ = self._loo_scores(feats, owner + n0, layout)
        self.set_threshold(self.good_scores + scores)
        self.info = dict(self.info, n_train=len(self.bank.train_images),
                         memory_bank_size=len(self.bank.patches),
                         n_patches=self.info.get("n_patches", 0) + len(flat),
                         append_seconds=time.perf_counter() - t0)
        return self

    def _dataset(self, images, need: int) -> ImageSet:
        """The images as a checked dataset (originals when tiling); at least `need` of them."""
        c = self.config
        ds = ImageSet(images, 0 if c.tile else c.resize, 0 if c.tile else c.crop)
        if len(ds) < need:
            where = f" in {images}" if isinstance(images, (str, Path)) else ""
            raise PatchCoreError(f"images: need at least {need} good training images, got "
                                 f"{len(ds)}{where}")
        return ds

    def _train_features(self, ds: ImageSet):
        """Patch embeddings (T, h, w, D) of every image (or tile), the image each came from
        (T,), and the tile layout (None without tiling)."""
        if self.config.tile:
            return tiling.features(self, ds)
        feats = self.features(ds, "embed train")  # (N, h, w, D)
        return feats, torch.arange(len(feats)), None

    def _learn_threshold(self, feats: torch.Tensor, owner: torch.Tensor, layout=None) -> None:
        """Score good training images against the bank without their own patches (leave one
        out): their scores set the default threshold and calibrate normalized scores."""
        scores, good_maps = self._loo_scores(feats, owner, layout)
        self.map_range = maps.color_scale(torch.cat(good_maps), 0.0)  # hi set with the threshold
        self.set_threshold(self.good_scores + scores)

    def _loo_scores(self, feats: torch.Tensor, owner: torch.Tensor, layout=None):
        """Leave-one-image-out scores (and maps) of up to THRESHOLD_MAX_IMAGES images.

        feats (T, h, w, D) are patches of images `owner` (T,); all of an image's tiles are left
        out together, and a tiled image's score is the max of its stitched map, as in predict."""
        ids = owner.unique()  # sorted image indices
        g = torch.Generator().manual_seed(self.config.seed)
        chosen = torch.randperm(len(ids), generator=g)[:THRESHOLD_MAX_IMAGES].sort().values
        scores, good_maps = [], []
        for j in chosen.tolist():
            i, rows = int(ids[j]), (owner == ids[j]).nonzero()[:, 0]
            own = self._rows_of(i)  # the bank is sorted by image: its rows are one slice
            if own[1] - own[0] == len(self.bank.patches):
                continue
            s, m, _ = self.score_features(feats[rows], exclude=own)
            if layout is not None:
                m = tiling.stitch(m, *layout[i - int(ids[0])], self.config.resize,
                                  self.config.crop)[None]
                s = m.amax()[None]
            if not bool(torch.isfinite(s).all()):
                raise PatchCoreError(f"images: training image {self.bank.train_images[i]} "
                                     "scores NaN or inf (non-finite pixel values?)")
            scores.append(float(s.max()))
            good_maps.append(m.flatten())
        return scores, good_maps

    def _rows_of(self, image: int) -> tuple[int, int]:
        """Bank rows a:b holding the patches of training image `image` (bank sorted by image)."""
        img = self.bank.image.to(torch.int64)
        a = int(torch.searchsorted(img, image, right=False))
        return a, int(torch.searchsorted(img, image, right=True))

    def set_threshold(self, good_scores: list[float]) -> None:
        """The default threshold from leave-one-out good scores: the 0.99 quantile, or the
        --target-fpr quantile; the heatmap colour range follows it."""
        self.good_scores = [float(v) for v in good_scores]
        if self.config.target_fpr is not None:
            self.threshold, self.threshold_info = calibration.target_fpr_threshold(
                self.good_scores, self.config.target_fpr)
        else:
            t = torch.quantile(torch.tensor(self.good_scores, dtype=torch.float64),
                               THRESHOLD_QUANTILE)
            self.threshold = float(t)
            self.threshold_info = dict(method="leave-one-image-out quantile",
                                       quantile=THRESHOLD_QUANTILE, n_images=len(good_scores))
        lo = self.map_range[0]
        self.map_range = (lo, lo + 2.0 * max(self.threshold - lo, 1e-6))

    # ---- predict -----------------------------------------------------------------------
    def bank_bound(self):
        """Lower-bound coordinates of the fitted bank for exact pruned search (cached)."""
        if self._bound is None or self._bound[0] is not self.bank.patches:
            self._bound = (self.bank.patches, knn.bank_bounds(self.bank.patches))
        return self._bound[1]

    def score_features(self, feats: torch.Tensor, bank: torch.Tensor | None = None, bound=None,
                       k: int | None = None, sigma: float = maps.SIGMA,
                       exclude: tuple[int, int] | None = None):
        """The one scoring path: (B, h, w, D) patch embeddings -> image scores (B,), anomaly
        maps (B, S, S), patch scores (B, h, w). Defaults: the fitted bank and its bound, model's k.
        exclude=(a, b): score against the fitted bank without its rows a:b (leave one out)."""
        bank = self.bank.patches if bank is None else bank
        b, h, w, d = feats.shape
        q = feats.reshape(-1, d)  # (B*h*w, D)
        dist, idx = self.nearest(q, k or self.config.k, bank, bound, exclude)  # (B*h*w, k)
        patch = dist.mean(dim=1).reshape(b, h * w)  # (B, h*w) mean over the k nearest
        if self.config.reweight:  # paper Eq. 7
            image = knn.reweight(feats.reshape(b, h * w, d), patch, idx[:, 0].reshape(b, -1),
                                 bank, self.config.reweight_b)
        else:
            image = patch.max(dim=1).values  # (B,) image score = worst patch
        s = self.config.input_size
        patch = patch.reshape(b, h, w)
        return image, maps.anomaly_map(patch, (s, s), sigma), patch

    def predict(self, images, return_patches: bool = False, batch_size: int | None = None,
                progress: bool | None = None, k: int | None = None):
        """Image scores (N,) and anomaly maps (N, S, S), numpy, at the model input size; `k`
        overrides the model's neighbours for this call. A tiled model returns maps at each
        image's original size (a list where sizes differ)."""
        if self.bank is None:
            raise PatchCoreError("model: call fit() (or PatchCore.load) before predict()")
        check_bank_size(len(self.bank.patches), k or self.config.k, self.config)
        if self.config.tile:
            return tiling.predict(self, self._dataset(images, 1), batch_size, progress, k)
        scores, amaps, patches = [], [], []
        for x in self._bar(self.loader(images, batch_size), "predict", progress):
            s, m, p = self.score_features(self.embed(x), k=k)
            scores.append(s.cpu())
            amaps.append(m.cpu())
            patches.append(p.cpu())
        out = torch.cat(scores).numpy(), torch.cat(amaps).numpy()
        return (*out, torch.cat(patches).numpy()) if return_patches else out

    def nearest(self, queries: torch.Tensor, k: int = 1, bank: torch.Tensor | None = None,
                bound=None, exclude: tuple[int, int] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, D) patch embeddings -> distances (P, k) and indices (P, k) of the k nearest bank
        patches: faiss or the exact search, with the fitted bank's cached bound. exclude=(a, b)
        leaves the fitted bank's rows a:b out, searching the two views around them (no copy)."""
        fitted = self.bank is not None and (bank is None or bank is self.bank.patches)
        bank = self.bank.patches if bank is None else bank
        if exclude is not None:
            return self._nearest_without(queries, k, exclude)
        if self.config.search == "faiss" and fitted:  # faiss indexes the fitted bank once
            return ann.knn(queries, bank, k)
        return knn.knn(queries, bank, k, bound=bound or (self.bank_bound() if fitted else None))

    def _nearest_without(self, queries: torch.Tensor, k: int, rows: tuple[int, int]):
        """k nearest fitted-bank patches outside bank rows a:b (one training image's)."""
        (a, b), m = rows, len(self.bank.patches)
        ax, zb = self.bank_bound()
        found = [(knn.knn(queries, self.bank.patches[s:e], k, bound=(ax, zb[s:e])), s)
                 for s, e in ((0, a), (b, m)) if e > s]
        dist = torch.cat([d for (d, _), _ in found], 1)  # (P, <= 2k)
        idx = torch.cat([i + s for (_, i), s in found], 1)
        dist, j = dist.topk(min(k, dist.shape[1]), dim=1, largest=False)
        return dist, idx.gather(1, j)

    # ---- save / load -------------------------------------------------------------------
    def save(self, path: str | Path, key: bytes | None = None) -> Path:
        """Write the fitted model to `path` (safetensors + JSON header, atomically); signed with
        HMAC-SHA256 when a `key` is given."""
        if self.bank is None:
            raise PatchCoreError("model: nothing to save, call fit() first")
        b = self.bank
        tensors = dict(patches=b.patches.float(), image=b.image.int(), pos=b.pos.int())
        return io.write_model_file(path, self.header(), tensors, key)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", progress: bool = True,
             key: bytes | None = None) -> PatchCore:
        """Rebuild a saved model; refuses backbone weights other than the bank was built with."""
        header, t = io.read_model_file(path, key)
        header = upgrade_header(header)
        check_header(header, {k: tuple(v.shape) for k, v in t.items()}, path)
        check_tensors(t, header, path)
        cfg = dict(header["config"])
        cfg["weights"] = {"random": "none"}.get(header["weights"], header["weights"])
        try:
            Config(**{k: v for k, v in cfg.items() if k != "weights"}).check()
        except PatchCoreError as e:
            raise PatchCoreError(f"{path}: malformed model header ({e}); refusing to load it")
        model = cls(device=device, progress=progress, **cfg)
        if model.weights_sha256 != header["weights_sha256"]:
            raise PatchCoreError(
                f"{path}: backbone weights ({model.weights_used}, sha256 "
                f"{model.weights_sha256[:12]}) differ from those the memory bank was built with "
                f"({header['weights']}, sha256 {header['weights_sha256'][:12]})")
        model.config.weights = header["config"]["weights"]
        dev = model.device
        model.bank = Bank(t["patches"].to(dev), t["image"].to(dev), t["pos"].to(dev),
                          tuple(header["grid"]), header["train_images"])
        model.threshold, model.map_range = header["threshold"], tuple(header["map_range"])
        model.threshold_info, model.info = header["threshold_info"], header["info"]
        model.good_scores = [float(v) for v in header["good_scores"]]
        return model

    def header(self) -> dict:
        """JSON-safe description of the fitted model (saved with the bank, shown in reports)."""
        return dict(config=asdict(self.config), weights=self.weights_used,
                    weights_sha256=self.weights_sha256, threshold=self.threshold,
                    threshold_info=getattr(self, "threshold_info", None),
                    good_scores=self.good_scores,
                    map_range=list(self.map_range) if self.map_range else None,
                    grid=list(self.bank.grid) if self.bank else None,
                    train_images=self.bank.train_images if self.bank else [],
                    info=self.info, version=__version__)


def _bank(flat: torch.Tensor, idx: torch.Tensor, owner: torch.Tensor, grid, names) -> Bank:
    """Bank of the patches flat[idx] of T images or tiles; owner (T,) is each one's image."""
    h, w = grid
    idx = idx.sort().values  # sorted by image, then cell: each image's rows are one slice
    return Bank(flat[idx].clone(), owner.to(idx.device)[idx // (h * w)].int(),
                (idx % (h * w)).int(), (h, w), names)


def _extend_coreset(new: torch.Tensor, bank: torch.Tensor, m: int) -> torch.Tensor:
    """Greedy k-center extension: m of the `new` patches, each the farthest from the bank and
    those already added (the min-distances start from the current bank)."""
    mind = knn.knn(new, bank, 1)[0][:, 0].double() ** 2  # (N,) to the current bank
    return sampling.greedy_exact(new.double(), min(m, len(new)), int(mind.argmax()),
                                 lambda _: None, mind)


def _names(images) -> list[str]:
    """Printable names of training images (paths as given; in-memory images by index)."""
    return [str(im) if isinstance(im, (str, Path)) else f"<image {i}>"
            for i, im in enumerate(images)]

