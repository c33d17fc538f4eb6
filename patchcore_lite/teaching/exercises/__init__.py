"""The graders of the coding exercises of notebooks 01-05, one module per notebook.

A graded test cell calls `exercises.grade_<name>(<name>)`: the learner's function is read
first (`shortcuts`: a stub is "not solved yet", a shortcut is refused with one line naming the
call), then run on fixed cases against the kit's own step function (`runner`, `coding`). The
hidden test cell of the instructor version calls it again with `hidden=True` (more fixed cases).
`reveal` shows the kit's version of a step once the learner's test has passed in this kernel.
"""

from __future__ import annotations

from .ex01_hooks import grade_features_until, grade_hooked_shapes
from .ex02_embedding import grade_aggregate3x3, grade_fuse_finest
from .ex03_coreset import grade_coverage_radius, grade_greedy_kcenter
from .ex04_scoring import grade_image_score_and_map, grade_nearest_distances
from .ex05_metrics import grade_f1_optimal_threshold, grade_roc_auc
from .runner import PASSED

__all__ = ["grade_hooked_shapes", "grade_features_until", "grade_aggregate3x3",
           "grade_fuse_finest", "grade_greedy_kcenter", "grade_coverage_radius",
           "grade_nearest_distances", "grade_image_score_and_map", "grade_roc_auc",
           "grade_f1_optimal_threshold", "reveal"]


def reveal(name: str, *objs):
    """The kit's own code of `objs` once exercise `name` has passed in this kernel; before
    that, a note (so no cell shows an answer before it is solved)."""
    from IPython.display import Markdown

    from ..view import source

    if name not in PASSED:
        return Markdown(f"*The kit's version of this step appears here once your `{name}` "
                        "passes its test: solve the exercise above, run its test, then run "
                        "this cell again.*")
    return Markdown("**Now compare with the kit's version:**\n\n" + "\n\n".join(
        source(o).data for o in objs))
