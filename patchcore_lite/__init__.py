"""patchcore-lite: PatchCore anomaly detection, step by step, for teaching and the shop floor."""

__version__ = "0.1.0"

from .errors import PatchCoreError  # noqa: E402
from .model import PatchCore  # noqa: E402

__all__ = ["PatchCore", "PatchCoreError", "__version__"]
