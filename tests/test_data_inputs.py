"""Input decoding and validation in patchcore_lite.data: one test per cause, plus properties.

References are computed with numpy from the arrays the tests write, never through PIL's own
conversions, so a decoder that clips 16-bit to white or ignores EXIF fails here.
"""

from __future__ import annotations

import os
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, features

from patchcore_lite import data
from patchcore_lite.data import (
    ImageSet,
    Sample,
    list_images,
    load_image,
    open_image,
    to_tensor,
    walk_images,
)
from patchcore_lite.errors import PatchCoreError
from patchcore_lite.masks import load_mask

PROPS = settings(deadline=None, derandomize=True, max_examples=20,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])
ORIENT = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1],
          4: lambda a: a[::-1], 5: lambda a: np.swapaxes(a, 0, 1),
          6: lambda a: np.rot90(a, -1), 7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
          8: lambda a: np.rot90(a, 1)}  # EXIF orientation -> how the stored pixels are shown


def fresh(tmp_path: Path) -> Path:
    """A new folder per hypothesis example (tmp_path is shared by all examples)."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


def png16(a: np.ndarray, path: Path) -> Path:
    """Write a 16-bit PNG (grey, grey+alpha, RGB or RGBA) by hand: PIL cannot write 16-bit RGB."""
    a = a.reshape(a.shape[0], a.shape[1], -1)  # (H, W, C)
    h, w, c = a.shape
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def decoded(path: Path) -> np.ndarray:
    """load_image at the file's own (square) size, no crop: (H, W, 3) float, no resampling."""
    w, h = Image.open(path).size
    assert w == h
    return load_image(path, w, 0).permute(1, 2, 0).numpy()


def rgb3(a: np.ndarray) -> np.ndarray:
    a = a.reshape(a.shape[0], a.shape[1], -1)
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[..., :3]


# ---- 1. bit depths ---------------------------------------------------------------------------
@PROPS
@given(side=st.integers(3, 24), channels=st.sampled_from([1, 3]),
       dtype=st.sampled_from(["uint8", "uint16"]), seed=st.integers(0, 2**16))
def test_every_bit_depth_scales_by_its_type_range(tmp_path, side, channels, dtype, seed):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    a = rng.integers(0, top + 1, (side, side, channels)).astype(dtype)
    path = fresh(tmp_path) / "x.png"
    if dtype == "uint16":
        png16(a, path)
    else:
        Image.fromarray(a.squeeze(-1) if channels == 1 else a).save(path)
    tol = 1 / 255 if (dtype == "uint16" and channels == 3) else 1e-6  # PIL reads RGB16 as 8 bit
    np.testing.assert_allclose(decoded(path), rgb3(a / top), atol=tol + 1e-6)


def test_high_bit_depth_modes_are_never_white(tmp_path):
    g = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)  # (8, 8) up to 63000
    want = g / 65535
    Image.fromarray(g).save(tmp_path / "i16.png")  # mode I;16
    Image.fromarray(g.astype(np.int32)).save(tmp_path / "i32.tif")  # mode I, 16-bit values
    Image.fromarray((g / 65535).astype(np.float32)).save(tmp_path / "f.tif")  # mode F in [0, 1]
    for name in ("i16.png", "i32.tif", "f.tif"):
        np.testing.assert_allclose(decoded(tmp_path / name)[..., 0], want, atol=1e-6)
    big = Image.frombytes("I;16B", (8, 8), g.astype(">u2").tobytes())
    np.testing.assert_allclose(to_tensor(big)[0].numpy(), want, atol=1e-6)
    assert open_image(tmp_path / "i16.png").mode == "RGB"
    rgb8 = np.asarray(open_image(tmp_path / "i16.png"))[..., 0]
    assert np.abs(rgb8 - want * 255).max() <= 0.5 + 1e-6  # 8-bit view rounds, does not clip
    f255 = (g / 257).astype(np.float32)  # float counts 0-255 are read as 8-bit
    np.testing.assert_allclose(to_tensor(Image.fromarray(f255))[0].numpy(), f255 / 255, atol=1e-6)


