"""Side-by-side with anomalib's PatchCore, for `bench --anomalib` only (never a dependency).

anomalib is installed on demand into its own virtual environment (default
`.bench-venv-anomalib/`, git-ignored), with torch and torchvision pinned by a constraints file to
the versions this kit runs on, so both sides use the same kernels. The worker
(`anomalib_worker.py`) runs inside that environment: it builds anomalib's `PatchcoreModel`
(`pre_trained=False`) and loads the very state dict our backbone uses, embeds the same training
images, times anomalib's `KCenterGreedy` and our greedy coreset (`sampling.select`) on the same
features, and scores the same test images. CI never runs this.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import torch
import torchvision

from ..errors import PatchCoreError

ANOMALIB_VERSION = "2.7.0"
DEFAULT_VENV = ".bench-venv-anomalib"
WORKER = Path(__file__).with_name("anomalib_worker.py")
INSTALL_TIMEOUT_S = 3600


def _base(version: str) -> str:
    """'2.14.1+cu130' -> '2.14.1': the constraint matches any local build of that release."""
    return version.split("+")[0]


def pins() -> dict[str, str]:
    """What the bench environment must have: anomalib, and torch/torchvision as here."""
    return {"anomalib": ANOMALIB_VERSION, "torch": _base(torch.__version__),
            "torchvision": _base(torchvision.__version__)}


def venv_python(root: Path) -> Path:
    """The python of the virtual environment at `root`."""
    return root / "bin" / "python"


def ensure_venv(root: str | Path = DEFAULT_VENV, log=print) -> Path:
    """Create (once) the anomalib environment and return its python; pins recorded in a stamp."""
    root = Path(root).resolve()
    stamp, want = root / ".bench-installed.json", pins()
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return venv_python(root)
    log(f"bench: installing anomalib=={want['anomalib']} into {root} (torch=={want['torch']}, "
        f"torchvision=={want['torchvision']} pinned by constraints; first time only)")
    if not venv_python(root).exists():
        venv.create(root, with_pip=True)
    constraints = root / "constraints.txt"
    constraints.write_text(f"torch=={want['torch']}\ntorchvision=={want['torchvision']}\n")
    cmd = [str(venv_python(root)), "-m", "pip", "install", "-c", str(constraints),
           f"torch=={want['torch']}", f"torchvision=={want['torchvision']}",
           f"anomalib=={want['anomalib']}"]
    try:
        subprocess.run(cmd, check=True, timeout=INSTALL_TIMEOUT_S)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        raise PatchCoreError(f"--anomalib: installing anomalib into {root} failed ({e}); "
                             f"command: {' '.join(cmd)}")
    stamp.write_text(json.dumps(want))
    return venv_python(root)


def run_worker(python: Path, spec: dict, timeout: float | None = None) -> dict:
    """Run the anomalib worker on `spec` in the bench environment; its JSON result."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]),
               TQDM_MININTERVAL="10")
    proc = subprocess.run([str(python), str(WORKER), json.dumps(spec)], env=env,
                          stdout=subprocess.PIPE, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise PatchCoreError(f"--anomalib: worker failed (exit {proc.returncode}); see above")
    return json.loads(proc.stdout.strip().splitlines()[-1])


COLUMNS = (  # side-by-side table: (key, header, format)
    ("n_train", "train", "{:d}"),
    ("memory_bank_size", "bank", "{:d}"),
    ("selection_seconds", "KCenterGreedy s", "{:.1f}"),
    ("ours_selection_seconds", "ours s", "{:.2f}"),
    ("selection_speedup", "speedup x", "{:.1f}"),
    ("coverage_ratio", "coverage ours/theirs", "{:.3f}"),
    ("predict_ms_per_image", "anomalib predict ms/img", "{:.1f}"),
    ("predict_ratio", "predict ours/theirs", "{:.2f}"),
    ("image_auroc", "anomalib img AUROC", "{:.3f}"),
    ("auroc_diff", "img AUROC ours-theirs", "{:+.3f}"),
    ("fit_peak_rss_mb", "anomalib fit RSS MB", "{:.0f}"),
    ("ours_fit_peak_rss_mb", "ours fit RSS MB", "{:.0f}"),
)


def check_comparable(a) -> None:
    """anomalib's PatchCore has one bank method (k-center greedy) and keeps the concatenation."""
    if a.sampling != "coreset":
        raise PatchCoreError("--anomalib: compares coresets; use --sampling coreset")
    if a.embed_dim is not None or a.search != "exact" or a.k != 1:
        raise PatchCoreError("--anomalib: use the defaults for --embed-dim, --search and --k")


def worker_spec(a, data: Path, n_train: int, state_dict: Path) -> dict:
    """Same images, backbone weights, layers, preprocessing, ratio and image score as ours."""
    from ..config import Config

    return dict(data=str(data), n_train=n_train, backbone=a.backbone,
                layers=[s.strip() for s in a.layers.split(",")], state_dict=str(state_dict),
                ratio=a.sampling_ratio, seed=a.seed, batch_size=a.batch_size, resize=a.resize,
                crop=a.crop,
                proj_dim=Config.proj_dim, threads=a.threads,
                num_neighbors=a.reweight_b if a.reweight else 1)


def ratios(ours: dict, theirs: dict) -> dict:
    """The figures of the targets: selection speed and coverage, predict time, AUROC.

    Without their own selection (their_selection false) only the predict ratio means anything.
    """
    own = theirs.get("their_selection", True)
    return dict(
        selection_speedup=theirs["selection_seconds"] / theirs["ours_selection_seconds"]
        if own else None,
        coverage_ratio=theirs["ours_coverage"] / theirs["coverage"] if own else None,
        predict_ratio=ours["predict_ms_per_image"] / theirs["predict_ms_per_image"],
        auroc_diff=ours["image_auroc"] - theirs["image_auroc"] if own else None,
        fit_ratio=ours["fit_seconds"] / theirs["fit_seconds"] if own else None,
        ours_fit_peak_rss_mb=ours["fit_peak_rss_mb"])


def side_by_side(a, data: Path, our_runs: list[dict], state_dict: Path, log=print,
                 rows: list | None = None, on_row=None) -> list[dict]:
    """anomalib on each size (its own coreset up to --anomalib-max-size); table of ratios.

    Rows are appended to `rows` as they come, and `on_row()` is called after each (so a long run
    that is stopped keeps what it measured).
    """
    from .common import table

    python = ensure_venv(a.anomalib_venv, log)
    rows = [] if rows is None else rows
    for ours in our_runs:
        n = ours["n_train"]
        spec = worker_spec(a, data, n, state_dict)
        spec["their_selection"] = n <= a.anomalib_max_size
        log(f"anomalib: {n} images ..." if spec["their_selection"] else
            f"anomalib: {n} images, predict time only (> --anomalib-max-size "
            f"{a.anomalib_max_size}: KCenterGreedy grows with patches x bank size; their model "
            "scores with a bank of our selection)")
        theirs = run_worker(python, spec)
        rows.append(dict(theirs, **ratios(ours, theirs)))
        if on_row:
            on_row()
    if rows:
        log("\nanomalib PatchCore on the same images, weights and ratio; ratios from this run "
            "(speedup and coverage: both selections on anomalib's features, in one process):")
        log(table(rows, COLUMNS))
    return rows


if __name__ == "__main__":  # python -m patchcore_lite.bench_anomalib: set up the venv only
    print(ensure_venv(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_VENV))
