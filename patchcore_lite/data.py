"""Images in, tensors out: MVTec AD layout folders, plain image folders, resize and crop.

Layout: <cat>/train/good/*, <cat>/test/<defect>/*, <cat>/ground_truth/<defect>/<stem>_mask.png.
Masks go through the same resize and crop as images (nearest), so pixels line up.

Decoding goes through numpy, so every bit depth keeps its values: 8-bit / 255, 16-bit / 65535
(PIL modes I;16*, and mode I when its values fit 16 bits), 1-bit as 0/1, palette, CMYK and
YCbCr via RGB; alpha is dropped for images. EXIF orientation is applied to images and masks.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, features

from . import decode
from .errors import PatchCoreError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff") + (
    (".webp",) if features.check("webp") else ())
ORIENTATION = 0x0112  # EXIF tag; values 5-8 swap width and height
_NATIVE = {"1", "L", "LA", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
_HINT = "pass image paths, a folder, PIL images, or a (N, 3, H, W) tensor"


@dataclass(frozen=True)
class Sample:
    """One test image: label 1 = defective; mask None when the ground truth is unknown."""

    path: Path
    defect: str
    label: int
    mask: Path | None


# ---- folders -----------------------------------------------------------------------------
def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTS


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files of a folder (not recursive); an error naming it if missing or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PatchCoreError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_EXTS and (p.is_file() or _dangling(p)))
    if not files:
        raise PatchCoreError(f"{folder}: no images ({', '.join(IMAGE_EXTS)}) in this folder")
    return files


def walk_images(paths: list[str | Path]) -> list[Path]:
    """Files as given, folders walked recursively (sorted, symlink-loop safe, skipping
    ground_truth and dot-entries); paths keep the prefix the user typed."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            found = sorted(_walk(p, set()))
            if not found:
                raise PatchCoreError(f"{p}: no images ({', '.join(IMAGE_EXTS)}) in this "
                                     "folder or its subfolders")
            out += found
        else:
            raise PatchCoreError(f"{p}: no such file or folder")
    return out


def _walk(folder: Path, seen: set[str]) -> Iterator[Path]:
    real = os.path.realpath(folder)
    if real in seen:  # a symlink loop, or a second link to a folder already walked
        return
    seen.add(real)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        raise PatchCoreError(f"{folder}: cannot list folder ({e.strerror or e})")
    for e in entries:
        if e.name.startswith("."):
            continue
        if e.is_dir() and e.name.lower() != "ground_truth":
            yield from _walk(folder / e.name, seen)
        elif e.is_file() and _is_image_name(e.name):
            yield folder / e.name
        elif _is_image_name(e.name):
            _dangling(folder / e.name)


def _dangling(path: Path) -> bool:
    """Warn (never fail) that an image-named symlink whose target is missing is skipped."""
    if path.is_symlink() and not path.exists():
        warnings.warn(f"{path}: dangling symlink (its target is missing); skipped", stacklevel=3)
    return False


def good_images(folder: str | Path) -> list[Path]:
    """Training images: <folder>/train/good when the folder is a category, else the folder."""
    folder = Path(folder)
    sub = folder / "train" / "good"
    return list_images(sub if sub.is_dir() else folder)


def test_samples(category: str | Path) -> list[Sample]:
    """All test images of an MVTec-layout category with labels and mask paths.

    `test/good` in any letter case is the good class (defect "good", label 0, no mask)."""
    cat = Path(category)
    if not cat.is_dir():
        raise PatchCoreError(f"{cat}: folder not found")
    test = cat / "test"
    if not (cat / "train" / "good").is_dir() or not test.is_dir():
        raise PatchCoreError(f"{cat}: not an MVTec AD layout category "
                             f"(expected {cat}/train/good and {cat}/test/<defect>)")
    gt = _subdirs(_child_dir(cat, "ground_truth"))
    _warn_good_masks(gt)
    samples = []
    for d in sorted(p for p in test.iterdir() if p.is_dir() and not p.name.startswith(".")):
        good = d.name.lower() == "good"
        masks = {} if good else _mask_index(gt.get(d.name) or gt.get(d.name.lower()))
        for img in list_images(d):
            samples.append(Sample(img, "good" if good else d.name, int(not good),
                                  masks.get(img.stem)))
    if not samples:
        raise PatchCoreError(f"{test}: no test images in any <defect> subfolder")
    return samples


