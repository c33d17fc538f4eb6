"""The command line: bad input gives exit code != 0 and one 'error:' line naming the culprit.

Starting Python with torch takes 7-12 s on a small runner, so most cases call `cli.main` in
this process (helpers.run_in_process), capturing stdout/stderr and printing uncaught exceptions
as a traceback, as the interpreter would. One test always goes through `python -m
patchcore_lite`; set PATCHCORE_LITE_TEST_SUBPROCESS=1 to run every case that way (about 5 minutes).
Errors found before any work are the only stderr line; errors found while fitting come after
the "model: ..." line and a progress bar, and must still be the last and only "error:" line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import FAST, TINY_OPTS, run_in_process, run_subprocess
from PIL import Image
from sklearn.metrics import roc_auc_score

import patchcore_lite.io
from patchcore_lite import PatchCore
from patchcore_lite.data import good_images

ALL_SUBPROCESS = os.environ.get("PATCHCORE_LITE_TEST_SUBPROCESS") == "1"
SUMMARY_KEYS = ("image_auroc pixel_auroc pro threshold f1_threshold image_f1 n_train n_test "
                "memory_bank_size embed_dim fit_seconds predict_seconds_per_image weights "
                "backbone layers sampling ratio k resize crop device seed").split()


cli = run_subprocess if ALL_SUBPROCESS else run_in_process


def assert_error(res, *names, one_line=True):
    """Non-zero exit, no traceback, the last stderr line is the only 'error:' line and names
    every item of `names`. one_line: nothing else on stderr (no progress or model line)."""
    assert res.returncode != 0, res
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error:"), res.stderr
    assert sum(ln.startswith("error:") for ln in lines) == 1, res.stderr
    if one_line:
        assert len(lines) == 1, res.stderr
    for name in names:
        assert str(name) in lines[-1], (name, lines[-1])


def damage(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="module")
def model_file(tiny_category_ro, tmp_path_factory) -> Path:
    """A model fitted like `fit CATEGORY FAST` would, saved once for the module."""
    model = PatchCore(**TINY_OPTS, sampling="random")
    return model.fit(good_images(tiny_category_ro)).save(
        tmp_path_factory.mktemp("model") / "widget.pclite")


def test_missing_folder(tmp_path):
    assert_error(cli("fit", tmp_path / "nope", "--model", tmp_path / "m.pclite", *FAST), "nope")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_error(cli("fit", tmp_path / "empty", "--model", tmp_path / "m.pclite", *FAST),
                 tmp_path / "empty")


def test_evaluate_needs_mvtec_layout(tiny_category_ro, tmp_path):
    flat = tiny_category_ro / "train" / "good"  # images, but no train/ and test/ inside
    assert_error(cli("evaluate", flat, *FAST), flat, "MVTec")


def test_truncated_image_among_good_ones(tiny_category):
    bad = damage(tiny_category / "train" / "good" / "003.png")
    res = cli("fit", tiny_category, "--model", tiny_category / "m.pclite", *FAST)
    assert_error(res, bad, one_line=False)  # after the model line and a progress bar
    assert not (tiny_category / "m.pclite").exists()


def test_non_image_with_png_extension(tiny_category):
    fake = tiny_category / "train" / "good" / "notes.png"
    fake.write_text("these are not pixels\n")
    assert_error(cli("fit", tiny_category, "--model", tiny_category / "m.pclite", *FAST), fake,
                 one_line=False)


def test_failed_fit_leaves_model_file_alone(tiny_category, model_file):
    target = tiny_category / "m.pclite"
    target.write_bytes(model_file.read_bytes())
    damage(tiny_category / "train" / "good" / "001.png")
    assert_error(cli("fit", tiny_category, "--model", target, *FAST), "001.png", one_line=False)
    assert target.read_bytes() == model_file.read_bytes()


def test_mask_size_differs_from_image(tiny_category):
    mask = tiny_category / "ground_truth" / "broken" / "001_mask.png"
    Image.new("L", (32, 32)).save(mask)
    assert_error(cli("evaluate", tiny_category, *FAST), mask, one_line=False)


@pytest.mark.parametrize("option, value, expect", [
    ("--backbone", "resnet1234", "resnet1234"),
    ("--layers", "layer2,layer9", "layer9"),
    ("--ratio", "0", "--ratio"),
    ("--ratio", "1.5", "--ratio"),
    ("--k", "0", "--k"),
    ("--crop", "128", "--crop"),
    ("--sampling", "kmeans", "kmeans"),
    ("--device", "gpu0", "--device"),
    ("--resize", "16", "--resize"),
    ("--layers", "layer2,layer2", "--layers"),
])
def test_bad_option(tiny_category_ro, tmp_path, option, value, expect):
    res = cli("fit", tiny_category_ro, "--model", tmp_path / "m.pclite", *FAST, option, value)
    assert_error(res, expect)
    assert not (tmp_path / "m.pclite").exists()


@pytest.mark.parametrize("option, value, expect", [
    ("--layers", "layer2,fc", "fc"),  # found by the first forward pass
])
def test_bad_option_found_late(tiny_category_ro, tmp_path, option, value, expect):
    res = cli("fit", tiny_category_ro, "--model", tmp_path / "m.pclite", *FAST, option, value)
    assert_error(res, expect, one_line=False)
    assert not (tmp_path / "m.pclite").exists()


def test_bad_weights_file(tiny_category_ro, tmp_path):
    (tmp_path / "w.pth").write_bytes(b"junk")
    res = cli("fit", tiny_category_ro, "--model", tmp_path / "m.pclite", *FAST,
              "--weights", tmp_path / "w.pth")
    assert_error(res, tmp_path / "w.pth")


def tampered(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x55
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("spoil, expect", [(damage, "truncated"), (tampered, "checksum")])
def test_predict_refuses_damaged_model(tiny_category_ro, model_file, tmp_path, spoil, expect):
    bad = tmp_path / "m.pclite"
    bad.write_bytes(model_file.read_bytes())
    spoil(bad)
    res = cli("predict", "--model", bad, tiny_category_ro / "test" / "good")
    assert_error(res, bad, expect)
    assert res.stdout == ""


def test_predict_refuses_other_format_version(tiny_category_ro, tmp_path, monkeypatch):
    monkeypatch.setattr(patchcore_lite.io, "FORMAT", 0)
    model = PatchCore(**TINY_OPTS, sampling="random")
    old = model.fit(good_images(tiny_category_ro)).save(tmp_path / "old.pclite")
    monkeypatch.undo()
    res = cli("predict", "--model", old, tiny_category_ro / "test" / "good")
    assert_error(res, old, "format")


def test_predict_missing_inputs(tmp_path, model_file):
    assert_error(cli("predict", "--model", tmp_path / "none.pclite", tmp_path), "none.pclite")
    assert_error(cli("predict", "--model", model_file, tmp_path / "ghost.png"), "ghost.png")


def test_error_through_python_m(tiny_category):
    """One real interpreter run (seconds of torch import): progress output, then the error."""
    bad = damage(tiny_category / "train" / "good" / "003.png")
    res = run_subprocess("fit", tiny_category, "--model", tiny_category / "m.pclite", *FAST)
    assert_error(res, bad, one_line=False)
    assert not (tiny_category / "m.pclite").exists()


# ---------------------------------------------------------------- happy path


def read_json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_fit_predict_evaluate(tiny_category_ro, tmp_path):
    model = tmp_path / "widget.pclite"
    res = cli("fit", tiny_category_ro, "--model", model, *FAST)
    assert res.returncode == 0, res.stderr
    assert model.is_file()

    test = tiny_category_ro / "test"
    res = cli("predict", "--model", model, test / "good", test / "broken")
    assert res.returncode == 0, res.stderr
    rows = read_json_lines(res.stdout)
    assert [r["path"] for r in rows] == [str(p) for d in ("good", "broken")
                                         for p in sorted((test / d).glob("*.png"))]
    for r in rows:
        assert {"path", "score", "threshold", "anomalous"} <= set(r)
        assert isinstance(r["anomalous"], bool) and r["anomalous"] == (r["score"] >= r["threshold"])

    res = cli("predict", "--model", model, test / "good", "--threshold", "-1", "--json",
              tmp_path / "p.jsonl")
    assert res.returncode == 0 and res.stdout == ""
    forced = read_json_lines((tmp_path / "p.jsonl").read_text())
    assert all(r["anomalous"] and r["threshold"] == -1 for r in forced)

    res = cli("evaluate", tiny_category_ro, "--model", model, "--json", tmp_path / "ev.json")
    assert res.returncode == 0, res.stderr
    ev = json.loads((tmp_path / "ev.json").read_text())
    labels = [int("broken" in r["path"]) for r in rows]
    assert ev["image_auroc"] == pytest.approx(roc_auc_score(labels, [r["score"] for r in rows]))
    assert ev["threshold"] == pytest.approx(rows[0]["threshold"])


def test_evaluate_json_has_every_key(tiny_category_ro, tmp_path):
    res = cli("evaluate", tiny_category_ro, *FAST, "--json", tmp_path / "ev.json")
    assert res.returncode == 0, res.stderr
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert not set(SUMMARY_KEYS) - set(ev)
    assert ev["weights"] == "random"
    assert (ev["n_train"], ev["n_test"]) == (6, 4)
    assert (ev["backbone"], ev["layers"], ev["sampling"], ev["ratio"], ev["k"]) == (
        "resnet18", ["layer2", "layer3"], "random", 0.1, 1)
    assert (ev["resize"], ev["crop"], ev["device"], ev["seed"]) == (64, 0, "cpu", 0)
    assert ev["memory_bank_size"] == round(0.1 * 6 * 8 * 8) and ev["embed_dim"] == 128 + 256
    for key in ("image_auroc", "pixel_auroc", "pro", "image_f1"):
        assert 0 <= ev[key] <= 1, key
