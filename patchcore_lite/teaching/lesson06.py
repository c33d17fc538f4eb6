"""Lesson 06, the live demo: the self-checks of notebook 06's "try it" exercises.

The view and the app of this lesson are the live demo itself (`patchcore_lite.apps.live`); what
is left here are the checks. Each takes the demo (the app widget or a `LiveDemo`) and the
learner's answer (None while unanswered) and returns a `checks.Verdict`, worked out from the
images shown so far, so the right answer is whatever this run of the line says.
"""

from __future__ import annotations

from ..apps.live.line import LiveDemo
from .checks import Verdict, close

NOT_STARTED = Verdict(False, "the live demo did not start; nothing to check")


def _line_to_check(demo, **answers) -> LiveDemo | Verdict:
    """The line behind the app widget (or the line itself), or the verdict when one of the
    notebook's answers (`my_... = None`) is unset or the demo did not start (an error panel)."""
    for name, value in answers.items():
        if value is None:
            return Verdict(False, f"Not answered yet: set {name} and run this cell again.")
    line = getattr(demo, "line", demo)
    return line if isinstance(line, LiveDemo) else NOT_STARTED


def check_no_false_alarm_threshold(demo, threshold) -> Verdict:
    """Exercise 1: the lowest threshold (within 2 %) with no false alarm on the images shown."""
    line = _line_to_check(demo, my_threshold=threshold)
    if isinstance(line, Verdict):
        return line
    good = line.scores()[line.labels() == 0]
    if len(good) == 0:
        return Verdict(False, "no good image inspected yet: let the line run a little longer")
    top = float(good.max())
    c = line.counts(threshold)
    if c["false_alarms"]:
        return Verdict(False, f"at {threshold:.4g} there are still {c['false_alarms']} false "
                              "alarm(s): which good image has the highest score?")
    if threshold > top + 0.02 * abs(top) + 1e-9:
        return Verdict(False, f"no false alarms at {threshold:.4g}, but a lower threshold "
                              "would do too: lower it until just above the highest good score")
    return Verdict(True, f"right: the highest good score so far is {top:.4g}, so any threshold "
                         "just above it gives no false alarm on these images")


def check_missed(demo, threshold, answer) -> Verdict:
    """Exercise 2: how many defective images shown so far pass at `threshold`."""
    line = _line_to_check(demo, my_missed=answer, my_threshold=threshold)
    if isinstance(line, Verdict):
        return line
    c = line.counts(threshold)
    if c["missed"] is None:
        return Verdict(False, "no labelled image shown yet")
    if int(answer) != answer or int(answer) != c["missed"]:
        return Verdict(False, f"not quite: count the red dots (defective) below the dashed "
                              f"line at threshold {threshold:.4g}")
    return Verdict(True, f"right: {c['missed']} defective image(s) would pass; lowering the "
                         "threshold catches them at the price of false alarms")


def check_recall(demo, answer) -> Verdict:
    """Exercise 3: fraction of defective images shown that the model's default threshold flags."""
    line = _line_to_check(demo, my_recall=answer)
    if isinstance(line, Verdict):
        return line
    c = line.counts(line.default_threshold)
    if c["missed"] is None or c["caught"] + c["missed"] == 0:
        return Verdict(False, "no defective image inspected yet: let the line run longer")
    recall = c["caught"] / (c["caught"] + c["missed"])
    if not 0 <= answer <= 1:
        return Verdict(False, "give a fraction between 0 and 1, not a percentage")
    if not close(answer, recall, rel=0.0, abs_=0.01):
        return Verdict(False, "not quite: flagged defective / all defective shown, at the "
                              "model default threshold (press 'model default')")
    return Verdict(True, f"right: recall {recall:.2f} ({c['caught']} of "
                         f"{c['caught'] + c['missed']} defective images caught)")