def _child_dir(parent: Path, name: str) -> Path | None:
    """parent/name, else a sub-folder whose name matches in any letter case."""
    if (parent / name).is_dir():
        return parent / name
    return next((p for p in sorted(parent.iterdir()) if p.is_dir() and p.name.lower() == name),
                None)


def _subdirs(folder: Path | None) -> dict[str, Path]:
    """Sub-folders by exact name and by lower-case name (exact names win)."""
    if folder is None:
        return {}
    dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    return {**{p.name.lower(): p for p in dirs}, **{p.name: p for p in dirs}}


def _warn_good_masks(gt: dict[str, Path]) -> None:
    good = gt.get("good")
    if good is not None and any(p.is_file() for p in good.iterdir()):
        warnings.warn(f"{good}: masks of good images are ignored (good images have no defect)",
                      stacklevel=3)


def _mask_index(folder: Path | None) -> dict[str, Path]:
    """Image stem -> mask file `<stem>_mask.png` (suffixes in any case; exact names win)."""
    if folder is None:
        return {}
    found: dict[str, Path] = {}
    files = [p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file()]
    for p in sorted(files, key=lambda p: (p.suffix == ".png", p.stem.endswith("_mask"))):
        if p.stem.lower().endswith("_mask"):
            found[p.stem[:-5]] = p
    return found


# ---- decoding ----------------------------------------------------------------------------
@contextmanager
def _reading(path: str | Path) -> Iterator[None]:
    """Turn any decoding failure (truncated, not an image, decompression bomb) into one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except PatchCoreError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise PatchCoreError(f"{path}: image too large for PIL's decompression-bomb limit of "
                             f"{Image.MAX_IMAGE_PIXELS} pixels ({_first_line(e)}); raise "
                             "PIL.Image.MAX_IMAGE_PIXELS if you trust this file")
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError, EOFError, ...
        raise PatchCoreError(f"{path}: cannot read image ({_first_line(e)})")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _open(path: str | Path, draft: int = 0) -> Image.Image:
    """Decode a file fully, EXIF orientation applied; one-line errors naming the file. A JPEG
    is decoded at 1/2, 1/4 or 1/8 scale (DCT scaling) when that still covers draft x draft."""
    with _reading(path), Image.open(path) as im:
        if draft and im.format == "JPEG":
            im.draft(im.mode, (draft, draft))
        im.load()
        return ImageOps.exif_transpose(im)


def _oriented_size(path: str | Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, reading the header only."""
    with _reading(path), Image.open(path) as im:
        w, h = im.size
        return (h, w) if im.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8) else (w, h)


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file as the model sees it (EXIF-oriented), header only."""
    w, h = _oriented_size(path)
    return h, w


def _raw(im: Image.Image) -> np.ndarray:
    """Pixels (H, W, C) in the image's own dtype; palette, CMYK, YCbCr, ... become RGB(A)."""
    if im.mode == "P":
        index = np.asarray(im)  # (H, W)
        if len(im.getpalette() or []) // 3 <= int(index.max(initial=0)):
            return index[..., None]  # no palette covers the indices: keep the indices
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode not in _NATIVE:
        im = im.convert("RGBA" if im.mode in ("PA", "RGBa", "La") else "RGB")
    a = np.asarray(im)
    a = a.astype(np.uint8) * 255 if a.dtype == bool else a  # 1-bit: 0 / 255
    return a.reshape(a.shape[0], a.shape[1], -1)  # (H, W, C)


