"""Trust in files, cause by cause: one writer for every user-named path, one integrity rule for
.pclite and .onnx (a key requires a signature), output paths checked before scoring, load paths
validated, messages that say what is true. The CLI runs in-process (test_cli_errors helpers).
References: file types from os.stat, bytes written by hand, scores of the .pclite model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FAST, TINY, hide_module, run_in_process

from patchcore_lite import PatchCore, PatchCoreError, io
from patchcore_lite.apps import onnx_file
from patchcore_lite.data import good_images, walk_images

KEY = b"trust test key"


@pytest.fixture(scope="module")
def model_file(tiny_category_ro, tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "tiny.pclite"
    PatchCore(**TINY).fit(good_images(tiny_category_ro)).save(path)
    return path


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("k") / "key"
    path.write_bytes(KEY)
    return path


@pytest.fixture(scope="module")
def signed_onnx(model_file, key_file, tmp_path_factory):
    """A signed .pclite exported through the CLI with its key (one export for the module)."""
    d = tmp_path_factory.mktemp("onnx")
    signed = PatchCore.load(model_file).save(d / "signed.pclite", KEY)
    r = run_in_process("export", "--model", signed, "--key", key_file, "--out", d / "s.onnx")
    assert r.returncode == 0, r.stderr
    return d / "s.onnx"


def error_line(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    return lines[0]


def _rewrite(src: Path, dst: Path, edit, key=None) -> Path:
    """A model file with `edit` applied and a valid checksum: what anyone can write."""
    header, tensors = io.read_model_file(src, key)
    header.pop("format")
    edit(header, tensors)
    return io.write_model_file(dst, header, tensors)


def _reseal(src: Path, dst: Path, edit=lambda meta: None) -> Path:
    """An export with its seal removed, metadata edited, and a fresh (unsigned) sha256."""
    import onnx

    proto = onnx.load(str(src))
    meta = {p.key: p.value for p in proto.metadata_props if p.key not in ("sha256", "hmac")}
    edit(meta)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    body = proto.SerializeToString()
    tail = onnx.ModelProto()
    tail.metadata_props.add(key="sha256", value=hashlib.sha256(body).hexdigest())
    dst.write_bytes(body + tail.SerializeToString())
    return dst


# ---- 1. one writer: a device node, a symlink or a read-only file is never replaced ---------

def test_fit_onto_a_device_node_keeps_the_node(tiny_category_ro, tmp_path):
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    except (PermissionError, AttributeError):
        pytest.skip("creating a device node needs root")
    r = run_in_process("fit", tiny_category_ro, "--model", node, *FAST)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.lstat(node).st_mode)  # still the device, not a regular file
    assert not [p for p in tmp_path.iterdir() if p != node]  # no temporary file left


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_writer_hands_libraries_a_temporary_file_only(tmp_path):
    """Whatever the library does with the path it is given (safetensors, onnx, matplotlib
    may replace it), the user's symlink stays a symlink and a FIFO or device stays one."""
    target = tmp_path / "real.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    seen = []

    def replacing_library(p):  # writes elsewhere, then renames over the path it was given
        seen.append(p)
        Path(p + ".x").write_bytes(b"new")
        os.replace(p + ".x", p)

    io.write_atomic(link, replacing_library)
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert seen and all(Path(p).parent == tmp_path.resolve() and p != str(link) for p in seen)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so that the writer can open it
    try:
        io.write_atomic(fifo, replacing_library)
        assert os.read(fd, 10) == b"new"
    finally:
        os.close(fd)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may replace any file")
def test_writer_refuses_to_replace_a_read_only_file(tmp_path):
    ro = tmp_path / "ro.json"
    ro.write_text("mine")
    ro.chmod(0o444)
    with pytest.raises(PatchCoreError, match="read-only"):
        io.write_text(ro, "theirs")
    assert ro.read_text() == "mine"


# ---- 2. one integrity rule: .onnx sealed like .pclite, a key requires a signature ----------

