"""What many test files share: the tiny model's settings, the tiny category, running the CLI.

Tiny means 64 px images kept whole (resize 64, crop 0) and a random-init backbone (weights none),
so a fit takes about a second. Import it as `from helpers import ...`: pytest puts tests/ on
the path; no test file imports from another.
"""

from __future__ import annotations

import os

# Tiny tensors: one thread is many times faster than several on small (CI) runners, where
# OpenMP thread synchronisation dominates. Set before torch is imported; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import contextlib
import io
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

TINY_SIDE = 64  # side of the tiny category's images, and the tiny model's resize
TINY_OPTS = dict(weights=None, resize=TINY_SIDE, crop=0, progress=False)  # every tiny model
TINY = dict(TINY_OPTS, sampling="random", sampling_ratio=0.5)  # the quickest fit with a bank
TINY_CORESET = dict(TINY_OPTS, sampling="coreset", sampling_ratio=0.25)  # the default sampling
TINY_ARGS = ["--weights", "none", "--resize", str(TINY_SIDE), "--crop", "0"]  # TINY_OPTS as flags
FAST = [*TINY_ARGS, "--sampling", "random"]  # `fit`/`evaluate` flags of a quick tiny model
N_TRAIN, N_TEST_GOOD, N_TEST_BAD = 6, 2, 2
DEFECT = 16  # side of the square defect painted on each broken test image


def _texture(rng: np.random.Generator) -> np.ndarray:
    """Smooth random colour texture, (TINY_SIDE, TINY_SIDE, 3) uint8."""
    coarse = rng.random((8, 8, 3)).astype(np.float32)
    img = np.kron(coarse, np.ones((TINY_SIDE // 8, TINY_SIDE // 8, 1), np.float32))
    img = 0.6 * img + 0.4 * rng.random(img.shape, dtype=np.float32)
    return (img * 255).astype(np.uint8)


def make_category(root: Path, seed: int = 0) -> Path:
    """root/train/good, root/test/{good,broken}, root/ground_truth/broken/*_mask.png."""
    rng = np.random.default_rng(seed)
    for sub in ("train/good", "test/good", "test/broken", "ground_truth/broken"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(N_TRAIN):
        Image.fromarray(_texture(rng)).save(root / "train/good" / f"{i:03d}.png")
    for i in range(N_TEST_GOOD):
        Image.fromarray(_texture(rng)).save(root / "test/good" / f"{i:03d}.png")
    for i in range(N_TEST_BAD):
        img, mask = _texture(rng), np.zeros((TINY_SIDE, TINY_SIDE), np.uint8)
        y, x = 10 + 12 * i, 20
        img[y:y + DEFECT, x:x + DEFECT] = (255, 0, 255)  # a bright defect
        mask[y:y + DEFECT, x:x + DEFECT] = 255
        Image.fromarray(img).save(root / "test/broken" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "ground_truth/broken" / f"{i:03d}_mask.png")
    return root


def run_subprocess(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m patchcore_lite ARGS` in a fresh interpreter (7-12 s of start-up with torch)."""
    return subprocess.run([sys.executable, "-m", "patchcore_lite", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def run_in_process(*args) -> subprocess.CompletedProcess:
    """The CLI's `main` in this process, stdout/stderr captured and uncaught exceptions printed
    as a traceback, as the interpreter would: the same result as run_subprocess, seconds sooner."""
    from patchcore_lite.apps.cli import main  # imports torch: only when a test runs the CLI

    out, err = io.StringIO(), io.StringIO()
    formatwarning = warnings.formatwarning  # main() replaces it
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main([str(a) for a in args])
            except SystemExit as e:  # argparse
                rc = e.code if isinstance(e.code, int) else 1
            except BaseException:  # what the interpreter would print
                traceback.print_exc()
                rc = 1
    finally:
        warnings.formatwarning = formatwarning
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


def hide_module(monkeypatch, module: str) -> None:
    """Make `import module` fail for the rest of a test, as on a machine without it."""
    import builtins

    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name == module:
            raise ImportError(f"No module named '{module}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
