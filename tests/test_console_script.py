"""The installed `patchcore-lite` command: pyproject's console script names the CLI's `main`, and
the script that pip wrote beside this interpreter runs --help, fit and predict.

Reference for predict: the same model file scored through the Python API in this process.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import FAST

from patchcore_lite import PatchCore
from patchcore_lite.apps import cli
from patchcore_lite.data import walk_images

REPO = Path(__file__).resolve().parent.parent
NAME = "patchcore-lite"
SCRIPT = Path(sys.executable).parent / (NAME + (".exe" if os.name == "nt" else ""))

# CI installs the package (make venv: pip install -e .): there a missing script is a failure.
installed = pytest.mark.skipif(not SCRIPT.is_file() and os.environ.get("CI") != "true",
                               reason=f"{NAME} is not installed beside {sys.executable}")


def pyproject_script() -> str:
    """The `[project.scripts]` entry of pyproject.toml, e.g. 'package.module:function'."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"][NAME]


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_pyproject_script_resolves_to_the_cli_main():
    ep = importlib.metadata.EntryPoint(NAME, pyproject_script(), "console_scripts")
    assert ep.load() is cli.main


@installed
def test_installed_command_help_fit_predict(tiny_category_ro, tmp_path):
    eps = importlib.metadata.entry_points(group="console_scripts", name=NAME)
    assert [ep.value for ep in eps] == [pyproject_script()], (
        f"the installed {NAME} is out of date with pyproject.toml: reinstall (make venv)")
    r = run("--help")
    assert r.returncode == 0 and "fit" in r.stdout and "predict" in r.stdout, r.stderr[-2000:]
    model = tmp_path / "m.pclite"
    r = run("fit", tiny_category_ro, "--model", model, *FAST)
    assert r.returncode == 0 and model.is_file(), r.stderr[-2000:]
    test = tiny_category_ro / "test"
    r = run("predict", "--model", model, test)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    paths = walk_images([test])
    assert [ln["path"] for ln in lines] == [str(p) for p in paths]
    scores, _ = PatchCore.load(model).predict(paths)
    np.testing.assert_allclose([ln["score"] for ln in lines], scores, rtol=1e-5)
