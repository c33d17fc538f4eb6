"""The training-set check (leave one image out): the robust outlier rule by hand, defective
parts planted in a good folder named as suspects and dropped, and --append giving the model one
fit on all images gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import TINY_OPTS as TINY
from PIL import Image

from patchcore_lite import PatchCore, trainset
from patchcore_lite.apps.cli import main


def test_outlier_rule_by_hand():
    # median 1.0; |s - 1| = 0,.1,.1,0,.05,.05,0,.02,4 -> MAD 0.05, spread 1.4826 * 0.05 = 0.0741
    scores = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.02, 5.0]
    assert trainset.outliers(scores, k=6.0) == [8]  # 1 + 6 * 0.0741 = 1.44
    assert trainset.outliers(scores, k=0.5) == [1, 4, 8]  # above 1.037
    assert trainset.outliers(scores[:7] + [5.0]) == [7]
    assert trainset.outliers(scores[:6] + [5.0]) == []  # 7 scores: too few to say


def test_sample_is_every_image_or_evenly_spaced():
    assert trainset.sample(5) == [0, 1, 2, 3, 4]
    got = trainset.sample(2500, most=1000)
    assert len(got) == 1000 and got[0] == 0 and got[-1] == 2499
    steps = np.diff(got)
    assert steps.min() >= 2 and steps.max() <= 3  # 2499 / 999 = 2.5


def _texture(rng: np.random.Generator) -> np.ndarray:
    """A smooth grey-green texture, (64, 64, 3) uint8."""
    coarse = rng.random((8, 8, 1)).astype(np.float32) * 0.3 + 0.35
    img = np.kron(coarse, np.ones((8, 8, 3), np.float32)) * np.array([0.8, 1.0, 0.7])
    return ((img + 0.05 * rng.random((64, 64, 3))) * 255).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """14 good images and 3 defective ones (bright squares) in one "good" folder."""
    root = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(0)
    good, bad = [], []
    for i in range(14):
        good.append(root / f"good_{i:02d}.png")
        Image.fromarray(_texture(rng)).save(good[-1])
    for i, colour in enumerate([(255, 0, 255), (255, 255, 0), (0, 0, 255)]):
        img = _texture(rng)
        img[8 + 12 * i:24 + 12 * i, 30:46] = colour
        bad.append(root / f"part_{i}.png")
        Image.fromarray(img).save(bad[-1])
    return good, bad


@pytest.mark.parametrize("sampling", ["coreset", "none"])
def test_planted_defects_are_named_and_dropped(planted, sampling):
    good, bad = planted
    images = sorted(good + bad)
    with pytest.warns(UserWarning, match="suspect training image"):
        model = PatchCore(**TINY, sampling=sampling, sampling_ratio=0.25).fit(images)
    named = {s["path"] for s in model.info["train_suspects"]}
    assert named == {str(p) for p in bad}
    assert model.info["train_checked"] == len(images)
    assert len(model.good_scores) == len(good)  # the threshold comes from the others
    with pytest.warns(UserWarning, match="suspect"):
        dropped = PatchCore(**TINY, sampling=sampling, sampling_ratio=0.25).fit(
            images, drop_suspects=True)
    clean = PatchCore(**TINY, sampling=sampling, sampling_ratio=0.25).fit(sorted(good))
    assert dropped.info["dropped_suspects"] == 3 and dropped.info["train_suspects"] == []
    assert torch.equal(dropped.bank.patches, clean.bank.patches)
    assert dropped.threshold == clean.threshold


def test_append_with_no_sampling_equals_one_fit_threshold_included(planted):
    good, _ = planted
    images = sorted(good)
    both = PatchCore(**TINY, sampling="none").fit(images)
    grown = PatchCore(**TINY, sampling="none").fit(images[:5]).append(images[5:])
    assert torch.equal(grown.bank.patches, both.bank.patches)
    assert grown.good_scores == pytest.approx(both.good_scores, rel=1e-6)
    assert grown.threshold == pytest.approx(both.threshold, rel=1e-6)
    assert grown.map_range == pytest.approx(both.map_range, rel=1e-6)


def test_planted_defects_are_named_with_mobilenet(planted):
    good, bad = planted
    with pytest.warns(UserWarning, match="suspect training image"):
        model = PatchCore(**TINY, backbone="mobilenet_v2", layers=("features.6", "features.13"),
                          sampling_ratio=0.25).fit(sorted(good + bad))
    assert {s["path"] for s in model.info["train_suspects"]} == {str(p) for p in bad}


def test_cli_fit_and_evaluate_report_suspects(planted, tmp_path, capsys):
    good, bad = planted
    folder = tmp_path / "cat"
    (folder / "train" / "good").mkdir(parents=True)
    for p in good + bad:
        (folder / "train" / "good" / p.name).write_bytes(p.read_bytes())
    args = ["--weights", "none", "--resize", "64", "--crop", "0", "--ratio", "0.25"]
    with pytest.warns(UserWarning) as said:
        assert main(["fit", str(folder), "--model", str(tmp_path / "m.pclite"),
                     "--drop-suspects", *args]) in (0, None)
    lines = [str(w.message) for w in said if "suspect training image" in str(w.message)]
    assert sorted(line.split()[3].rsplit("/", 1)[1] for line in lines) == [
        f"{p.name}:" for p in bad]
    assert "dropped 3 suspects and fitted again" in capsys.readouterr().err
    from patchcore_lite.evaluation.protocol import settings
    model = PatchCore.load(tmp_path / "m.pclite", progress=False)
    assert settings(model, 0.0)["train_suspects"] == []
    assert json.loads(json.dumps(settings(model, 0.0)))["dropped_suspects"] == 3