def test_signed_model_exports_to_an_onnx_that_loads_only_with_its_key(signed_onnx, key_file,
                                                                       tiny_category_ro,
                                                                       model_file, tmp_path):
    test = tiny_category_ro / "test"
    ok = run_in_process("predict", "--model", signed_onnx, "--key", key_file, test)
    assert ok.returncode == 0, ok.stderr
    ref = run_in_process("predict", "--model", model_file, test)
    for a, b in zip(ok.stdout.splitlines(), ref.stdout.splitlines(), strict=True):
        assert json.loads(a)["score"] == pytest.approx(json.loads(b)["score"], rel=1e-3)
    assert "signed; pass the signing key" in error_line(
        run_in_process("predict", "--model", signed_onnx, test))
    other = tmp_path / "other"
    other.write_bytes(b"another key")
    assert "signature does not match" in error_line(
        run_in_process("predict", "--model", signed_onnx, "--key", other, test))


@pytest.mark.parametrize("edit", [
    lambda m: m.update(threshold="1e9"),  # a crack passes
    lambda m: m.update(patchcore_lite=m["patchcore_lite"].replace('"k": 1', '"k": 2')),
], ids=["threshold", "config"])
def test_an_edited_onnx_is_refused_even_resealed_when_a_key_is_given(signed_onnx, key_file,
                                                                     tiny_category_ro,
                                                                     tmp_path, edit):
    import onnx

    proto = onnx.load(str(signed_onnx))  # keeps the old seal entries: checksum mismatch
    meta = {p.key: p for p in proto.metadata_props}
    edited = {p.key: p.value for p in proto.metadata_props}
    edit(edited)
    for k, v in edited.items():
        meta[k].value = v
    (tmp_path / "e.onnx").write_bytes(proto.SerializeToString())
    r = run_in_process("predict", "--model", tmp_path / "e.onnx", tiny_category_ro / "test")
    assert "checksum mismatch" in error_line(r)
    stripped = _reseal(signed_onnx, tmp_path / "s.onnx", edit)  # signature stripped, sha256 new
    r = run_in_process("predict", "--model", stripped, "--key", key_file, tiny_category_ro)
    assert "not signed, but a key was given" in error_line(r)


