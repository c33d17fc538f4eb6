"""The one table of model options shared by `fit`, `evaluate` and `bench` (DESIGN.md section 4).

Each row: flag, PatchCore keyword, type, default, help. A new model option is one new row.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple

from ..errors import PatchCoreError


class Option(NamedTuple):
    flag: str
    kwarg: str
    type: type | None  # None: a switch (store_true)
    default: object
    help: str


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def finite_float(text: str) -> float:
    """argparse type: a number that is not NaN or infinite."""
    v = float(text)
    if v != v or v in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return v


MODEL_OPTIONS = (
    Option("--backbone", "backbone", str, "resnet18", "torchvision CNN (resnet18, "
           "wide_resnet50_2, mobilenet_v2, ...)"),
    Option("--layers", "layers", str, "layer2,layer3", "comma-separated module names "
           "(dotted for nested ones, e.g. features.6)"),
    Option("--weights", "weights", str, "auto", "auto, imagenet, none or a state-dict file"),
    Option("--sampling", "sampling", str, "coreset",
           "none, random, coreset (fast) or coreset-exact"),
    Option("--ratio", "sampling_ratio", float, 0.1, "fraction of patches kept"),
    Option("--k", "k", positive_int, 1, "neighbours averaged for a patch's score"),
    Option("--reweight", "reweight", None, False, "paper Eq. 7 image-score reweighting"),
    Option("--reweight-b", "reweight_b", int, 9, "neighbourhood size of Eq. 7"),
    Option("--embed-dim", "embed_dim", int, None, "reduce patches to this dim (default: keep "
           "the concatenation)"),
    Option("--resize", "resize", int, 256, "square resize of every image"),
    Option("--crop", "crop", int, 224, "centre crop; 0 keeps the whole image"),
    Option("--device", "device", str, "cpu", "cpu, cuda or cuda:N"),
    Option("--seed", "seed", int, 0, "random init, sampling and threshold seed"),
    Option("--batch-size", "batch_size", positive_int, 16, "images per forward pass"),
    Option("--search", "search", str, "exact", "kNN backend: exact or faiss (extra)"),
    Option("--target-fpr", "target_fpr", finite_float, None, "default threshold flags this "
           "fraction of good images (leave-one-out estimate)"),
    Option("--tile", "tile", positive_int, None, "cut images into square tiles of this many "
           "pixels (large images, small defects)"),
    Option("--tile-overlap", "tile_overlap", finite_float, 0.25, "overlap of adjacent tiles"),
    Option("--workers", "workers", int, None, "threads decoding images ahead of the backbone "
           "(default: half the CPUs; 0: none)"),
)


SCORING_TIME = ("k", "device", "batch_size", "workers")  # a saved model may take these


def saved_model_options(a: argparse.Namespace, config, allowed=SCORING_TIME,
                        why: str = "it cannot change with --model (fit again instead)") -> dict:
    """With --model, the options given that may change (`allowed`, {kwarg: value}); any other
    option given with a value other than the model's is refused by name."""
    given = {o.kwarg: getattr(a, o.kwarg) for o in MODEL_OPTIONS
             if getattr(a, o.kwarg) != o.default}
    for o in MODEL_OPTIONS:
        if o.kwarg in given and o.kwarg not in allowed:
            saved = getattr(config, o.kwarg, None)
            if o.kwarg == "layers":
                saved = ",".join(saved)
            if given[o.kwarg] != saved:
                raise PatchCoreError(f"{o.flag}: the saved model was fitted with {saved!r}; "
                                     f"{why}")
    return {k: v for k, v in given.items() if k in allowed}


def add_model_options(p: argparse.ArgumentParser, **defaults) -> None:
    """Add every row of MODEL_OPTIONS to parser `p`; `defaults` overrides some (weights=...)."""
    for o in MODEL_OPTIONS:
        default = defaults.get(o.kwarg, o.default)
        if o.type is None:
            p.add_argument(o.flag, dest=o.kwarg, action="store_true", help=o.help)
        else:
            p.add_argument(o.flag, dest=o.kwarg, type=o.type, default=default,
                           help=f"{o.help} [{default}]")


def model_kwargs(a: argparse.Namespace) -> dict:
    """PatchCore keyword arguments from parsed options."""
    return {o.kwarg: getattr(a, o.kwarg) for o in MODEL_OPTIONS}


def option_args(kwargs: dict) -> list[str]:
    """Model keyword arguments back to command-line words (the inverse of model_kwargs)."""
    words = []
    for o in MODEL_OPTIONS:
        v = kwargs.get(o.kwarg, o.default)
        if o.type is None:
            words += [o.flag] if v else []
        elif v is not None:
            words += [o.flag, ",".join(v) if isinstance(v, (tuple, list)) else str(v)]
    return words
