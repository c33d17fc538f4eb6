"""anomalib's PatchCore on one bench size; runs INSIDE the anomalib bench venv, never in the kit.

Started by bench_anomalib.run_worker with a JSON spec as argv[1]; prints one JSON line. It builds
`PatchcoreModel(pre_trained=False)`, loads the state dict of our backbone into its feature
extractor, embeds the same training images (our loader: same resize, crop and ImageNet
normalisation), times anomalib's KCenterGreedy and then our greedy coreset (sampling.select) on
the very same features (same process, same threads), measures the coverage of both, and scores
the test set. With their_selection=false (sizes where KCenterGreedy takes hours) anomalib scores
with a bank of our selection: only the predict time is then comparable.
"""

from __future__ import annotations

import json
import sys
import time

import torch
from anomalib.models.components import KCenterGreedy
from anomalib.models.image.patchcore.torch_model import PatchcoreModel

from patchcore_lite import sampling
from patchcore_lite.backbone import IMAGENET_MEAN, IMAGENET_STD
from patchcore_lite.bench.common import peak_rss_mb
from patchcore_lite.data import good_images, load_image, test_samples
from patchcore_lite.evaluation.protocol import load_masks, score_test_set

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def batches(paths: list, size: int, resize: int, crop: int):
    """Normalised (B, 3, S, S) batches of the images, loaded as patchcore-lite loads them."""
    for i in range(0, len(paths), size):
        x = torch.stack([load_image(p, resize, crop) for p in paths[i:i + size]])
        yield (x - MEAN) / STD


def build(spec: dict) -> PatchcoreModel:
    """anomalib's model with randomly initialised timm backbone, then our weights loaded in."""
    model = PatchcoreModel(layers=spec["layers"], backbone=spec["backbone"], pre_trained=False,
                           num_neighbors=spec["num_neighbors"])
    sd = torch.load(spec["state_dict"], map_location="cpu", weights_only=True)
    net = model.feature_extractor.feature_extractor
    missing, _ = net.load_state_dict(sd, strict=False)  # unexpected: layers past the last hook
    if missing:
        sys.exit(f"state dict does not fit anomalib's {spec['backbone']}: missing {missing[:3]}")
    return model


def fit(model: PatchcoreModel, spec: dict, train: list) -> tuple[torch.Tensor, dict]:
    """Embed the training images, select anomalib's coreset; features and timings."""
    model.train()
    t0 = time.perf_counter()
    for x in batches(train, spec["batch_size"], spec["resize"], spec["crop"]):
        model(x)
    features = torch.vstack(model.embedding_store)
    model.embedding_store.clear()
    t1 = time.perf_counter()
    if spec.get("their_selection", True):
        torch.manual_seed(spec["seed"])
        idx = torch.tensor(KCenterGreedy(embedding=features,
                                         sampling_ratio=spec["ratio"]).select_coreset_idxs())
    else:  # too slow at this size: anomalib's scoring timed on a bank of ours, same size
        idx, _ = ours_on_same(features, spec)
    t2 = time.perf_counter()
    model.memory_bank = features[idx].clone()
    return features, dict(idx=idx, embed_seconds=t1 - t0, selection_seconds=t2 - t1,
                          fit_seconds=t2 - t0, fit_peak_rss_mb=peak_rss_mb())


def ours_on_same(features: torch.Tensor, spec: dict) -> tuple[torch.Tensor, float]:
    """Our greedy coreset on anomalib's features: indices and seconds."""
    t0 = time.perf_counter()
    idx = sampling.select(features, sampling.n_keep(len(features), spec["ratio"]), "coreset",
                          spec["seed"], spec["proj_dim"], progress=False)
    return idx, time.perf_counter() - t0


@torch.no_grad()
def predict(model: PatchcoreModel, spec: dict, paths: list):
    """Image scores (N,), maps (N, S, S) and seconds, end to end (load + model)."""
    model.eval()
    scores, maps = [], []
    t0 = time.perf_counter()
    for x in batches(paths, spec["batch_size"], spec["resize"], spec["crop"]):
        out = model(x)
        scores.append(out.pred_score.reshape(-1))
        maps.append(out.anomaly_map.reshape(len(x), *x.shape[-2:]))
    return torch.cat(scores), torch.cat(maps), time.perf_counter() - t0


def main(spec: dict) -> dict:
    """Fit and score with anomalib; both coresets on its features. One JSON-safe dict."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    train = good_images(spec["data"])[:spec["n_train"]]
    samples = test_samples(spec["data"])
    model = build(spec)
    base_rss = peak_rss_mb()
    features, res = fit(model, spec, train)
    idx_a = res.pop("idx")
    if spec.get("their_selection", True):
        idx_o, ours_s = ours_on_same(features, spec)
        cov_a, cov_o = sampling.coverage(features, idx_a), sampling.coverage(features, idx_o)
    else:  # their bank is ours: nothing to compare but the scoring time
        idx_o, ours_s, cov_a, cov_o = idx_a, None, None, None
        res.update(selection_seconds=None, fit_seconds=None)
    scores, maps, pred_s = predict(model, spec, [s.path for s in samples])
    masks = load_masks(samples, spec["resize"], spec["crop"])
    figures = score_test_set(samples, scores.numpy(), maps.numpy(), masks)
    n = len(samples)
    return dict(
        res, n_train=len(train), n_test=n, n_patches=int(features.shape[0]),
        memory_bank_size=int(len(idx_a)), embed_images_per_s=len(train) / res["embed_seconds"],
        ours_selection_seconds=ours_s, ours_memory_bank_size=int(len(idx_o)),
        coverage=cov_a, ours_coverage=cov_o, predict_seconds=pred_s,
        predict_ms_per_image=1000 * pred_s / n, their_selection=spec.get("their_selection", True),
        peak_rss_mb=peak_rss_mb(), baseline_rss_mb=base_rss, pixel_auroc=figures["pixel_auroc"],
        image_auroc=figures["image_auroc"], torch=torch.__version__,
        torch_threads=torch.get_num_threads(), num_neighbors=spec["num_neighbors"])


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
