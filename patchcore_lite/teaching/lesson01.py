"""Lesson 01, the backbone and forward hooks: modules, feature-map shapes, what each layer sees,
and what stopping the forward pass early saves.

Views (compute, then draw), the feature app, then the notebook's self-checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure

from ..backbone import FeatureExtractor, load_backbone
from ..data import test_samples
from ..evaluation import plots
from .checks import Verdict, exact, ints, number
from .view import RESNET_LAYERS, View, array, image_batch, layer_shapes, live, table  # noqa: F401


def test_images(category: Path, resize: int = 256, crop: int = 224):
    """The first good and the first defective test image as a (2, 3, crop, crop) batch, names."""
    samples = test_samples(category)
    shown = [next(s for s in samples if s.defect == "good"), next(s for s in samples if s.label)]
    return image_batch(shown, resize, crop)


# ---- views ----------------------------------------------------------------------------------

def parameter_counts(net: torch.nn.Module) -> list[dict]:
    """One row per top-level module: name, type, parameters, share of the total."""
    total = sum(p.numel() for p in net.parameters())
    rows = []
    for name, m in net.named_children():
        n = sum(p.numel() for p in m.parameters())
        rows.append(dict(module=name, type=type(m).__name__, parameters=n,
                         share=f"{100 * n / total:.1f}%"))
    return rows


def module_table(net: torch.nn.Module) -> View:
    """Top-level modules of a network with their parameter counts."""
    rows, total = parameter_counts(net), sum(p.numel() for p in net.parameters())
    return View(dict(rows=rows, total=total), [], table(rows) + f"\n\n{total:,} parameters")


def shape_table(layers: Sequence[str], feats: Sequence[torch.Tensor], input_size: int) -> View:
    """Shape of each hooked map, the stride of its grid in input pixels, and patches per image."""
    rows = []
    for layer, f in zip(layers, feats):
        _, c, h, w = f.shape
        rows.append(dict(layer=layer, shape=f"({c}, {h}, {w})", channels=c, grid=f"{h}x{w}",
                         stride=input_size // h, patches=h * w))
    return View(dict(rows=rows), [], table(rows, ("layer", "shape", "stride", "patches")))


def feature_maps(feats: dict, layer: str, channel: int) -> dict:
    """One channel of `layer` (clamped to its channels) and the mean |activation|, per image."""
    f = feats[layer]
    _, c, h, w = f.shape
    channel = int(min(max(channel, 0), c - 1))
    return dict(layer=layer, channel=channel, shape=(c, h, w), chan=array(f[:, channel]),
                energy=array(f.abs().mean(dim=1)))


def feature_view(images: torch.Tensor, feats: dict, layer: str, channel: int,
                 names: Sequence[str] | None = None, subtitle: str = "") -> View:
    """One channel of one layer for each image, next to the mean activation over all channels.

    images (B, 3, S, S); feats: layer -> (B, C, h, w). Each map is drawn at its own grid
    resolution (one square per cell) stretched over the image, so coarse deep grids show."""
    m = feature_maps(feats, layer, channel)
    (c, h, w), chan, s = m["shape"], m["chan"], images.shape[-1]
    fig = Figure(figsize=(8.4, 2.7 * len(chan)), layout="constrained")
    axes = fig.subplots(len(chan), 3, squeeze=False)
    for i in range(len(chan)):
        axes[i, 0].imshow(plots.to_rgb(images[i]))
        axes[i, 0].set_title(names[i] if names else f"image {i}", fontsize=8)
        im = axes[i, 1].imshow(chan[i], cmap="viridis", extent=(0, s, s, 0),
                               interpolation="nearest", vmin=chan.min(), vmax=chan.max())
        axes[i, 1].set_title(f"{layer} channel {m['channel']} ({h}x{w} grid)", fontsize=8)
        axes[i, 2].imshow(m["energy"][i], cmap="magma", extent=(0, s, s, 0),
                          interpolation="nearest")
        axes[i, 2].set_title(f"{layer}: mean |activation| of {c} channels", fontsize=8)
        for ax in axes[i]:
            ax.set_axis_off()
    fig.colorbar(im, ax=axes[:, 1].tolist(), shrink=0.6)
    fig.suptitle(f"What {layer} sees ({subtitle})" if subtitle else f"What {layer} sees",
                 fontsize=9)
    data = dict(layer=layer, channel=m["channel"], shape=(c, h, w), stride=s // h,
                channel_min=float(chan.min()), channel_max=float(chan.max()))
    return View(data, [fig])


def modules_run(net: torch.nn.Module, layers: Sequence[str], x: torch.Tensor) -> list[str]:
    """Names of the top-level modules of `net` that run when a FeatureExtractor asks for `layers`.

    A module counts as run when any of its leaf modules runs (the extractor's graph calls the
    net's own leaf modules); the recording hooks are removed again."""
    ran, handles = [], []
    for name, child in net.named_children():
        leaves = [m for m in child.modules() if not list(m.children())] or [child]
        for leaf in leaves:
            handles.append(leaf.register_forward_hook(
                lambda *_, n=name: ran.append(n) if n not in ran else None))
    try:
        FeatureExtractor(net, layers)(x)
    finally:
        for h in handles:
            h.remove()
    return ran


def _best_seconds(fn, x: torch.Tensor, repeats: int) -> float:
    """Fastest of `repeats` timed inference-mode calls fn(x)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        with torch.inference_mode():
            fn(x)
        times.append(time.perf_counter() - t)
    return min(times)


def early_stop(net: torch.nn.Module, layers: Sequence[str], x: torch.Tensor,
               repeats: int = 3) -> dict:
    """Modules run and skipped with hooks on `layers`, their parameters, both pass times."""
    ran = modules_run(net, layers, x)
    t_full = _best_seconds(net.eval(), x, repeats)
    t_hooked = _best_seconds(FeatureExtractor(net, layers), x, repeats)
    rows = [dict(module=r["module"], runs="yes" if r["module"] in ran else "**skipped**",
                 parameters=r["parameters"]) for r in parameter_counts(net)]
    return dict(ran=ran, skipped=[r["module"] for r in rows if r["module"] not in ran],
                full_seconds=t_full, hooked_seconds=t_hooked,
                params_ran=sum(r["parameters"] for r in rows if r["module"] in ran),
                params_total=sum(p.numel() for p in net.parameters()), rows=rows)


def early_stop_view(net: torch.nn.Module, layers: Sequence[str], x: torch.Tensor,
                    repeats: int = 3) -> View:
    """Which modules run with hooks on `layers`, what they weigh, and the time saved."""
    d = early_stop(net, layers, x, repeats)
    fig = Figure(figsize=(6, 1.8), layout="constrained")
    ax = fig.subplots()
    ax.barh(["whole network", f"stop after {layers[-1]}"], [d["full_seconds"],
                                                             d["hooked_seconds"]],
            color=["gray", "tab:blue"])
    ax.set_xlabel(f"seconds for a batch of {x.shape[0]} (best of {repeats})")
    caption = (table(d["rows"]) + f"\n\nThe modules that run hold "
               f"{100 * d['params_ran'] / d['params_total']:.0f}% of the parameters; the forward "
               f"pass takes {d['hooked_seconds']:.3f} s instead of {d['full_seconds']:.3f} s.")
    return View({k: v for k, v in d.items() if k != "rows"}, [fig], caption)


# ---- apps -----------------------------------------------------------------------------------

def feature_app(images: torch.Tensor, feats: dict, names=None, subtitle: str = "",
                layer: str | None = None):
    """Layer dropdown and channel slider over `feature_view` (the slider follows the layer)."""
    import ipywidgets as W

    layer = layer or list(feats)[0]
    controls = dict(
        layer=W.Dropdown(options=list(feats), value=layer, description="layer"),
        channel=W.IntSlider(0, 0, feats[layer].shape[1] - 1, description="channel",
                            continuous_update=False))

    def update(change, c):
        if change["owner"] is c["layer"]:
            c["channel"].max = feats[c["layer"].value].shape[1] - 1

    return live(feature_view, controls, update, images=images, feats=feats, names=names,
                subtitle=subtitle)


# ---- checks ---------------------------------------------------------------------------------

def check_layer_shape(layer: str, answer, backbone: str = "resnet18",
                      input_size: int = 224) -> Verdict:
    """Shape (C, H, W) of `layer`'s output for one input_size x input_size image."""
    truth = layer_shapes(backbone, input_size)[layer]
    a = ints(answer)
    if isinstance(a, tuple) and len(a) == 4 and a[0] == 1:
        a = a[1:]  # (1, C, H, W) is fine
    grid = (lambda t: len(t) == 3 and t[0] == truth[0],
            f"Channels right, grid wrong: {layer} halves the grid of the layer before it (except "
            "layer1, after the stem's stride 4).")
    return exact(a, truth, f"{layer} of {backbone} gives {truth} for a {input_size} input.",
                 "look at the shape table above.", "a tuple (C, H, W)", [grid], shown=answer)


def check_stride(layer: str, answer, backbone: str = "resnet18", input_size: int = 224) -> Verdict:
    """How many input pixels apart are neighbouring cells of `layer`'s grid?"""
    truth = input_size // layer_shapes(backbone, input_size)[layer][1]
    return number(answer, truth, f"one {layer} cell per {truth}x{truth} input pixels.",
                  "divide the input size by the grid size.", "a whole number of pixels", rel=0)


def check_patch_count(layer: str, answer, backbone: str = "resnet18",
                      input_size: int = 224) -> Verdict:
    """How many grid cells (patches) does `layer` give for one input_size x input_size image?"""
    _, h, w = layer_shapes(backbone, input_size)[layer]
    return number(answer, h * w, f"a {h} x {w} grid: {h * w} patches.",
                  f"the grid is the input size divided by {layer}'s stride, squared.",
                  "a whole number", rel=0)


def check_skipped_modules(answer, layers: Iterable[str] = ("layer2", "layer3"),
                          backbone: str = "resnet18") -> Verdict:
    """Which top-level modules never run when the forward hooks are on `layers`?"""
    net, _ = load_backbone(backbone, None)
    ran = set(modules_run(net, tuple(layers), torch.zeros(1, 3, 64, 64)))
    truth = {name for name, _ in net.named_children()} - ran
    given = None if answer is None else (
        {answer} if isinstance(answer, str) else {str(a) for a in answer})
    part = (lambda g: g < truth, f"Part of it: {len(truth - (given or set()))} more module(s) "
                                 "never run.")
    return exact(given, truth, f"{sorted(truth)} never run, so they cost nothing.",
                 "some of these do run. The pass stops inside the last hooked layer.",
                 "a list of module names, e.g. ['fc']", [part],
                 shown=sorted((given or set()) - truth) or sorted(given or set()))
