"""Tiling (large images, small defects) against hand-made geometry, and adding good images to a
fitted model (append) against one fit on both folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import FAST, TINY, run_in_process
from PIL import Image

from patchcore_lite import PatchCore, PatchCoreError, io, sampling, tiling
from patchcore_lite.data import good_images, walk_images
from patchcore_lite.evaluation.protocol import evaluate


def test_tile_starts_and_boxes_by_hand():
    assert tiling.starts(1000, 256, 0.25) == [0, 192, 384, 576, 744]  # last one at the edge
    assert tiling.starts(200, 256, 0.25) == [0]  # a tile larger than the side: the whole side
    assert tiling.starts(512, 256, 0.0) == [0, 256]
    b = tiling.boxes(500, 1235, 256, 0.25)
    assert {(y0, y1) for y0, y1, _, _ in b} == {(0, 256), (192, 448), (244, 500)}
    assert max(x1 for *_, x1 in b) == 1235 and min(x0 for _, _, x0, _ in b) == 0
    assert all(y1 - y0 == 256 and x1 - x0 == 256 for y0, y1, x0, x1 in b)
    assert tiling.boxes(100, 80, 256, 0.25) == [(0, 100, 0, 80)]


def test_stitch_averages_overlaps_and_maps_crops_to_the_tile_centre():
    bs = [(0, 4, 0, 4), (0, 4, 2, 6)]
    maps = torch.stack([torch.full((8, 8), 1.0), torch.full((8, 8), 3.0)])
    out = tiling.stitch(maps, bs, (4, 6), resize=8, crop=0)
    assert torch.equal(out[:, :2], torch.full((4, 2), 1.0))
    assert torch.equal(out[:, 2:4], torch.full((4, 2), 2.0))  # the overlap: the mean
    assert torch.equal(out[:, 4:], torch.full((4, 2), 3.0))
    assert tiling.covered((0, 100, 0, 200), resize=256, crop=128) == (25, 75, 50, 150)


@pytest.fixture(scope="module")
def wide_category(tmp_path_factory):
    """A category of non-square parts (200 x 330-350) with a bright defect and its mask."""
    root = tmp_path_factory.mktemp("wide") / "wide"
    rng = np.random.default_rng(0)
    for sub in ("train/good", "test/good", "test/spot", "ground_truth/spot"):
        (root / sub).mkdir(parents=True)

    def part(w):
        base = np.kron(rng.random((10, w // 20 + 1, 3)), np.ones((20, 20, 1)))[:, :w]
        return (255 * (0.6 * base + 0.4 * rng.random(base.shape))).astype(np.uint8)

    for i in range(4):
        Image.fromarray(part(330 + 10 * i)).save(root / "train/good" / f"{i}.png")
    Image.fromarray(part(340)).save(root / "test/good/0.png")
    for i in range(2):
        img, mask = part(350 - 10 * i), np.zeros((200, 350 - 10 * i), np.uint8)
        img[80:100, 200:220] = (255, 0, 255)
        mask[80:100, 200:220] = 255
        Image.fromarray(img).save(root / "test/spot" / f"{i}.png")
        Image.fromarray(mask).save(root / "ground_truth/spot" / f"{i}_mask.png")
    return root


def test_tiled_model_scores_at_the_original_resolution(wide_category):
    model = PatchCore(**dict(TINY, tile=128, tile_overlap=0.25)).fit(good_images(wide_category))
    assert len(model.good_scores) == 4  # one leave-one-out score per image, not per tile
    assert int(model.bank.image.max()) == 3  # bank patches name images, not tiles
    paths = walk_images([wide_category / "test"])
    scores, maps = model.predict(paths)
    assert isinstance(maps, list) and [m.shape for m in maps] == [(200, 340), (200, 350),
                                                                  (200, 340)]
    assert scores == pytest.approx([float(m.max()) for m in maps])
    ev = evaluate(wide_category, model)
    assert ev.summary["pixel_auroc"] > 0.5 and ev.summary["pro"] is not None
    assert "original resolution" in ev.summary["evaluated_at"]


def test_tiled_model_round_trips_through_the_file(wide_category, tmp_path):
    model = PatchCore(**dict(TINY, tile=160)).fit(good_images(wide_category))
    back = PatchCore.load(model.save(tmp_path / "t.pclite"))
    assert back.config.tile == 160
    a, _ = model.predict(good_images(wide_category)[:2])
    b, _ = back.predict(good_images(wide_category)[:2])
    np.testing.assert_allclose(a, b, rtol=1e-6)


# ---- append --------------------------------------------------------------------------------

def test_append_with_no_sampling_scores_like_one_fit_on_both(tiny_category_ro):
    images = good_images(tiny_category_ro)
    opts = dict(TINY, sampling="none")
    both = PatchCore(**opts).fit(images)
    grown = PatchCore(**opts).fit(images[:3]).append(images[3:])
    assert torch.equal(grown.bank.patches, both.bank.patches)
    assert grown.bank.train_images == both.bank.train_images
    test = walk_images([tiny_category_ro / "test"])
    np.testing.assert_allclose(grown.predict(test)[0], both.predict(test)[0], rtol=1e-6)
    assert len(grown.good_scores) == len(images)


@pytest.mark.parametrize("method", ["random", "coreset"])
def test_append_grows_the_bank_by_the_ratio(tiny_category_ro, method):
    images = good_images(tiny_category_ro)
    model = PatchCore(**dict(TINY, sampling=method)).fit(images[:3])
    n0, per_image = len(model.bank.patches), int(np.prod(model.bank.grid))
    model.append(images[3:])
    new = (len(images) - 3) * per_image
    assert len(model.bank.patches) == n0 + sampling.n_keep(new, 0.5)
    assert int(model.bank.image.max()) == len(images) - 1


def test_cli_append_refuses_other_options_and_keeps_the_file(tiny_category_ro, tmp_path):
    path = tmp_path / "m.pclite"
    assert run_in_process("fit", tiny_category_ro, "--model", path, *FAST).returncode == 0
    before = path.read_bytes()
    r = run_in_process("fit", tiny_category_ro, "--model", path, "--append", *FAST, "--k", "3")
    assert r.returncode == 2 and "--k" in r.stderr and path.read_bytes() == before
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_in_process("fit", empty, "--model", path, "--append", *FAST)
    assert r.returncode == 2 and path.read_bytes() == before
    r = run_in_process("fit", tiny_category_ro / "test" / "good", "--model", path, "--append",
                       *FAST)
    assert r.returncode == 0, r.stderr
    header, _ = io.read_model_file(path)
    assert header["info"]["n_train"] == 6 + 2 and len(header["good_scores"]) == 6 + 2


def test_tiles_and_resize_are_bounded_by_name():
    from patchcore_lite.config import Config
    c = Config(tile=32, tile_overlap=0.99, resize=64, crop=0)
    with pytest.raises(PatchCoreError, match="--tile/--tile-overlap.*at most 10,000"):
        tiling.layout((2000, 2000), c)  # a 1-pixel step: ~3.9 million tiles
    # starts 0, 96, ..., 5856 (62) plus the edge tile at 5872: 63 per side
    assert len(tiling.layout((6000, 6000), Config(tile=128, resize=64, crop=0))) == 63 * 63
    with pytest.raises(PatchCoreError, match="--resize: at most 1024"):
        PatchCore(**dict(TINY, tile=64, resize=5000))


MEMORY_CHECK = """
import resource, sys
import numpy as np
from PIL import Image
from patchcore_lite import PatchCore
side = 6000
y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
img = np.stack([y, x, (x + y) / 2], -1) * 200 + 20  # smooth, so the PNG is quick to write
Image.fromarray(img.astype(np.uint8)).save(sys.argv[2])
del img, y, x
model = PatchCore.load(sys.argv[1], progress=False)
scores, maps = model.predict([sys.argv[2]])
ok = bool(np.isfinite(maps).all()) and float(maps.max()) == float(scores[0])
print(maps.shape, int(ok), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_tiled_predict_of_a_6000_px_image_fits_in_6_gb(tiny_category_ro, tmp_path):
    """Tiles go batch by batch into two (H, W) sums: memory is the image, two maps and one
    batch of tiles, whatever the tile count (here 21 x 21 tiles under a 6 GB address space)."""
    import subprocess
    import sys
    model = PatchCore(**dict(TINY, tile=384, tile_overlap=0.25)).fit(good_images(tiny_category_ro))
    path = model.save(tmp_path / "tiled.pclite")
    r = subprocess.run(["bash", "-c", 'ulimit -v 6000000 && exec "$0" -c "$1" "$2" "$3"',
                        sys.executable, MEMORY_CHECK, str(path), str(tmp_path / "big.png")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    shape, ok, rss_kb = r.stdout.split(")")[0] + ")", *map(int, r.stdout.split(")")[1].split())
    assert shape == "(1, 6000, 6000)" and ok  # one finite map whose max is the score
    assert rss_kb < 4 * 2**20  # 4 GiB; the image is 0.4 GiB as floats, each (H, W) map 0.14
    print(f"peak RSS {rss_kb / 1024:.0f} MiB")
