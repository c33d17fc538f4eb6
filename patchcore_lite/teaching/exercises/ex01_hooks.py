"""Graders of notebook 01: read shapes with forward hooks (01.1), stop the pass early (01.2).

The reference is the kit's truncated graph (`backbone.truncate`), computed outside the block.
Fixed cases: layers given out of network order, one layer, dotted names (mobilenet_v2),
batch 1 and 2, and a forward pass that fails (hooks must come off anyway).
"""

from __future__ import annotations

import functools
from functools import partial

import torch

from ... import backbone
from ...backbone import FeatureExtractor, load_backbone, truncate
from ..coding import blocked, fail, same_array, torch_rng
from .runner import Learner

# (backbone, layers, input size, batch); the hidden cases are added by the hidden test cell
CASES = (("resnet18", ("layer2", "layer3"), 32, 2), ("resnet18", ("layer3", "layer1"), 48, 1),
         ("resnet18", ("layer4",), 40, 1), ("mobilenet_v2", ("features.6", "features.13"), 32, 2))
HIDDEN = (("resnet18", ("layer1", "layer2", "layer3", "layer4"), 64, 1),
          ("mobilenet_v2", ("features.13", "features.3"), 40, 1))
FORBID = {"FeatureExtractor", "truncate", "create_feature_extractor", "IntermediateLayerGetter",
          "symbolic_trace", "fx"}
BLOCK = [(backbone, "truncate"), (FeatureExtractor, "forward")]


@functools.cache
def _cached_net(name: str) -> torch.nn.Module:
    """A random-init backbone (shapes and code paths are what the exercises test), made once."""
    return load_backbone(name, None)[0].eval()


def _net(name: str) -> torch.nn.Module:
    """The cached backbone without any hook an earlier (wrong) run left on it."""
    net = _cached_net(name)
    for m in net.modules():
        m._forward_hooks.clear()
        m._forward_pre_hooks.clear()
    return net


@functools.cache
def _graph(name: str, layers: tuple[str, ...]) -> torch.nn.Module:
    """The kit's truncated graph of that backbone for `layers` (the reference), made once."""
    return truncate(_net(name), layers)


def _cases(name: str, hidden: bool):
    """(net, layers, x, reference maps) per fixed case, inputs seeded from the exercise."""
    g = torch_rng(name + str(hidden))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny inputs: thread start-up would dominate
    try:
        for net_name, layers, size, batch in CASES + (HIDDEN if hidden else ()):
            x = torch.rand(batch, 3, size, size, generator=g)
            with torch.no_grad():
                ref = _graph(net_name, layers)(x)  # raw input: no ImageNet normalisation
            yield _net(net_name), layers, x, [ref[layer] for layer in layers]
    finally:
        torch.set_num_threads(threads)


def _no_hooks_left(net: torch.nn.Module, what: str) -> None:
    """Fail when any module of `net` still carries a forward hook."""
    left = [n for n, m in net.named_modules() if m._forward_hooks]
    if left:
        fail(f"{what}: forward hooks left on {left[:3]}: remove them, also when the pass fails")


def _count(passes: list, *_) -> None:
    """A forward pre-hook that counts the network's forward passes."""
    passes.append(1)


def _failing_pass(learner: Learner, name: str) -> None:
    """A 4-channel input makes the forward pass fail: no hook may stay behind."""
    net = _net("resnet18")
    what = f"{name}(ResNet, ('layer2',), an input the network rejects)"
    with blocked(learner.block, name), torch.no_grad():
        try:
            learner.fn(net, ("layer2",), torch.zeros(1, 4, 32, 32))
        except Exception:  # noqa: BLE001, S110 - failing is expected; the hooks are what counts
            pass
    _no_hooks_left(net, what)


def grade_hooked_shapes(hooked_shapes, hidden: bool = False) -> None:
    """Exercise 01.1: hooked_shapes(net, layers, x) -> {layer: (B, C, h, w)} in layers' order."""
    learner = Learner(hooked_shapes, "hooked_shapes", FORBID, block=BLOCK)
    n = 0
    for net, layers, x, ref in _cases("hooked_shapes", hidden):
        what = f"hooked_shapes({type(net).__name__}, {layers}, input {tuple(x.shape)})"
        passes = []
        counter = net.register_forward_pre_hook(partial(_count, passes))
        try:
            with torch.no_grad():
                got = learner(what, net, layers, x)
        finally:
            counter.remove()
        if len(passes) != 1:
            fail(f"{what}: {len(passes)} forward passes of the network, expected one")
        if not isinstance(got, dict) or list(got) != list(layers):
            fail(f"{what}: expected a dict with keys {list(layers)} in that order, got "
                 f"{list(got) if isinstance(got, dict) else type(got).__name__}")
        for layer, r in zip(layers, ref):
            if tuple(got[layer]) != tuple(r.shape):
                fail(f"{what}: {layer} is {tuple(got[layer])}, expected {tuple(r.shape)}")
        _no_hooks_left(net, what)
        n += 1
    _failing_pass(learner, "hooked_shapes")
    learner.done(n + 1)


def record_leaves(net: torch.nn.Module, run) -> list[str]:
    """Leaf modules (by name, first run first) that ran during run(); exceptions pass through."""
    ran, handles = [], []
    for name, m in net.named_modules():
        if not list(m.children()):
            handles.append(m.register_forward_hook(
                lambda *_, n=name: ran.append(n) if n not in ran else None))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return ran


def _after_deepest(net: torch.nn.Module, layers, x: torch.Tensor) -> tuple[str, set[str]]:
    """The deepest of `layers` (network order) and the leaves a full pass runs after it."""
    full = record_leaves(net, lambda: net(x))
    deepest = max(layers, key=[m for m, _ in net.named_modules()].index)
    last = max(i for i, m in enumerate(full) if m == deepest or m.startswith(deepest + "."))
    return deepest, set(full[last + 1:])


def _append(out: list, learner: Learner, what: str, *args) -> None:
    """out.append(learner(what, *args)): the learner's call, under record_leaves."""
    out.append(learner(what, *args))


def grade_features_until(features_until, hidden: bool = False) -> None:
    """Exercise 01.2: features_until(net, layers, x) -> the maps of `layers` (in that order) from
    a pass that stops once the deepest has run; nothing after it runs, no hook stays."""
    learner = Learner(features_until, "features_until", FORBID, block=BLOCK)
    n = 0
    for net, layers, x, ref in _cases("features_until", hidden):
        what = f"features_until({type(net).__name__}, {layers}, input {tuple(x.shape)})"
        deepest, after = _after_deepest(net, layers, x)
        got = []
        with torch.no_grad():
            ran = record_leaves(net, partial(_append, got, learner, what, net, layers, x))
        late = [m for m in ran if m in after]
        if late:
            fail(f"{what}: {late[0]} ran after {deepest}; stop the pass once {deepest} is done")
        if not isinstance(got[0], (list, tuple)) or len(got[0]) != len(layers):
            fail(f"{what}: expected a list of {len(layers)} maps (one per layer, in order)")
        for layer, g, r in zip(layers, got[0], ref):
            same_array(g, r, f"{what}, {layer}")
        _no_hooks_left(net, what)
        n += 1
    _failing_pass(learner, "features_until")
    learner.done(n + 1)
