"""Every plot function builds a figure that saves as a non-empty PNG (Agg backend)."""

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from patchcore_lite.evaluation import plots

matplotlib.use("Agg")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WEIGHTS = "backbone: resnet18, weights: random init"


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    images = rng.random((5, 32, 32, 3))
    masks = np.zeros((5, 32, 32), dtype=bool)
    masks[2:, 8:16, 10:20] = True
    maps = rng.random((5, 32, 32)) + 2 * masks
    labels = masks.any(axis=(1, 2)).astype(int)
    scores = maps.max(axis=(1, 2))
    return images, masks, maps, labels, scores


def check_png(fig, path):
    assert isinstance(fig, Figure)
    assert plots.save(fig, path) == path
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_overlay(data, tmp_path):
    images, masks, maps, _, _ = data
    fig = plots.overlay(
        images[2], maps[2], masks[2], vmin=0, vmax=3, title="defect", subtitle=WEIGHTS
    )
    check_png(fig, tmp_path / "overlay.png")


def test_overlay_input_layouts(data, tmp_path):
    images, _, maps, _, _ = data
    uint8_chw = (images[0] * 255).astype(np.uint8).transpose(2, 0, 1)
    check_png(plots.overlay(uint8_chw, maps[0]), tmp_path / "chw.png")  # per-image scale
    check_png(plots.overlay(images[0, ..., 0], maps[0], np.zeros((32, 32))), tmp_path / "g.png")
    fig = Figure()
    ax = fig.subplots()
    assert plots.overlay(images[0], maps[0], ax=ax, colorbar=False) is fig
    with pytest.raises(ValueError):
        plots.overlay(images[0], maps[0, :16])


def test_overlay_grid(data, tmp_path):
    images, masks, maps, _, _ = data
    titles = [f"image {i}" for i in range(5)]
    fig = plots.overlay_grid(images, maps, masks, titles, vmin=0, vmax=3, ncols=3, suptitle=WEIGHTS)
    check_png(fig, tmp_path / "sub" / "grid.png")
    check_png(plots.overlay_grid(images[:2], maps[:2], None, None), tmp_path / "grid2.png")
    with pytest.raises(ValueError):
        plots.overlay_grid(images, maps[:3])


def test_roc_figure(data, tmp_path):
    _, _, _, labels, scores = data
    check_png(plots.roc_figure(labels, scores, subtitle=WEIGHTS), tmp_path / "roc.png")
    check_png(plots.roc_figure([0, 0], [0.1, 0.2]), tmp_path / "roc_one_class.png")


def test_score_histogram(data, tmp_path):
    _, _, _, labels, scores = data
    fig = plots.score_histogram(scores, labels, threshold=2.0, subtitle=WEIGHTS)
    check_png(fig, tmp_path / "hist.png")
    check_png(plots.score_histogram(scores, np.zeros(5), None), tmp_path / "hist_good.png")


def test_pro_figure(data, tmp_path):
    _, masks, maps, _, _ = data
    check_png(plots.pro_figure(masks, maps, subtitle=WEIGHTS), tmp_path / "pro.png")
    check_png(plots.pro_figure(np.zeros_like(masks), maps), tmp_path / "pro_none.png")


def test_shared_drawing_bits(data):
    import torch

    images, masks, _, _, _ = data
    chw = torch.from_numpy(images[0].transpose(2, 0, 1))
    assert np.allclose(plots.to_rgb(chw), images[0])  # a (3, H, W) tensor, as the model sees it
    assert plots.to_rgb((images[0] * 255).astype(np.uint8)).max() <= 1.0
    ax = Figure().subplots()
    plots.outline(ax, None)
    plots.outline(ax, np.zeros((32, 32)))
    assert not ax.collections  # nothing to outline
    plots.outline(ax, torch.from_numpy(masks[2]))
    assert ax.collections and plots.MASK_COLOR == "cyan"