def _unit(a: np.ndarray, where: str) -> np.ndarray:
    """Raw pixels -> float32 in [0, 1], scaled by the type's range, never clipped.

    uint8 / 255, uint16 / 65535; int32 (PIL mode I) / 65535 when all values fit 16 bits (16-bit
    PNG and TIFF), else / (2**31 - 1). Float (mode F): kept if within [0, 1], else read as
    8-bit (max <= 255) or 16-bit (max <= 65535) counts; other ranges are refused."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255
    if a.dtype.kind == "u":
        return a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    if a.size == 0:
        return a.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    if a.dtype.kind == "i":
        if lo < 0:
            raise PatchCoreError(f"{where}: negative pixel values ({lo:g}) are not supported")
        return (a / (65535.0 if hi <= 65535 else 2.0**31 - 1)).astype(np.float32)
    if not np.isfinite(a).all() or lo < -1e-3 or hi > 65535:
        raise PatchCoreError(f"{where}: float pixel values in [{lo:g}, {hi:g}]; expected [0, 1], "
                             "8-bit or 16-bit counts")
    scale = 1.0 if hi <= 1 + 1e-3 else 255.0 if hi <= 255 else 65535.0
    return np.clip(a / scale, 0, 1).astype(np.float32)


def _rgb(x: torch.Tensor) -> torch.Tensor:
    """(C, H, W) with C in 1-4 -> (3, H, W): grey repeated, alpha dropped."""
    return x[:1].expand(3, -1, -1) if x.shape[0] <= 2 else x[:3]


def _decode(im: Image.Image, where: str) -> torch.Tensor:
    return torch.from_numpy(_unit(_raw(im), where)).permute(2, 0, 1)  # (C, H, W)


def to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL image of any mode and bit depth -> (C, H, W) float in [0, 1] (C as decoded)."""
    return _decode(im, getattr(im, "filename", "") or "image")


def open_image(path: str | Path, mode: str | None = "RGB") -> Image.Image:
    """Decode an image fully (truncated files fail here), EXIF-oriented, converted to `mode`.

    `mode=None` keeps the decoded mode (16-bit stays 16-bit); high bit depths go to 8 bits."""
    im = _open(path)
    if mode is None or im.mode == mode:
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.rint(_unit(_raw(im), str(path))[..., 0] * 255).astype(np.uint8)  # (H, W)
        im = Image.fromarray(a)
    return im.convert(mode)


def resize_crop(x: torch.Tensor, resize: int, crop: int, nearest: bool = False) -> torch.Tensor:
    """(..., C, H, W) -> square resize x resize, then centre crop x crop (0 = no crop)."""
    batched = x.dim() == 4
    x = x if batched else x[None]
    if resize and x.shape[-2:] != (resize, resize):  # resize 0: keep the original size
        mode = dict(mode="nearest") if nearest else dict(mode="bilinear", antialias=True,
                                                         align_corners=False)
        x = F.interpolate(x, size=(resize, resize), **mode)
    if crop:
        if crop > resize:
            raise PatchCoreError(f"--crop: {crop} is larger than --resize {resize}")
        t = (resize - crop) // 2
        x = x[..., t:t + crop, t:t + crop]
    x = x.clamp(0, 1) if not nearest else x
    return x if batched else x[0]


def load_image(path: str | Path, resize: int, crop: int) -> torch.Tensor:
    """Image file -> (3, S, S) float tensor in [0, 1] after resize and crop (8-bit images are
    resized by PIL before they become float: decode.shrink8)."""
    raw = _raw(_open(path, draft=resize))  # (H, W, C) in the file's own dtype
    x = decode.shrink8(raw, resize)
    x = _rgb(torch.from_numpy(_unit(raw, str(path))).permute(2, 0, 1)) if x is None else x
    return resize_crop(x, resize, crop)


# ---- in-memory inputs --------------------------------------------------------------------
def _check_values(x: torch.Tensor, name: str) -> torch.Tensor:
    """Validate dtype and range; uint16 becomes float / 65535. uint8 and float pass through."""
    if x.dtype == torch.uint8:
        return x
    if x.dtype == getattr(torch, "uint16", None):
        return x.to(torch.float32) / 65535
    if not x.is_floating_point():
        raise PatchCoreError(f"{name}: unsupported dtype {x.dtype}; pass uint8 (0-255), uint16 "
                             "or float values in [0, 1]")
    if x.numel() and not torch.isfinite(x).all():
        raise PatchCoreError(f"{name}: contains NaN or inf values")
    lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    if hi > 1 + 1e-3:
        raise PatchCoreError(f"{name}: float values must be in [0, 1] (got max {hi:g}); "
                             "pass uint8 or divide by 255")
    if lo < -1e-3:
        raise PatchCoreError(f"{name}: float values must be in [0, 1] (got min {lo:g})")
    return x


