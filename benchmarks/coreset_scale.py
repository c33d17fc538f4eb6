"""Coreset selection at scale: time and coverage of coreset (fast), coreset-exact and random.

Features come from the kit's backbone with random weights (weights=None: no download) on the
embedded data set's training images (generated on first use, cached), or from a saved (N, D)
float32 .npy (--features). For each size N (patches; the first N, whole images first), it times
random 10%, the fast default (`coreset_cells.greedy_cells`) and, up to --exact-max patches, the
exact greedy (`greedy_pruned`, coreset-exact), and reports coverage (largest distance from any
patch to its nearest kept patch, full feature space) and the ratio fast / exact. Above
--exact-max, the ratio is measured on a random subsample of --sub patches where the exact loop
is quick. The machine is shared: the load average before and after each timing is recorded.

    .venv/bin/python benchmarks/coreset_scale.py --sizes 39200,156800 [--json out.json]
    .venv/bin/python benchmarks/coreset_scale.py --backbone mobilenet_v2 \\
        --layers features.6,features.13 --sizes 156800,784000 --exact-max 156800
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from patchcore_lite import sampling


def features(a) -> torch.Tensor:
    """(N, D) float32 patch features for the largest size: from --features, else embedded."""
    if a.features and Path(a.features).is_file():
        return torch.from_numpy(np.load(a.features, mmap_mode="r")[:max(a.sizes)].copy())
    from patchcore_lite.bench.run import bench_data
    from patchcore_lite.data import good_images
    from patchcore_lite.model import PatchCore

    model = PatchCore(backbone=a.backbone, layers=tuple(a.layers.split(",")), weights=None,
                      progress=False)
    n_img = 1
    while True:  # patches per image depend on the backbone: probe one image first
        cat = bench_data(None, None, [n_img], 80, 0)
        f = model.features(good_images(cat)[:n_img])  # (n, h, w, D)
        per = f.shape[1] * f.shape[2]
        if n_img * per >= max(a.sizes):
            break
        n_img = -(-max(a.sizes) // per)
    x = f.reshape(-1, f.shape[-1])[:max(a.sizes)].contiguous()  # (N, D)
    if a.features:
        np.save(a.features, x.numpy())
    return x


def timed(fn, *args, **kw):
    """(result, wall seconds, CPU seconds of this process, load average before, after)."""
    load0, t0, c0 = os.getloadavg()[0], time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0, time.process_time() - c0, load0, os.getloadavg()[0]


def measure(x: torch.Tensor, ratio: float, exact: bool, cell_size: int, cover: bool) -> dict:
    """Selection times and (if `cover`) coverages of random, fast and (if `exact`) exact on x."""
    row = dict(n=len(x), dim=x.shape[1], bank=sampling.n_keep(len(x), ratio))
    m = row["bank"]
    sampling.CELL_SIZE = cell_size
    runs = [("random", lambda: sampling.select(x, m, "random")),
            ("coreset", lambda: sampling.select(x, m, "coreset-cells", progress=False))]
    if exact:
        runs.append(("coreset-exact", lambda: sampling.select(x, m, "coreset-exact",
                                                              progress=False)))
    for name, fn in runs:
        idx, wall, cpu, l0, l1 = timed(fn)
        row[name] = dict(seconds=wall, cpu_seconds=cpu, load_before=l0, load_after=l1,
                         coverage=sampling.coverage(x, idx) if cover else None)
        print(f"  {name:14s} {wall:7.1f} s (cpu {cpu:7.1f} s, load {l0:.1f}->{l1:.1f}) "
              f"coverage {row[name]['coverage'] or float('nan'):.4f}", flush=True)
    if exact and cover:
        row["coverage_ratio"] = row["coreset"]["coverage"] / row["coreset-exact"]["coverage"]
        row["time_ratio_vs_random"] = row["coreset"]["seconds"] / row["random"]["seconds"]
    return row


def main(argv: list[str] | None = None) -> int:
    """Parse options, measure each size, print a summary and write --json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="39200,156800", help="patch counts, comma-separated")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--layers", default="layer2,layer3")
    ap.add_argument("--features", default=None, help=".npy of (N, D) features: read, or written")
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--cell-size", type=int, default=sampling.CELL_SIZE)
    ap.add_argument("--exact-max", type=int, default=156800,
                    help="largest N for the exact greedy (784,000: 10-20 min on 2 cores)")
    ap.add_argument("--sub", type=int, default=78400, help="subsample for the exact ratio above it")
    ap.add_argument("--coverage-max", type=int, default=156800,
                    help="largest N whose coverage is measured (a kNN of all N patches against "
                         "the bank: minutes at 784,000)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    a.sizes = [int(s) for s in a.sizes.split(",")]
    x = features(a)  # (N, D)
    record = dict(command=" ".join(sys.argv), backbone=a.backbone, layers=a.layers,
                  ratio=a.ratio, cell_size=a.cell_size, threads=torch.get_num_threads(),
                  cpus=os.cpu_count(), sizes=[])
    for n in a.sizes:
        print(f"N = {n:,} patches x {x.shape[1]} dims", flush=True)
        row = measure(x[:n].contiguous(), a.ratio, n <= a.exact_max, a.cell_size,
                      n <= a.coverage_max)
        if n > a.exact_max:  # the exact ratio on a random subsample where the loop is quick
            sub = x[:n][torch.randperm(n, generator=torch.Generator().manual_seed(0))[:a.sub]]
            print(f"  subsample of {a.sub:,} patches:", flush=True)
            row["subsample"] = measure(sub.contiguous(), a.ratio, True, a.cell_size, True)
        record["sizes"].append(row)
        if a.json:
            Path(a.json).write_text(json.dumps(record, indent=2) + "\n")
    for r in record["sizes"]:
        s = r.get("subsample", r)
        print(f"N={r['n']:,}: coreset {r['coreset']['seconds']:.1f} s, random "
              f"{r['random']['seconds']:.2f} s, exact "
              f"{r['coreset-exact']['seconds'] if 'coreset-exact' in r else float('nan'):.1f} s; "
              f"coverage fast/exact {s.get('coverage_ratio', float('nan')):.3f} (at N={s['n']:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
