"""What the coding exercises' graded test cells share: one-line verdicts, fixed cases, memory.

A graded test cell of notebooks 01-05 calls one `exercises.grade_*` function with the learner's
function. The grader runs it on fixed cases (seeded from the exercise's name, never the clock,
so a learner's check, the autograde and any regrade agree), compares with the kit's own step
function and raises `GradeError` with one line saying what differs, on which input. nbgrader
scores a cell that raises 0; IPython shows the exception's `_render_traceback_` (the one line)
instead of a traceback into the grader.

The rules every grader uses:
  - shapes must match exactly; values within `rtol`/`atol` of the kit's (float32 vs float64);
  - ties: the lowest index wins (nearest neighbours, argmax), a ROC AUC counts tied scores as
    one half;
  - memory: the peak of the call is the larger of what Python/numpy allocate (tracemalloc) and
    how far the process's resident memory rose (Linux: peak RSS reset before the call), so a
    torch tensor counts as much as a numpy array.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import tracemalloc
import types
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

STATUS = Path("/proc/self/status")
M_MMAP_THRESHOLD = -3  # mallopt parameter (glibc malloc.h)
MMAP_AFTER = 4 * 2**20  # the threshold left in place after a measurement
CLEAR_REFS = Path("/proc/self/clear_refs")


class GradeError(AssertionError):
    """A graded test's verdict: one line, shown without a traceback, scored 0 by nbgrader."""

    def _render_traceback_(self) -> list[str]:
        return [f"\u2717 {self.args[0] if self.args else type(self).__name__}"]


class NotSolved(GradeError):
    """The exercise still holds its stub: nothing to grade yet."""


def fail(message: str) -> None:
    """Raise the one-line GradeError a graded cell shows (and that scores it 0)."""
    raise GradeError(message)


def not_solved(name: str) -> None:
    """Raise the verdict of an unsolved stub."""
    raise NotSolved(f"not solved yet: write {name} above")


def seed_of(name: str) -> int:
    """A fixed seed per exercise (the same on every run, machine and regrade)."""
    return zlib.crc32(name.encode())


def rng(name: str) -> np.random.Generator:
    """numpy generator seeded from the exercise's name."""
    return np.random.default_rng(seed_of(name))


def torch_rng(name: str) -> torch.Generator:
    """torch generator seeded from the exercise's name."""
    return torch.Generator().manual_seed(seed_of(name))


def _raiser(message: str) -> types.CodeType:
    """The code object of a function that accepts anything and raises GradeError(message)."""
    ns: dict = {}
    exec("def blocked(*args, **kwargs):\n    raise __import__('patchcore_lite.teaching.coding',"
         f" fromlist=['GradeError']).GradeError({message!r})", ns)
    return ns["blocked"].__code__


@contextlib.contextmanager
def blocked(targets: Iterable[tuple[object, str]], exercise: str):
    """Make each `getattr(owner, name)` raise while the block runs, then restore it (names the
    kit does not have are skipped: the `ast` inspection refuses the kit anyway).

    A plain Python function has its code swapped, so even a name the learner imported earlier
    (`from patchcore_lite.embedding import aggregate`) is blocked; anything else (a builtin, a
    wrapped function) is replaced on its owner."""
    swapped, replaced = [], []
    try:
        for owner, name in targets:
            if not hasattr(owner, name):  # a step the kit no longer has: nothing to block
                continue
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


def _rss_kib(field_name: str) -> int | None:
    """VmRSS / VmHWM of this process in KiB (None where /proc is not there)."""
    try:
        return int(re.search(rf"{field_name}:\s+(\d+)", STATUS.read_text())[1])
    except (OSError, TypeError):
        return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False if unable."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _mmap_threshold(nbytes: int) -> None:
    """glibc: serve allocations from `nbytes` up by mmap, so freeing them lowers the resident
    memory again (memory kept by malloc's arenas would hide or inflate a call's peak)."""
    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, nbytes)
    except (OSError, AttributeError):  # not glibc: the peak is measured as it comes
        pass


def peak_bytes(fn: Callable, *args, **kwargs) -> tuple[object, int]:
    """fn(*args, **kwargs) and its peak extra memory: the larger of the Python/numpy peak
    (tracemalloc) and the rise of the process's peak resident memory (sees torch too)."""
    _mmap_threshold(2**20)
    try:
        return _peak_bytes(fn, *args, **kwargs)
    finally:
        _mmap_threshold(MMAP_AFTER)


def _peak_bytes(fn: Callable, *args, **kwargs) -> tuple[object, int]:
    """peak_bytes without the allocator setting."""
    rss = _reset_peak_rss() and _rss_kib("VmRSS")
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
    if rss:
        peak = max(peak, 1024 * ((_rss_kib("VmHWM") or rss) - rss))
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
    try:
        bad = ~np.isclose(g.astype(float), e.astype(float), rtol=rtol, atol=atol,
                          equal_nan=True)
    except (TypeError, ValueError):
        fail(f"{what}: expected numbers, got an array of {g.dtype}")
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
    """Fail when a call's peak memory exceeded its budget."""
    if peak > budget:
        fail(f"{what}: used {peak / 2**20:.1f} MiB at peak, the budget is "
             f"{budget / 2**20:.1f} MiB; {hint}")


def passed(what: str, cases: int) -> str:
    """The line a passing test prints."""
    return f"\u2713 {what}: all {cases} cases match the kit"
