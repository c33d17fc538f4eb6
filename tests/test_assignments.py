"""The coding exercises: nbgrader cells in notebooks 01-05, honest graders, student versions.

Each solution cell of an instructor notebook passes its graded test (visible and hidden);
the student version's stub is "not solved yet"; every wrong solution and shortcut of
`exercise_variants` fails with one line, the same on every run; and a notebook of all of them,
executed like a student's and scored with nbgrader's grade rule, earns 0 points and runs to its
last cell."""

from __future__ import annotations

import linecache
import re

import nbformat
import pytest
from exercise_variants import RIGHT, SHORTCUT, WRONG

from patchcore_lite.teaching import assignments, exercises
from patchcore_lite.teaching.coding import GradeError, NotSolved, blocked

NOTEBOOKS = assignments.NOTEBOOKS
PRELUDE = """
import numpy as np
import torch
import torch.nn.functional as F
from patchcore_lite import backbone, embedding, knn, maps, sampling
from patchcore_lite.evaluation import metrics
from patchcore_lite.teaching import exercises
"""


def exercises_of_notebooks() -> list[tuple[str, str, str, str]]:
    """(exercise name, grade id, solution source, test source) of every coding exercise."""
    out = []
    for path in assignments.sources():
        cells = nbformat.read(path, as_version=4).cells
        for i, c in enumerate(cells):
            meta = c.metadata.get("nbgrader", {})
            if meta.get("solution"):
                test = next(t for t in cells[i + 1:] if t.metadata.get("nbgrader", {}).get("grade"))
                name = re.match(r"exercises\.grade_(\w+)\(", test.source)[1]
                out.append((name, meta["grade_id"], c.source, test.source))
    return out


EXERCISES = exercises_of_notebooks()
NAMES = [e[0] for e in EXERCISES]


def _cell(source: str, ns: dict) -> None:
    """Run source as a notebook cell would: its text readable by `inspect` (as IPython does)."""
    name = f"<cell-{len(linecache.cache)}-{hash(source)}>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    exec(compile(source, name, "exec"), ns)


def _grade(solution: str, name: str, hidden: bool = False) -> None:
    ns: dict = {"__name__": "__main__"}
    _cell(PRELUDE, ns)
    _cell(solution, ns)
    getattr(exercises, f"grade_{name}")(ns[name], hidden=hidden)


def test_every_step_notebook_has_two_graded_exercises():
    per = {}
    for _, gid, *_ in EXERCISES:
        per[gid[2:4]] = per.get(gid[2:4], 0) + 1
    assert all(per.get(k, 0) >= 2 for k in ("01", "02", "03", "04", "05")), per
    points = sum(c.metadata.nbgrader["points"] for p in assignments.sources()
                 for c in assignments.graded_cells(nbformat.read(p, as_version=4)))
    assert points >= 20
    assert set(WRONG) == set(SHORTCUT) == set(NAMES)
    assert all(len(WRONG[n]) >= 1 and len(SHORTCUT[n]) >= 1 for n in NAMES)


@pytest.mark.parametrize("name, gid, solution, test", EXERCISES, ids=NAMES)
def test_solution_passes_and_the_stub_is_not_solved(name, gid, solution, test, capsys):
    for hidden in (False, True):
        _grade(solution, name, hidden)
        assert f"\u2713 {name}" in capsys.readouterr().out
    stub = assignments.release(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        solution, metadata=dict(nbgrader=dict(solution=True, grade=False, grade_id=gid,
                                              locked=False, schema_version=3)))])).cells[0]
    assert "BEGIN SOLUTION" not in stub.source and "NotImplementedError" in stub.source
    with pytest.raises(NotSolved, match=f"^not solved yet: write {name} above$"):
        _grade(stub.source, name)
    assert "BEGIN HIDDEN TESTS" in test and "hidden=True" in test


@pytest.mark.parametrize("name", NAMES)
def test_wrong_solutions_and_shortcuts_fail_with_one_line(name):
    for source in WRONG[name]:
        messages = []
        for _ in range(2):  # the same grade on every run
            with pytest.raises(GradeError) as e:
                _grade(source, name)
            messages.append(str(e.value))
        assert messages[0] == messages[1] and "\n" not in messages[0], messages
        assert messages[0].startswith(name) and "not solved" not in messages[0], messages[0]
        assert "do not use" not in messages[0], f"a wrong answer refused as a shortcut: {e.value}"
    for source, word in SHORTCUT[name]:
        with pytest.raises(GradeError) as e:
            _grade(source, name)
        line = str(e.value)
        assert "\n" not in line and word in line, line
        assert e.value._render_traceback_() == [f"\u2717 {line}"]


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_other_correct_solutions_pass(name, capsys):
    _grade(RIGHT[name], name, hidden=True)
    assert f"\u2713 {name}" in capsys.readouterr().out


