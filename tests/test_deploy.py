"""Deploying: ONNX export parity, calibrated scores, thresholds from a false-alarm rate, older
model files. References: the .pclite model's own scores, hand-made score distributions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import TINY, run_in_process

from patchcore_lite import PatchCore, PatchCoreError, calibration, io
from patchcore_lite.apps import export
from patchcore_lite.data import good_images, walk_images


@pytest.fixture(scope="module")
def tiny_model(tiny_category_ro):
    return PatchCore(**TINY).fit(good_images(tiny_category_ro))


@pytest.fixture(scope="module")
def test_paths(tiny_category_ro):
    return walk_images([tiny_category_ro / "test"])


# ---- export --------------------------------------------------------------------------------

@pytest.mark.parametrize("opts", [dict(k=1), dict(k=3),
                                  dict(backbone="mobilenet_v2",
                                       layers=("features.6", "features.13"))],
                         ids=["k1", "k3", "mobilenet"])
def test_onnx_scores_like_the_model_across_bank_blocks(tiny_category_ro, test_paths, tmp_path,
                                                       monkeypatch, opts):
    model = PatchCore(**dict(TINY, **opts)).fit(good_images(tiny_category_ro))
    h, w = model.bank.grid
    monkeypatch.setattr(export, "BLOCK_FLOATS", h * w * 40)  # blocks of 40 bank patches
    assert len(model.bank.patches) > 80  # so the graph has several blocks
    onnx_model = export.OnnxModel(export.export_onnx(model, tmp_path / "m.onnx"))
    s_ref, m_ref = model.predict(test_paths)
    for batch in (1, 7):
        s, m = onnx_model.predict(test_paths, batch_size=batch)
        np.testing.assert_allclose(s, s_ref, rtol=1e-3)
        np.testing.assert_allclose(m, m_ref, rtol=1e-3, atol=1e-3 * float(abs(m_ref).max()))


def test_predict_with_onnx_gives_the_same_json(tiny_model, tiny_category_ro, tmp_path):
    pcl = tiny_model.save(tmp_path / "m.pclite")
    r = run_in_process("export", "--model", pcl, "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert r.returncode == 0, r.stderr
    lines = {}
    for name in ("m.pclite", "m.onnx"):
        r = run_in_process("predict", "--model", tmp_path / name, tiny_category_ro / "test")
        assert r.returncode == 0, r.stderr
        lines[name] = [json.loads(x) for x in r.stdout.splitlines()]
    for a, b in zip(lines["m.pclite"], lines["m.onnx"]):
        assert a["path"] == b["path"] and a["anomalous"] == b["anomalous"]
        assert a["threshold"] == b["threshold"]
        assert b["score"] == pytest.approx(a["score"], rel=1e-3)
        assert b["normalized_score"] == pytest.approx(a["normalized_score"], abs=1e-3)


def test_export_refuses_what_the_graph_cannot_hold(tiny_category_ro, tmp_path):
    model = PatchCore(**dict(TINY, reweight=True, reweight_b=3)).fit(good_images(tiny_category_ro))
    with pytest.raises(PatchCoreError, match="--reweight"):
        export.export_onnx(model, tmp_path / "m.onnx")


# ---- calibration and sensitivity -----------------------------------------------------------

def test_normalized_score_is_half_at_the_threshold_and_monotone(tiny_model):
    t = tiny_model.threshold
    grid = np.linspace(t - 5, t + 5, 1001)
    n = tiny_model.normalized(grid, t)
    assert tiny_model.normalized([t], t)[0] == 0.5
    assert np.all(np.diff(n) >= 0) and n.min() >= 0 and n.max() <= 1
    assert np.array_equal(n >= 0.5, grid >= t)  # anomalous == (normalized >= 0.5)
    assert tiny_model.normalized([float("nan")], t)[0] == 1.0  # NaN never passes
    med = float(np.median(tiny_model.good_scores))
    assert tiny_model.normalized([med], t)[0] == pytest.approx(0.1)


def test_sensitivity_moves_the_threshold_without_refitting(tiny_model):
    t, med = tiny_model.threshold, float(np.median(tiny_model.good_scores))
    assert tiny_model.effective_threshold() == t
    assert tiny_model.effective_threshold(sensitivity=1.0) == pytest.approx(med)
    assert tiny_model.effective_threshold(sensitivity=0.0) == pytest.approx(2 * t - med)
    ts = [tiny_model.effective_threshold(sensitivity=s) for s in np.linspace(0, 1, 11)]
    assert np.all(np.diff(ts) <= 0)
    with pytest.raises(PatchCoreError, match="exclude each other"):
        tiny_model.effective_threshold(1.0, 0.5)
    with pytest.raises(PatchCoreError, match="--sensitivity"):
        tiny_model.effective_threshold(sensitivity=1.5)


def test_target_fpr_on_a_synthetic_distribution():
    scores = np.arange(200, dtype=float)  # 200 good images, scores 0..199
    for f in (0.01, 0.05, 0.25):
        t, info = calibration.target_fpr_threshold(scores, f)
        assert np.mean(scores >= t) == pytest.approx(f, abs=1 / 200)
        assert info["fpr_std_error"] == pytest.approx(np.sqrt(f * (1 - f) / 200))
    with pytest.warns(UserWarning, match="below 1/n"):
        calibration.target_fpr_threshold(scores, 0.001)
    with pytest.raises(PatchCoreError, match="--target-fpr"):
        calibration.target_fpr_threshold(scores, 1.5)


def test_fit_target_fpr_sets_the_threshold_from_good_scores(tiny_category_ro):
    model = PatchCore(**dict(TINY, target_fpr=0.5)).fit(good_images(tiny_category_ro))
    good = np.array(model.good_scores)
    assert np.mean(good >= model.threshold) == pytest.approx(0.5, abs=1 / len(good))
    assert model.threshold_info["target_fpr"] == 0.5


def test_format_1_files_still_load_and_calibrate(tiny_model, tmp_path, monkeypatch):
    header = tiny_model.header()
    header.pop("good_scores")
    for key in ("target_fpr", "tile", "tile_overlap"):
        header["config"].pop(key)
    b = tiny_model.bank
    tensors = dict(patches=b.patches, image=b.image.int(), pos=b.pos.int())
    monkeypatch.setattr(io, "FORMAT", 1)
    old = io.write_model_file(tmp_path / "old.pclite", header, tensors)
    monkeypatch.undo()
    model = PatchCore.load(old)
    assert model.good_scores == [] and model.threshold == tiny_model.threshold
    t = model.effective_threshold()
    assert model.normalized([t], t)[0] == 0.5
    assert model.normalized([model.map_range[0]], t)[0] == pytest.approx(0.1)
