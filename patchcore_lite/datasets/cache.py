"""Generate the embedded data set once and fit each model once: notebooks and the live demo reuse
them, so a lesson starts in seconds instead of refitting.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .._version import __version__
from ..data import good_images
from ..errors import PatchCoreError
from ..model import PatchCore
from .synth import CATEGORIES, generate


def home() -> Path:
    """Where data and cached models live: $PATCHCORE_LITE_HOME, the repo's data/, or ~/.cache."""
    if os.environ.get("PATCHCORE_LITE_HOME"):
        return Path(os.environ["PATCHCORE_LITE_HOME"])
    repo_data = Path(__file__).resolve().parents[2] / "data"  # the repo, above the package
    return repo_data if repo_data.is_dir() else Path.home() / ".cache" / "patchcore-lite"


def embedded_data(seed: int = 0, root: str | Path | None = None) -> Path:
    """Folder holding the embedded data set for `seed`, generated on first use."""

    root = Path(root) if root else home() / f"embedded-seed{seed}"
    stamp, tag = root / ".complete", f"{__version__} {_synth_hash()}"
    if not stamp.is_file() or stamp.read_text() != tag:  # regenerate when the generator changed
        generate(root, seed=seed)
        stamp.write_text(tag)
    assert all((root / c).is_dir() for c in CATEGORIES)
    return root


def _source_hash(*names: str) -> str:
    """Fingerprint of these modules' source: what an older version made is not reused."""
    here = Path(__file__).parents[1]  # the package root
    h = hashlib.sha256()
    for name in names:
        h.update((here / f"{name}.py").read_bytes())
    return h.hexdigest()[:12]


def _synth_hash() -> str:
    return _source_hash("datasets/synth")


METHOD_MODULES = ("data", "backbone", "embedding", "bounds", "sampling", "knn", "maps", "model")


def cached_model(category: str | Path, weights: str | None = "auto",
                 cache_dir: str | Path | None = None, progress: bool = True,
                 **options) -> PatchCore:
    """A model fitted on <category>/train/good with these options, from cache if fitted before.

    The cache key includes what `weights` resolved to, so a random-init model is never reused
    once pretrained weights are available, and the source of the method's modules.
    """
    category = Path(category)
    model = PatchCore(weights=weights, progress=progress, **options)
    stamp = category.parent / ".complete"  # embedded data: refit when it was regenerated
    data = stamp.read_text() if stamp.is_file() else ""
    code = _source_hash(*METHOD_MODULES)
    key = json.dumps(dict(cat=str(category.resolve()), data=data, code=code,
                          weights=model.weights_used,
                          sha=model.weights_sha256, **options), sort_keys=True, default=str)
    name = f"{category.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pclite"
    path = Path(cache_dir) if cache_dir else home() / "cache"
    path = path / name
    if path.is_file():
        try:
            return PatchCore.load(path, device=str(model.device), progress=progress)
        except PatchCoreError:
            pass  # stale or damaged cache entry: fit again and replace it
    model.fit(good_images(category))
    model.save(path)
    return model
