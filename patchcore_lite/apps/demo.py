"""The demo: generate the embedded data set, fit and evaluate each category, write a report."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from safetensors import safe_open

from ..errors import PatchCoreError
from ..evaluation.protocol import evaluate


def kit_report(out: Path) -> bool:
    """`out` holds no report, or one the kit wrote (its results.json has the kit's summaries)."""
    if not (out / "index.html").exists() and not (out / "results.json").exists():
        return True
    try:
        results = json.loads((out / "results.json").read_text())
        return all(isinstance(v, dict) and "evaluated_at" in v for v in results.values())
    except (OSError, ValueError, AttributeError):
        return False


def kit_model(path: Path) -> bool:
    """`path` is free, or a model file with the kit's header (so the demo may replace it)."""
    if not path.exists():
        return True
    try:
        with safe_open(str(path), framework="pt") as f:
            return "patchcore_lite" in (f.metadata() or {})
    except Exception:  # noqa: BLE001 - anything unreadable is not ours to overwrite
        return False


def check_out(out: Path, categories, force: bool) -> None:
    """Refuse (unless forced) to overwrite a report or model files the kit did not write."""
    if force:
        return
    if out.exists() and not out.is_dir():
        raise PatchCoreError(f"--out: {out} is a file, not a folder")
    if not kit_report(out):
        raise PatchCoreError(f"--out: {out} holds a report the kit did not write; refusing to "
                             "overwrite it (choose another folder, or --force)")
    for c in categories:
        if not kit_model(out / "models" / f"{c}.pclite"):
            raise PatchCoreError(f"--out: {out / 'models' / f'{c}.pclite'} is not a model the "
                                 "kit wrote; refusing to overwrite it (or --force)")


def run_demo(out: Path, weights: str = "auto", device: str = "cpu", seed: int = 0,
             n_train: int | None = None, n_test: int | None = None, force: bool = False) -> Path:
    """Write out/index.html with metrics, overlays, ROC curves and histograms per category.

    Replaces only what the kit wrote there before (data, models, report), unless `force`."""
    from ..datasets.synth import CATEGORIES, generate
    from ..evaluation.report import write_report

    t0 = time.perf_counter()
    check_out(out, CATEGORIES, force)
    categories = generate(out / "data", seed=seed, n_train=n_train, n_test=n_test, force=force)
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
