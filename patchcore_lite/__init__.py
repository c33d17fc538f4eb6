"""patchcore-lite: PatchCore anomaly detection, step by step, for teaching and the shop floor."""

import os

# torch's OpenMP threads and numpy's BLAS threads take turns in coreset selection and kNN; idle
# OpenMP threads that spin steal the cores BLAS needs (kNN ran 2x slower). Effective only when
# set before torch is first imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._version import __version__  # noqa: E402
from .errors import PatchCoreError  # noqa: E402

__all__ = ["PatchCore", "PatchCoreError", "__version__"]


def __getattr__(name: str):
    """`patchcore_lite.PatchCore` loads the model (and torch) on first use, so that importing
    the package is instant and `python -m patchcore_lite` can end quietly on Ctrl-C."""
    if name == "PatchCore":
        from .model import PatchCore

        return PatchCore
    raise AttributeError(f"module 'patchcore_lite' has no attribute '{name}'")
