"""Live demo set-up: settings from the environment, the model, the app, and the `--prepare` step.

Configuration comes from environment variables (set by `make present`), so the notebook stays
one line (`from patchcore_lite.apps.live import app; app()`):

    PATCHCORE_LITE_DATA      an MVTec-layout category folder (default: embedded data, see below)
    PATCHCORE_LITE_CATEGORY  category of the embedded data set (default: hex_nut)
    PATCHCORE_LITE_MODEL     a saved .pclite model (default: fit once and cache, cache.py)
    PATCHCORE_LITE_WEIGHTS   weights when fitting: auto (default), imagenet, none or a file

Bad input (a folder not in MVTec layout, a model file that does not load) is shown as a readable
message (CSS class `pcl-error`), never a traceback.

`python -m patchcore_lite.apps.live --prepare` does the slow part before the server starts: it
generates the data, fits and caches the model if needed, and prints `export` lines (data folder,
resolved weights) with which the app reuses the cached model without asking the network again.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from ...errors import PatchCoreError
from .line import LiveDemo
from .start import ENV_START, PendingModel, read_start, write_start

ENV_DATA = "PATCHCORE_LITE_DATA"
ENV_CATEGORY = "PATCHCORE_LITE_CATEGORY"
ENV_MODEL = "PATCHCORE_LITE_MODEL"
ENV_WEIGHTS = "PATCHCORE_LITE_WEIGHTS"
DEFAULT_CATEGORY = "hex_nut"


@dataclass
class LiveConfig:
    """Where the live demo's data and model come from."""

    data: Path  # the category folder
    model: Path | None
    weights: str


def config_from_env() -> LiveConfig:
    """Settings from PATCHCORE_LITE_* variables (see module docstring); data generated on use."""
    data = os.environ.get(ENV_DATA, "").strip()
    model = os.environ.get(ENV_MODEL, "").strip()
    weights = os.environ.get(ENV_WEIGHTS, "").strip() or "auto"
    if data:
        folder = Path(data).expanduser()
    else:
        from ...datasets.cache import embedded_data
        from ...datasets.synth import CATEGORIES

        category = os.environ.get(ENV_CATEGORY, "").strip() or DEFAULT_CATEGORY
        if category not in CATEGORIES:
            raise PatchCoreError(f"{ENV_CATEGORY}: unknown category '{category}' "
                                 f"(one of {', '.join(CATEGORIES)})")
        folder = embedded_data() / category
    return LiveConfig(folder, Path(model).expanduser() if model else None, weights)


def load_live_model(cfg: LiveConfig):
    """The saved model if one is given, else the cached fit on <data>/train/good."""
    from ...data import test_samples
    from ...datasets.cache import cached_model
    from ...model import PatchCore

    test_samples(cfg.data)  # check the layout first: a clear message before any fitting
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'auto' fell back to random init: the page says so
        if cfg.model is not None:
            return PatchCore.load(cfg.model, progress=False)
        return cached_model(cfg.data, weights=cfg.weights, progress=False)


def build_app(category: str | Path | None = None, model=None, title: str | None = None,
              shuffle: bool = True, seed: int = 0):
    """The live demo widget (a `page.LiveApp`, an ipywidgets.VBox with `.step()`), or an error
    panel. category: MVTec-layout folder (default: environment, else embedded hex_nut);
    model: a fitted PatchCore, or a path to a saved one (default: environment, else cache)."""
    from . import page  # ipywidgets only when a page is built: --prepare and tests go without

    try:
        cfg = config_from_env()
        if category is not None:
            cfg.data = Path(category)
        if model is not None and not hasattr(model, "predict"):
            cfg.model, model = Path(model), None
        quick, pending = None, None
        if model is None and category is None and shuffle and seed == 0:
            quick = read_start(os.environ.get(ENV_START, ""), cfg) if os.environ.get(
                ENV_START) else None
        if quick is not None:  # the first frame from --prepare, the model loading behind it
            pending = PendingModel(lambda: load_live_model(cfg), quick["facts"])
            line = LiveDemo(pending, quick["parts"], shuffle=False)
            line.restore(quick["first"], quick["png"])
        else:
            model = load_live_model(cfg) if model is None else model
            line = LiveDemo.from_folder(cfg.data, model, shuffle=shuffle, seed=seed)
        name = cfg.data.name or str(cfg.data)
        shown = page.LiveApp(line, title or f"PatchCore live inspection: {name}")
        if pending is not None:
            pending.start()
        return shown
    except PatchCoreError as e:
        return page.error_panel(str(e))
    except Exception as e:  # noqa: BLE001 - an app shows a message; the log keeps the traceback
        traceback.print_exc(file=sys.stderr)
        return page.error_panel(f"unexpected error: {type(e).__name__}: {e}")


def app(**kwargs):
    """The notebook's (and Voila's) one call: build the app from the environment."""
    return build_app(**kwargs)


def prepare() -> int:
    """Before the server starts: data and model ready (fit once, then cached).

    Prints shell `export` lines for the app (`make present` evals them): the data folder as an
    absolute path, and the weights spec that `auto` resolved to (`none`, `imagenet` or a path),
    so the app finds the cached model without generating data or asking the network again.
    Bad input is reported on stderr but is not fatal: the page shows the same message."""
    import shlex

    weights = os.environ.get(ENV_WEIGHTS, "").strip() or "auto"
    try:
        cfg = config_from_env()
        t0 = time.perf_counter()
        print(f"live demo: data {cfg.data}", file=sys.stderr)
        print("live demo: " + (f"model {cfg.model}" if cfg.model else
                               "model fitted on train/good (first time only, then cached)"),
              file=sys.stderr)
        model = load_live_model(cfg)
        print(f"live demo: ready in {time.perf_counter() - t0:.1f} s: {model.describe()}",
              file=sys.stderr)
    except PatchCoreError as e:
        print(f"live demo: error: {e} (the page will show this message)", file=sys.stderr)
        return 0
    if cfg.model is None:
        weights = {"random": "none"}.get(model.weights_used, model.weights_used)
    print(f"export {ENV_DATA}={shlex.quote(str(cfg.data.resolve()))}")
    print(f"export {ENV_WEIGHTS}={shlex.quote(weights)}")
    start = _write_start_file(LiveConfig(cfg.data, cfg.model, weights), model)
    if start is not None:
        print(f"export {ENV_START}={shlex.quote(str(start))}")
    return 0


def _write_start_file(cfg: LiveConfig, model) -> Path | None:
    """The first frame for quick page loads (start.py), next to the cached models."""
    import hashlib

    from ...datasets.cache import home

    line = LiveDemo.from_folder(cfg.data, model)
    try:
        line.step()
    except PatchCoreError as e:  # the page shows it when it gets there
        print(f"live demo: no quick start: {e}", file=sys.stderr)
        return None
    name = hashlib.sha256(str(cfg.data.resolve()).encode()).hexdigest()[:12]
    return write_start(home() / "cache" / f"live-start-{name}.json", cfg, line)


def main(argv: list[str] | None = None) -> int:
    """python -m patchcore_lite.apps.live --prepare: data and model ready, env lines printed."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m patchcore_lite.apps.live", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepare", action="store_true",
                   help="generate data, fit and cache the model; print export lines")
    a = p.parse_args(argv)
    if a.prepare:
        return prepare()
    p.print_help()
    return 0
