"""The embedded data set: deterministic synthetic inspection images in MVTec AD layout.

Textures are real photographs shipped with scikit-image (no download): random crops, tinted and
relit so that good images vary globally. The object is a rendered hex nut with pose and lighting
variation. Defects are local and blended, and keep every pixel inside the image's own range, so
global statistics (mean, std, min, max) cannot find them while local features can.

    brick    crack, stain (efflorescence), spall (rough crater)
    grass    bare_patch (soil), dry_spot (dead grass), debris (a grey object)
    gravel   oil, weed, foreign (a piece of brick)
    hex_nut  scratch, chip (missing piece), rust, dent

Layout (256 x 256 RGB PNGs; every defect lies inside the 224 centre crop):

    <root>/<category>/train/good/000.png
    <root>/<category>/test/good/000.png
    <root>/<category>/test/<defect>/000.png
    <root>/<category>/ground_truth/<defect>/000_mask.png   (uint8 0/255, same size)
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import data as skdata
from skimage import draw

from ..errors import PatchCoreError

SIZE = 256  # images are SIZE x SIZE RGB
BOX = (28, 228)  # every defect pixel lies in BOX x BOX: inside the 224 centre crop [16, 240)
N_TRAIN, N_TEST = 80, 48  # default images per category (a third of the test images are good)
# Image-to-image variation of the camera: relative amplitudes (uniform in +-value; ramp 0..value).
CAMERA = dict(gain=0.03, contrast=0.05, gamma=0.04, balance=0.01, ramp=0.1, noise=0.01)


@dataclass
class Scene:
    """A clean image before the camera, plus where defects may go and what lies beneath it."""

    img: np.ndarray  # (S, S, 3) float32 in [0, 1]
    face: np.ndarray  # (S, S) bool: where defect centres may fall
    light: np.ndarray  # (2,) unit (dy, dx) direction the light comes from
    restrict: np.ndarray | float = 1.0  # (S, S) in [0, 1]: where defect pixels may fall
    edge: np.ndarray | None = None  # (S, S) bool: centres of defects that break the outline
    background: np.ndarray | None = None  # (S, S, 3): what a missing piece reveals


class Defect(NamedTuple):
    """A defect type: `shape` draws where it is (alpha), `effects` change the pixels there."""

    shape: Callable[..., np.ndarray]  # (rng, scene) -> alpha (S, S) in [0, 1]
    effects: tuple[Callable[..., np.ndarray], ...]  # each (rng, scene, img, alpha) -> img


# ---- randomness and geometry ------------------------------------------------------------

def _rng(seed: int, *key: str | int) -> np.random.Generator:
    """A generator for one image, keyed so that counts never change other images' pixels."""
    words = [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in key]
    return np.random.default_rng([seed, *words])


@functools.cache
def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel row and column coordinates, (S, S) float32 each."""
    return np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


@functools.cache
def _box() -> np.ndarray:
    """1 inside BOX x BOX, 0 outside: the hard limit for defect pixels."""
    yy, xx = _grid()
    inside = (yy >= BOX[0]) & (yy < BOX[1]) & (xx >= BOX[0]) & (xx < BOX[1])
    return inside.astype(np.float32)


def _smooth_noise(rng: np.random.Generator, scale: float) -> np.ndarray:
    """Unit-std noise varying over about `scale` pixels (a coarse grid, upsampled bicubically)."""
    n = max(2, round(SIZE / scale))
    coarse = Image.fromarray(rng.standard_normal((n, n), dtype=np.float32), "F")
    fine = np.asarray(coarse.resize((SIZE, SIZE), Image.BICUBIC))
    return (fine - fine.mean()) / (fine.std() + 1e-6)


def _pick(rng: np.random.Generator, where: np.ndarray) -> np.ndarray:
    """A random (row, col) among the True pixels of `where`."""
    return np.array(np.unravel_index(rng.choice(np.flatnonzero(where)), where.shape), np.float32)


def _mix(img: np.ndarray, other: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend `other` over `img` with per-pixel opacity `alpha`."""
    return img + (other - img) * alpha[..., None]