def test_other_modes_decode_like_their_rgb_meaning(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    bits = rng.random((6, 6)) > 0.5
    Image.fromarray(bits).save(tmp_path / "one.png")
    np.testing.assert_array_equal(decoded(tmp_path / "one.png"), rgb3(bits.astype(float)))
    rgba = np.dstack([rgb, rng.integers(0, 256, (6, 6), dtype=np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")  # alpha dropped
    np.testing.assert_allclose(decoded(tmp_path / "rgba.png"), rgb / 255, atol=1e-6)
    Image.frombytes("LA", (6, 6), rgba[..., [0, 3]].tobytes()).save(tmp_path / "la.png")
    np.testing.assert_allclose(decoded(tmp_path / "la.png"), rgb3(rgb[..., :1] / 255), atol=1e-6)
    pal = Image.frombytes("P", (6, 6), rng.integers(0, 4, (6, 6), dtype=np.uint8).tobytes())
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 128, 255], [10, 20, 30]], np.uint8)
    pal.putpalette(colours.ravel().tolist())
    pal.save(tmp_path / "p.png")
    want = colours[np.asarray(pal)] / 255
    np.testing.assert_allclose(decoded(tmp_path / "p.png"), want, atol=1e-6)
    cmyk = Image.new("CMYK", (6, 6), (0, 255, 0, 0))
    cmyk.save(tmp_path / "cmyk.tif")  # pure magenta
    np.testing.assert_allclose(decoded(tmp_path / "cmyk.tif"), np.ones((6, 6, 3)) * [1, 0, 1])


# ---- 2. EXIF orientation ---------------------------------------------------------------------
@PROPS
@given(orientation=st.integers(1, 8), fmt=st.sampled_from(["png", "jpg"]),
       h=st.sampled_from([16, 32]), w=st.sampled_from([16, 48]))
def test_exif_orientation_applies_to_images_and_masks(tmp_path, orientation, fmt, h, w):
    d = fresh(tmp_path)
    a = np.kron(np.arange(h * w // 64).reshape(h // 8, w // 8) % 2 * 255,
                np.ones((8, 8))).astype(np.uint8)  # (H, W) blocks: JPEG-friendly
    a[:8, :8] = 128  # break symmetries
    exif = Image.Exif()
    exif[data.ORIENTATION] = orientation
    Image.fromarray(a).save(d / f"img.{fmt}", exif=exif, quality=100)
    Image.fromarray((a > 200).astype(np.uint8) * 255).save(d / "m.png", exif=exif)
    want = ORIENT[orientation](a) / 255
    got = to_tensor(open_image(d / f"img.{fmt}"))[0].numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).mean() < (1e-6 if fmt == "png" else 0.02)
    side = max(h, w)  # load_mask resizes to a square: compare at the oriented size, stretched
    mask = load_mask(Sample(d / f"img.{fmt}", "x", 1, d / "m.png"), side, 0).numpy()
    ref = torch.from_numpy(np.ascontiguousarray(ORIENT[orientation](a > 200)))[None, None]
    ref = torch.nn.functional.interpolate(ref.float(), size=(side, side), mode="nearest")
    np.testing.assert_array_equal(mask, ref[0, 0].numpy() > 0.5)


def test_mask_size_is_checked_after_orientation(tmp_path):
    exif = Image.Exif()
    exif[data.ORIENTATION] = 6  # stored 20 x 10, shown 10 x 20
    Image.new("RGB", (20, 10)).save(tmp_path / "img.jpg", exif=exif)
    Image.new("L", (10, 20)).save(tmp_path / "shown.png")
    Image.new("L", (20, 10)).save(tmp_path / "stored.png")
    assert not load_mask(Sample(tmp_path / "img.jpg", "x", 1, tmp_path / "shown.png"), 8, 0).any()
    with pytest.raises(PatchCoreError, match="stored.png.*differs"):
        load_mask(Sample(tmp_path / "img.jpg", "x", 1, tmp_path / "stored.png"), 8, 0)


# ---- 3. masks --------------------------------------------------------------------------------
def write_mask(truth: np.ndarray, encoding: str, path: Path) -> Path:
    """Write the (H, W) bool `truth` in one of the encodings users hand in."""
    t = truth.astype(np.uint8)
    if encoding == "0/1":
        Image.fromarray(t).save(path)
    elif encoding == "0/255":
        Image.fromarray(t * 255).save(path)
    elif encoding == "red":
        Image.fromarray(np.dstack([t * 255, t * 0, t * 0])).save(path)
    elif encoding == "16-bit":
        png16(t.astype(np.uint16) * 65535, path)
    elif encoding == "16-bit 0/1":
        Image.fromarray(t.astype(np.uint16)).save(path)
    elif encoding == "rgba":  # white strokes on a transparent white background
        Image.fromarray(np.dstack([t * 0 + 255] * 3 + [t * 255])).save(path)
    elif encoding == "1-bit":
        Image.fromarray(truth).save(path)
    elif encoding == "palette":
        im = Image.frombytes("P", t.shape[::-1], t.tobytes())
        im.putpalette([0, 0, 0, 0, 255, 0])
        im.save(path)
    return path


MASK_ENCODINGS = ["0/1", "0/255", "red", "16-bit", "16-bit 0/1", "rgba", "1-bit", "palette"]


@PROPS
@given(encoding=st.sampled_from(MASK_ENCODINGS), side=st.integers(4, 20),
       seed=st.integers(0, 2**16), empty=st.booleans())
def test_any_nonzero_mask_pixel_is_defect(tmp_path, encoding, side, seed, empty):
    d = fresh(tmp_path)
    truth = np.random.default_rng(seed).random((side, side)) > 0.6
    truth &= not empty  # an all-black mask on a defective image is legal
    Image.new("RGB", (side, side)).save(d / "img.png")
    mask = write_mask(truth, encoding, d / "m.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # binary masks do not warn
        got = load_mask(Sample(d / "img.png", "x", 1, mask), side, 0).numpy()
    np.testing.assert_array_equal(got, truth)


def test_mask_checks_warn_or_refuse_naming_the_file(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "img.png")
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "grey.png")
    with pytest.warns(UserWarning, match="grey.png.*not binary") as caught:
        got = load_mask(Sample(tmp_path / "img.png", "x", 1, tmp_path / "grey.png"), 8, 0)
    assert len(caught) == 1 and got.sum() == 63
    Image.new("L", (9, 8)).save(tmp_path / "wide.png")
    with pytest.raises(PatchCoreError, match="wide.png"):
        load_mask(Sample(tmp_path / "img.png", "x", 1, tmp_path / "wide.png"), 8, 0)
    assert load_mask(Sample(tmp_path / "img.png", "good", 0, None), 8, 4).shape == (4, 4)


# ---- 4. MVTec layout -------------------------------------------------------------------------
def test_good_class_in_any_case_and_mask_names(tmp_path):
    for sub in ("train/good", "test/Good", "test/crack", "ground_truth/crack", "ground_truth/GOOD"):
        (tmp_path / sub).mkdir(parents=True)
    for sub in ("train/good", "test/Good", "test/crack"):
        for i in range(3):
            Image.new("RGB", (8, 8)).save(tmp_path / sub / f"{i:03d}.png")
    Image.new("L", (8, 8), 255).save(tmp_path / "ground_truth/crack/000_mask.png")
    Image.new("L", (8, 8), 255).save(tmp_path / "ground_truth/crack/001_mask.PNG")
    Image.new("L", (8, 8)).save(tmp_path / "ground_truth/GOOD/000_mask.png")
    with pytest.warns(UserWarning, match="GOOD.*ignored") as caught:
        samples = data.test_samples(tmp_path)
    assert len(caught) == 1
    by = {(s.path.parent.name, s.path.stem): s for s in samples}
    assert [(s.label, s.defect, s.mask) for k, s in by.items() if k[0] == "Good"] == \
        [(0, "good", None)] * 3
    crack = [by["crack", f"{i:03d}"].mask for i in range(3)]
    assert [m.name if m else None for m in crack] == ["000_mask.png", "001_mask.PNG", None]
    assert all(by["crack", f"{i:03d}"].label == 1 for i in range(3))


# ---- 5. unreadable files ---------------------------------------------------------------------
@pytest.mark.parametrize("pixels", [1600, 4096])  # over the limit: PIL warns; over twice: raises
def test_decompression_bombs_and_broken_files_are_one_line_errors(tmp_path, monkeypatch, pixels):
    side = int(pixels**0.5)
    Image.new("RGB", (side, side)).save(tmp_path / "big.png")
    Image.new("L", (side, side)).save(tmp_path / "big_mask.png")
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "small.png")  # 256 pixels: under the limit
    (tmp_path / "cut.png").write_bytes((tmp_path / "small.png").read_bytes()[:400])
    (tmp_path / "notes.png").write_text("not an image")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for name, what in (("big.png", "decompression-bomb"), ("cut.png", "cannot read"),
                       ("notes.png", "cannot read")):
        with pytest.raises(PatchCoreError, match=f"{name}: .*{what}") as err:
            load_image(tmp_path / name, 8, 0)
        assert "\n" not in str(err.value)
    with pytest.raises(PatchCoreError, match="big_mask.png: .*decompression-bomb"):
        load_mask(Sample(tmp_path / "big.png", "x", 1, tmp_path / "big_mask.png"), 8, 0)
    assert load_image(tmp_path / "small.png", 8, 0).shape == (3, 8, 8)


