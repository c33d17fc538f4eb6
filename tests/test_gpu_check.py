"""benchmarks/gpu_check.py runs where only torch, torchvision, numpy and the core exist (a lent
GPU machine has no package index): smoke-run on the CPU and check what it imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
CODE = f"""
import runpy, sys
sys.argv = ["gpu_check.py", "--device", "cpu", "--n-train", "3", "--batch", "4", "--repeats", "1"]
try:
    runpy.run_path({str(SCRIPT)!r}, run_name="__main__")
except SystemExit as e:
    print("EXIT", e.code)
print("LOADED", sorted(m for m in ("sklearn", "skimage", "matplotlib", "scipy", "plotly",
                                   "ipywidgets") if m in sys.modules))
"""


def test_gpu_check_smoke_runs_on_cpu_with_core_imports_only():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         timeout=600).stdout
    assert "EXIT 0" in out and "ok                               True" in out, out[-2000:]
    assert "LOADED []" in out, out[-500:]