# ---- defect shapes: (rng, scene) -> alpha -----------------------------------------------

def _blob(rng: np.random.Generator, scene: Scene, radius: tuple[float, float],
          rough: float = 0.35, on_edge: bool = False) -> np.ndarray:
    """An irregular soft-edged blob: a disc whose border is pushed in and out by smooth noise."""
    r = rng.uniform(*radius)
    cy, cx = _pick(rng, scene.edge if on_edge else scene.face)
    yy, xx = _grid()
    wobble = _smooth_noise(rng, max(r / 2, 4))
    d = np.hypot(yy - cy, xx - cx) / r + rough * (wobble - wobble[int(cy), int(cx)])
    return np.clip((1.0 - d) * r / 2.5, 0.0, 1.0)  # the centre is always fully inside


def _curve(rng: np.random.Generator, scene: Scene, length: tuple[float, float],
           width: tuple[float, float], bend: float = 0.25,
           strands: tuple[int, int] = (1, 1)) -> np.ndarray:
    """Anti-aliased random-walk line(s) of varying width: a crack, or parallel scratches."""
    steps = max(2, int(rng.uniform(*length) / 3))
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, bend, steps))
    step = 3 * np.stack([np.sin(heading), np.cos(heading)], 1)
    path = _pick(rng, scene.face) + np.cumsum(step, 0)
    across = np.array([-step[:, 1].mean(), step[:, 0].mean()]) / 3
    across /= np.linalg.norm(across) + 1e-6
    line = np.zeros((SIZE, SIZE), bool)
    for k in range(rng.integers(strands[0], strands[1] + 1)):
        lo, hi = sorted(rng.integers(0, steps, 2)) if k else (0, steps)
        pts = np.clip(np.round(path[lo:hi + 1] + across * 4 * k), 0, SIZE - 1).astype(int)
        for (y0, x0), (y1, x1) in zip(pts[:-1], pts[1:]):
            line[draw.line(y0, x0, y1, x1)] = True
    dist = ndimage.distance_transform_edt(~line).astype(np.float32)
    w = np.maximum(rng.uniform(*width) * (1 + 0.3 * _smooth_noise(rng, 24)), 1.0)
    return np.clip(w / 2 + 0.5 - dist, 0.0, 1.0)


# ---- defect effects: (rng, scene, img, alpha) -> img ------------------------------------

def _scale(rng: np.random.Generator, scene: Scene, img: np.ndarray, alpha: np.ndarray,
           factor: tuple[float, float], colour: tuple[float, float, float] = (1.0, 1.0, 1.0),
           mottle: float = 0.3, grain: float = 6.0) -> np.ndarray:
    """Darken (factor < 1) or brighten (> 1), optionally shifting hue, with a mottled strength.

    Stains, oil, rust, dry grass, cracks and scratches are all this with different shapes.
    """
    f = rng.uniform(*factor) ** (1 + mottle * _smooth_noise(rng, grain))
    return _mix(img, img * f[..., None] * np.asarray(colour, np.float32), alpha)