# ---- 6. Python API inputs --------------------------------------------------------------------
@PROPS
@given(layout=st.sampled_from(["HW", "HWC", "CHW", "NCHW", "NHWC", "tensor", "list"]),
       dtype=st.sampled_from(["uint8", "uint16", "float32"]), h=st.integers(4, 9),
       w=st.integers(4, 9), seed=st.integers(0, 2**16))
def test_arrays_and_tensors_are_rescaled_by_dtype(layout, dtype, h, w, seed):
    rng = np.random.default_rng(seed)
    top = {"uint8": 255, "uint16": 65535, "float32": 1}[dtype]
    ref = rng.random((2, 3, h, w)).astype(np.float32)  # (N, 3, H, W) in [0, 1]
    if layout == "HW":
        ref = ref[:1, :1].repeat(3, axis=1)
    raw = (ref * top).round().astype(dtype) if top > 1 else ref
    want = raw.astype(np.float64) / top
    images = {"HW": lambda: raw[0, 0], "HWC": lambda: raw[0].transpose(1, 2, 0),
              "CHW": lambda: raw[0], "NCHW": lambda: raw,
              "NHWC": lambda: raw.transpose(0, 2, 3, 1),
              "tensor": lambda: torch.from_numpy(raw),
              "list": lambda: (x for x in raw)}[layout]()
    ds = ImageSet(images, resize=7, crop=0)
    n = len(ds)
    want = torch.nn.functional.interpolate(torch.from_numpy(want[:n]).float(), size=(7, 7),
                                           mode="bilinear", antialias=True, align_corners=False)
    got = torch.stack([ds[i] for i in range(n)])
    torch.testing.assert_close(got, want.clamp(0, 1), atol=2e-6, rtol=0)


