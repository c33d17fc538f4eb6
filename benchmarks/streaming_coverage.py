"""Streaming fit against the in-memory fit on the same images: time and coverage of each bank.

A fit streams when the training features pass bank.STREAM_BYTES: each chunk of images is
subsampled on its own (a composable coreset) and the chunks' picks are joined. This fits the
same training images twice, once in memory (STREAM_BYTES raised) and once streamed in --chunks
chunks, and reports fit time, bank size and coverage (largest distance from any training patch
to its nearest bank patch, full feature space, over every training patch) of both. Not a timed
test: run it by hand.

    .venv/bin/python benchmarks/streaming_coverage.py [--n-train 1000] [--backbone resnet18]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from patchcore_lite import bank, sampling
from patchcore_lite.bench.run import bench_data
from patchcore_lite.data import good_images
from patchcore_lite.model import PatchCore


def fit(kwargs: dict, train: list, stream_bytes: float, chunk_bytes: int) -> tuple:
    """A fitted model with the bank's streaming limits set as given, and its fit seconds."""
    old = bank.STREAM_BYTES, bank.CHUNK_BYTES
    bank.STREAM_BYTES, bank.CHUNK_BYTES = stream_bytes, chunk_bytes
    try:
        model = PatchCore(progress=False, **kwargs)
        t = time.perf_counter()
        model.fit(train)
        return model, time.perf_counter() - t
    finally:
        bank.STREAM_BYTES, bank.CHUNK_BYTES = old


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="category folder (default: embedded, generated)")
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--layers", default="layer2,layer3")
    ap.add_argument("--sampling", default="coreset")
    ap.add_argument("--chunks", type=int, default=3, help="chunks of the streamed fit")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    train = good_images(bench_data(a.data, None, [a.n_train], 40, seed=0))[:a.n_train]
    kwargs = dict(backbone=a.backbone, layers=tuple(a.layers.split(",")), weights=None,
                  sampling=a.sampling)
    whole, t_whole = fit(kwargs, train, float("inf"), bank.CHUNK_BYTES)
    x = whole.features(train, progress=False).reshape(-1, whole.info["embed_dim"])  # (N, D)
    per_chunk = x.numel() * 4 // a.chunks + x.shape[1] * 4 * 784  # bytes: --chunks chunks
    streamed, t_stream = fit(kwargs, train, 0, per_chunk)
    rows = {}
    for name, model, secs in (("in memory", whole, t_whole), ("streamed", streamed, t_stream)):
        assert bool(model.info.get("streamed")) == (name == "streamed")
        cover = sampling.coverage(x, model_rows(model, x))
        rows[name] = dict(fit_seconds=secs, bank=len(model.bank.patches), coverage=cover,
                          selection=model.info["selection"])
        print(f"{name:>9}: fit {secs:.1f} s, bank {rows[name]['bank']:,}, "
              f"selection {rows[name]['selection']}, coverage {cover:.4f}", flush=True)
    ratio = rows["streamed"]["coverage"] / rows["in memory"]["coverage"]
    print(f"coverage streamed / in memory: {ratio:.3f} ({a.n_train} images, {len(x):,} patches, "
          f"{a.backbone}, {a.sampling}, {a.chunks} chunks)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(vars(a), runs=rows, coverage_ratio=ratio), f, indent=2)
    return 0


def model_rows(model, x):
    """Indices into x (N, D; the training patches in image order) of the model's bank rows."""
    b = model.bank
    hw = b.grid[0] * b.grid[1]
    idx = b.image.long() * hw + b.pos.long()  # (M,)
    assert (x[idx] - b.patches).abs().max() < 1e-4  # the same patches, found again
    return idx


if __name__ == "__main__":
    sys.exit(main())
