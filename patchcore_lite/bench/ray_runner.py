"""Whole benchmarks past one machine: each category (or bench size) as a task on a Ray cluster.

What travels how: the driver sends each task a small dict (the category's path and the model
settings) and gets its result back as a Ray object (a JSON-sized dict). The images are read by the
worker from the same path, so ROOT must be on a file system every node mounts at the same path
(a task that cannot read it fails with a line saying so); nothing else is shared: the resumable
state under --out/state/ is written by the driver alone. Every node needs patchcore-lite (and
ray, `pip install 'patchcore-lite[ray]'`) installed. Each task gets a fresh worker process
(`max_calls=1`), so memory figures are its own, and `threads` CPUs of the cluster.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import PatchCoreError


def connect(address: str):
    """The `ray` module, connected to the cluster at `address` ('auto': the one `ray start`
    made, or $RAY_ADDRESS); an already connected session is used as it is."""
    try:
        import ray
    except ImportError:
        raise PatchCoreError("--ray: needs Ray: pip install 'patchcore-lite[ray]'")
    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        except Exception as e:  # ConnectionError, ValueError, RuntimeError, ... from ray.init
            raise PatchCoreError(f"--ray: cannot connect to the Ray cluster at {address!r} "
                                 f"({str(e).strip().splitlines()[0] if str(e) else e!r})")
    return ray


def _call(fn: Callable, arg, threads: int) -> tuple[bool, object]:
    """Run fn(arg) on a worker: (True, result) or (False, one line saying what failed where)."""
    import torch

    torch.set_num_threads(threads)
    try:
        return True, fn(arg)
    except PatchCoreError as e:
        return False, str(e)
    except Exception as e:  # noqa: BLE001 - reported per task, the others go on
        return False, f"{type(e).__name__}: {e} (on Ray node {socket.gethostname()})"


def run(fn: Callable, args: list, address: str, threads: int = 1) -> Iterator[tuple]:
    """fn(arg) for every arg as Ray tasks; yields (i, ok, result or message) as tasks finish."""
    ray = connect(address)
    task = ray.remote(num_cpus=threads, max_calls=1)(_call)
    pending = {task.remote(fn, a, threads): i for i, a in enumerate(args)}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(done[0])
        try:
            ok, value = ray.get(done[0])
        except Exception as e:  # noqa: BLE001 - a worker died (out of memory, node lost)
            ok, value = False, f"Ray task failed: {str(e).strip().splitlines()[-1]}"
        yield i, ok, value


def evaluate_category(job: dict) -> dict:
    """Ray task body of `evaluate --all --ray`: fit and evaluate one category; its JSON summary
    (round-tripped through JSON, as the --jobs path reads it from its subprocess)."""
    from ..evaluation.protocol import evaluate

    cat = Path(job["category"])
    if not (cat / "train" / "good").is_dir():
        raise PatchCoreError(f"{cat}: not readable on Ray node {socket.gethostname()}; --ray "
                             "reads each category from the same path on every node (put ROOT "
                             "on a file system all nodes mount there)")
    return json.loads(json.dumps(evaluate(cat, None, **job["settings"]).summary))
