"""Shared fixtures: a tiny MVTec-layout category of 64 px PNGs, written once per session."""

from __future__ import annotations

import os

# Tiny tensors: one thread is many times faster than several on small (CI) runners, where
# OpenMP thread synchronisation dominates. Set before torch is imported; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY = 64  # image side; the CLI tests use --resize 64 --crop 0
N_TRAIN, N_TEST_GOOD, N_TEST_BAD = 6, 2, 2


def _texture(rng: np.random.Generator) -> np.ndarray:
    """Smooth random colour texture, (TINY, TINY, 3) uint8."""
    coarse = rng.random((8, 8, 3)).astype(np.float32)
    img = np.kron(coarse, np.ones((TINY // 8, TINY // 8, 1), np.float32))
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
        img, mask = _texture(rng), np.zeros((TINY, TINY), np.uint8)
        y, x = 10 + 12 * i, 20
        img[y:y + 16, x:x + 16] = (255, 0, 255)  # a bright defect
        mask[y:y + 16, x:x + 16] = 255
        Image.fromarray(img).save(root / "test/broken" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "ground_truth/broken" / f"{i:03d}_mask.png")
    return root


@pytest.fixture(scope="session")
def tiny_category_ro(tmp_path_factory) -> Path:
    """A tiny MVTec-layout category shared by the session: do not modify it."""
    return make_category(tmp_path_factory.mktemp("tiny") / "widget")


@pytest.fixture
def tiny_category(tiny_category_ro, tmp_path) -> Path:
    """A private copy of the tiny category that a test may damage."""
    return Path(shutil.copytree(tiny_category_ro, tmp_path / "widget"))