def _patch(rng: np.random.Generator, scene: Scene, img: np.ndarray, alpha: np.ndarray,
           source: str, level: tuple[float, float] = (1.0, 1.0), contrast: float = 1.0,
           colour: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Insert a foreign texture (another photograph) at a local brightness `level` x the mean."""
    crop = _crop(rng, source)
    inside = alpha > 0.5
    mean, std = img[inside].mean(0), img[inside].std(0)
    grey = (crop - crop[inside].mean()) / (crop[inside].std() + 1e-6)
    other = (grey[..., None] * std * contrast + mean * rng.uniform(*level))
    return _mix(img, other * np.asarray(colour, np.float32), alpha)


def _dent(rng: np.random.Generator, scene: Scene, img: np.ndarray, alpha: np.ndarray,
          depth: tuple[float, float]) -> np.ndarray:
    """A dent in shiny metal: a crescent of shade and highlight along the light direction."""
    gy, gx = np.gradient(ndimage.gaussian_filter(alpha, 2.5))
    slope = gy * scene.light[0] + gx * scene.light[1]
    shade = rng.uniform(*depth) * slope / (np.abs(slope).max() + 1e-6)
    return img * (1 + shade[..., None])


def _reveal(rng: np.random.Generator, scene: Scene, img: np.ndarray,
            alpha: np.ndarray) -> np.ndarray:
    """A missing piece: what lies beneath shows through."""
    return _mix(img, scene.background, alpha)


# ---- categories ---------------------------------------------------------------------------

_TINTS = {"brick": (1.0, 0.64, 0.52), "grass": (0.62, 0.86, 0.42), "gravel": (0.92, 0.88, 0.80)}
_BROWN, _RUST, _GREY = (1.0, 0.62, 0.45), (1.0, 0.7, 0.5), (1.2, 0.85, 1.6)
_REDDISH = (1.1, 0.75, 0.65)


def _d(shape: Callable[..., np.ndarray], *effects: Callable[..., np.ndarray]) -> Defect:
    return Defect(shape, effects)


_DEFECTS: dict[str, dict[str, Defect]] = {
    "brick": {
        "crack": _d(partial(_curve, length=(60, 130), width=(4.0, 8.0), bend=0.45),
                    partial(_scale, factor=(0.25, 0.45), mottle=0.8, grain=2),
                    partial(_dent, depth=(0.8, 1.2))),
        "stain": _d(partial(_blob, radius=(10, 28)),
                    partial(_scale, factor=(1.4, 1.8), colour=(0.95, 1.1, 1.25))),
        "spall": _d(partial(_blob, radius=(12, 26)),
                    partial(_patch, source="gravel", level=(1.2, 1.5), contrast=1.8),
                    partial(_dent, depth=(-0.4, -0.25))),
    },
    "grass": {
        "bare_patch": _d(partial(_blob, radius=(14, 30)),
                         partial(_patch, source="gravel", level=(0.35, 0.5), contrast=1.5,
                                 colour=_REDDISH)),
        "dry_spot": _d(partial(_blob, radius=(18, 36)),
                       partial(_scale, factor=(0.5, 0.7), colour=_BROWN)),
        "debris": _d(partial(_blob, radius=(10, 22), rough=0.2),
                     partial(_patch, source="brick", level=(1.3, 1.6), contrast=0.5,
                             colour=_GREY)),
    },
    "gravel": {
        "oil": _d(partial(_blob, radius=(10, 26)), partial(_scale, factor=(0.4, 0.6))),
        "weed": _d(partial(_blob, radius=(14, 28)),
                   partial(_patch, source="grass", level=(0.6, 0.8), contrast=1.2,
                           colour=(0.8, 1.15, 0.7))),
        "foreign": _d(partial(_blob, radius=(14, 28), rough=0.2),
                      partial(_patch, source="brick", level=(0.45, 0.65), contrast=0.6,
                              colour=_REDDISH), partial(_dent, depth=(0.3, 0.5))),
    },
    "hex_nut": {
        "scratch": _d(partial(_curve, length=(50, 90), width=(5.0, 8.0), bend=0.12),
                      partial(_scale, factor=(0.3, 0.5), mottle=0.8, grain=2)),
        "chip": _d(partial(_blob, radius=(12, 22), on_edge=True), _reveal),
        "rust": _d(partial(_blob, radius=(8, 18), rough=0.5),
                   partial(_scale, factor=(0.55, 0.8), colour=_RUST, mottle=0.6, grain=2)),
        "dent": _d(partial(_blob, radius=(12, 22), rough=0.05), partial(_scale, factor=(0.75, 0.9)),
                   partial(_dent, depth=(0.6, 0.9))),
    },
}
CATEGORIES: tuple[str, ...] = tuple(_DEFECTS)
DEFECT_TYPES: dict[str, tuple[str, ...]] = {c: tuple(d) for c, d in _DEFECTS.items()}


@functools.cache
def _photo(name: str) -> np.ndarray:
    """A 512 x 512 grayscale photograph shipped with scikit-image, as float32 in [0, 1]."""
    return getattr(skdata, name)().astype(np.float32) / 255.0


def _crop(rng: np.random.Generator, name: str) -> np.ndarray:
    """A random SIZE x SIZE window of a photograph, randomly mirrored."""
    photo = _photo(name)
    y, x = rng.integers(0, photo.shape[0] - SIZE + 1, 2)
    crop = photo[y:y + SIZE, x:x + SIZE]
    return crop[::-1] if rng.random() < 0.5 else crop[:, ::-1] if rng.random() < 0.5 else crop


def _light(rng: np.random.Generator, base_deg: float, spread_deg: float) -> np.ndarray:
    """A unit (dy, dx) light direction around `base_deg`."""
    a = np.deg2rad(base_deg + rng.uniform(-spread_deg, spread_deg))
    return np.array([np.sin(a), np.cos(a)], np.float32)


def _texture_scene(rng: np.random.Generator, category: str) -> Scene:
    """A tinted crop of the category's photograph; defects may go anywhere inside the box."""
    tint = np.asarray(_TINTS[category]) * (1 + rng.normal(0, 0.03, 3))
    img = _crop(rng, category)[..., None] * tint.astype(np.float32)
    yy, xx = _grid()
    lo, hi = BOX[0] + 30, BOX[1] - 30
    face = (yy >= lo) & (yy < hi) & (xx >= lo) & (xx < hi)
    return Scene(img, face, _light(rng, 0, 180))


def _hexagon_sd(y: np.ndarray, x: np.ndarray, apothem: float, angle: float) -> np.ndarray:
    """Signed distance (pixels, negative inside) to a regular hexagon centred at the origin."""
    normals = angle + np.arange(6) * np.pi / 3
    return np.max([x * math.cos(a) + y * math.sin(a) for a in normals], axis=0) - apothem


def _nut_metal(rng: np.random.Generator, y: np.ndarray, x: np.ndarray, r: np.ndarray,
               apothem: float, hole: float, light: np.ndarray) -> np.ndarray:
    """Shaded steel: a lit flat face with turning rings, a conical chamfer and a bevelled hole."""
    ny, nx = y / np.maximum(r, 1), x / np.maximum(r, 1)
    facing = ny * light[0] + nx * light[1]  # radial normal towards the light
    rings = np.interp(r, np.arange(130), rng.normal(0, 1, 130)).astype(np.float32)
    face = rng.uniform(0.58, 0.62) + 0.08 * facing * r / apothem + 0.025 * rings
    chamfer = np.clip((r - 0.97 * apothem) / 2, 0, 1)
    bevel = np.clip((hole + 5 - r) / 2, 0, 1)
    shade = face + chamfer * (0.22 * facing - 0.05) - bevel * (0.25 * facing + 0.05)
    return shade[..., None] * np.array([0.96, 0.98, 1.0], np.float32)


def _nut_alpha(y: np.ndarray, x: np.ndarray, apothem: float, angle: float, hole: float,
               soft: float = 1.0) -> np.ndarray:
    """Coverage of a nut centred at the origin; `soft` > 1 blurs the outline (for its shadow)."""
    outline = np.clip(0.5 - _hexagon_sd(y, x, apothem, angle) / soft, 0, 1)
    return outline * np.clip(0.5 + (np.hypot(y, x) - hole) / soft, 0, 1)


def _nut_scene(rng: np.random.Generator) -> Scene:
    """A hex nut on a matte surface: shifted, slightly rotated, lit from a varying direction."""
    yy, xx = _grid()
    y, x = yy - 128 - rng.uniform(-4, 4), xx - 128 - rng.uniform(-4, 4)
    r = np.hypot(y, x)
    apothem, angle, light = rng.uniform(70, 74), rng.uniform(-0.1, 0.1), _light(rng, 225, 20)
    hole = rng.uniform(0.42, 0.45) * apothem
    alpha = _nut_alpha(y, x, apothem, angle, hole)
    shadow = _nut_alpha(y + 8 * light[0], x + 8 * light[1], apothem, angle, hole, soft=10)
    ground = (rng.uniform(0.26, 0.34) + 0.025 * _smooth_noise(rng, 40)
              + 0.012 * _smooth_noise(rng, 2))
    bg = (ground * (1 - 0.45 * shadow))[..., None] * np.array([0.9, 0.95, 1.0], np.float32)
    img = _mix(bg, _nut_metal(rng, y, x, r, apothem, hole, light), alpha)
    face = (r > hole + 10) & (r < apothem - 10)
    edge = (alpha > 0.5) & (r > apothem) & (_hexagon_sd(y, x, apothem, angle) > -4)
    return Scene(img, face, light, restrict=alpha, edge=edge, background=bg)


# ---- images -------------------------------------------------------------------------------

def _scene(rng: np.random.Generator, category: str) -> Scene:
    """The clean scene of one image of `category`."""
    return _nut_scene(rng) if category == "hex_nut" else _texture_scene(rng, category)


@functools.cache
def _sensor_noise() -> np.ndarray:
    """A fixed field of pixel noise; each image takes a random window (cheaper than drawing)."""
    return np.random.default_rng(0).standard_normal((2 * SIZE, 2 * SIZE, 3), dtype=np.float32)


def _camera(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Image-to-image variation: gain, contrast, gamma, white balance, shading ramp, noise."""
    v = CAMERA
    yy, xx = _grid()
    a = rng.uniform(0, 2 * math.pi)
    ramp = 1 + rng.uniform(0, v["ramp"]) * ((yy * math.sin(a) + xx * math.cos(a)) / SIZE - 0.5)
    balance = (1 + rng.normal(0, v["balance"], 3)).astype(np.float32)
    m = img.mean()
    img = (img - m) * (1 + rng.uniform(-1, 1) * v["contrast"]) + m
    img = img * (1 + rng.uniform(-1, 1) * v["gain"]) * ramp[..., None]
    img = np.clip(img * balance, 0, 1) ** np.float32(1 + rng.uniform(-1, 1) * v["gamma"])
    y, x = rng.integers(0, SIZE, 2)
    img = img + v["noise"] * _sensor_noise()[y:y + SIZE, x:x + SIZE]
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def _defect(rng: np.random.Generator, scene: Scene,
            defect: Defect) -> tuple[np.ndarray, np.ndarray]:
    """Apply one defect; return (image, mask). Changed pixels stay within the clean image's
    1-99% range, so that no global statistic (min, max, ...) gives the defect away."""
    alpha = (defect.shape(rng, scene) * scene.restrict * _box()).astype(np.float32)
    img = scene.img
    for effect in defect.effects:
        img = effect(rng, scene, img, alpha)
    lo, hi = np.quantile(scene.img.reshape(-1, 3), [0.01, 0.99], axis=0)
    return np.where(img != scene.img, np.clip(img, lo, hi), scene.img), alpha > 0.5


def _save(img: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, compress_level=1)  # PNG: lossless and deterministic


def _split_test(n_test: int, n_defects: int) -> list[int]:
    """Counts of good then each defect type: about a third good, the rest shared out evenly."""
    n_good = max(1, min(round(n_test / 3), n_test - n_defects))
    q, extra = divmod(n_test - n_good, n_defects)
    return [n_good] + [q + (i < extra) for i in range(n_defects)]


def _jobs(category: str, n_train: int, n_test: int) -> list[tuple[str, str, int]]:
    """(split, kind, index) of every image of a category; kind is "good" or a defect type."""
    kinds = ("good", *DEFECT_TYPES[category])
    test = [("test", k, i) for k, n in zip(kinds, _split_test(n_test, len(kinds) - 1))
            for i in range(n)]
    return [("train", "good", i) for i in range(n_train)] + test


def _write(cat_dir: Path, seed: int, split: str, kind: str, i: int) -> None:
    """Render and save one image (and its mask), from its own random stream."""
    category = cat_dir.name
    rng = _rng(seed, category, split, kind, i)
    scene = _scene(rng, category)
    img = scene.img
    if kind != "good":
        img, mask = _defect(rng, scene, _DEFECTS[category][kind])
        _save(mask.astype(np.uint8) * 255, cat_dir / "ground_truth" / kind / f"{i:03d}_mask.png")
    _save(_camera(rng, img), cat_dir / split / kind / f"{i:03d}.png")


STAMP = ".patchcore-lite-synth"  # in each category the generator wrote: it may replace it
LEGACY_STAMPS = (".bench.json",)  # older kit stamps in a category; the data root's .complete


def kit_made(cat_dir: Path) -> bool:
    """The category folder holds no data, or data this generator wrote (it carries a stamp)."""
    if not any((cat_dir / sub).exists() for sub in ("train", "test", "ground_truth")):
        return True
    return any((cat_dir / s).is_file() for s in (STAMP, *LEGACY_STAMPS)) or (
        cat_dir.parent / ".complete").is_file()


def _claim(dirs: list[Path], force: bool) -> None:
    """Refuse to replace a category the user made (unless forced); then clear the kit's own."""
    for d in dirs:
        if not force and not kit_made(d):
            raise PatchCoreError(f"{d}: holds data the kit did not generate; refusing to replace "
                                 "it (choose another folder, or --force)")
    for d in dirs:
        for sub in ("train", "test", "ground_truth"):
            shutil.rmtree(d / sub, ignore_errors=True)
        d.mkdir(parents=True, exist_ok=True)
        (d / STAMP).write_text("written by patchcore_lite.datasets.synth.generate\n")


def generate(root: str | Path, seed: int = 0, n_train: int | None = None,
             n_test: int | None = None, categories: Sequence[str] | None = None,
             force: bool = False) -> list[Path]:
    """Write the embedded data set under `root` (MVTec AD layout) and return the category dirs.

    Same seed, same bytes. Each image has its own random stream keyed by (seed, category, split,
    defect type, index), so changing n_train or n_test leaves the other images unchanged.
    Existing train/test/ground_truth folders of categories the generator wrote are replaced;
    a category folder with other data is refused unless `force`.
    """
    n_train = N_TRAIN if n_train is None else int(n_train)
    n_test = N_TEST if n_test is None else int(n_test)
    categories = CATEGORIES if categories is None else tuple(categories)
    if seed < 0:
        raise PatchCoreError(f"--seed: must be >= 0, got {seed}")
    if n_train < 1:
        raise PatchCoreError(f"--n-train: must be >= 1, got {n_train}")
    for c in categories:
        if c not in _DEFECTS:
            raise PatchCoreError(f"category: unknown '{c}' (one of {', '.join(CATEGORIES)})")
        if n_test < len(_DEFECTS[c]) + 1:
            raise PatchCoreError(f"--n-test: need >= {len(_DEFECTS[c]) + 1} for '{c}' "
                                 f"(good + one per defect type), got {n_test}")
    dirs = [Path(root) / c for c in categories]
    _claim(dirs, force)
    for name in _TINTS:
        _photo(name)  # load the photographs once, before the threads start
    jobs = [(d, seed, *job) for d in dirs for job in _jobs(d.name, n_train, n_test)]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda job: _write(*job), jobs))  # list(): re-raise any error
    return dirs
