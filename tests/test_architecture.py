"""The package's shape: no import cycle, a core free of plotting and widgets, short documented
functions. These read the source with `ast`; nothing here runs the method."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "patchcore_lite"
CORE = ("data", "backbone", "embedding", "sampling", "coreset_cells", "bounds", "knn", "ann",
        "maps", "bank", "trainset", "tiling", "calibration", "config", "options", "model", "io",
        "errors", "_version")
MAX_CLASS_LINES = {"patchcore_lite/model.py": ("PatchCore", 250)}
NO_VIEW_LIBS = ("matplotlib", "plotly", "ipywidgets", "sklearn")
MAX_LINES = 60
MAX_MODULE_LINES = 450
EXEMPT_LENGTH = ()  # modules exempt from the function-length rule: none
DOCUMENTED = ("", "evaluation/", "datasets/", "apps/", "bench/", "teaching/")  # "" = the core


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def imports(name: str, path: Path, known: dict) -> set[str]:
    """Package modules that `name` imports (anywhere in the file), `from . import x` as x."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")
                up = up[:len(up) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def test_no_import_cycle():
    known = modules()
    graph = {m: imports(m, p, known) for m, p in known.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n] if n in path else [m, n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert graph["patchcore_lite.model"] >= {"patchcore_lite.knn", "patchcore_lite.io"}


def test_the_walk_sees_relative_imports():
    known = modules()
    got = imports("patchcore_lite.evaluation.report", known["patchcore_lite.evaluation.report"],
                  known)
    assert {"patchcore_lite.evaluation.plots", "patchcore_lite.evaluation.protocol"} <= got


@pytest.mark.parametrize("group", ["core", "evaluation"])
def test_core_and_evaluation_import_no_plotting_or_widgets(group):
    mods = ([f"patchcore_lite.{m}" for m in CORE] if group == "core" else
            ["patchcore_lite.evaluation.counts", "patchcore_lite.evaluation.protocol"])
    banned = NO_VIEW_LIBS if group == "core" else NO_VIEW_LIBS[:3]  # metrics uses sklearn
    code = (f"import sys, importlib\nfor m in {mods!r}: importlib.import_module(m)\n"
            f"print(sorted(b for b in {banned!r} if b in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{group} imports {out.stdout.strip()}"


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def rel(path: Path) -> str:
    return path.relative_to(PKG).as_posix()


def test_no_long_functions():
    long = [f"{rel(p)}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for p in PKG.rglob("*.py") if not rel(p).startswith(EXEMPT_LENGTH)
            for f in functions(p) if f.end_lineno - f.lineno + 1 > MAX_LINES]
    assert not long, long


def test_no_long_modules():
    long = [f"{rel(p)} ({n} lines)" for p in PKG.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, long


def _public_functions(path: Path):
    """Module-level functions and methods of public classes, without a leading underscore."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            yield node.name, node
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and not f.name.startswith("_"):
                    yield f"{node.name}.{f.name}", f


def test_public_functions_have_docstrings():
    missing = [f"{rel(p)}: {name}" for p in PKG.rglob("*.py")
               if any(rel(p).startswith(d) if d else "/" not in rel(p) for d in DOCUMENTED)
               for name, f in _public_functions(p) if not ast.get_docstring(f)]
    assert not missing, missing


def test_bench_and_core_import_nothing_from_apps():
    """apps/ (command line, live demo) sits on top: bench/ and the core never import it."""
    known = modules()
    low = [m for m in known if m.startswith("patchcore_lite.bench")] + [
        f"patchcore_lite.{m}" for m in CORE]
    bad = {m: sorted(n for n in imports(m, known[m], known) if n.startswith("patchcore_lite.apps"))
           for m in low}
    assert not any(bad.values()), {m: v for m, v in bad.items() if v}


@pytest.mark.parametrize("path, cls, most", [(p, c, n) for p, (c, n) in MAX_CLASS_LINES.items()])
def test_model_class_stays_small(path, cls, most):
    """The model class keeps fit, predict, scoring, threshold and save/load; the rest has its
    own module (bank, trainset, tiling, calibration)."""
    tree = ast.parse((PKG.parent / path).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    assert node.end_lineno - node.lineno + 1 < most


def test_model_defaults_are_written_once():
    """PatchCore's keyword defaults and the option table come from Config's fields."""
    import inspect
    from dataclasses import MISSING, fields

    from patchcore_lite import PatchCore
    from patchcore_lite.config import Config
    from patchcore_lite.options import MODEL_OPTIONS

    defaults = {f.name: f.default for f in fields(Config) if f.default is not MISSING}
    sig = inspect.signature(PatchCore.__init__).parameters
    for name, p in sig.items():
        if name in defaults:
            assert p.default == defaults[name], name
    table = {o.kwarg: o.default for o in MODEL_OPTIONS}
    assert set(defaults) <= set(table)
    for name, v in defaults.items():
        assert table[name] == (",".join(v) if isinstance(v, tuple) else v), name


def test_no_lesson_imports_another_lesson():
    known = modules()
    lessons = {m for m in known if m.startswith("patchcore_lite.teaching.lesson")}
    crossed = {m: sorted(imports(m, known[m], known) & (lessons - {m})) for m in sorted(lessons)}
    assert not {m: c for m, c in crossed.items() if c}, crossed
    graders = [m for m in known if m.startswith("patchcore_lite.teaching.exercises.")]
    assert graders and not any(imports(m, known[m], known) & lessons for m in graders)
