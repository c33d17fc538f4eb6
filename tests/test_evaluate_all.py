"""evaluate ROOT --all: every category into one table, resumed after an interruption, redone when
its data or the settings change."""

from __future__ import annotations

import json
import os
import shutil

from helpers import FAST, make_category, run_in_process


def test_every_category_one_table_and_resume(tmp_path):
    root = tmp_path / "root"
    make_category(root / "alpha", seed=1)
    make_category(root / "beta", seed=2)
    (root / "notes").mkdir()
    out, js = tmp_path / "out", tmp_path / "all.json"
    args = ("evaluate", root, "--all", "--out", out, "--json", js, *FAST)
    r = run_in_process(*args)
    assert r.returncode == 0, r.stderr
    table = json.loads(js.read_text())
    assert sorted(table["categories"]) == ["alpha", "beta"] and "notes" in r.stderr
    aurocs = [c["image_auroc"] for c in table["categories"].values()]
    assert table["mean"]["image_auroc"] == sum(aurocs) / 2
    assert "mean" in (out / "index.html").read_text()
    r = run_in_process(*args)  # resumed: nothing to redo
    assert "2 already done, 0 to run" in r.stderr
    img = next((root / "beta" / "train" / "good").iterdir())
    os.utime(img, ns=(1, 1))  # the data changed: beta is stale
    r = run_in_process(*args)
    assert "1 already done, 1 to run" in r.stderr
    r = run_in_process(*args[:-len(FAST)], *FAST[:-2], "--sampling", "none")  # other settings
    assert "0 already done, 2 to run" in r.stderr
    shutil.rmtree(out)


def test_all_with_a_model_is_refused(tmp_path):
    r = run_in_process("evaluate", tmp_path, "--all", "--model", tmp_path / "m.pclite")
    assert r.returncode == 2 and "--all" in r.stderr
