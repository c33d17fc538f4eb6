"""Images in, tensors out: MVTec AD layout folders, plain image folders, resize and crop.

Layout: <cat>/train/good/*, <cat>/test/<defect>/*, <cat>/ground_truth/<defect>/<stem>_mask.png.
Masks go through the same resize and crop as images (nearest), so pixels line up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .errors import PatchCoreError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class Sample:
    """One test image: label 1 = defective; mask None when the ground truth is unknown."""

    path: Path
    defect: str
    label: int
    mask: Path | None


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files of a folder; an error naming the folder if it is missing or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PatchCoreError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise PatchCoreError(f"{folder}: no images (.png, .jpg, .bmp) in this folder")
    return files


def good_images(folder: str | Path) -> list[Path]:
    """Training images: <folder>/train/good when the folder is a category, else the folder."""
    folder = Path(folder)
    sub = folder / "train" / "good"
    return list_images(sub if sub.is_dir() else folder)


def test_samples(category: str | Path) -> list[Sample]:
    """All test images of an MVTec-layout category with labels and mask paths."""
    cat = Path(category)
    if not cat.is_dir():
        raise PatchCoreError(f"{cat}: folder not found")
    test = cat / "test"
    if not (cat / "train" / "good").is_dir() or not test.is_dir():
        raise PatchCoreError(f"{cat}: not an MVTec AD layout category "
                             f"(expected {cat}/train/good and {cat}/test/<defect>)")
    samples = []
    for d in sorted(p for p in test.iterdir() if p.is_dir()):
        for img in list_images(d):
            mask = cat / "ground_truth" / d.name / f"{img.stem}_mask.png"
            samples.append(Sample(img, d.name, int(d.name != "good"),
                                  mask if mask.is_file() else None))
    if not samples:
        raise PatchCoreError(f"{test}: no test images in any <defect> subfolder")
    return samples


def open_image(path: str | Path, mode: str = "RGB") -> Image.Image:
    """Decode an image fully (truncated files fail here), converted to `mode`."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert(mode)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise PatchCoreError(f"{path}: cannot read image ({str(e).splitlines()[0]})")


def to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL image -> (C, H, W) float in [0, 1]."""
    a = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(a.reshape(a.shape[0], a.shape[1], -1)).permute(2, 0, 1)


def resize_crop(x: torch.Tensor, resize: int, crop: int, nearest: bool = False) -> torch.Tensor:
    """(..., C, H, W) -> square resize x resize, then centre crop x crop (0 = no crop)."""
    batched = x.dim() == 4
    x = x if batched else x[None]
    if x.shape[-2:] != (resize, resize):
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
    """Image file -> (3, S, S) float tensor in [0, 1] after resize and crop."""
    return resize_crop(to_tensor(open_image(path)), resize, crop)


def load_mask(sample: Sample, resize: int, crop: int) -> torch.Tensor:
    """Ground-truth mask -> (S, S) bool; an all-False mask for good images."""
    size = resize if not crop else crop
    if sample.mask is None:
        return torch.zeros(size, size, dtype=torch.bool)
    mask, image_size = open_image(sample.mask, "L"), _image_size(sample.path)
    if mask.size != image_size:
        raise PatchCoreError(f"{sample.mask}: mask size {mask.size} differs from its image "
                             f"{sample.path.name} {image_size}")
    return resize_crop(to_tensor(mask), resize, crop, nearest=True)[0] > 0.5


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError) as e:
        raise PatchCoreError(f"{path}: cannot read image ({e})")


class ImageSet(torch.utils.data.Dataset):
    """Paths, PIL images or a (N, 3, H, W) tensor as a dataset of preprocessed tensors."""

    def __init__(self, images, resize: int, crop: int):
        if isinstance(images, (str, Path)):
            images = good_images(images)
        self.images, self.resize, self.crop = images, resize, crop
        if len(images) == 0:
            raise PatchCoreError("images: empty list of images")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        item = self.images[i]
        if isinstance(item, Image.Image):
            return resize_crop(to_tensor(item.convert("RGB")), self.resize, self.crop)
        if isinstance(item, torch.Tensor):
            return resize_crop(item.float(), self.resize, self.crop)
        return load_image(item, self.resize, self.crop)