def test_a_half_zeroed_onnx_bank_is_refused(signed_onnx, tmp_path):
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(signed_onnx))
    bank = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    a = numpy_helper.to_array(bank).copy()
    a[: len(a) // 2] = 0
    bank.CopyFrom(numpy_helper.from_array(a, bank.name))
    (tmp_path / "z.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(PatchCoreError, match="checksum mismatch"):
        onnx_file.read(tmp_path / "z.onnx", KEY)


def test_weights_beside_a_large_export_are_checksummed(signed_onnx, tmp_path, monkeypatch):
    import onnx

    proto = onnx.load(str(signed_onnx))
    del proto.metadata_props[len(proto.metadata_props) - 2:]  # the seal: sha256, hmac
    monkeypatch.setattr(onnx_file, "INLINE_MAX", 0)  # as if over protobuf's 2 GB
    out = onnx_file.write(proto, tmp_path / "big.onnx", KEY)
    data = tmp_path / "big.onnx.data"
    assert data.is_file() and out.stat().st_size < data.stat().st_size
    _, header, beside = onnx_file.read(out, KEY)
    assert beside and header["config"]["k"] == 1
    raw = bytearray(data.read_bytes())
    raw[:64] = bytes(64)
    data.write_bytes(bytes(raw))
    with pytest.raises(PatchCoreError, match="checksum mismatch"):
        onnx_file.read(out, KEY)


def test_a_key_refuses_an_unsigned_or_stripped_pclite(model_file, key_file, tiny_category_ro,
                                                      tmp_path):
    signed = PatchCore.load(model_file).save(tmp_path / "s.pclite", KEY)
    stripped = _rewrite(signed, tmp_path / "x.pclite", lambda h, t: None, KEY)  # no hmac
    for path in (model_file, stripped):
        r = run_in_process("predict", "--model", path, "--key", key_file, tiny_category_ro)
        assert "not signed, but a key was given" in error_line(r)
    r = run_in_process("evaluate", tiny_category_ro, "--key", key_file, *FAST)  # no model
    assert error_line(r).startswith("error: --key:")


# ---- 3. explicit options are seen even at their default ------------------------------------

def test_append_refuses_an_explicit_option_equal_to_its_default(model_file, tiny_category_ro,
                                                                tmp_path):
    m = Path(shutil.copy(model_file, tmp_path / "m.pclite"))  # fitted with --sampling random
    before = m.read_bytes()
    r = run_in_process("fit", tiny_category_ro, "--model", m, "--append", "--sampling",
                       "coreset")
    assert "--sampling" in error_line(r) and "'random'" in error_line(r)
    assert m.read_bytes() == before


# ---- 5. output paths checked before the first image is scored, naming the flag -------------

@pytest.fixture
def no_scoring(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("scored before the output paths were checked")

    monkeypatch.setattr(PatchCore, "predict", fail)
    monkeypatch.setattr("patchcore_lite.evaluation.protocol.evaluate", fail)


def test_predict_out_is_checked_before_scoring(model_file, tiny_category_ro, tmp_path,
                                               monkeypatch, no_scoring):
    (tmp_path / "file").write_text("not a folder")
    r = run_in_process("predict", "--model", model_file, tiny_category_ro, "--out",
                       tmp_path / "file")
    assert "--out" in error_line(r) and "not a folder" in error_line(r)
    shutil.copytree(tiny_category_ro / "test", tmp_path / "imgs")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "imgs").write_text("a file where a mirrored folder goes")
    monkeypatch.chdir(tmp_path)
    r = run_in_process("predict", "--model", model_file, "imgs", "--out", "o")
    assert error_line(r).startswith("error: --out:")


@pytest.mark.parametrize("clash", ["out-is-a-file", "index-is-a-folder"])
def test_evaluate_out_is_checked_before_scoring(model_file, tiny_category_ro, tmp_path,
                                                no_scoring, clash):
    out = tmp_path / "report"
    if clash == "out-is-a-file":
        out.write_text("x")
    else:
        (out / "index.html").mkdir(parents=True)
    r = run_in_process("evaluate", tiny_category_ro, "--model", model_file, "--out", out)
    assert error_line(r).startswith("error: --out:")


# ---- 6. every load path validates before use -----------------------------------------------

@pytest.mark.parametrize("edit", [
    lambda h, t: t.update(patches=t["patches"][:, :5].contiguous()),
    lambda h, t: h.update(grid=[h["grid"][0] + 1, h["grid"][1]]),
], ids=["bank-width", "grid"])
def test_tensor_shapes_are_checked_against_the_config(model_file, tiny_category_ro, tmp_path,
                                                      edit):
    bad = _rewrite(model_file, tmp_path / "bad.pclite", edit)
    r = run_in_process("predict", "--model", bad, tiny_category_ro / "test")
    assert str(bad) in error_line(r) and "malformed model" in error_line(r)


@pytest.mark.parametrize("edit", [
    lambda m: m.update(patchcore_lite=json.dumps(
        {k: v for k, v in json.loads(m["patchcore_lite"]).items() if k != "config"})),
    lambda m: m.pop("threshold"), lambda m: m.update(threshold="high"),
    lambda m: m.update(extra="1"), lambda m: m.update(patchcore_lite="[1, 2]"),
    lambda m: m.update(patchcore_lite=m["patchcore_lite"].replace('"k": 1', '"k": -4')),
], ids=["no-config", "no-threshold", "threshold-text", "extra-key", "list", "bad-k"])
def test_every_onnx_metadata_key_is_validated(signed_onnx, tiny_category_ro, tmp_path, edit):
    bad = _reseal(signed_onnx, tmp_path / "bad.onnx", edit)
    r = run_in_process("predict", "--model", bad, tiny_category_ro / "test")
    assert str(bad) in error_line(r) and "malformed" in error_line(r)


@pytest.mark.skipif(sys.platform != "linux", reason="byte file names")
def test_non_utf8_category_name_in_a_report(model_file, tiny_category_ro, tmp_path):
    cat = os.fsdecode(os.fsencode(tmp_path) + b"/\xffcat")
    shutil.copytree(tiny_category_ro, cat)
    r = run_in_process("evaluate", cat, "--model", model_file, "--out", tmp_path / "r")
    assert r.returncode == 0, r.stderr[-2000:]
    page = (tmp_path / "r" / "index.html").read_bytes().decode("utf-8")  # valid UTF-8
    assert "\ufffdcat" in page and "%FFcat_roc.png" in page


# ---- 7. messages that say what is true -----------------------------------------------------

def test_onnx_with_evaluate_append_or_fit_names_what_is_not_supported(signed_onnx,
                                                                      tiny_category_ro):
    for args in (("evaluate", tiny_category_ro, "--model", signed_onnx),
                 ("fit", tiny_category_ro, "--model", signed_onnx, "--append"),
                 ("export", "--model", signed_onnx, "--out", signed_onnx.with_suffix(".x"))):
        line = error_line(run_in_process(*args))
        assert "ONNX" in line or ".onnx" in line, line
        assert "truncated or corrupted" not in line and "predict" in line, line


def test_faiss_model_without_faiss_says_install_it(model_file, tmp_path, monkeypatch):
    faiss_model = _rewrite(model_file, tmp_path / "f.pclite",
                           lambda h, t: h["config"].update(search="faiss"))
    hide_module(monkeypatch, "faiss")
    with pytest.raises(PatchCoreError, match="faiss is not installed: install it") as e:
        PatchCore.load(faiss_model)
    assert "malformed" not in str(e.value) and str(faiss_model) in str(e.value)


def test_dangling_symlink_in_a_predicted_folder_is_named_and_skipped(model_file,
                                                                     tiny_category_ro, tmp_path):
    folder = Path(shutil.copytree(tiny_category_ro / "test" / "good", tmp_path / "imgs"))
    (folder / "gone.png").symlink_to(tmp_path / "missing.png")
    with pytest.warns(UserWarning, match=f"{folder / 'gone.png'}: dangling symlink"):
        r = run_in_process("predict", "--model", model_file, folder)  # stderr: "warning: ..."
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == len(list(folder.glob("0*.png")))


def test_header_that_is_a_json_list_is_named_as_such(tmp_path, tiny_category_ro):
    from safetensors.torch import save_file

    bad = tmp_path / "list.pclite"
    save_file({"patches": torch.zeros(1, 1)}, str(bad), metadata={"patchcore_lite": "[1, 2]"})
    line = error_line(run_in_process("predict", "--model", bad, tiny_category_ro))
    assert "JSON list" in line and "None" not in line


def test_python_api_refuses_none_nan_and_strings(model_file):
    model = PatchCore.load(model_file, progress=False)
    t = model.threshold
    for scores, thr in ((None, t), ("high", t), (["a", "b"], t), ([1.0], float("nan")),
                        ([1.0], "3")):
        with pytest.raises(PatchCoreError):
            model.normalized(scores, thr)
    with pytest.raises(PatchCoreError, match="--threshold"):
        model.effective_threshold("3")
    assert model.normalized(np.array([np.nan]), t)[0] == 1.0  # a NaN score is flagged


def test_key_as_bytes_or_str_in_save_and_load(model_file, tmp_path):
    model = PatchCore.load(model_file, progress=False)
    signed = model.save(tmp_path / "s.pclite", key="secret")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert PatchCore.load(signed, key=b"secret").threshold == model.threshold
        assert PatchCore.load(signed, key="secret").threshold == model.threshold
    for bad in (123, "", b""):
        with pytest.raises(PatchCoreError, match="key"):
            model.save(tmp_path / "b.pclite", key=bad)
    assert not (tmp_path / "b.pclite").exists()


def test_images_still_scored_alike_through_the_writer(model_file, tiny_category_ro, tmp_path):
    """predict --json and --out through the one writer: JSON equals stdout, overlays written."""
    test = walk_images([tiny_category_ro / "test"])
    r = run_in_process("predict", "--model", model_file, *test, "--json", tmp_path / "p.json",
                       "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    ref = run_in_process("predict", "--model", model_file, *test)
    assert (tmp_path / "p.json").read_text() == ref.stdout
    assert len(list((tmp_path / "o").rglob("*_overlay.png"))) == len(test)
