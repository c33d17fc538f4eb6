"""The learner's function as a grader sees it: inspected once, then called on fixed cases with
the kit's own step blocked, every failure turned into one line."""

from __future__ import annotations

from collections.abc import Iterable

from ..coding import GradeError, blocked, fail, not_solved, passed, peak_bytes
from .shortcuts import inspect_solution

PASSED: set[str] = set()  # exercises whose test passed in this kernel (see `reveal`)


class Learner:
    """Wraps the learner's `fn` for exercise `name`: refuses shortcuts, blocks the kit's step."""

    def __init__(self, fn, name: str, forbid: Iterable[str] = (), allow: Iterable[str] = (),
                 block: Iterable[tuple[object, str]] = ()):
        PASSED.discard(name)
        inspect_solution(fn, name, forbid, allow)
        self.fn, self.name, self.block = fn, name, list(block)

    def _call(self, what: str, *args):
        try:
            return self.fn(*args)
        except NotImplementedError:
            not_solved(self.name)
        except GradeError:
            raise
        except Exception as e:  # noqa: BLE001 - the learner's error, as one line
            detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
            fail(f"{what} raised {type(e).__name__}{': ' + detail if detail else ''}")

    def __call__(self, what: str, *args):
        """fn(*args) with the kit blocked; `what` names the input in any message."""
        with blocked(self.block, self.name):
            return self._call(what, *args)

    def peak(self, what: str, *args) -> tuple[object, int]:
        """fn(*args) and its peak extra memory (numpy and torch), with the kit blocked."""
        with blocked(self.block, self.name):
            return peak_bytes(self._call, what, *args)

    def done(self, cases: int) -> None:
        """Record the pass (so `reveal` shows the kit's version) and print the pass line."""
        PASSED.add(self.name)
        print(passed(self.name, cases))