def test_bad_images_argument_is_refused_naming_it(tmp_path):
    ok = torch.rand(2, 3, 8, 8)
    bad = [None, [], torch.rand(1, 1, 3, 8, 8), torch.rand(2, 4, 8, 8), torch.rand(8, 8),
           ok * 255, ok - 0.5, ok.masked_fill(ok > 0.9, float("nan")), ok.to(torch.int64),
           np.zeros((3, 8, 3), np.uint8), np.zeros((8, 8, 4), np.uint8),
           np.zeros((8, 8), np.int32), [ok[0], 5], [np.zeros((2, 3, 8, 8))], 7, b"x.png",
           tmp_path / "missing.png"]
    for images in bad:
        with pytest.raises(PatchCoreError, match="images") as err:
            ImageSet(images, 8, 0)
        assert "\n" not in str(err.value)
    with pytest.raises(PatchCoreError, match=r"got max 25\d.*divide by 255"):
        ImageSet(ok * 255, 8, 0)
    with pytest.raises(PatchCoreError, match=r"images\[1\]"):
        ImageSet([ok[0], ok[0] * 2], 8, 0)
    assert len(ImageSet(ok + 1e-4, 8, 0)) == 2  # rounding noise is tolerated (and clamped)


def test_paths_folders_and_pil_images_are_accepted(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    exif = Image.Exif()
    exif[data.ORIENTATION] = 3
    Image.fromarray(a).save(tmp_path / "rot.png", exif=exif)
    want = torch.from_numpy(a / 255).permute(2, 0, 1).float()
    for images in (tmp_path / "a.png", str(tmp_path / "a.png"), [tmp_path / "a.png"],
                   Image.fromarray(a), iter([Image.open(tmp_path / "a.png")])):
        ds = ImageSet(images, 8, 0)
        assert len(ds) == 1
        torch.testing.assert_close(ds[0], want)
    assert len(ImageSet(tmp_path, 8, 0)) == 2  # a folder
    torch.testing.assert_close(ImageSet([Image.open(tmp_path / "rot.png")], 8, 0)[0],
                               want.flip(1, 2))  # EXIF applies to PIL images too


# ---- 7. walking folders ----------------------------------------------------------------------
@PROPS
@given(names=st.lists(st.text(st.characters(codec="utf-8", exclude_characters="/\\\0"),
                              min_size=1, max_size=8).filter(lambda s: s.strip(".") == s),
                      min_size=1, max_size=4, unique=True))
def test_walk_images_recursive_sorted_with_user_prefix(tmp_path, names, monkeypatch):
    root = fresh(tmp_path)
    monkeypatch.chdir(root)
    made = []
    for i, name in enumerate(names):
        sub = Path("test", f"d {name}", "deeper" if i % 2 else "")
        try:
            (root / sub).mkdir(parents=True, exist_ok=True)
        except OSError:  # a name this file system refuses
            continue
        Image.new("L", (4, 4)).save(root / sub / f"{name} é.PNG", format="PNG")
        made.append(sub / f"{name} é.PNG")
    for junk in ("test/ground_truth/x/000_mask.png", "test/.hidden/a.png", "test/.b.png"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (4, 4)).save(root / junk, format="PNG")
    (root / "test" / "notes.txt").write_text("no image")
    os.symlink(root / "test", root / "test" / "loop")  # a symlink loop must not hang
    got = walk_images(["test"])
    assert got == sorted(made) and not any(p.is_absolute() for p in got)


def test_walk_images_files_and_errors(tmp_path):
    Image.new("L", (4, 4)).save(tmp_path / "one.jpg")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert walk_images([tmp_path / "one.jpg", tmp_path / "one.jpg"]) == [tmp_path / "one.jpg"] * 2
    with pytest.raises(PatchCoreError, match="empty"):
        walk_images([tmp_path / "empty"])
    with pytest.raises(PatchCoreError, match="gone.png"):
        walk_images([tmp_path / "one.jpg", tmp_path / "gone.png"])


# ---- 8. extensions ---------------------------------------------------------------------------
def test_extensions_match_in_any_case(tmp_path):
    names = ["a.PNG", "b.Jpg", "c.JPEG", "d.bmp", "e.tif", "f.TIFF"]
    formats = ["PNG", "JPEG", "JPEG", "BMP", "TIFF", "TIFF"]
    if features.check("webp"):
        names, formats = names + ["g.WebP"], formats + ["WEBP"]
    for name, fmt in zip(names, formats):
        Image.new("RGB", (4, 4), (0, 255, 0)).save(tmp_path / name, format=fmt)
    (tmp_path / "h.txt").write_text("x")
    found = list_images(tmp_path)
    assert [p.name for p in found] == names
    for p in found:
        assert abs(float(load_image(p, 4, 0)[1].mean()) - 1) < 0.02
