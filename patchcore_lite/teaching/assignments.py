"""Course assignments: nbgrader student versions of notebooks 00-05, executed and autograded.

The notebooks under `notebooks/` are the instructor versions: solutions in place between
`### BEGIN SOLUTION` / `### END SOLUTION`, graded test cells with points (nbgrader metadata).
`release()` runs nbgrader's own preprocessors on them (lock every other cell, replace each
solution by a stub, clear outputs), so no course database is needed; `autograde()` executes a
notebook headless and scores each graded cell as nbgrader does (`nbgrader.utils.determine_grade`:
a cell that raises earns 0). `build()` does both for every notebook, writes

    assignments/release/notebooks/NN_*.ipynb     the student versions (nbgrader's layout)
    assignments/executed/{source,release}/...    each version executed once (handouts reuse it)
    assignments/grades.json                      points and seconds per notebook

and returns the one line `make assignments` prints. Run as
`python -m patchcore_lite.teaching.assignments [--generate-only] [--lab DIR]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SERIES = "0[0-5]_*.ipynb"
ASSIGNMENT = "notebooks"  # nbgrader's assignment id: release/<assignment>/<notebook>.ipynb
TIMEOUT_S = 600  # per cell, as nbgrader_config.py: notebook 00 fits a model on a loaded machine


def sources(folder: Path = NOTEBOOKS) -> list[Path]:
    """The instructor notebooks of the course, in order."""
    return sorted(folder.glob(SERIES))


def release(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version of an instructor notebook, made by nbgrader's preprocessors."""
    from nbgrader.preprocessors import (
        ClearHiddenTests,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )

    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a deep copy
    resources = {"language": "python"}
    for pp in (LockCells(lock_all_cells=True), ClearSolutions(), ClearOutput(),
               ClearHiddenTests(), ComputeChecksums()):
        nb, resources = pp.preprocess(nb, resources)
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path = NOTEBOOKS, timeout: int = TIMEOUT_S,
            allow_errors: bool = False) -> tuple[nbformat.NotebookNode, float]:
    """Run every cell headless, as Run All does; seconds taken. An error stops the run (raises)
    unless its cell carries the `raises-exception` tag (graded test cells do) or allow_errors."""
    from nbclient import NotebookClient

    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)  # the test suite pins 1 thread for tiny tensors
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout, allow_errors=allow_errors,
                            resources={"metadata": {"path": str(cwd)}})
    t0 = time.perf_counter()
    client.execute(env=env)
    return nb, time.perf_counter() - t0


def graded_cells(nb: nbformat.NotebookNode) -> list:
    """The autograded test cells of a notebook (nbgrader metadata grade=True)."""
    from nbgrader.utils import is_grade

    return [c for c in nb.cells if is_grade(c)]


def autograde(nb: nbformat.NotebookNode) -> dict:
    """Points per graded cell of an executed notebook, as nbgrader's autograder awards them."""
    from nbgrader.utils import determine_grade

    cells = {}
    for c in graded_cells(nb):
        earned, possible = determine_grade(c)
        cells[c.metadata.nbgrader["grade_id"]] = (float(earned or 0), float(possible))
    return dict(cells=cells, earned=sum(e for e, _ in cells.values()),
                possible=sum(p for _, p in cells.values()))


def errors(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the cells whose output holds an error."""
    return [i for i, c in enumerate(nb.cells)
            if any(o.get("output_type") == "error" for o in c.get("outputs", []))]


def exercise_cells(nb: nbformat.NotebookNode) -> set[int]:
    """Indices of the cells that belong to the coding exercises (solution or graded test)."""
    return {i for i, c in enumerate(nb.cells) if "nbgrader" in c.metadata
            and (c.metadata.nbgrader.get("solution") or c.metadata.nbgrader.get("grade"))}


def run_one(path: Path, out: Path) -> dict:
    """Release, execute and autograde one notebook, both versions; write what `build` lists."""
    source = nbformat.read(path, as_version=4)
    student = release(source)
    (out / "release" / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
    nbformat.write(student, out / "release" / ASSIGNMENT / path.name)
    result = {}
    for version, nb in (("source", source), ("release", student)):
        done, seconds = execute(nbformat.from_dict(json.loads(json.dumps(nb))), path.parent)
        (out / "executed" / version).mkdir(parents=True, exist_ok=True)
        nbformat.write(done, out / "executed" / version / path.name)
        result[version] = dict(autograde(done), seconds=seconds, errors=errors(done),
                               exercise_cells=sorted(exercise_cells(done)))
    return result


def summary_line(results: dict) -> str:
    """`autograde: solved P/P points, student release 0/P points` for all notebooks."""
    total = lambda v, k: sum(r[v][k] for r in results.values())  # noqa: E731
    return (f"autograde: solved {total('source', 'earned'):g}/{total('source', 'possible'):g} "
            f"points, student release {total('release', 'earned'):g}/"
            f"{total('release', 'possible'):g} points")


def build(out: Path = REPO / "assignments", paths: list[Path] | None = None,
          log=print) -> tuple[str, dict]:
    """Every notebook released, executed and autograded; the summary line and the results."""
    results = {}
    for path in paths or sources():
        results[path.name] = r = run_one(path, Path(out))
        log(f"{path.name}: solved {r['source']['earned']:g}/{r['source']['possible']:g} in "
            f"{r['source']['seconds']:.0f} s, release {r['release']['earned']:g} in "
            f"{r['release']['seconds']:.0f} s", file=sys.stderr)
    line = summary_line(results)
    (Path(out) / "grades.json").write_text(json.dumps(dict(line=line, notebooks=results),
                                                      indent=1))
    return line, results


def lab_copy(folder: Path) -> list[Path]:
    """The learner's own copy of the student versions: written once, never overwritten."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for path in sources():
        target = folder / path.name
        if not target.exists():
            nbformat.write(release(nbformat.read(path, as_version=4)), target)
            made.append(target)
    return made


def main(argv: list[str] | None = None) -> int:
    """Command line of `make assignments` (and of `make lab`, with --lab)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "assignments")
    ap.add_argument("--generate-only", action="store_true", help="release, do not execute")
    ap.add_argument("--lab", type=Path, help="make the learner's copy in this folder")
    args = ap.parse_args(argv)
    if args.lab:
        for p in lab_copy(args.lab):
            print(f"made {p}", file=sys.stderr)
        return 0
    if args.generate_only:
        shutil.rmtree(args.out / "release", ignore_errors=True)
        for path in sources():
            (args.out / "release" / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
            nbformat.write(release(nbformat.read(path, as_version=4)),
                           args.out / "release" / ASSIGNMENT / path.name)
        return 0
    line, _ = build(args.out)
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