def _check_tensor(x: torch.Tensor, name: str, batch: bool) -> torch.Tensor:
    """(3, H, W), or (N, 3, H, W) when `batch`, with valid values; errors name `name`."""
    dims = (3, 4) if batch else (3,)
    if x.dim() not in dims or x.shape[-3] != 3 or 0 in x.shape[-2:]:
        want = "a (3, H, W) image" + (" or an (N, 3, H, W) batch" if batch else "")
        raise PatchCoreError(f"{name}: expected {want} with 3 colour channels, got shape "
                             f"{tuple(x.shape)}")
    return _check_values(x.detach(), name)


def _array_tensor(a: np.ndarray, name: str, batch: bool) -> torch.Tensor:
    """numpy (H, W), (H, W, 3), (3, H, W) or, when `batch`, (N, 3, H, W) / (N, H, W, 3)
    -> a channels-first tensor; ambiguous layouts (3 in both places) are refused."""
    if a.dtype.kind not in "uf" or a.dtype.itemsize > 8 or (a.dtype.kind == "u" and
                                                             a.dtype.itemsize > 2):
        raise PatchCoreError(f"{name}: unsupported dtype {a.dtype}; pass uint8, uint16 or "
                             "float values in [0, 1]")
    shape, nd = a.shape, a.ndim
    if nd == 2:
        a = np.broadcast_to(a, (3, *shape))  # grey -> (3, H, W)
    elif nd in ((3, 4) if batch else (3,)) and (shape[-3] == 3) != (shape[-1] == 3):
        a = a if shape[-3] == 3 else np.moveaxis(a, -1, -3)  # (..., 3, H, W)
    else:
        why = "ambiguous" if nd in (3, 4) and shape[-1] == shape[-3] == 3 else "unsupported"
        raise PatchCoreError(f"{name}: {why} array layout {shape}; use (H, W), (H, W, 3) "
                             f"or (3, H, W){' per image, (N, 3, H, W) or (N, H, W, 3)' * batch}")
    if a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535
    a = np.ascontiguousarray(a, dtype=np.uint8 if a.dtype == np.uint8 else np.float32)
    return _check_tensor(torch.from_numpy(a), name, batch)


def _check_item(item, name: str):
    """One element of a list of images: a path (must exist), a PIL image, a tensor, an array."""
    if isinstance(item, (str, os.PathLike)):
        if not Path(item).is_file():
            raise PatchCoreError(f"{item}: no such image file ({name})")
        return Path(item)
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, torch.Tensor):
        return _check_tensor(item, name, batch=False)
    if isinstance(item, np.ndarray):
        return _array_tensor(item, name, batch=False)
    raise PatchCoreError(f"{name}: unsupported item type {type(item).__name__}; {_HINT}")


def _collect(images) -> list | torch.Tensor:
    """The `images` argument as a list of checked items or an (N, 3, H, W) tensor."""
    if images is None:
        raise PatchCoreError(f"images: got None; {_HINT}")
    if isinstance(images, (str, os.PathLike)):
        p = Path(images)
        if p.is_file():
            return [p]
        if p.is_dir():
            return good_images(p)
        raise PatchCoreError(f"images: {p}: no such file or folder")
    if isinstance(images, torch.Tensor):
        x = _check_tensor(images, "images", batch=True)
        return x if x.dim() == 4 else x[None]
    if isinstance(images, np.ndarray):
        x = _array_tensor(images, "images", batch=True)
        return x if x.dim() == 4 else x[None]
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, (bytes, bytearray, dict)) or not hasattr(images, "__iter__"):
        raise PatchCoreError(f"images: unsupported type {type(images).__name__}; {_HINT}")
    return [_check_item(item, f"images[{i}]") for i, item in enumerate(images)]


class ImageSet(torch.utils.data.Dataset):
    """Paths, a folder, PIL images, tensors or arrays as a dataset of (3, S, S) float tensors.

    Validated at construction (generators are read once); uint8 / 255, uint16 / 65535."""

    def __init__(self, images, resize: int, crop: int):
        self.images, self.resize, self.crop = _collect(images), resize, crop
        if len(self.images) == 0:
            raise PatchCoreError("images: empty list of images")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        item = self.images[i]
        if isinstance(item, Image.Image):
            x = _rgb(_decode(ImageOps.exif_transpose(item), f"images[{i}]"))
        elif isinstance(item, torch.Tensor):
            x = item.float() / 255 if item.dtype == torch.uint8 else item.float().clamp(0, 1)
        else:
            return load_image(item, self.resize, self.crop)
        return resize_crop(x, self.resize, self.crop)  # (3, S, S)
