"""The one check protocol of every notebook's "try it" exercises: a `Verdict` per answer.

A check takes the learner's answer (None while unanswered) and returns Verdict(ok, message),
shown as one line with a mark. Two helpers cover the two kinds of answer: a number (`number`) and
one choice among letters or words (`choice`); `exact` covers answers that must match a value
(a shape, a set of names), with hints for near misses. A check works the right answer out with
the library itself where it can, so that it stays true if the kit changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

OK, WRONG = "\u2713", "\u2717"  # check and ballot marks: in every common text font (no emoji)


class Verdict(NamedTuple):
    """The outcome of one self-check: right or not, and one line saying why."""

    ok: bool
    message: str

    def __repr__(self) -> str:
        return f"{OK if self.ok else WRONG} {self.message}"

    def __str__(self) -> str:
        return repr(self)


def unanswered(what: str) -> Verdict:
    """The verdict while `answer = None` is still in place; `what` says what to give."""
    return Verdict(False, f"Not answered yet: replace `answer = None` with {what}, then run the "
                          "cell again.")


def close(answer, truth: float, rel: float = 0.01, abs_: float = 1e-6) -> bool:
    """answer is a number within `rel` (relative) or `abs_` of truth."""
    try:
        return abs(float(answer) - truth) <= max(abs_, rel * abs(truth))
    except (TypeError, ValueError):
        return False


def number(answer, truth: float, right: str, wrong: str, what: str = "a number",
           rel: float = 0.01) -> Verdict:
    """Check a numeric answer: unanswered, right (within rel), or wrong with a hint."""
    if answer is None:
        return unanswered(what)
    if close(answer, truth, rel):
        return Verdict(True, f"Right: {right}")
    return Verdict(False, f"{answer} is not it: {wrong}")


def choice(answer, right: str, explain: str, options: str, hint: str | None = None) -> Verdict:
    """Check one choice among `options` (letters or words, any case, 'b)' accepted)."""
    if answer is None:
        return unanswered(f"one of {options}")
    a = str(answer).strip().lower().rstrip(")").strip()
    if a == right:
        return Verdict(True, f"Right: {explain}")
    return Verdict(False, f"Not quite ('{answer}'). " + (hint or f"Think again: which of "
                                                             f"{options} holds?"))


def ints(answer):
    """The answer as a tuple of ints when it is a sequence of whole numbers, else unchanged."""
    if answer is None:
        return None
    try:
        return tuple(int(v) for v in answer)
    except (TypeError, ValueError):
        return answer


def exact(answer, truth, right: str, wrong: str, what: str,
          hints: Sequence[tuple[Callable, str]] = (), shown=None) -> Verdict:
    """Check an answer that must equal `truth`: unanswered, right, the first hint whose test
    accepts it (a near miss), or wrong; `shown` is how a wrong answer is quoted (default: it)."""
    if answer is None:
        return unanswered(what)
    if answer == truth:
        return Verdict(True, f"Right: {right}")
    for test, message in hints:
        try:
            near = bool(test(answer))
        except TypeError:  # e.g. len() of a number: not this near miss
            near = False
        if near:
            return Verdict(False, message)
    return Verdict(False, f"{answer if shown is None else shown} is not it: {wrong}")