def test_kit_is_restored_and_reveal_waits_for_the_pass(capsys):
    from patchcore_lite import embedding

    name, _, solution, _ = next(e for e in EXERCISES if e[0] == "aggregate3x3")
    with pytest.raises(GradeError):
        _grade(SHORTCUT[name][-1][0], name)
    assert "aggregate" not in exercises.reveal(name, embedding.aggregate).data.split("`")[0]
    assert "def aggregate" not in exercises.reveal(name, embedding.aggregate).data
    _grade(solution, name)
    assert "def aggregate" in exercises.reveal(name, embedding.aggregate).data
    import torch
    assert embedding.aggregate(torch.ones(1, 1, 3, 3))[0, 0, 1, 1] == 1.0  # unblocked
    with blocked([(embedding, "no_such_step"), (embedding, "fuse")], "x"):
        with pytest.raises(GradeError, match="do not call"):
            embedding.fuse([torch.ones(1, 1, 2, 2)])
    assert embedding.fuse([torch.ones(1, 1, 2, 2)]).shape == (1, 1, 2, 2)


def test_autograde_scores_wrong_answers_and_shortcuts_zero_and_runs_to_the_end(tmp_path):
    """Every variant in one notebook, executed with errors not allowed (the graded cells carry
    the raises-exception tag) and scored with nbgrader's grade rule."""
    cells = [nbformat.v4.new_code_cell(PRELUDE)]
    variants = [(n, s) for n in NAMES for s in WRONG[n] + [s for s, _ in SHORTCUT[n]]]
    for k, (name, source) in enumerate(variants):
        cells.append(nbformat.v4.new_code_cell(source, metadata=dict(nbgrader=dict(
            solution=True, grade=False, grade_id=f"v{k}", locked=False, schema_version=3))))
        cells.append(nbformat.v4.new_code_cell(
            f"exercises.grade_{name}({name})", metadata=dict(tags=["raises-exception"],
                                                             nbgrader=dict(
                solution=False, grade=True, grade_id=f"v{k}_test", points=2, locked=True,
                schema_version=3))))
    cells.append(nbformat.v4.new_code_cell("print('the last cell ran')"))
    nb, _ = assignments.execute(nbformat.v4.new_notebook(cells=cells), tmp_path)
    grades = assignments.autograde(nb)
    assert grades["possible"] == 2 * len(variants) and grades["earned"] == 0, grades
    assert "the last cell ran" in nb.cells[-1].outputs[0]["text"]
    shown = [o["traceback"] for c in nb.cells for o in c.get("outputs", [])
             if o["output_type"] == "error"]
    assert len(shown) == len(variants) and all(len(t) == 1 and t[0].startswith("\u2717")
                                               for t in shown), shown[:2]


def solution_lines(nb) -> list[str]:
    """The lines of an instructor notebook's solutions (stripped, 16 characters or more)."""
    out = []
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("solution"):
            body = c.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            out += [line.strip() for line in body.splitlines() if len(line.strip()) >= 16]
    return out


def test_release_locks_lessons_tags_tests_and_strips_solutions():
    for path in assignments.sources()[1:]:
        source = nbformat.read(path, as_version=4)
        student = assignments.release(source)
        text = "\n".join(c.source for c in student.cells).replace("`", "")  # as rendered
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        assert "hidden=True" not in text
        leaked = [line for line in solution_lines(source) if line in text]
        assert not leaked, f"{path.name}: solution lines in the student version: {leaked}"
        for c in student.cells:
            meta = c.metadata.get("nbgrader", {})
            solution = meta.get("solution", False)
            assert c.metadata.get("editable", True) is solution or solution, c.source[:40]
            assert not c.get("outputs")
            if meta.get("grade"):
                assert c.metadata.get("tags") == ["raises-exception"], c.source


def test_lab_copy_is_made_once_and_never_overwritten(tmp_path):
    made = assignments.lab_copy(tmp_path)
    assert [p.name for p in made] == [p.name for p in assignments.sources()]
    mine = made[3]
    mine.write_text(mine.read_text().replace("# YOUR CODE HERE", "# my answer"))
    assert assignments.lab_copy(tmp_path) == []
    assert "# my answer" in mine.read_text()


def test_summary_line():
    r = {"a": {"source": dict(earned=4.0, possible=4.0), "release": dict(earned=0.0,
                                                                        possible=4.0)}}
    assert re.fullmatch(r"autograde: solved 4/4 points, student release 0/4 points",
                        assignments.summary_line(r))
