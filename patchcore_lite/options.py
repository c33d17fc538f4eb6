"""The one table of model options shared by `fit`, `evaluate` and `bench`, derived from `Config`.

Each row: flag, PatchCore keyword, type, default, help. A model setting is added once, as a
`Config` field (config.py); only the device and the decoding threads, which are not part of a
model, are added here.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import NamedTuple

from .config import Config, flag
from .errors import PatchCoreError


class Option(NamedTuple):
    flag: str
    kwarg: str
    type: type | None  # None: a switch (store_true)
    default: object
    help: str


def _row(f) -> Option:
    """The option of one Config field (tuples such as --layers are written comma-separated)."""
    default = ",".join(f.default) if isinstance(f.default, tuple) else f.default
    return Option(flag(f.name), f.name, f.metadata["type"], default, f.metadata["help"])


MODEL_OPTIONS = tuple(_row(f) for f in fields(Config)) + (  # and what is not part of a model:
    Option("--device", "device", str, "cpu", "cpu, cuda or cuda:N"),
    Option("--workers", "workers", int, None, "threads decoding images ahead of the backbone "
           "(default: half the CPUs; 0: none)"))


class Given(argparse.Action):
    """Store an option's value (a switch's const) and note, in `given`, that it was typed: an
    option given equal to its default is still seen as given."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given = getattr(namespace, "given", frozenset()) | {self.dest}


SCORING_TIME = ("k", "device", "batch_size", "workers")  # what a saved model may change


def saved_model_options(a: argparse.Namespace, config, allowed=SCORING_TIME,
                        why: str = "it cannot change with --model (fit again instead)") -> dict:
    """With --model, the options given that may change (`allowed`, {kwarg: value}); any other
    option given (typed, even at its default) with a value other than the model's is refused."""
    typed = getattr(a, "given", frozenset())  # set by the Given action: nothing typed, none
    given = {o.kwarg: getattr(a, o.kwarg) for o in MODEL_OPTIONS if o.kwarg in typed}
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
            p.add_argument(o.flag, dest=o.kwarg, action=Given, nargs=0, const=True,
                           default=False, help=o.help)
        else:
            p.add_argument(o.flag, dest=o.kwarg, action=Given, type=o.type, default=default,
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
