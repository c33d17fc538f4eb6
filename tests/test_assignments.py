"""The coding exercises: nbgrader cells in notebooks 01-05, honest graders, student versions.

Each solution cell of an instructor notebook passes its graded test; for each exercise a wrong
answer, the stub of the student version, and a stub that calls the library all raise (so
nbgrader awards 0). One small notebook of wrong answers is autograded end to end."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from patchcore_lite.teaching import assignments

NOTEBOOKS = assignments.NOTEBOOKS
PRELUDE = """
import numpy as np
import torch
import torch.nn.functional as F
from patchcore_lite import backbone, embedding, knn, maps, sampling
from patchcore_lite.evaluation import metrics
from patchcore_lite.teaching import lesson01, lesson02, lesson03, lesson04, lesson05
"""

# One wrong answer per exercise, and one that calls the library function it re-implements.
WRONG = {
    "ex01_1_hooked_shapes": "def hooked_shapes(net, layers, x):\n"
                            "    return {layer: (1, 64, 8, 8) for layer in layers}\n",
    "ex01_2_features_until": "def features_until(net, layers, x):\n"
                             "    out, m = [], dict(net.named_modules())\n"
                             "    hs = [m[l].register_forward_hook(lambda *a: out.append(a[2]))"
                             " for l in layers]\n"
                             "    net(x)\n    [h.remove() for h in hs]\n    return out\n",
    "ex02_1_aggregate": "def aggregate3x3(feat):\n"
                        "    return F.avg_pool2d(F.pad(feat, (1, 1, 1, 1), mode='replicate'),"
                        " 3, 1)\n",
    "ex02_2_fuse": "def fuse_finest(feats):\n"
                   "    size = feats[-1].shape[-2:]\n"
                   "    return torch.cat([F.interpolate(f, size=size, mode='bilinear')"
                   " for f in feats], 1)\n",
    "ex03_1_greedy": "def greedy_kcenter(x, m, start):\n"
                     "    return np.arange(start, start + m) % len(x)\n",
    "ex03_2_coverage": "def coverage_radius(x, kept):\n"
                       "    return float(np.linalg.norm(x - x[kept].mean(0), axis=1).max())\n",
    "ex04_1_nearest": "def nearest_distances(queries, bank, k):\n"
                      "    d2 = ((queries[:, None] - bank[None]) ** 2).sum(-1)\n"
                      "    i = np.argsort(d2, 1)[:, :k]\n"
                      "    return np.take_along_axis(d2, i, 1), i\n",
    "ex04_2_score_map": "def image_score_and_map(feats, bank, k, size):\n"
                        "    h, w, d = feats.shape\n"
                        "    dist, _ = knn.knn(feats.reshape(-1, d), bank, k)\n"
                        "    patch = dist[:, 0].reshape(h, w)\n"
                        "    return float(patch.max()), maps.anomaly_map(patch[None], "
                        "(size, size))[0]\n",
    "ex05_1_roc_auc": "def roc_auc(labels, scores):\n"
                      "    labels = np.asarray(labels) > 0.5\n"
                      "    if labels.all() or not labels.any():\n        return None\n"
                      "    p, n = scores[labels][:, None], scores[~labels][None]\n"
                      "    return float((p > n).mean())\n",
    "ex05_2_f1": "def f1_optimal_threshold(labels, scores):\n"
                 "    return (float(np.median(scores)), 0.5) if np.any(labels) else None\n",
}
CHEAT = {
    "ex01_1_hooked_shapes": "def hooked_shapes(net, layers, x):\n"
                            "    fs = backbone.FeatureExtractor(net, layers)(x)\n"
                            "    return {l: tuple(f.shape) for l, f in zip(layers, fs)}\n",
    "ex01_2_features_until": "def features_until(net, layers, x):\n"
                             "    return list(backbone.truncate(net, layers)(x).values())\n",
    "ex02_1_aggregate": "def aggregate3x3(feat):\n    return embedding.aggregate(feat)\n",
    "ex02_2_fuse": "def fuse_finest(feats):\n    return embedding.fuse(feats)\n",
    "ex03_1_greedy": "def greedy_kcenter(x, m, start):\n"
                     "    return sampling.greedy_exact(torch.from_numpy(x), m, start,"
                     " lambda _: None).numpy()\n",
    "ex03_2_coverage": "def coverage_radius(x, kept):\n"
                       "    return sampling.coverage(torch.from_numpy(x),"
                       " torch.from_numpy(kept))\n",
    "ex04_1_nearest": "def nearest_distances(queries, bank, k):\n"
                      "    d, i = knn.knn(torch.from_numpy(queries), torch.from_numpy(bank), k)\n"
                      "    return d.numpy(), i.numpy()\n",
    "ex04_2_score_map": "from patchcore_lite import PatchCore\n"
                        "def image_score_and_map(feats, bank, k, size):\n"
                        "    m = PatchCore(weights=None, resize=size, crop=0, progress=False)\n"
                        "    s, a, _ = m.score_features(feats[None], bank=bank, k=k)\n"
                        "    return float(s[0]), a[0]\n",
    "ex05_1_roc_auc": "from sklearn.metrics import roc_auc_score\n"
                      "def roc_auc(labels, scores):\n"
                      "    return float(roc_auc_score(labels, scores))\n",
    "ex05_2_f1": "def f1_optimal_threshold(labels, scores):\n"
                 "    return metrics.f1_threshold(labels, scores)\n",
}


def exercises() -> list[tuple[str, str, str, str]]:
    """(notebook, exercise id, solution source, test source) of every coding exercise."""
    out = []
    for path in assignments.sources():
        cells = nbformat.read(path, as_version=4).cells
        for i, c in enumerate(cells):
            meta = c.metadata.get("nbgrader", {})
            if meta.get("solution"):
                test = next(t for t in cells[i + 1:] if t.metadata.get("nbgrader", {}).get("grade"))
                out.append((path.name, meta["grade_id"].removesuffix("_solution"), c.source,
                            test.source))
    return out


EXERCISES = exercises()


def test_every_step_notebook_has_two_graded_exercises():
    per = {}
    for name, *_ in EXERCISES:
        per[name[:2]] = per.get(name[:2], 0) + 1
    assert all(per.get(k, 0) >= 2 for k in ("01", "02", "03", "04", "05")), per
    points = sum(c.metadata.nbgrader["points"] for p in assignments.sources()
                 for c in assignments.graded_cells(nbformat.read(p, as_version=4)))
    assert points >= 10
    assert set(WRONG) == set(CHEAT) == {e for _, e, _, _ in EXERCISES}


def _run(solution: str, test: str) -> None:
    ns: dict = {}
    exec(PRELUDE, ns)
    exec(solution, ns)
    exec(test, ns)


@pytest.mark.parametrize("name, ex, solution, test", EXERCISES, ids=[e[1] for e in EXERCISES])
def test_solution_passes_and_wrong_answers_fail(name, ex, solution, test, capsys):
    _run(solution, test)
    assert "\u2713" in capsys.readouterr().out
    stub = assignments.release(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        solution, metadata=dict(nbgrader=dict(solution=True, grade=False, grade_id=ex,
                                              locked=False, schema_version=3)))])).cells[0]
    assert "BEGIN SOLUTION" not in stub.source and "NotImplementedError" in stub.source
    with pytest.raises(NotImplementedError):
        _run(stub.source, test)
    with pytest.raises(AssertionError) as wrong:
        _run(WRONG[ex], test)
    assert wrong.value.args[0].count("\n") <= 1, wrong.value  # one or two lines
    with pytest.raises(AssertionError, match="do not call"):
        _run(CHEAT[ex], test)
    assert "do not call" not in test  # the blocks are lifted again after the test
    _run(solution, test)


def test_autograde_scores_wrong_answers_zero(tmp_path):
    cells = [nbformat.v4.new_code_cell(PRELUDE)]
    for _, ex, _, test in EXERCISES:
        cells.append(nbformat.v4.new_code_cell(WRONG[ex], metadata=dict(nbgrader=dict(
            solution=True, grade=False, grade_id=ex, locked=False, schema_version=3))))
        cells.append(nbformat.v4.new_code_cell(test, metadata=dict(nbgrader=dict(
            solution=False, grade=True, grade_id=ex + "_test", points=2, locked=True,
            schema_version=3))))
    nb, _ = assignments.execute(nbformat.v4.new_notebook(cells=cells), tmp_path)
    grades = assignments.autograde(nb)
    assert grades["possible"] == 2 * len(EXERCISES) and grades["earned"] == 0, grades
    failed = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert all(o["ename"] == "AssertionError" for c in failed for o in c.outputs
               if o["output_type"] == "error"), "a wrong answer must fail with AssertionError"


def test_release_locks_lessons_and_strips_solutions():
    path = next(NOTEBOOKS.glob("03_*.ipynb"))
    student = assignments.release(nbformat.read(path, as_version=4))
    text = json.dumps(student.cells)
    assert "BEGIN SOLUTION" not in text and "np.argmax(mind)" not in text
    for c in student.cells:
        solution = c.metadata.get("nbgrader", {}).get("solution", False)
        assert c.metadata.get("editable", True) is solution or solution, c.source[:40]
        assert not c.get("outputs")


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
