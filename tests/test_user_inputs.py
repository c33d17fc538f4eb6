"""What a user brings, cause by cause: output paths, generated data, model files, arguments.

Each test names the cause it covers; the CLI runs in-process (helpers.run_in_process), one test
always through `python -m patchcore_lite`.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import torch
from helpers import FAST, TINY, run_in_process, run_subprocess

from patchcore_lite import PatchCore, PatchCoreError, io
from patchcore_lite.apps.demo import check_out
from patchcore_lite.data import good_images
from patchcore_lite.datasets.synth import generate


@pytest.fixture(scope="module")
def model_file(tiny_category_ro, tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "tiny.pclite"
    PatchCore(**TINY).fit(good_images(tiny_category_ro)).save(path)
    return path


def error_line(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    return lines[0]


# ---- data loss: generated output replaces only what the kit generated ----------------------

def test_synth_refuses_a_users_category_and_force_overrides(tmp_path):
    mine = tmp_path / "brick" / "train" / "good"
    mine.mkdir(parents=True)
    (mine / "my_part.png").write_bytes(b"precious")
    with pytest.raises(PatchCoreError, match="did not generate"):
        generate(tmp_path, n_train=2, n_test=5, categories=["brick"])
    assert (mine / "my_part.png").read_bytes() == b"precious"
    generate(tmp_path, n_train=2, n_test=5, categories=["brick"], force=True)
    assert not (mine / "my_part.png").exists()
    generate(tmp_path, n_train=3, n_test=5, categories=["brick"])  # its own: replaced freely
    assert len(list(mine.iterdir())) == 3


def test_demo_refuses_a_foreign_report_and_model(tmp_path):
    (tmp_path / "index.html").write_text("<p>my report</p>")
    with pytest.raises(PatchCoreError, match="report the kit did not write"):
        check_out(tmp_path, ["brick"], force=False)
    r = run_in_process("demo", "--out", tmp_path, "--weights", "none")
    assert "did not write" in error_line(r)
    assert (tmp_path / "index.html").read_text() == "<p>my report</p>"
    (tmp_path / "index.html").unlink()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "brick.pclite").write_bytes(b"not a model")
    with pytest.raises(PatchCoreError, match="not a model the kit wrote"):
        check_out(tmp_path, ["brick"], force=False)
    check_out(tmp_path, ["brick"], force=True)


# ---- writing results -------------------------------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_writing_to_a_device_or_symlink_never_replaces_it(tmp_path):
    io.write_text("/dev/null", "x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    io.write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_rewriting_keeps_the_mode_and_leaves_no_temporary_file(tmp_path, model_file):
    m = PatchCore.load(model_file)
    out = tmp_path / "m.pclite"
    m.save(out)
    os.chmod(out, 0o644)
    m.save(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["m.pclite"]


def test_output_paths_are_checked_before_the_slow_work(tiny_category_ro, tmp_path):
    r = run_in_process("fit", tiny_category_ro, "--model", tmp_path, *FAST)
    assert "is a folder" in error_line(r) and "--model" in r.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_in_process("fit", tiny_category_ro, "--model", blocker / "m.pclite", *FAST)
    assert "is a file, not a folder" in error_line(r)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_disk_full_is_one_error_line(tiny_category_ro, model_file):
    r = run_subprocess("predict", "--model", model_file, tiny_category_ro / "test" / "good",
                       "--json", "/dev/full")
    assert "/dev/full" in error_line(r)


def test_predict_walks_a_tree_and_keeps_one_overlay_per_input(tiny_category_ro, model_file,
                                                              tmp_path):
    test = tiny_category_ro / "test"
    r = run_in_process("predict", "--model", model_file, test, "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    want = sorted(str(p) for p in test.rglob("*.png"))
    assert sorted(x["path"] for x in lines) == want  # the prefix the user gave is kept
    overlays = sorted((tmp_path / "o").rglob("*_overlay.png"))
    assert len(overlays) == len(want)  # good/000 and broken/000 do not overwrite each other


# ---- arguments -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, flag", [
    (["--threshold", "nan"], "--threshold"), (["--threshold", "inf"], "--threshold"),
    (["--batch-size", "0"], "--batch-size"), (["--device", "mps"], "--device"),
])
def test_bad_predict_arguments_are_named(tiny_category_ro, model_file, args, flag):
    r = run_in_process("predict", "--model", model_file, tiny_category_ro / "test", *args)
    assert r.returncode == 2 and flag in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("kwargs, flag", [
    (dict(k="3"), "--k"), (dict(k=1.5), "--k"), (dict(sampling_ratio="0.1"), "--ratio"),
    (dict(crop=None), "--crop"), (dict(seed=2**64), "--seed"), (dict(resize=2048), "--resize"),
    (dict(device="meta"), "--device"), (dict(device="xpu"), "--device"),
])
def test_python_api_names_the_argument(kwargs, flag):
    with pytest.raises(PatchCoreError, match=flag):
        PatchCore(**dict(TINY, **kwargs))


def test_k_above_the_bank_and_embed_dim_above_the_features(tiny_category_ro):
    images = good_images(tiny_category_ro)
    with pytest.raises(PatchCoreError, match=r"--k: .* only \d+ patches"):
        PatchCore(**dict(TINY, k=10**6)).fit(images)
    with pytest.raises(PatchCoreError, match="--embed-dim: 4000 is above"):
        PatchCore(**dict(TINY, embed_dim=4000)).fit(images)


def test_two_images_needed_named_before_embedding(tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 64)).save(tmp_path / "only.png")
    with pytest.raises(PatchCoreError, match=f"at least 2 .* in {tmp_path}"):
        PatchCore(**TINY).fit(tmp_path)


def test_evaluate_with_a_model_applies_k_and_refuses_fit_options(tiny_category_ro, model_file,
                                                                  tmp_path):
    out = tmp_path / "r.json"
    r = run_in_process("evaluate", tiny_category_ro, "--model", model_file, "--k", "3",
                       "--json", out)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["k"] == 3
    r = run_in_process("evaluate", tiny_category_ro, "--model", model_file, "--resize", "128")
    assert "--resize" in error_line(r) and "fit again" in r.stderr


# ---- model files ---------------------------------------------------------------------------

def _rewrite(src: Path, dst: Path, edit) -> Path:
    header, tensors = io.read_model_file(src)
    header.pop("format")
    edit(header, tensors)
    return io.write_model_file(dst, header, tensors)  # a valid checksum over the bad header


@pytest.mark.parametrize("edit", [
    lambda h, t: h.pop("threshold"), lambda h, t: h.update(extra=1),
    lambda h, t: h.update(threshold="high"), lambda h, t: h.update(grid=[10**9, 1]),
    lambda h, t: h["config"].update(k="many"),
    lambda h, t: t.update(pos=torch.full_like(t["pos"], 10**6)),
    lambda h, t: t.update(image=t["image"][:1]),
], ids=["missing", "extra", "type", "absurd-grid", "config-type", "indices", "shapes"])
def test_malformed_header_with_a_valid_checksum_is_refused(model_file, tmp_path, edit):
    bad = _rewrite(model_file, tmp_path / "bad.pclite", edit)
    with pytest.raises(PatchCoreError, match=str(bad).replace("\\", "\\\\")):
        PatchCore.load(bad)


def test_signed_models_load_only_with_their_key(model_file, tmp_path):
    key, other = tmp_path / "key", tmp_path / "other"
    key.write_bytes(b"secret key one")
    other.write_bytes(b"another key")
    signed = PatchCore.load(model_file).save(tmp_path / "s.pclite", io.read_key(key))
    PatchCore.load(signed, key=io.read_key(key))
    with pytest.raises(PatchCoreError, match="signed; pass the signing key"):
        PatchCore.load(signed)
    with pytest.raises(PatchCoreError, match="signature does not match"):
        PatchCore.load(signed, key=io.read_key(other))
    with pytest.raises(PatchCoreError, match="not signed, but a key was given"):
        PatchCore.load(model_file, key=io.read_key(key))
    header, _ = io.read_model_file(signed, io.read_key(key))
    assert "config" in header  # the JSON header stays readable under `patchcore_lite`


def test_import_does_not_load_torch():
    import subprocess

    code = "import sys, patchcore_lite; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # so Ctrl-C while torch loads ends in __main__ (130)


def test_reweight_needs_b_bank_patches(tiny_category_ro):
    tiny = dict(TINY, sampling_ratio=0.0005, reweight=True, reweight_b=9)  # a bank of ~3 patches
    with pytest.raises(PatchCoreError, match="--reweight-b: 9 neighbours"):
        PatchCore(**tiny).fit(good_images(tiny_category_ro))


@pytest.mark.parametrize("backbone, layers", [("resnet18", "layer2,layer3"),
                                              ("mobilenet_v2", "features.6,features.13")])
def test_limits_named_for_other_backbones_too(tiny_category_ro, backbone, layers):
    images = good_images(tiny_category_ro)
    opts = dict(TINY, backbone=backbone, layers=layers)
    with pytest.raises(PatchCoreError, match="--embed-dim: 100000 is above"):
        PatchCore(**dict(opts, embed_dim=100000)).fit(images)
    with pytest.raises(PatchCoreError, match="--batch-size"):
        PatchCore(**dict(opts, batch_size=10**6))
    model = PatchCore(**opts).fit(images)
    with pytest.raises(PatchCoreError, match="--batch-size"):
        model.predict(images, batch_size=0)
    with pytest.raises(PatchCoreError, match="--k: .* only"):
        model.predict(images, k=10**7)


def test_one_training_image_is_named_with_its_folder(tmp_path):
    from PIL import Image

    (tmp_path / "train" / "good").mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(tmp_path / "train" / "good" / "a.png")
    r = run_in_process("fit", tmp_path, "--model", tmp_path / "m.pclite", *FAST)
    assert "need at least 2" in error_line(r) and str(tmp_path) in r.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="byte file names")
def test_non_utf8_file_names_with_out(tiny_category_ro, model_file, tmp_path):
    import shutil

    folder = tmp_path / "cam"
    folder.mkdir()
    shutil.copy(next((tiny_category_ro / "test" / "good").iterdir()),
                os.fsencode(folder) + b"/\xffshot.png")
    r = run_in_process("predict", "--model", model_file, folder, "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "o").rglob("*_overlay.png"))) == 1
