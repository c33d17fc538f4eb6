"""`evaluate ROOT --all`: fit and evaluate every category under ROOT, one table, resumable.

A folder with `train/good` is a category; other folders are skipped with a note. Each category
runs as `python -m patchcore_lite evaluate CATEGORY` in its own process (`--jobs` at a time, the
CPU threads shared out), and its result is kept under `--out` with a key of the settings and of
the category's files (names, sizes, modification times): a rerun after an interruption redoes
only what is missing or stale. The table is JSON `{"categories": {name: result}, "mean": {...}}`
and an HTML page with the mean row.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import io
from ..errors import PatchCoreError
from ..options import option_args

NOT_IN_KEY = ("workers",)  # settings that change the speed, never the result
MEAN_KEYS = ("image_auroc", "pixel_auroc", "pro", "image_f1", "false_alarms_per_1000",
             "misses_per_100", "good_flagged_at_full_recall", "aupimo", "fit_seconds",
             "predict_seconds_per_image")


def figure(result: dict, key: str):
    """The number of a result's figure: rates and AUPIMO are objects (their value, their mean)."""
    v = result.get(key)
    return v.get("value", v.get("mean")) if isinstance(v, dict) else v


def categories(root: str | Path, say=print) -> list[Path]:
    """Category folders under root (those with train/good), sorted; others skipped with a note."""
    root = Path(root)
    if not root.is_dir():
        raise PatchCoreError(f"{root}: folder not found")
    cats = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (d / "train" / "good").is_dir():
            cats.append(d)
        else:
            say(f"note: {d} has no train/good; skipped")
    if not cats:
        raise PatchCoreError(f"{root}: no category folder (with train/good) inside")
    return cats


def fingerprint(cat: Path, settings: dict) -> str:
    """Key of a result: the settings and every file of the category (name, size, mtime)."""
    kept = {k: v for k, v in settings.items() if k not in NOT_IN_KEY}
    h = hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode())
    for p in sorted(cat.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(cat)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _run_one(cat: Path, settings: dict, state: Path, threads: int) -> dict:
    """Evaluate one category in a subprocess; its result, saved with its key."""
    out = state / f"{cat.name}.result.json"
    cmd = [sys.executable, "-m", "patchcore_lite", "evaluate", str(cat), "--json", str(out),
           *option_args(settings)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise PatchCoreError(f"{cat}: evaluation failed: {last}")
    result = json.loads(out.read_text())
    _save(cat, settings, state, result)
    out.unlink()
    return result


def _save(cat: Path, settings: dict, state: Path, result: dict) -> None:
    """Keep a category's result with its key (the driver writes it, whichever ran it)."""
    io.write_text(state / f"{cat.name}.key.json",
                  json.dumps(dict(key=fingerprint(cat, settings), result=result)))


def _cached(cat: Path, settings: dict, state: Path) -> dict | None:
    """The saved result of a category if its key still matches, else None."""
    try:
        saved = json.loads((state / f"{cat.name}.key.json").read_text())
    except (OSError, ValueError):
        return None
    return saved["result"] if saved.get("key") == fingerprint(cat, settings) else None


def _said(name: str, r: dict, say) -> None:
    say(f"{name}: image AUROC {r['image_auroc']}, pixel AUROC {r['pixel_auroc']}")


def _run_ray(todo: list[Path], settings: dict, state: Path, address: str, say) -> dict:
    """Each category as a Ray task; results saved by this process as they come. Like --jobs, a
    failed category leaves the others to finish (and be saved), then its error is raised."""
    from ..bench.ray_runner import evaluate_category, run

    jobs = [dict(category=str(c.resolve()), settings=settings) for c in todo]
    results, failed = {}, {}
    for i, ok, value in run(evaluate_category, jobs, address):
        if ok:
            _save(todo[i], settings, state, value)
            results[todo[i].name] = value
            _said(todo[i].name, value, say)
        else:
            failed[i] = value
    if failed:
        i = min(failed)  # the first in category order, as --jobs reports it
        raise PatchCoreError(f"{todo[i]}: evaluation failed: {failed[i]}")
    return results


def _run_local(todo: list[Path], settings: dict, state: Path, jobs: int, say) -> dict:
    """Each category in its own process, `jobs` at a time, the CPU threads shared out."""
    threads, results = max(1, (os.cpu_count() or 1) // jobs), {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for c, r in zip(todo, pool.map(lambda c: _run_one(c, settings, state, threads), todo)):
            results[c.name] = r
            _said(c.name, r, say)
    return results


def mean_row(results: dict[str, dict]) -> dict:
    """Mean of each figure over the categories that have it (None where none has)."""
    out = {}
    for k in MEAN_KEYS:
        vals = [v for r in results.values() if isinstance(v := figure(r, k), (int, float))]
        out[k] = sum(vals) / len(vals) if vals else None
    return dict(out, n_categories=len(results))


def run_all(root, out: str | Path, settings: dict, jobs: int = 1, say=print,
            ray: str | None = None) -> dict:
    """Every category's result (fresh or resumed) and the mean; writes out/index.html too.
    ray=ADDRESS runs each category as a task on that Ray cluster instead of `jobs` processes."""
    if jobs < 1:
        raise PatchCoreError(f"--jobs: must be >= 1, got {jobs}")
    cats, state = categories(root, say), Path(out) / "state"
    state.mkdir(parents=True, exist_ok=True)
    results = {c.name: r for c in cats if (r := _cached(c, settings, state)) is not None}
    todo = [c for c in cats if c.name not in results]
    say(f"evaluate --all: {len(cats)} categories, {len(results)} already done, {len(todo)} to run")
    if todo and ray is not None:
        results.update(_run_ray(todo, settings, state, ray, say))
    elif todo:
        results.update(_run_local(todo, settings, state, jobs, say))
    table = dict(categories={c.name: results[c.name] for c in cats}, mean=mean_row(results))
    write_table(Path(out) / "index.html", table)
    return table


def write_table(path: Path, table: dict) -> Path:
    """The HTML table: one row per category and the mean row, weights named."""
    def cell(r, k):
        v = figure(r, k)
        text = "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
        ci = r[k].get("ci95") if isinstance(r.get(k), dict) else None  # a rate's interval
        return html.escape(text + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""))

    rows = [(name, r) for name, r in table["categories"].items()] + [("mean", table["mean"])]
    head = "".join(f"<th>{k}</th>" for k in ("category", *MEAN_KEYS, "weights"))
    body = "".join(f"<tr><td>{html.escape(n)}</td>" + "".join(
        f"<td>{cell(r, k)}</td>" for k in (*MEAN_KEYS, "weights")) + "</tr>" for n, r in rows)
    return io.write_text(path, f"""<!doctype html><html><head><meta charset="utf-8">
<title>patchcore-lite: every category</title><style>body{{font-family:sans-serif;margin:2em}}
td,th{{border:1px solid #ccc;padding:4px 8px}}table{{border-collapse:collapse}}</style>
</head><body><h1>patchcore-lite: every category</h1><table><tr>{head}</tr>{body}</table>
</body></html>""")
