"""What the coding exercises' graded test cells share: fail loudly, block the library, compare.

A test cell of notebooks 01-05 calls one `test_*` function of its lesson module with the
learner's function. That function draws fresh random inputs (several shapes and edge cases),
runs the learner's code while the library function it re-implements is blocked (`blocked`),
and compares the result with the library's own, computed outside the block. Any difference
raises AssertionError with one or two lines that say what differs, which is what nbgrader
needs to award 0 points (a cell that raises nothing earns its points).

The rules every test uses:
  - shapes must match exactly; values within `rtol`/`atol` of the library's (float32 vs float64);
  - ties: the lowest index wins (nearest neighbours, argmax), and a ROC AUC counts tied
    scores as one half;
  - memory bounds are peak bytes that numpy allocates during the call (tracemalloc), measured
    on numpy inputs; torch tensors are not traced, so memory exercises take numpy arrays.
"""

from __future__ import annotations

import contextlib
import tracemalloc
import types
from collections.abc import Callable, Iterable

import numpy as np
import torch


def fail(message: str) -> None:
    """Raise the one-line AssertionError a graded cell shows (and that scores it 0)."""
    raise AssertionError(message)


def _raiser(message: str) -> types.CodeType:
    """The code object of a function that accepts anything and raises AssertionError(message)."""
    ns: dict = {}
    exec(f"def blocked(*args, **kwargs):\n    raise AssertionError({message!r})", {}, ns)
    return ns["blocked"].__code__


@contextlib.contextmanager
def blocked(targets: Iterable[tuple[object, str]], exercise: str):
    """Make each `getattr(owner, name)` raise while the block runs, then restore it.

    A plain Python function has its code swapped, so even a name the learner imported earlier
    (`from patchcore_lite.embedding import aggregate`) is blocked; anything else (a builtin, a
    wrapped function) is replaced on its owner."""
    swapped, replaced = [], []
    try:
        for owner, name in targets:
            fn = inner = getattr(owner, name)
            while getattr(inner, "__wrapped__", None) is not None:  # decorated: block the core
                inner = inner.__wrapped__
            msg = (f"{exercise}: do not call {getattr(owner, '__name__', owner)}.{name}, "
                   "write it yourself")
            code = getattr(inner, "__code__", None)
            if isinstance(inner, types.FunctionType) and not code.co_freevars:
                swapped.append((inner, code))
                inner.__code__ = _raiser(msg)
            if inner is not fn or not isinstance(fn, types.FunctionType) or code is None \
                    or code.co_freevars:
                replaced.append((owner, name, fn))
                setattr(owner, name, types.FunctionType(_raiser(msg), {}))
        yield
    finally:
        for fn, code in reversed(swapped):  # reversed: a twice-blocked function restores
            fn.__code__ = code
        for owner, name, fn in reversed(replaced):
            setattr(owner, name, fn)


def peak_bytes(fn: Callable, *args, **kwargs) -> tuple[object, int]:
    """fn(*args, **kwargs) and the peak bytes numpy (and Python) allocated during the call."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        try:
            out = fn(*args, **kwargs)
        except MemoryError as e:
            fail(f"{getattr(fn, '__name__', 'your function')} ran out of memory ({e}); it "
                 "must not hold a matrix of all pairs")
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return out, peak


def as_array(x, what: str) -> np.ndarray:
    """A numpy array of a result (tensors detached); fails when it is not array-like."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=float) if not isinstance(x, np.ndarray) else x
    except (TypeError, ValueError):
        fail(f"{what}: expected an array, got {type(x).__name__}")


def same_array(got, expected, what: str, rtol: float = 1e-4, atol: float = 1e-5,
               hint: str = "") -> None:
    """Fail with the shape, or with the first index whose value differs, unless they match."""
    g, e = as_array(got, what), as_array(expected, what)
    if g.shape != e.shape:
        fail(f"{what}: shape {tuple(g.shape)}, expected {tuple(e.shape)}")
    bad = ~np.isclose(g.astype(float), e.astype(float), rtol=rtol, atol=atol, equal_nan=True)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        fail(f"{what}: value at index {at} is {g[at]:.6g}, expected {e[at]:.6g} "
             f"({int(bad.sum())} of {bad.size} differ){'; ' + hint if hint else ''}")


def same_number(got, expected, what: str, rtol: float = 1e-6, atol: float = 1e-9,
                hint: str = "") -> None:
    """Fail unless `got` is a number within rtol/atol of `expected` (None must match None)."""
    if expected is None or got is None:
        if got is not expected:
            fail(f"{what}: got {got!r}, expected {expected!r}")
        return
    try:
        value = float(got)
    except (TypeError, ValueError):
        fail(f"{what}: expected a number, got {type(got).__name__}")
    if not np.isclose(value, float(expected), rtol=rtol, atol=atol):
        fail(f"{what}: got {value:.6g}, expected {float(expected):.6g}"
             f"{'; ' + hint if hint else ''}")


def within_memory(peak: int, budget: int, what: str, hint: str) -> None:
    """Fail when a call's peak numpy memory exceeded its budget."""
    if peak > budget:
        fail(f"{what}: used {peak / 2**20:.1f} MiB at peak, the budget is "
             f"{budget / 2**20:.1f} MiB; {hint}")


def passed(what: str, cases: int) -> str:
    """The line a passing test prints."""
    return f"\u2713 {what}: all {cases} random cases match the library"
