"""The notebooks: committed without outputs, and each one runs top to bottom headless.

Execution uses nbclient with the `python3` kernel, which jupyter_client starts with the Python
running the tests (the venv's, under `make test`); the first cell asserts that. Notebooks run
in order, so the first one pays for generating the data set and fitting the cached model.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
SERIES = sorted(NOTEBOOKS.glob("0[0-5]_*.ipynb"))  # the course; 06 (live demo) has its own test
LIMIT_S = 270  # per notebook; the target on 2 CPU cores is 90 s


def test_the_course_is_complete():
    names = [p.name[:3] for p in SERIES]
    assert names == ["00_", "01_", "02_", "03_", "04_", "05_"], names


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} have outputs or execution counts; strip them "
                       "(jupyter nbconvert --clear-output --inplace notebooks/*.ipynb)")
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: saved widget state"


@pytest.mark.parametrize("path", SERIES, ids=lambda p: p.name)
def test_notebook_runs_headless(path, capsys):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    check = nbformat.v4.new_code_cell(f"import sys\nassert sys.prefix == {sys.prefix!r}, "
                                      "sys.prefix  # the kernel runs the tests' Python")
    nb.cells.insert(0, check)
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)  # conftest pins 1 thread for tiny tensors; these are real
    client = NotebookClient(nb, kernel_name="python3", timeout=LIMIT_S,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    t0 = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n{path.name}: {seconds:.1f} s", flush=True)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    panels = [m["state"].get("outputs", []) for m in state.get("state", {}).values()
              if m.get("model_name") == "OutputModel"]
    assert all(panels), f"{path.name}: a widget's first view was not rendered"
    outputs = [o for c in nb.cells for o in c.get("outputs", [])] + [o for p in panels for o in p]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no figure"
    assert seconds < LIMIT_S, f"{path.name} took {seconds:.0f} s (limit {LIMIT_S} s)"
