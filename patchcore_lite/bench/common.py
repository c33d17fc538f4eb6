"""What the benchmark and the anomalib side-by-side share: peak memory, timing, tables, machine.

Imports only the standard library at module level (torch inside `machine`), so the anomalib worker,
which runs in another virtual environment, can use it too.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def timed(fn, *args):
    """fn(*args) and the seconds it took."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def _cell(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def table(rows: list[dict], columns) -> str:
    """Aligned plain-text table of `rows` (one dict per size); columns: (key, header, format)."""
    head = [h for _, h, _ in columns]
    body = [[_cell(r.get(k), f) for k, _, f in columns] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = [head, ["-" * w for w in widths], *body]
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(line, widths)) for line in lines)


def machine() -> dict:
    """What the numbers were measured on."""
    import torch

    return dict(platform=platform.platform(), python=platform.python_version(),
                torch=torch.__version__, cpu_count=os.cpu_count(),
                torch_threads=torch.get_num_threads(), loadavg=os.getloadavg())
