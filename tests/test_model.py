"""PatchCore end to end on tiny inputs: scores against brute force, save/load and its refusals."""

import json

import numpy as np
import pytest
import torch
import torchvision
from helpers import TINY_CORESET as OPTS
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import patchcore_lite.io
from patchcore_lite import PatchCore, PatchCoreError, calibration

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def images(n, seed):
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


TRAIN, TEST = images(6, 0), images(3, 1)


@pytest.fixture(scope="module")
def fitted():
    return PatchCore(**OPTS).fit(TRAIN)


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    """A saved model file and its scores on TEST; tests copy it before damaging it."""
    path = fitted.save(tmp_path_factory.mktemp("saved") / "m.pclite")
    return path, fitted.predict(TEST)[0]


def copy_of(path, tmp_path):
    out = tmp_path / path.name
    out.write_bytes(path.read_bytes())
    return out


def reference_scores(model, imgs, k=1):
    """max over patches of the mean distance to the k nearest bank patches (float64 cdist)."""
    feats = model.features(imgs).double()  # (N, h, w, D)
    bank = model.bank.patches.double()
    d = torch.cdist(feats.reshape(len(imgs), -1, feats.shape[-1]), bank)  # (N, P, M)
    return d.topk(k, dim=2, largest=False).values.mean(2).amax(1).numpy()


# ---------------------------------------------------------------- fit and predict


def test_predict_shapes(fitted):
    scores, maps = fitted.predict(TEST)
    assert scores.shape == (3,) and maps.shape == (3, 64, 64)
    assert np.isfinite(scores).all() and np.isfinite(maps).all()
    assert fitted.info["n_train"] == 6
    assert fitted.info["memory_bank_size"] == len(fitted.bank.patches) == round(0.25 * 6 * 64)


def test_bank_remembers_where_patches_came_from(fitted):
    feats = fitted.features(TRAIN)  # (N, h, w, D)
    b = fitted.bank
    flat = feats.reshape(len(TRAIN), -1, feats.shape[-1])
    torch.testing.assert_close(b.patches, flat[b.image.long(), b.pos.long()])


@pytest.mark.parametrize("k", [1, 3])
def test_scores_match_brute_force(fitted, k):
    model = fitted if k == 1 else PatchCore(k=k, **OPTS).fit(TRAIN)
    scores, _ = model.predict(TEST)
    np.testing.assert_allclose(scores, reference_scores(model, TEST, k), rtol=1e-4)


def test_same_seed_same_scores(fitted):
    again = PatchCore(**OPTS).fit(TRAIN)
    assert np.array_equal(again.predict(TEST)[0], fitted.predict(TEST)[0])
    assert again.threshold == fitted.threshold


def test_training_images_score_zero_against_full_bank():
    model = PatchCore(**dict(OPTS, sampling="none")).fit(TRAIN)
    assert float(np.abs(model.predict(TRAIN[:2])[0]).max()) < 1e-3


def test_default_threshold_is_leave_one_out_quantile(fitted):
    feats = fitted.features(TRAIN).double()
    b = fitted.bank
    loo = []
    for i in range(len(TRAIN)):
        others = b.patches[b.image != i].double()
        loo.append(float(torch.cdist(feats[i].reshape(-1, feats.shape[-1]), others)
                         .min(dim=1).values.max()))
    want = np.quantile(loo, calibration.THRESHOLD_QUANTILE)
    assert fitted.threshold == pytest.approx(want, rel=1e-4)


def test_reweight_path():
    plain = PatchCore(**OPTS).fit(TRAIN).predict(TEST)[0]
    rw = PatchCore(reweight=True, reweight_b=3, **OPTS).fit(TRAIN)
    scores, maps = rw.predict(TEST)
    assert scores.shape == (3,) and maps.shape == (3, 64, 64)
    assert (scores > 0).all() and (scores < plain).all()  # s* scaled by a factor in (0, 1)


def test_paths_pil_and_tensors_agree(fitted, tiny_category_ro):
    paths = sorted((tiny_category_ro / "test" / "broken").glob("*.png"))
    pils = [Image.open(p).convert("RGB") for p in paths]
    tensors = torch.stack([torch.from_numpy(np.asarray(im, np.float32) / 255).permute(2, 0, 1)
                           for im in pils])
    by_path, by_pil, by_tensor = (fitted.predict(x)[0] for x in (paths, pils, tensors))
    np.testing.assert_array_equal(by_path, by_pil)
    np.testing.assert_allclose(by_path, by_tensor, rtol=1e-6)


def test_predict_before_fit_is_refused():
    with pytest.raises(PatchCoreError, match="fit"):
        PatchCore(**OPTS).predict(TEST)


def test_fit_needs_two_images():
    with pytest.raises(PatchCoreError, match="2"):
        PatchCore(**OPTS).fit(TRAIN[:1])


# ---------------------------------------------------------------- save and load


