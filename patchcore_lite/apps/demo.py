"""The demo: generate the embedded data set, fit and evaluate each category, write a report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..evaluation.protocol import evaluate


def run_demo(out: Path, weights: str = "auto", device: str = "cpu", seed: int = 0,
             n_train: int | None = None, n_test: int | None = None) -> Path:
    """Write out/index.html with metrics, overlays, ROC curves and histograms per category."""
    from ..datasets.synth import generate
    from ..evaluation.report import write_report

    t0 = time.perf_counter()
    categories = generate(out / "data", seed=seed, n_train=n_train, n_test=n_test)
    results = []
    for cat in categories:
        ev = evaluate(cat, weights=weights, device=device, seed=seed)
        ev.model.save(out / "models" / f"{cat.name}.pclite")
        s = ev.summary
        print(f"{cat.name}: image AUROC {s['image_auroc']:.3f}, pixel AUROC "
              f"{s['pixel_auroc']:.3f}, PRO {s['pro']:.3f} [{ev.model.describe()}]",
              file=sys.stderr, flush=True)
        results.append(ev)
    index = write_report(out, results, "patchcore-lite demo (embedded data set)")
    print(f"report: {index} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return index
