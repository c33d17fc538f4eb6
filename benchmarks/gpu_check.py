"""CUDA against CPU, then GPU throughput: the one script to run when a GPU is lent.

    .venv/bin/python benchmarks/gpu_check.py [--data CATEGORY_DIR] [--n-train 50] [--json FILE]

1. Correctness: fit on the CPU, copy the bank to the GPU, score the test images on both; image
   scores within 1e-2 relative, the same image AUROC within 0.002, coreset and kNN on the GPU
   against the CPU on the same features. 2. Throughput (images/s, resnet18 at 224 px, 10% bank):
   backbone + embedding alone, and end to end (+ exact 1-NN, map, blur) on batches already on
   the GPU, fp32 and TF32; predict from image files with and without --workers decoding
   threads. Prints a table and exits non-zero on a failed check. `--device cpu`
   runs the same script on the CPU (a smoke test, with small sizes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from patchcore_lite import PatchCore, decode, sampling  # noqa: E402
from patchcore_lite.data import good_images, load_image, test_samples  # noqa: E402

# Only torch, torchvision, numpy and the kit's core (PIL, safetensors, tqdm) are imported, so the
# script runs on a lent GPU machine with its own Python and no package index: no scikit-learn,
# scikit-image or matplotlib. Without --data it writes a small random category with numpy.


def auroc(labels, scores) -> float:
    """ROC AUC by ranks (Mann-Whitney U), ties counted one half."""
    import numpy as np

    labels, scores = np.asarray(labels, bool), np.asarray(scores, np.float64)
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()
    return float(greater / (len(pos) * len(neg)))


def random_category(root: Path, n_train: int, size: int = 256, seed: int = 0) -> Path:
    """root/train/good, root/test/{good,spot}, root/ground_truth/spot: smooth random textures
    with bright square defects (numpy and PIL only)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)

    def texture():
        coarse = rng.random((16, 16, 3))
        img = np.kron(coarse, np.ones((size // 16, size // 16, 1)))
        return (255 * (0.7 * img + 0.3 * rng.random(img.shape))).astype(np.uint8)

    for sub in ("train/good", "test/good", "test/spot", "ground_truth/spot"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        Image.fromarray(texture()).save(root / "train/good" / f"{i:03d}.png")
    for i in range(20):
        Image.fromarray(texture()).save(root / "test/good" / f"{i:03d}.png")
        img, mask = texture(), np.zeros((size, size), np.uint8)
        y, x = rng.integers(16, size - 48, 2)
        img[y:y + 32, x:x + 32] = (255, 0, 255)
        mask[y:y + 32, x:x + 32] = 255
        Image.fromarray(img).save(root / "test/spot" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "ground_truth/spot" / f"{i:03d}_mask.png")
    return root


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(model: PatchCore, batch: torch.Tensor, repeats: int, full: bool) -> float:
    """Images per second of embed (and, if full, kNN + map) on a batch already on the device."""
    def run():
        with torch.inference_mode():
            f = model.embed(batch)  # (B, h, w, D)
            if full:
                model.score_features(f)  # kNN, image score, map and blur
    run()
    sync(batch.device)
    t = time.perf_counter()
    for _ in range(repeats):
        run()
    sync(batch.device)
    return repeats * len(batch) / (time.perf_counter() - t)


def files_per_s(model: PatchCore, paths: list, workers: int) -> float:
    """Images per second of predict from image files (decoding included) with `workers`
    decoding threads (0: decoding and compute take turns)."""
    model.workers = workers
    model.predict(paths[:2])  # warm-up
    t0 = time.perf_counter()
    model.predict(paths)
    return len(paths) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="category folder (default: a generated random "
                    "category, numpy only)")
    ap.add_argument("--n-train", type=int, default=50)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", default=None)
    ap.add_argument("--workers", type=int, default=None, help="decoding threads of predict "
                    "from files (default: half the CPUs)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured")
        return 2
    tmp_data = tempfile.TemporaryDirectory()
    data = Path(a.data) if a.data else random_category(Path(tmp_data.name) / "random", a.n_train)
    train, samples = good_images(data)[:a.n_train], test_samples(data)
    labels, paths = [s.label for s in samples], [s.path for s in samples]
    out, ok = dict(device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"), True

    cpu = PatchCore(weights=None, progress=False).fit(train)
    with tempfile.TemporaryDirectory() as tmp:  # the user's path: save on a CPU, load on the GPU
        gpu = PatchCore.load(cpu.save(Path(tmp) / "m.pclite"), device=a.device, progress=False)
    s_cpu, m_cpu = cpu.predict(paths)
    s_gpu, m_gpu = gpu.predict(paths)
    rel = float(abs(s_gpu - s_cpu).max() / abs(s_cpu).max())
    auc_cpu, auc_gpu = auroc(labels, s_cpu), auroc(labels, s_gpu)
    out.update(score_max_rel_diff=rel, auroc_cpu=auc_cpu, auroc_gpu=auc_gpu,
               map_max_abs_diff=float(abs(m_gpu - m_cpu).max()))
    ok &= rel <= 1e-2 and abs(auc_gpu - auc_cpu) <= 0.002

    feats = cpu.features(train[:10]).reshape(-1, cpu.bank.patches.shape[1])  # (7840, D)
    m = sampling.n_keep(len(feats), 0.1)
    core_cpu = sampling.select(feats, m, "coreset", progress=False)
    core_gpu = sampling.select(feats.to(dev), m, "coreset", progress=False)
    cov_cpu, cov_gpu = sampling.coverage(feats, core_cpu), sampling.coverage(feats, core_gpu)
    out.update(coreset_same_first_100=core_cpu[:100].tolist() == core_gpu[:100].tolist(),
               coverage_cpu=cov_cpu, coverage_gpu=cov_gpu)
    ok &= cov_gpu <= 1.01 * cov_cpu

    imgs = torch.stack([load_image(p, 256, 224) for p in paths])  # (N, 3, 224, 224)
    batch = imgs.repeat(a.batch // len(imgs) + 1, 1, 1, 1)[:a.batch].to(dev)
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        tag = "tf32" if tf32 else "fp32"
        out[f"embed_images_per_s_{tag}"] = throughput(gpu, batch, a.repeats, full=False)
        out[f"end_to_end_images_per_s_{tag}"] = throughput(gpu, batch, a.repeats, full=True)
    for w in sorted({0, a.workers if a.workers is not None else decode.default_workers()}):
        out[f"files_images_per_s_workers{w}"] = files_per_s(gpu, paths, w)
    out["ok"] = bool(ok)
    for k, v in out.items():
        print(f"{k:32s} {v:.4f}" if isinstance(v, float) else f"{k:32s} {v}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