def test_save_load_round_trip(saved, fitted):
    path, scores = saved
    loaded = PatchCore.load(path, progress=False)
    assert np.array_equal(loaded.predict(TEST)[0], scores)
    assert loaded.threshold == fitted.threshold
    assert loaded.map_range == pytest.approx(fitted.map_range)
    assert loaded.weights_used == "random"
    assert loaded.config == fitted.config


def test_truncated_file_is_refused(saved, tmp_path):
    path = copy_of(saved[0], tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(PatchCoreError, match="m.pclite"):
        PatchCore.load(path)


@pytest.mark.parametrize("offset", [-10, -300])
def test_tampered_tensor_data_is_refused(saved, tmp_path, offset):
    path = copy_of(saved[0], tmp_path)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(PatchCoreError, match="checksum"):
        PatchCore.load(path)


def test_tampered_header_is_refused(saved, tmp_path):
    with safe_open(str(saved[0]), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    header = json.loads(meta["patchcore_lite"])
    header["threshold"] *= 10  # a "better" threshold, same checksum
    meta["patchcore_lite"] = json.dumps(header, sort_keys=True)
    save_file(tensors, tmp_path / "m.pclite", metadata=meta)
    with pytest.raises(PatchCoreError, match="checksum"):
        PatchCore.load(tmp_path / "m.pclite")


def test_other_format_version_is_refused(fitted, tmp_path, monkeypatch):
    monkeypatch.setattr(patchcore_lite.io, "FORMAT", patchcore_lite.io.FORMAT + 1)
    fitted.save(tmp_path / "future.pclite")
    monkeypatch.undo()
    with pytest.raises(PatchCoreError, match="format"):
        PatchCore.load(tmp_path / "future.pclite")


def test_not_a_model_file_is_refused(tmp_path):
    save_file({"x": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(PatchCoreError, match="other.safetensors"):
        PatchCore.load(tmp_path / "other.safetensors")
    with pytest.raises(PatchCoreError, match="missing.pclite"):
        PatchCore.load(tmp_path / "missing.pclite")


def save_resnet18(path, seed):
    torch.manual_seed(seed)
    sd = torchvision.models.resnet18().state_dict()
    torch.save({k: v for k, v in sd.items() if not k.startswith("fc.")}, path)


def test_changed_backbone_weights_are_refused(tmp_path):
    pth = tmp_path / "backbone.pth"
    save_resnet18(pth, seed=1)
    model = PatchCore(**dict(OPTS, weights=str(pth), sampling="random")).fit(TRAIN)
    model.save(tmp_path / "m.pclite")
    assert PatchCore.load(tmp_path / "m.pclite").weights_used == str(pth)  # same file: fine
    save_resnet18(pth, seed=2)
    with pytest.raises(PatchCoreError, match="differ"):
        PatchCore.load(tmp_path / "m.pclite")


def test_failed_save_leaves_existing_file_alone(saved, tmp_path, monkeypatch, fitted):
    path = copy_of(saved[0], tmp_path)
    before = path.read_bytes()

    def half_written(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 100)
        raise OSError("No space left on device")

    monkeypatch.setattr(patchcore_lite.io, "save_file", half_written)
    with pytest.raises(PatchCoreError, match="cannot write .*No space"):
        fitted.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pclite"]  # no temp file left


def test_failed_fit_leaves_existing_file_alone(saved, tmp_path, tiny_category_ro):
    path = copy_of(saved[0], tmp_path)
    before = path.read_bytes()
    bad = tmp_path / "bad.png"
    data = (tiny_category_ro / "train" / "good" / "000.png").read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    good = sorted((tiny_category_ro / "train" / "good").glob("*.png"))
    with pytest.raises(PatchCoreError, match="bad.png"):
        PatchCore(**OPTS).fit([*good, bad]).save(path)
    assert path.read_bytes() == before


@cuda
def test_cuda_predict_equals_cpu(fitted, saved):
    gpu = PatchCore.load(saved[0], device="cuda", progress=False)
    scores, maps = gpu.predict(TEST)
    cpu_scores, cpu_maps = fitted.predict(TEST)
    np.testing.assert_allclose(scores, cpu_scores, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(maps, cpu_maps, rtol=1e-3, atol=1e-4)


def test_score_features_with_a_given_bank_needs_no_fit():
    """Lessons and graders score against a bank they built: no fitted bank is needed."""
    from helpers import TINY_OPTS
    model = PatchCore(**TINY_OPTS)
    g = torch.Generator().manual_seed(0)
    feats, bank = torch.randn(1, 4, 4, 8, generator=g), torch.randn(20, 8, generator=g)
    _, _, patch = model.score_features(feats, bank=bank, k=1)
    want = torch.cdist(feats.reshape(-1, 8), bank).min(1).values.reshape(1, 4, 4)
    assert torch.allclose(patch, want, atol=1e-5)
