"""Peak memory of fitting 1,000 images: resnet18, 384-dim patches (no --embed-dim), 224 px.

784,000 patches with random 10% sampling must fit in under 4 GB peak RSS. The fit (and a predict
of the test set) runs in a fresh subprocess, so the ru_maxrss printed is that run's alone.
Scoring holds at most one query block x bank block of distances (knn.knn: 2,048 x 16,384 float32,
128 MiB) whatever the bank size. Not a timed test: run it by hand or with `make bench-memory`.

    .venv/bin/python benchmarks/memory_1000.py [--n-train 1000] [--sampling random]
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys

from patchcore_lite import knn
from patchcore_lite.bench.run import bench_data, run_size


def block_mib() -> float:
    """Largest distance block knn.knn holds: its default q_block x b_block float32."""
    p = inspect.signature(knn.knn).parameters
    return p["q_block"].default * p["b_block"].default * 4 / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="category folder (default: embedded, generated)")
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=80)
    ap.add_argument("--sampling", default="random")
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--limit-mb", type=float, default=4096)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    data = bench_data(a.data, None, [a.n_train], a.n_test, seed=0)
    model = dict(backbone="resnet18", layers="layer2,layer3", weights=None, sampling=a.sampling,
                 sampling_ratio=a.ratio, embed_dim=None)
    r = run_size(dict(data=str(data), n_train=a.n_train, model=model, threads=a.threads))
    print(f"fit of {r['n_train']} images ({r['n_patches']:,} patches x {r['embed_dim']} dims, "
          f"{a.sampling} {a.ratio:g} -> bank {r['memory_bank_size']:,}) "
          f"in {r['fit_seconds']:.0f} s")
    print(f"peak RSS (ru_maxrss): after fit {r['fit_peak_rss_mb']:.0f} MB, after predict of "
          f"{r['n_test']} test images {r['peak_rss_mb']:.0f} MB (torch + model alone: "
          f"{r['baseline_rss_mb']:.0f} MB); limit {a.limit_mb:.0f} MB")
    print(f"largest kNN distance block: {block_mib():.0f} MiB (fixed, whatever the bank size)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(r, limit_mb=a.limit_mb, knn_block_mib=block_mib()), f, indent=2)
    ok = r["peak_rss_mb"] <= a.limit_mb
    print("OK" if ok else "OVER THE LIMIT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
