"""PatchCore in one object: fit a memory bank of normal patches, score new images against it.

fit:     images -> backbone features -> patch embeddings -> subsample -> memory bank
predict: images -> patch embeddings -> distance to nearest bank patch -> image score + map
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset
from tqdm.auto import tqdm

from . import bank, calibration, decode, embedding, io, knn, maps, tiling, trainset
from ._version import __version__
from .backbone import FeatureExtractor, describe_weights, load_backbone, state_dict_hash
from .config import (
    Config,
    check_bank_size,
    check_batch_size,
    check_device,
    check_embedding,
    checked_config,
    upgrade_header,
)
from .data import ImageSet
from .errors import PatchCoreError


class PatchCore(calibration.Calibrated):
    """PatchCore anomaly detector (Roth et al., CVPR 2022) with a from-scratch pipeline."""

    def __init__(self, backbone: str = Config.backbone, layers=Config.layers,
                 weights: str | None = Config.weights, sampling: str = Config.sampling,
                 sampling_ratio: float = Config.sampling_ratio, k: int = Config.k,
                 device: str = "cpu", seed: int = Config.seed, progress: bool = True,
                 workers: int | None = None, **options):
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
        self.bank: bank.Bank | None = None
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
        return self.config.describe(describe_weights(self.weights_used, self.config.seed))

    # ---- features ----------------------------------------------------------------------
    def loader(self, images, batch_size: int | None = None) -> torch.utils.data.DataLoader:
        """Batches of preprocessed (B, 3, S, S) images in [0, 1] (resize, then centre crop)."""
        ds = images if isinstance(images, torch.utils.data.Dataset) else ImageSet(
            images, self.config.resize, self.config.crop)
        check_batch_size(batch_size)
        return decode.batches(ds, batch_size or self.config.batch_size, self.workers)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, h, w, D) locally aware patch embeddings."""
        feats = self.extractor(x.to(self.device, memory_format=torch.channels_last))
        return embedding.embed(feats, self.config.embed_dim)

    def features(self, images, desc: str = "features", batch_size: int | None = None,
                 progress: bool | None = None) -> torch.Tensor:
        """All patch embeddings of `images`: (N, h, w, D), written into one preallocated tensor."""
        loader, out, n = self.loader(images, batch_size), None, 0
        for x in _bar(loader, desc, self.progress if progress is None else progress):
            f = self.embed(x)  # (B, h, w, D)
            if out is None:
                out = torch.empty((len(loader.dataset), *f.shape[1:]), device=f.device)
            out[n:n + len(f)] = f
            n += len(f)
        return out

    # ---- fit ---------------------------------------------------------------------------
    def fit(self, images, drop_suspects: bool = False) -> PatchCore:
        """Build the memory bank from good images, check every training image against it (leave
        one out) and learn the default threshold; drop_suspects fits again without suspects."""
        t0, self.info = time.perf_counter(), {}
        ds, c = self._dataset(images, need=2), self.config  # checked before any work
        if c.tile and c.crop:
            warnings.warn(f"--tile with --crop {c.crop}: each tile's border outside the centre "
                          "crop is not seen (consider --crop 0)", stacklevel=2)
        self.bank, given, more = bank.make(ds, lambda d, show=False: self._train_features(
            d, progress=show), self.embed, c, self.device, self.progress)
        check_bank_size(len(self.bank), c.k, c)
        t2, self.good_scores = time.perf_counter(), []
        self._check_training_set(ds, given)
        self.info = dict(n_train=len(ds), memory_bank_size=len(self.bank),
                         embed_dim=self.bank.patches.shape[1], **more,
                         check_seconds=time.perf_counter() - t2,
                         fit_seconds=time.perf_counter() - t0, **self.info)
        suspects = {s["path"] for s in self.info["train_suspects"]}
        if drop_suspects and suspects:
            keep = [im for im, n in zip(ds.images, bank.names(ds.images)) if n not in suspects]
            self.fit(keep)
            self.info["dropped_suspects"] = len(suspects)
        return self

    def append(self, images) -> PatchCore:
        """Add newly approved good images to a fitted bank without refitting: their patches are
        kept as the fit would (all, the same random ratio, or the greedy continued), and the
        training set is checked again, so the threshold is what one fit on all would learn."""
        if self.bank is None:
            raise PatchCoreError("--append: the model has no memory bank yet; fit it first")
        t0 = time.perf_counter()
        ds, n0 = self._dataset(images, need=1), len(self.bank.train_images)
        feats, owner, layout = self._train_features(ds)
        self.bank = bank.extend(self.bank, feats, owner, bank.names(ds.images), self.config,
                                self.progress)
        old = self.bank.train_images[:n0]
        if all(Path(p).is_file() for p in old):  # re-score every image against the new bank
            whole = ConcatDataset([self._dataset(old, need=1), ds])
            self.good_scores = []
            self._check_training_set(whole)
        else:  # earlier images are gone: keep their scores, add the new images'
            warnings.warn("--append: some earlier training images cannot be read; their stored "
                          "leave-one-out scores are kept for the threshold", stacklevel=2)
            lay = None if layout is None else dict(enumerate(layout, n0))
            self._check_training_set(ds, (feats, owner + n0, lay), first=n0)
        self.info = dict(self.info, n_train=len(self.bank.train_images),
                         memory_bank_size=len(self.bank),
                         n_patches=self.info.get("n_patches", 0) + feats.shape[:3].numel(),
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

    def _train_features(self, ds, progress: bool | None = None):
        """Patch embeddings (T, h, w, D) of every image (or tile), the image each came from
        (T,), and the tile layout (None without tiling)."""
        show = self.progress if progress is None else progress
        if self.config.tile:
            return tiling.features(self.embed, ds, self.config, show)
        feats = self.features(ds, "embed train", progress=show)  # (N, h, w, D)
        return feats, torch.arange(len(feats)), None

    def _check_training_set(self, ds, given=None, first: int = 0) -> None:
        """Leave-one-image-out scores of the training images ds holds (bank images first,
        first+1, ...; trainset.py) set the default threshold, suspects excluded, and the heatmap
        colour range; given = their (features, owners, layouts), else they are re-embedded."""
        c = self.config
        scores, good_maps, info = trainset.check_bank(
            self.bank, ds, lambda d: self._train_features(d, progress=False),
            lambda f, out: self.score_features(f, exclude=out)[:2],
            lambda m, lay: tiling.stitch(m, *lay, c.resize, c.crop), given, first, self.progress)
        self.info.update(info)
        self.map_range = maps.color_scale(torch.cat(good_maps), 0.0)  # hi set with the threshold
        self.set_threshold(self.good_scores + scores)

    def set_threshold(self, good_scores: list[float]) -> None:
        """The default threshold from leave-one-out good scores (calibration.default_threshold);
        the heatmap colour range follows it."""
        self.good_scores = [float(v) for v in good_scores]
        self.threshold, self.threshold_info = calibration.default_threshold(
            self.good_scores, self.config.target_fpr)
        lo = self.map_range[0]
        self.map_range = (lo, lo + 2.0 * max(self.threshold - lo, 1e-6))

    # ---- predict -----------------------------------------------------------------------
    def score_features(self, feats: torch.Tensor, bank: torch.Tensor | None = None, bound=None,
                       k: int | None = None, sigma: float = maps.SIGMA,
                       exclude: list[tuple[int, int]] | None = None):
        """The one scoring path: (B, h, w, D) patch embeddings -> image scores (B,), anomaly
        maps (B, S, S), patch scores (B, h, w). Defaults: the fitted bank and its bound, model's k.
        exclude=[(a, b), ...]: without those rows of the fitted bank (leave images out)."""
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
            return tiling.predict(self.embed, lambda f: self.score_features(f, k=k)[1],
                                  self._dataset(images, 1), self.config,
                                  batch_size or self.config.batch_size,
                                  self.progress if progress is None else progress, self.workers)
        scores, amaps, patches = [], [], []
        for x in _bar(self.loader(images, batch_size), "predict",
                      self.progress if progress is None else progress):
            s, m, p = self.score_features(self.embed(x), k=k)
            scores.append(s.cpu())
            amaps.append(m.cpu())
            patches.append(p.cpu())
        out = torch.cat(scores).numpy(), torch.cat(amaps).numpy()
        return (*out, torch.cat(patches).numpy()) if return_patches else out

    def nearest(self, queries: torch.Tensor, k: int = 1, bank: torch.Tensor | None = None,
                bound=None, exclude=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, D) patch embeddings -> distances (P, k) and indices (P, k) of the k nearest bank
        patches: the fitted bank (faiss or exact search, bank.py), or another `bank` tensor.
        exclude=[(a, b), ...] leaves those rows of the fitted bank out."""
        if bank is None or (self.bank is not None and bank is self.bank.patches):
            return self.bank.nearest(queries, k, exclude, self.config.search)
        return knn.knn(queries, bank, k, bound=bound)

    # ---- save / load -------------------------------------------------------------------
    def save(self, path: str | Path, key: bytes | str | None = None) -> Path:
        """Write the fitted model to `path` (safetensors + JSON header, atomically); signed with
        HMAC-SHA256 when a `key` is given."""
        if self.bank is None:
            raise PatchCoreError("model: nothing to save, call fit() first")
        b = self.bank
        tensors = dict(patches=b.patches.float(), image=b.image.int(), pos=b.pos.int())
        return io.write_model_file(path, self.header(), tensors, key)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", progress: bool = True,
             key: bytes | str | None = None) -> PatchCore:
        """Rebuild a saved model; refuses backbone weights other than the bank was built with."""
        header, t = io.read_model_file(path, key)
        header = upgrade_header(header)
        model = cls(device=device, progress=progress, **checked_config(header, t, path))
        if model.weights_sha256 != header["weights_sha256"]:
            raise PatchCoreError(
                f"{path}: backbone weights ({model.weights_used}, sha256 "
                f"{model.weights_sha256[:12]}) differ from those the memory bank was built with "
                f"({header['weights']}, sha256 {header['weights_sha256'][:12]})")
        s = model.config.input_size
        check_embedding(t, header, tuple(model.embed(torch.zeros(1, 3, s, s)).shape[1:]), path)
        model.config.weights = header["config"]["weights"]
        model.bank = bank.Bank(*(t[n].to(model.device) for n in ("patches", "image", "pos")),
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


def _bar(loader, desc: str, show: bool):
    """A progress bar over batches."""
    return tqdm(loader, desc=desc, disable=not show, unit="batch")
