"""Widget callbacks of the notebooks, as plain functions: tests and learners call them directly.

Each callback takes the data it shows plus the widget values and returns a `View`: the numbers
it shows (`view.data`, what tests and self-checks read), its figures and a caption. `live()`
wires a callback to ipywidgets controls. The computing is done by the step modules (backbone,
embedding, sampling, knn, maps, metrics); this file only arranges and draws.

Sections follow the notebooks: 00 data, 01 backbone, 02 embedding, 03 memory bank,
04 kNN scoring and heatmaps, 05 evaluation and thresholds.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle

from .. import embedding, knn, maps, sampling
from ..backbone import describe_weights
from ..data import Sample, load_image, load_mask, test_samples
from ..evaluation import metrics
from ..evaluation.counts import confusion_counts, precision_recall_f1

MASK_COLOR = "cyan"


# ---- views and live widgets -----------------------------------------------------------------

@dataclass
class View:
    """What a callback returns: its numbers (`data`), figures (matplotlib or plotly), a caption."""

    data: dict
    figures: list = field(default_factory=list)
    caption: str = ""

    def rendered(self) -> list:
        """Objects for IPython's display(): Markdown caption, PNG images, plotly figures."""
        from IPython.display import Image, Markdown

        out = [Markdown(self.caption)] if self.caption else []
        for fig in self.figures:
            if isinstance(fig, Figure):
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
                out.append(Image(data=buf.getvalue(), format="png"))
            else:
                out.append(fig)
        return out

    def _ipython_display_(self) -> None:
        from IPython.display import display

        for obj in self.rendered():
            display(obj)


def live(callback: Callable[..., View], controls: dict, update: Callable | None = None,
         **fixed):
    """Controls above an output that shows callback(**fixed, **control values).

    The first view is computed here, so an error stops the notebook (and the headless test)
    instead of hiding in the output area; a failing redraw later shows its traceback in the
    output and leaves the controls usable. `update(change, controls)`, if given, runs before
    redrawing (e.g. to change the options of a dependent control); changes it makes do not
    trigger extra redraws. The returned box has `.view`, the latest View.

    Views are written into the output widget's `outputs` directly (not with `with out:`), so a
    headless runner such as nbclient does not have to echo large figures back to the kernel.
    """
    import traceback

    import ipywidgets as W

    out = W.Output()
    box = W.VBox([W.HBox(list(controls.values()), layout=W.Layout(flex_flow="row wrap")), out])
    busy = False

    def show(view: View) -> None:
        box.view = view
        out.outputs = tuple(_display_data(obj) for obj in view.rendered())

    def on_change(change) -> None:
        nonlocal busy
        if busy:
            return
        busy = True
        try:
            if update is not None:
                update(change, controls)
        finally:
            busy = False
        try:
            show(callback(**fixed, **{k: c.value for k, c in controls.items()}))
        except Exception:  # noqa: BLE001 - shown to the learner, the widget stays usable
            out.outputs = ({"output_type": "stream", "name": "stderr",
                            "text": traceback.format_exc()},)

    show(callback(**fixed, **{k: c.value for k, c in controls.items()}))
    for c in controls.values():
        c.observe(on_change, names="value")
    return box


def _display_data(obj) -> dict:
    """An output-widget entry for `obj`, formatted like IPython's display() would."""
    from IPython.core.interactiveshell import InteractiveShell

    data, metadata = InteractiveShell.instance().display_formatter.format(obj)
    return {"output_type": "display_data", "data": data, "metadata": metadata}


def source(obj) -> object:
    """The library's own code for `obj`, as a Markdown code block: the lesson is the code."""
    import inspect

    from IPython.display import Markdown

    return Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```")


def weights_label(weights_used: str, backbone: str = "resnet18") -> str:
    """Which weights a figure was made with, in words (never hide a random init)."""
    return f"{backbone}, {describe_weights(weights_used)} weights"


def _rgb(image) -> np.ndarray:
    """(H, W, 3) float array in [0, 1] from a (3, H, W) tensor or an (H, W, 3) array."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] != 3:
        a = a.transpose(1, 2, 0)
    if a.dtype == np.uint8:
        a = a / 255.0
    return np.clip(a.astype(np.float64), 0, 1)


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _outline(ax, mask) -> None:
    mask = _np(mask) > 0.5 if mask is not None else None
    if mask is not None and mask.any():
        ax.contour(mask, levels=[0.5], colors=MASK_COLOR, linewidths=1)


def _table(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of dicts (keys as headers)."""
    columns = list(columns or rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def sample_name(sample: Sample) -> str:
    """'defect/file.png': how the notebooks name a test image."""
    return f"{sample.defect}/{sample.path.name}"


# ---- 00 overview and data -------------------------------------------------------------------

def pipeline_figure() -> Figure:
    """PatchCore in one picture: the fit path (top), the test path (bottom), notebook numbers."""
    fig = Figure(figsize=(12, 3.6))
    ax = fig.subplots()
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 3.6)
    ax.set_axis_off()

    def box(x, y, text, nb, color):
        ax.add_patch(FancyBboxPatch((x, y), 1.75, 0.95, boxstyle="round,pad=0.05", fc=color,
                                    ec="black", lw=0.8))
        ax.text(x + 0.875, y + 0.52, text, ha="center", va="center", fontsize=8.5)
        if nb:
            ax.text(x + 0.875, y - 0.17, f"notebook {nb}", ha="center", va="center",
                    fontsize=7, color="dimgray")

    def arrow(x0, y0, x1, y1):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", lw=1.2))

    top = [("good training\nimages", "00"), ("ResNet, hooks on\nlayer2 + layer3", "01"),
           ("3x3 aggregation,\nfuse on 28x28", "02"), ("all patches\n(N x 784 x D)", "02"),
           ("coreset:\nmemory bank", "03")]
    bottom = [("test image", "00"), ("same backbone\nand embedding", "01-02"),
              ("distance to nearest\nbank patch (kNN)", "04"), ("upsample +\nblur (sigma 4)", "04"),
              ("heatmap; image score\n= max; threshold", "05")]
    for i, (text, nb) in enumerate(top):
        box(0.2 + 2.35 * i, 2.35, text, nb, "#dbeafe")
        if i:
            arrow(2.35 * i - 0.1, 2.82, 0.2 + 2.35 * i, 2.82)
    for i, (text, nb) in enumerate(bottom):
        box(0.2 + 2.35 * i, 0.45, text, nb, "#fde2e2" if i >= 2 else "#e5e7eb")
        if i:
            arrow(2.35 * i - 0.1, 0.92, 0.2 + 2.35 * i, 0.92)
    arrow(0.2 + 2.35 * 4 + 0.875, 2.3, 0.2 + 2.35 * 2 + 1.4, 1.45)  # bank -> kNN
    ax.text(9.2, 1.85, "searched by", fontsize=8, color="dimgray")
    ax.text(0.2, 3.45, "fit (good images only)", fontsize=9, weight="bold")
    ax.text(0.2, 1.58, "predict", fontsize=9, weight="bold")
    return fig


def dataset_view(root: str | Path) -> View:
    """Counts per category: training images, good test images, each defect type, masks."""
    rows, data = [], {}
    for cat in sorted(p for p in Path(root).iterdir() if (p / "train" / "good").is_dir()):
        samples = test_samples(cat)
        defects: dict[str, int] = {}
        for s in samples:
            defects[s.defect] = defects.get(s.defect, 0) + 1
        n_train = len(list((cat / "train" / "good").iterdir()))
        n_masks = sum(s.mask is not None for s in samples)
        data[cat.name] = dict(train=n_train, test=defects, masks=n_masks)
        rows.append(dict(category=cat.name, train_good=n_train, test_good=defects.pop("good", 0),
                         defect_types=", ".join(f"{d} ({n})" for d, n in defects.items()),
                         masks=n_masks))
    return View(data, [], _table(rows))


def defect_types(category: str | Path) -> list[str]:
    """Test folders of a category: 'good' first, then the defect types."""
    names = sorted({s.defect for s in test_samples(category)})
    return sorted(names, key=lambda d: d != "good")


def gallery(root: str | Path, category: str, defect: str, n: int = 6, resize: int = 256,
            crop: int = 224) -> View:
    """The first n test images of one defect type, ground truth filled and outlined in cyan.

    Images are shown after the resize; the dashed square is the centre crop the model sees."""
    cat = Path(root) / category
    samples = [s for s in test_samples(cat) if s.defect == defect][:n]
    if not samples:
        raise ValueError(f"{cat}: no test images of type '{defect}'")
    fig = Figure(figsize=(2.6 * len(samples), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(samples)))
    fractions = []
    for ax, s in zip(axes, samples):
        img = load_image(s.path, resize, 0)
        mask = _np(load_mask(s, resize, 0))
        fractions.append(float(mask.mean()))
        ax.imshow(_rgb(img))
        if mask.any():
            ax.imshow(np.ma.masked_where(~mask, mask), cmap="cool", alpha=0.35, vmin=0, vmax=1)
            _outline(ax, mask)
        if crop:
            t = (resize - crop) / 2
            ax.add_patch(Rectangle((t, t), crop, crop, fill=False, ls="--", ec="white", lw=0.8))
        ax.set_title(f"{s.path.name}\n{100 * fractions[-1]:.2g}% defect pixels", fontsize=8)
        ax.set_axis_off()
    fig.suptitle(f"{category} / {defect}: ground truth in cyan; dashed = {crop}x{crop} crop",
                 fontsize=10)
    data = dict(category=category, defect=defect, paths=[str(s.path) for s in samples],
                defect_fraction=fractions)
    return View(data, [fig])


def gallery_app(root: str | Path, category: str = "hex_nut", defect: str | None = None):
    """Category and defect-type dropdowns over `gallery` (defect types follow the category)."""
    import ipywidgets as W

    cats = sorted(p.name for p in Path(root).iterdir() if (p / "test").is_dir())
    types = defect_types(Path(root) / category)
    controls = dict(
        category=W.Dropdown(options=cats, value=category, description="category"),
        defect=W.Dropdown(options=types, value=defect or types[-1], description="defect"))

    def update(change, c):
        if change["owner"] is c["category"]:
            new = defect_types(Path(root) / c["category"].value)
            old = c["defect"].value
            c["defect"].options = new
            c["defect"].value = old if old in new else new[-1]

    return live(gallery, controls, update, root=root)


def first_look(model, samples: Sequence[Sample]) -> View:
    """Heatmaps of a few test images on the model's colour scale: what the course builds."""
    from ..evaluation import plots

    c = model.config
    scores, amaps = model.predict([s.path for s in samples])
    images = [_rgb(load_image(s.path, c.resize, c.crop)) for s in samples]
    masks = [_np(load_mask(s, c.resize, c.crop)) for s in samples]
    lo, hi = model.map_range
    titles = [f"{sample_name(s)}\nscore {sc:.3g}" + (" > thr" if sc >= model.threshold else "")
              for s, sc in zip(samples, scores)]
    fig = plots.overlay_grid(images, amaps, masks, titles, lo, hi, ncols=len(samples),
                             suptitle=model.describe())
    data = dict(names=[sample_name(s) for s in samples], scores=scores.tolist(),
                threshold=model.threshold)
    return View(data, [fig])


# ---- 01 backbone and forward hooks ----------------------------------------------------------

def module_table(net: torch.nn.Module) -> View:
    """Top-level modules of a network with their parameter counts."""
    rows, total = [], sum(p.numel() for p in net.parameters())
    for name, m in net.named_children():
        n = sum(p.numel() for p in m.parameters())
        rows.append(dict(module=name, type=type(m).__name__, parameters=n,
                         share=f"{100 * n / total:.1f}%"))
    return View(dict(rows=rows, total=total), [], _table(rows) + f"\n\n{total:,} parameters")


def shape_table(layers: Sequence[str], feats: Sequence[torch.Tensor], input_size: int) -> View:
    """Shape of each hooked map, the stride of its grid in input pixels, and patches per image."""
    rows = []
    for layer, f in zip(layers, feats):
        _, c, h, w = f.shape
        rows.append(dict(layer=layer, shape=f"({c}, {h}, {w})", channels=c, grid=f"{h}x{w}",
                         stride=input_size // h, patches=h * w))
    return View(dict(rows=rows), [], _table(rows, ("layer", "shape", "stride", "patches")))


def feature_view(images: torch.Tensor, feats: dict, layer: str, channel: int,
                 names: Sequence[str] | None = None, subtitle: str = "") -> View:
    """One channel of one layer for each image, next to the mean activation over all channels.

    images (B, 3, S, S); feats: layer -> (B, C, h, w). Each map is drawn at its own grid
    resolution (one square per cell) stretched over the image, so coarse deep grids show."""
    f = feats[layer]
    b, c, h, w = f.shape
    channel = int(min(max(channel, 0), c - 1))
    s = images.shape[-1]
    fig = Figure(figsize=(8.4, 2.7 * b), layout="constrained")
    axes = fig.subplots(b, 3, squeeze=False)
    chan = _np(f[:, channel])
    energy = _np(f.abs().mean(dim=1))
    for i in range(b):
        axes[i, 0].imshow(_rgb(images[i]))
        axes[i, 0].set_title(names[i] if names else f"image {i}", fontsize=8)
        im = axes[i, 1].imshow(chan[i], cmap="viridis", extent=(0, s, s, 0),
                               interpolation="nearest", vmin=chan.min(), vmax=chan.max())
        axes[i, 1].set_title(f"{layer} channel {channel} ({h}x{w} grid)", fontsize=8)
        axes[i, 2].imshow(energy[i], cmap="magma", extent=(0, s, s, 0), interpolation="nearest")
        axes[i, 2].set_title(f"{layer}: mean |activation| of {c} channels", fontsize=8)
        for ax in axes[i]:
            ax.set_axis_off()
    fig.colorbar(im, ax=axes[:, 1].tolist(), shrink=0.6)
    fig.suptitle(f"What {layer} sees ({subtitle})" if subtitle else f"What {layer} sees",
                 fontsize=9)
    data = dict(layer=layer, channel=channel, shape=(c, h, w), stride=s // h,
                channel_min=float(chan.min()), channel_max=float(chan.max()))
    return View(data, [fig])


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


def modules_run(net: torch.nn.Module, layers: Sequence[str], x: torch.Tensor) -> list[str]:
    """Names of the top-level modules of `net` that run when a FeatureExtractor asks for `layers`.

    A module counts as run when any of its leaf modules runs (the extractor's graph calls the
    net's own leaf modules); the recording hooks are removed again."""
    from ..backbone import FeatureExtractor

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


def early_stop_view(net: torch.nn.Module, layers: Sequence[str], x: torch.Tensor,
                    repeats: int = 3) -> View:
    """Which modules run with hooks on `layers`, what they weigh, and the time saved."""
    from ..backbone import FeatureExtractor

    ran = modules_run(net, layers, x)
    full, extractor = net.eval(), FeatureExtractor(net, layers)

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            with torch.inference_mode():
                fn(x)
            times.append(time.perf_counter() - t)
        return min(times)

    t_full, t_hooked = best(full), best(extractor)
    rows, skipped = [], []
    total = sum(p.numel() for p in net.parameters())
    for name, m in net.named_children():
        n = sum(p.numel() for p in m.parameters())
        rows.append(dict(module=name, runs="yes" if name in ran else "**skipped**", parameters=n))
        if name not in ran:
            skipped.append(name)
    p_ran = sum(r["parameters"] for r in rows if r["module"] in ran)
    fig = Figure(figsize=(6, 1.8), layout="constrained")
    ax = fig.subplots()
    ax.barh(["whole network", f"stop after {layers[-1]}"], [t_full, t_hooked],
            color=["gray", "tab:blue"])
    ax.set_xlabel(f"seconds for a batch of {x.shape[0]} (best of {repeats})")
    caption = (_table(rows) + f"\n\nThe modules that run hold {100 * p_ran / total:.0f}% of the "
               f"parameters; the forward pass takes {t_hooked:.3f} s instead of {t_full:.3f} s.")
    data = dict(ran=ran, skipped=skipped, full_seconds=t_full, hooked_seconds=t_hooked,
                params_ran=p_ran, params_total=total)
    return View(data, [fig], caption)


# ---- 02 patch embedding ----------------------------------------------------------------------

def aggregation_view(feat: torch.Tensor, channel: int = 0, index: int = 0,
                     subtitle: str = "") -> View:
    """One channel before and after embedding.aggregate (3x3 mean, stride 1)."""
    before = feat[index:index + 1]
    after = embedding.aggregate(before)
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    lo, hi = float(before[0, channel].min()), float(before[0, channel].max())
    for ax, f, t in zip(axes, (before, after), ("raw feature map", "after 3x3 aggregation")):
        ax.imshow(_np(f[0, channel]), cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"{t}\nchannel {channel}, {f.shape[-2]}x{f.shape[-1]} grid", fontsize=9)
        ax.set_axis_off()
    if subtitle:
        fig.suptitle(subtitle, fontsize=8)
    data = dict(shape_before=tuple(before.shape), shape_after=tuple(after.shape),
                std_before=float(before[0, channel].std()),
                std_after=float(after[0, channel].std()))
    return View(data, [fig])


def _by_depth(feats: dict, layers: Sequence[str]) -> list[str]:
    """Layers in the order of `feats` (shallow to deep), so channels are listed shallow first."""
    order = list(feats)
    return sorted(layers, key=order.index)


def _pca(x: torch.Tensor, n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-n principal components of rows of x: projections (N, n), explained ratios (n,)."""
    x = x.double() - x.double().mean(0)
    cov = x.T @ x / max(1, x.shape[0] - 1)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    total = evals.clamp_min(0).sum().clamp_min(1e-12)
    evals, evecs = evals.flip(0)[:n], evecs.flip(1)[:, :n]
    evecs = evecs * torch.sign(evecs[evecs.abs().argmax(0), torch.arange(evecs.shape[1])])
    return (x @ evecs).float(), (evals.clamp_min(0) / total).float()


def pca_rgb(emb: torch.Tensor) -> tuple[np.ndarray, list[float]]:
    """(B, h, w, D) patch embeddings -> (B, h, w, 3) colours from the top 3 principal components.

    One PCA over all patches of all images, so equal colours mean similar patches everywhere."""
    b, h, w, d = emb.shape
    proj, ratio = _pca(emb.reshape(-1, d), 3)
    proj = _np(proj)
    if proj.shape[1] < 3:
        proj = np.pad(proj, ((0, 0), (0, 3 - proj.shape[1])))
    lo, hi = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
    rgb = np.clip((proj - lo) / np.maximum(hi - lo, 1e-9), 0, 1)
    return rgb.reshape(b, h, w, 3), [float(r) for r in ratio]


def pca_rgb_view(images: torch.Tensor, feats: dict, layers: Sequence[str], local: bool = True,
                 names: Sequence[str] | None = None, subtitle: str = "") -> View:
    """Patch embeddings of `layers` (with or without 3x3 aggregation) as a PCA-to-RGB picture."""
    layers = _by_depth(feats, layers)
    emb = embedding.embed([feats[layer] for layer in layers], local=local)  # (B, h, w, D)
    b, h, w, d = emb.shape
    rgb, ratio = pca_rgb(emb)
    s = images.shape[-1]
    fig = Figure(figsize=(2.4 * b, 5.0), layout="constrained")
    axes = fig.subplots(2, b, squeeze=False)
    for i in range(b):
        axes[0, i].imshow(_rgb(images[i]))
        axes[0, i].set_title(names[i] if names else f"image {i}", fontsize=8)
        axes[1, i].imshow(rgb[i], extent=(0, s, s, 0), interpolation="nearest")
        for ax in axes[:, i]:
            ax.set_axis_off()
    fig.suptitle(f"{' + '.join(layers)}, {'with' if local else 'without'} 3x3 aggregation: "
                 f"{h}x{w} patches of D = {d}; PCA top-3 explain "
                 f"{100 * sum(ratio):.0f}%\n{subtitle}", fontsize=9)
    data = dict(layers=list(layers), local=local, grid=(h, w), dim=d, patches_per_image=h * w,
                explained=ratio)
    return View(data, [fig])


def pca_app(images: torch.Tensor, feats: dict, names=None, subtitle: str = ""):
    """Layer-combination dropdown and aggregation checkbox over `pca_rgb_view`."""
    import ipywidgets as W

    ls = list(feats)
    combos = [(layer,) for layer in ls] + [tuple(ls[i:i + 2]) for i in range(len(ls) - 1)]
    combos += [tuple(ls)] if len(ls) > 2 else []
    options = [(" + ".join(c), c) for c in combos]
    default = ("layer2", "layer3") if ("layer2", "layer3") in combos else combos[0]
    controls = dict(layers=W.Dropdown(options=options, value=default, description="layers"),
                    local=W.Checkbox(value=True, description="3x3 aggregation"))
    return live(pca_rgb_view, controls, images=images, feats=feats, names=names,
                subtitle=subtitle)


def reduction_view(feats: Sequence[torch.Tensor], dims: Sequence[int] = (64, 192),
                   n_pairs: int = 3000, seed: int = 0, subtitle: str = "") -> View:
    """How well embedding.reduce_dim keeps distances between patches (pairs sampled at random).

    feats: the layer maps to fuse (B, C_l, h_l, w_l). Returns the correlation of pair distances
    before and after reduction, and the bytes per bank patch, for each target dimension."""
    agg = [embedding.aggregate(f) for f in feats]
    fused = embedding.fuse(agg)  # (B, D, h, w), layers on one grid
    per_layer = list(torch.split(fused, [f.shape[1] for f in feats], dim=1))
    full = fused.permute(0, 2, 3, 1).reshape(-1, fused.shape[1])
    g = torch.Generator().manual_seed(seed)
    i, j = torch.randint(full.shape[0], (2, n_pairs), generator=g)
    d_full = _np((full[i] - full[j]).norm(dim=1))
    fig = Figure(figsize=(3.3 * len(dims), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(dims)))
    rows = [dict(dim=full.shape[1], bytes_per_patch=4 * full.shape[1], correlation=1.0)]
    for ax, dim in zip(axes, dims):
        red = embedding.reduce_dim(per_layer, dim).permute(0, 2, 3, 1).reshape(-1, dim)
        d_red = _np((red[i] - red[j]).norm(dim=1))
        r = float(np.corrcoef(d_full, d_red)[0, 1])
        rows.append(dict(dim=dim, bytes_per_patch=4 * dim, correlation=r))
        ax.scatter(d_full, d_red, s=2, alpha=0.3)
        ax.set(xlabel=f"distance, D = {full.shape[1]}", ylabel=f"distance, D = {dim}",
               title=f"reduce_dim to {dim}: r = {r:.3f}")
    if subtitle:
        fig.suptitle(subtitle, fontsize=8)
    return View(dict(rows=rows), [fig], _table(rows))


# ---- 03 memory bank and coreset --------------------------------------------------------------

def toy_points(seed: int = 0) -> np.ndarray:
    """2-D stand-in for patch features: a big common cluster, a rare one, a few odd patches."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 1, (1400, 2)) * (1.6, 0.9)
    rare = rng.normal(0, 0.25, (50, 2)) + (4.5, 3.0)
    odd = rng.uniform(-5, 6, (20, 2))
    return np.concatenate([common, rare, odd]).astype(np.float32)


@dataclass
class BankLab:
    """Training patches of a few images and a small labelled test set, for sampling comparisons.

    model: the PatchCore whose scoring path scores the test set against each bank; train (N, D)
    patch features; test (T, h, w, D) patch features of T test images; labels (T,); masks
    (T, S, S) at the model's input size, optional: with them each bank also gets a pixel AUROC.
    Selections are computed once per (method, ratio) and reused (with their timing)."""

    model: object
    train: torch.Tensor
    test: torch.Tensor
    labels: np.ndarray
    masks: np.ndarray | None = None
    seed: int = 0
    subtitle: str = ""
    _selected: dict = field(default_factory=dict, repr=False)
    _results: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.labels = np.asarray(self.labels)
        self.proj2d = _np(_pca(self.train, 2)[0])
        self.toy = toy_points(self.seed)
        g = torch.Generator().manual_seed(self.seed)
        self.shown = torch.randperm(self.train.shape[0], generator=g)[:3000].numpy()

    def select(self, method: str, ratio: float, points: torch.Tensor | None = None):
        """Kept indices and selection seconds (cached) on the train patches or on `points`."""
        key = (method, round(float(ratio), 6), points is None)
        if key not in self._selected:
            x = self.train if points is None else points
            t = time.perf_counter()
            idx = sampling.subsample(x, method, ratio, self.seed, progress=False)
            self._selected[key] = (idx, time.perf_counter() - t)
        return self._selected[key]

    def result(self, method: str, ratio: float) -> dict:
        """Bank size, selection time, coverage radius and test AUROCs of one method."""
        key = (method, round(float(ratio), 6))
        if key not in self._results:
            idx, seconds = self.select(method, ratio)
            bank = self.train[idx]
            if method == "none":  # every patch is kept: all at distance 0
                nn_dist = torch.zeros(self.train.shape[0])
            else:  # every patch to its nearest kept patch
                nn_dist = knn.knn(self.train, bank, k=1)[0][:, 0]
            scores, amaps, _ = self.model.score_features(self.test, bank=bank, k=1)
            scores, pixel = _np(scores), None
            if self.masks is not None:
                pixel = metrics.pixel_auroc(self.masks, _np(amaps))
            self._results[key] = dict(
                method=method, ratio=None if method == "none" else float(ratio),
                bank_size=len(idx), n_patches=self.train.shape[0], seconds=seconds,
                coverage_radius=float(nn_dist.max()), mean_distance=float(nn_dist.mean()),
                image_auroc=metrics.image_auroc(self.labels, scores), pixel_auroc=pixel,
                nn_dist=_np(nn_dist), worst=int(nn_dist.argmax()), scores=scores)
        return self._results[key]


def bank_view(lab: BankLab, method: str, ratio: float) -> View:
    """Which patches a method keeps (toy 2-D and the real bank in 2-D), coverage, AUROC."""
    r = lab.result(method, ratio)
    idx, _ = lab.select(method, ratio)
    fig = Figure(figsize=(13, 4.0), layout="constrained")
    ax_toy, ax_bank, ax_hist = fig.subplots(1, 3)

    # toy 2-D data: here the coverage radius is a real circle around each kept point
    toy = torch.from_numpy(lab.toy)
    t_idx, _ = lab.select(method, ratio, toy)
    t_kept = lab.toy[_np(t_idx)]
    t_dist, t_nn = knn.knn(toy, toy[t_idx], k=1)
    radius = float(t_dist.max())
    ax_toy.scatter(*lab.toy.T, s=3, c="lightgray")
    if method != "none":
        for p in t_kept:
            ax_toy.add_patch(Circle(p, radius, color="tab:orange", alpha=0.08, lw=0))
    ax_toy.scatter(*t_kept.T, s=6, c="tab:orange")
    w = int(t_dist[:, 0].argmax())
    ax_toy.plot(*np.stack([lab.toy[w], t_kept[int(t_nn[w, 0])]]).T, c="red", lw=1.2)
    ax_toy.scatter(*lab.toy[w], marker="x", c="red", s=40, zorder=3)
    ax_toy.set_aspect("equal")
    ax_toy.set_title(f"toy 2-D data: {len(t_kept)} of {len(lab.toy)} kept\n"
                     f"coverage radius {radius:.2f} (circles; red = worst-covered)", fontsize=9)

    # the real bank, projected on its first two principal components
    shown = lab.shown
    kept = _np(idx)
    ax_bank.scatter(*lab.proj2d[shown].T, s=2, c="lightgray", label="all training patches")
    k_shown = kept if len(kept) <= 3000 else kept[np.linspace(0, len(kept) - 1, 3000).astype(int)]
    ax_bank.scatter(*lab.proj2d[k_shown].T, s=4, c="tab:orange", label="kept in the bank")
    if method != "none":
        worst = r["worst"]
        near = int(kept[int(knn.knn(lab.train[worst:worst + 1], lab.train[idx], 1)[1][0, 0])])
        ax_bank.plot(*lab.proj2d[[worst, near]].T, c="red", lw=1.2)
        ax_bank.scatter(*lab.proj2d[worst], marker="x", c="red", s=40, zorder=3,
                        label="worst-covered patch")
    ax_bank.legend(fontsize=7, loc="best", markerscale=2)
    ax_bank.set_title(f"{method}{'' if method == 'none' else f' {ratio:g}'}: bank "
                      f"{r['bank_size']} of {r['n_patches']} patches (PCA, 2 of "
                      f"{lab.train.shape[1]} dims)", fontsize=9)

    ax_hist.hist(r["nn_dist"], bins=40, color="tab:orange")
    ax_hist.axvline(r["coverage_radius"], c="red", ls="--",
                    label=f"coverage radius {r['coverage_radius']:.3g}")
    ax_hist.set(xlabel="distance from each training patch to its nearest kept patch",
                ylabel="patches")
    ax_hist.legend(fontsize=8)
    ax_hist.set_title(f"selection {r['seconds']:.2f} s; {len(lab.labels)} test images: AUROC "
                      f"image {_fmt(r['image_auroc'])}, pixel {_fmt(r['pixel_auroc'])}",
                      fontsize=9)
    if lab.subtitle:
        fig.suptitle(lab.subtitle, fontsize=9)
    data = {k: v for k, v in r.items() if k not in ("nn_dist", "scores", "worst")}
    data["toy_coverage_radius"] = radius
    return View(data, [fig])


def bank_app(lab: BankLab, method: str = "coreset", ratio: float = 0.1):
    """Method dropdown and sampling-ratio slider over `bank_view`."""
    import ipywidgets as W

    controls = dict(
        method=W.Dropdown(options=sampling.SAMPLING_METHODS, value=method, description="method"),
        ratio=W.SelectionSlider(options=[0.01, 0.02, 0.05, 0.1, 0.2, 0.25], value=ratio,
                                description="ratio", continuous_update=False))
    return live(bank_view, controls, lab=lab)


def sampling_table(lab: BankLab, runs: Sequence[tuple[str, float]]) -> View:
    """Bank size, selection time, coverage radius and image AUROC for each (method, ratio)."""
    rows = []
    for method, ratio in runs:
        r = lab.result(method, ratio)
        rows.append({k: r[k] for k in ("method", "ratio", "bank_size", "seconds",
                                       "coverage_radius", "mean_distance", "image_auroc",
                                       "pixel_auroc")})
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax_cov, ax_auc = fig.subplots(1, 2)
    nan = lambda a: np.nan if a is None else a  # noqa: E731
    for method, color in (("random", "tab:gray"), ("coreset", "tab:orange")):
        pts = sorted((r["ratio"], r["coverage_radius"], nan(r["image_auroc"]),
                      nan(r["pixel_auroc"])) for r in rows if r["method"] == method)
        if pts:
            x, cov, img, pix = zip(*pts)
            ax_cov.plot(x, cov, "o-", c=color, label=method)
            ax_auc.plot(x, pix, "o-", c=color, label=f"{method}: pixel")
            ax_auc.plot(x, img, "s:", c=color, label=f"{method}: image")
    for r in rows:
        if r["method"] == "none":
            ax_auc.axhline(nan(r["pixel_auroc"]), c="black", ls="-", lw=0.8,
                           label="full bank: pixel")
            ax_auc.axhline(nan(r["image_auroc"]), c="black", ls=":", lw=0.8,
                           label="full bank: image")
    values = [v for r in rows for v in (r["image_auroc"], r["pixel_auroc"]) if v is not None]
    if values:
        ax_auc.set_ylim(min(values) - 0.03, max(values) + 0.03)
    ax_cov.set(xscale="log", xlabel="sampling ratio", ylabel="coverage radius")
    ax_auc.set(xscale="log", xlabel="sampling ratio", ylabel="test AUROC")
    for ax in (ax_cov, ax_auc):
        ax.legend(fontsize=8)
    if lab.subtitle:
        fig.suptitle(lab.subtitle, fontsize=9)
    shown = [dict(r, seconds=round(r["seconds"], 3)) for r in rows]
    return View(dict(rows=rows), [fig], _table(shown))


# ---- 04 kNN scoring and heatmaps ------------------------------------------------------------

class ExplainLab:
    """Test images of one model, each embedded once: patch scores for any k, maps, masks."""

    def __init__(self, model, samples: Sequence[Sample]):
        self.model, self.samples = model, list(samples)
        self._img: dict = {}
        self._scores: dict = {}

    @property
    def names(self) -> list[str]:
        return [sample_name(s) for s in self.samples]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def image(self, i: int):
        """(image (3, S, S), patch features (h, w, D), mask (S, S) bool numpy)."""
        if i not in self._img:
            c, s = self.model.config, self.samples[i]
            img = load_image(s.path, c.resize, c.crop)
            feats = self.model.embed(img[None])[0]
            self._img[i] = (img, feats, _np(load_mask(s, c.resize, c.crop)))
        return self._img[i]

    def neighbours(self, i: int, k: int):
        """Distances (h, w, k) and bank indices (h, w, k) of each patch's k nearest bank patches."""
        if (i, k) not in self._scores:
            _, feats, _ = self.image(i)
            h, w, d = feats.shape
            dist, idx = self.model.nearest(feats.reshape(-1, d), k)
            self._scores[(i, k)] = (dist.reshape(h, w, -1), idx.reshape(h, w, -1))
        return self._scores[(i, k)]

    def patch_scores(self, i: int, k: int = 1) -> torch.Tensor:
        """(h, w) patch scores: mean distance to the k nearest bank patches."""
        return self.neighbours(i, k)[0].mean(dim=-1)

    def anomaly_map(self, i: int, k: int = 1, sigma: float = maps.SIGMA) -> np.ndarray:
        """(S, S) anomaly map of test image i with k neighbours, blurred with `sigma`."""
        feats = self.image(i)[1][None]  # (1, h, w, D)
        return _np(self.model.score_features(feats, k=k, sigma=sigma)[1][0])

    def hottest(self, i: int, k: int = 1) -> tuple[int, int]:
        """(y, x) pixel of the highest anomaly-map value."""
        m = self.anomaly_map(i, k)
        y, x = np.unravel_index(int(m.argmax()), m.shape)
        return int(y), int(x)

    def best_example(self, candidates: Sequence[int] | None = None, k: int = 1) -> int:
        """A defective image the model explains well: its hottest pixel lies on the defect.

        Among `candidates` (default: all defective images), the highest-scoring one whose
        anomaly-map maximum falls inside its mask; failing that, the highest-scoring one."""
        pool = [i for i in (range(len(self.samples)) if candidates is None else candidates)
                if self.samples[i].label]
        if not pool:
            raise ValueError("best_example: no defective image among the candidates")
        score = {i: float(self.patch_scores(i, k).max()) for i in pool}
        on_defect = [i for i in pool if self.image(i)[2][self.hottest(i, k)]]
        return max(on_defect or pool, key=score.get)

    def train_image(self, j: int) -> torch.Tensor:
        c = self.model.config
        key = ("train", j)
        if key not in self._img:
            self._img[key] = load_image(self.model.bank.train_images[j], c.resize, c.crop)
        return self._img[key]


def scoring_steps(lab: ExplainLab, image: int, k: int = 1, sigma: float = maps.SIGMA) -> View:
    """Patch scores -> upsampled -> blurred, on one colour scale, image score (max) marked."""
    img, _, mask = lab.image(image)
    patch = _np(lab.patch_scores(image, k))
    s = lab.model.config.input_size
    up = lab.anomaly_map(image, k, sigma=0)
    blurred = lab.anomaly_map(image, k, sigma)
    lo, hi = float(patch.min()), float(patch.max())  # this image's range: every step readable
    fig = Figure(figsize=(13, 3.4), layout="constrained")
    axes = fig.subplots(1, 4)
    axes[0].imshow(_rgb(img))
    _outline(axes[0], mask)
    axes[0].set_title(f"{lab.names[image]} (ground truth in cyan)", fontsize=9)
    h, w = patch.shape
    gy, gx = np.unravel_index(int(patch.argmax()), patch.shape)
    im = axes[1].imshow(patch, cmap="inferno", vmin=lo, vmax=hi, extent=(0, s, s, 0),
                        interpolation="nearest")
    cell = s / h
    axes[1].add_patch(Rectangle((gx * cell, gy * cell), cell, cell, fill=False, ec="lime", lw=1.5))
    axes[1].set_title(f"{h}x{w} patch scores (k={k}); max = image score\n"
                      f"= {patch.max():.3g} (green cell)", fontsize=9)
    axes[2].imshow(up, cmap="inferno", vmin=lo, vmax=hi)
    axes[2].set_title(f"bilinear upsampling to {s}x{s}", fontsize=9)
    axes[3].imshow(blurred, cmap="inferno", vmin=lo, vmax=hi)
    _outline(axes[3], mask)
    axes[3].set_title(f"+ Gaussian blur sigma {sigma:g}: the anomaly map\npeak {blurred.max():.3g}",
                      fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.colorbar(im, ax=axes.tolist(), shrink=0.8, label="distance to nearest normal patch")
    fig.suptitle(f"{lab.model.describe()}\ncolour scale: this image's lowest to highest patch "
                 "score", fontsize=8)
    data = dict(image_score=float(patch.max()), grid=(h, w), worst_cell=(int(gy), int(gx)),
                map_max=float(blurred.max()), upsampled_max=float(up.max()))
    return View(data, [fig])


def heatmap_plotly(image, amap, mask=None, title: str = "", zrange=None):
    """Interactive heatmap over the image: hover shows each pixel's anomaly score."""
    import plotly.graph_objects as go

    rgb = (_rgb(image) * 255).astype(np.uint8)
    amap = _np(amap)
    fig = go.Figure(go.Image(z=rgb, hoverinfo="skip"))
    zmin, zmax = zrange if zrange else (float(amap.min()), float(amap.max()))
    fig.add_trace(go.Heatmap(z=amap, colorscale="Inferno", opacity=0.5, zmin=zmin, zmax=zmax,
                             hovertemplate="x=%{x} y=%{y}<br>score=%{z:.3f}<extra></extra>",
                             colorbar=dict(title="score")))
    if mask is not None and _np(mask).any():
        fig.add_trace(go.Contour(z=_np(mask).astype(float), showscale=False, hoverinfo="skip",
                                 contours=dict(start=0.5, end=0.5, coloring="lines"),
                                 line=dict(color=MASK_COLOR, width=2)))
    fig.update_layout(title=dict(text=title, font=dict(size=12)), width=520, height=500,
                      margin=dict(l=10, r=10, t=60, b=10))
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    fig.update_xaxes(visible=False)
    return fig


def _crop(img: np.ndarray, cy: float, cx: float, half: int) -> np.ndarray:
    """A (2 half, 2 half) window centred at (cy, cx), edge-padded at the borders."""
    pad = np.pad(img, ((half, half), (half, half), (0, 0)), mode="edge")
    y, x = int(round(cy)) + half, int(round(cx)) + half
    return pad[y - half:y + half, x - half:x + half]


def explain_pixel(lab: ExplainLab, image: int, k: int, y: int, x: int, context: int = 24) -> View:
    """The 'why is this anomalous' view for one pixel of a test image.

    The pixel's patch (grid cell) is compared with its k nearest memory-bank patches; the first
    is shown next to it, inside the training image it came from (the bank remembers which)."""
    img, _, mask = lab.image(image)
    bank = lab.model.bank
    dist, idx = lab.neighbours(image, k)
    h, w = dist.shape[:2]
    s = lab.model.config.input_size
    cell = s / h
    y, x = int(min(max(y, 0), s - 1)), int(min(max(x, 0), s - 1))
    gy, gx = int(y // cell), int(x // cell)
    d, j = _np(dist[gy, gx]), _np(idx[gy, gx])
    train_i, pos = int(bank.image[j[0]]), int(bank.pos[j[0]])
    ty, tx = divmod(pos, bank.grid[1])
    train = _rgb(lab.train_image(train_i))
    test = _rgb(img)
    amap = lab.anomaly_map(image, k)
    lo, hi = lab.model.map_range
    centre = lambda g: (g + 0.5) * cell  # noqa: E731 - pixel centre of grid cell g

    fig = Figure(figsize=(13, 6.2 if k > 1 else 3.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=(3.4, 2.2)) if k > 1 else (fig, None)
    a = top.subplots(1, 4)
    a[0].imshow(test)
    a[0].imshow(amap, cmap="inferno", alpha=0.5, vmin=lo, vmax=hi)
    _outline(a[0], mask)
    a[0].add_patch(Rectangle((gx * cell, gy * cell), cell, cell, fill=False, ec="lime", lw=1.5))
    a[0].plot([x], [y], "+", c="lime", ms=10)
    a[0].set_title(f"test {lab.names[image]}\npixel (y={y}, x={x}) -> cell ({gy}, {gx})",
                   fontsize=9)
    for ax, src, (cy, cx), title in (
            (a[1], test, (centre(gy), centre(gx)), f"test patch\nscore {d.mean():.3g} (k={k})"),
            (a[2], train, (centre(ty), centre(tx)),
             f"nearest normal patch\ndistance {d[0]:.3g}")):
        ax.imshow(_crop(src, cy, cx, context), interpolation="nearest")
        c0 = context - cell / 2
        ax.add_patch(Rectangle((c0 - 0.5, c0 - 0.5), cell, cell, fill=False, ec="lime", lw=1.5))
        ax.set_title(title, fontsize=9)
    a[3].imshow(train)
    a[3].add_patch(Rectangle((tx * cell, ty * cell), cell, cell, fill=False, ec="lime", lw=1.5))
    a[3].set_title(f"from training image {Path(bank.train_images[train_i]).name}\n"
                   f"cell ({ty}, {tx})", fontsize=9)
    for ax in a:
        ax.set_axis_off()
    top.suptitle(lab.model.describe(), fontsize=8)
    neighbours = []
    for n in range(len(j)):
        ti, p = int(bank.image[j[n]]), int(bank.pos[j[n]])
        neighbours.append(dict(distance=float(d[n]), bank_index=int(j[n]),
                               train_image=Path(bank.train_images[ti]).name,
                               cell=divmod(p, bank.grid[1])))
    if bottom is not None:
        b = np.atleast_1d(bottom.subplots(1, len(j)))
        for ax, nb in zip(b, neighbours):
            ti = int(bank.image[nb["bank_index"]])
            src = _rgb(lab.train_image(ti))
            ax.imshow(_crop(src, centre(nb["cell"][0]), centre(nb["cell"][1]), context))
            ax.set_title(f"{nb['train_image']} {nb['cell']}\nd = {nb['distance']:.3g}",
                         fontsize=8)
            ax.set_axis_off()
        bottom.suptitle(f"the {len(j)} nearest normal patches; the score is their mean distance",
                        fontsize=9)
    data = dict(pixel=(y, x), cell=(gy, gx), score=float(d.mean()), distances=d.tolist(),
                train_image=str(bank.train_images[train_i]), train_cell=(ty, tx),
                bank_index=int(j[0]), neighbours=neighbours)
    return View(data, [fig])


def explain_app(lab: ExplainLab, image: int | str = 0, k: int = 1):
    """Test image dropdown, k slider and pixel sliders over `explain_pixel`.

    Choosing another image moves the pixel to that image's hottest point."""
    import ipywidgets as W

    i = lab.index(image) if isinstance(image, str) else int(image)
    y, x = lab.hottest(i, k)
    s = lab.model.config.input_size
    controls = dict(
        image=W.Dropdown(options=[(n, j) for j, n in enumerate(lab.names)], value=i,
                         description="test image"),
        k=W.IntSlider(k, 1, 9, description="k", continuous_update=False),
        y=W.IntSlider(y, 0, s - 1, description="pixel y", continuous_update=False),
        x=W.IntSlider(x, 0, s - 1, description="pixel x", continuous_update=False))

    def update(change, c):
        if change["owner"] is c["image"]:
            c["y"].value, c["x"].value = lab.hottest(c["image"].value, c["k"].value)

    return live(explain_pixel, controls, update, lab=lab)


# ---- 05 evaluation and thresholds -----------------------------------------------------------

def roc_plotly(labels, scores, names: Sequence[str] | None = None, title: str = "Image ROC"):
    """Interactive ROC curve: hover shows the threshold of each point."""
    import plotly.graph_objects as go
    from sklearn.metrics import roc_curve

    labels, scores = np.asarray(labels).ravel() > 0.5, np.asarray(scores).ravel()
    fpr, tpr, thr = roc_curve(labels, scores)
    auroc = metrics.image_auroc(labels, scores)
    fig = go.Figure(go.Scatter(x=fpr, y=tpr, mode="lines+markers", customdata=thr,
                               name=f"AUROC {auroc:.3f}",
                               hovertemplate="threshold %{customdata:.4g}<br>FPR %{x:.3f}"
                                             "<br>TPR %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash",
                             color="gray"), hoverinfo="skip", showlegend=False))
    fig.update_layout(title=dict(text=title, font=dict(size=12)), width=520, height=460,
                      xaxis_title="false positive rate (good images flagged)",
                      yaxis_title="true positive rate (defects caught)",
                      margin=dict(l=10, r=10, t=60, b=10))
    return fig


@dataclass
class ThresholdLab:
    """Everything the threshold slider shows: labels, scores, names, maps, masks, images.

    images: a list of (3, S, S) tensors / (S, S, 3) arrays, or of paths loaded on first use."""

    labels: np.ndarray
    scores: np.ndarray
    names: list[str]
    maps: np.ndarray | None = None  # (N, S, S)
    masks: np.ndarray | None = None  # (N, S, S) bool
    images: list | None = None
    resize: int = 256
    crop: int = 224
    subtitle: str = ""
    _loaded: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_evaluation(cls, ev) -> ThresholdLab:
        c = ev.model.config
        return cls(ev.labels, ev.scores, [sample_name(s) for s in ev.samples], ev.maps,
                   ev.masks, [s.path for s in ev.samples], c.resize, c.crop, ev.model.describe())

    def image(self, i: int) -> np.ndarray:
        if i not in self._loaded:
            im = self.images[i]
            if isinstance(im, (str, Path)):
                im = load_image(im, self.resize, self.crop)
            self._loaded[i] = _rgb(im)
        return self._loaded[i]


def threshold_view(lab: ThresholdLab, threshold: float, n_overlays: int = 6) -> View:
    """Confusion matrix, missed defects and false alarms, and binary segmentations at a threshold.

    The same threshold is applied to image scores (the verdict) and to the anomaly maps (the
    red segmentation). Overlays show mistakes first (missed, then false alarms), then hits."""
    labels = np.asarray(lab.labels).ravel() > 0.5
    scores = np.asarray(lab.scores).ravel()
    counts = confusion_counts(labels, scores, threshold)
    flagged = scores >= threshold
    missed = [lab.names[i] for i in np.flatnonzero(labels & ~flagged)]
    false_alarms = [lab.names[i] for i in np.flatnonzero(~labels & flagged)]
    precision, recall, f1 = precision_recall_f1(counts).values()

    figs = []
    fig = Figure(figsize=(3.4, 3.0), layout="constrained")
    ax = fig.subplots()
    cm = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]])
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(1, cm.max()))
    for (r, c), v in np.ndenumerate(cm):
        word = [["ok", "false alarm"], ["missed", "caught"]][r][c]
        ax.text(c, r, f"{v}\n{word}", ha="center", va="center",
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks([0, 1], ["pass", "flag"])
    ax.set_yticks([0, 1], ["good", "defective"])
    ax.set(xlabel="verdict", ylabel="truth", title=f"threshold {threshold:.4g}")
    if lab.subtitle:
        fig.suptitle(lab.subtitle, fontsize=6, wrap=True)
    figs.append(fig)

    order = ([i for i in np.flatnonzero(labels & ~flagged)]
             + [i for i in np.flatnonzero(~labels & flagged)]
             + [i for i in np.flatnonzero(labels & flagged)]
             + [i for i in np.flatnonzero(~labels & ~flagged)])[:n_overlays]
    seg_fraction = None
    if lab.maps is not None and lab.images is not None and order:
        fig = Figure(figsize=(2.4 * len(order), 2.9), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(order)))
        for ax, i in zip(axes, order):
            seg = np.asarray(lab.maps[i]) >= threshold
            ax.imshow(lab.image(i))
            ax.imshow(np.ma.masked_where(~seg, seg), cmap=ListedColormap(["red"]), alpha=0.45)
            if lab.masks is not None:
                _outline(ax, lab.masks[i])
            verdict = ("MISSED" if labels[i] and not flagged[i] else
                       "FALSE ALARM" if flagged[i] and not labels[i] else
                       "caught" if labels[i] else "ok")
            ax.set_title(f"{lab.names[i]}\n{scores[i]:.3g}: {verdict}", fontsize=8,
                         color="red" if verdict.isupper() else "black")
            ax.set_axis_off()
        fig.suptitle("red: pixels >= threshold; cyan: ground truth"
                     + (f"\n{lab.subtitle}" if lab.subtitle else ""), fontsize=8)
        figs.append(fig)
        seg_fraction = float((np.asarray(lab.maps) >= threshold).mean())
    caption = (f"**threshold {threshold:.4g}**: {counts['tp']} caught, {counts['fn']} missed, "
               f"{counts['fp']} false alarms, {counts['tn']} passed good; precision "
               f"{_fmt(precision)}, recall {_fmt(recall)}, F1 {_fmt(f1)}  \n"
               f"missed: {', '.join(missed) or 'none'}  \n"
               f"false alarms: {', '.join(false_alarms) or 'none'}")
    data = dict(threshold=float(threshold), counts=counts, missed=missed,
                false_alarms=false_alarms, precision=precision, recall=recall, f1=f1,
                segmented_fraction=seg_fraction)
    return View(data, figs, caption)


def threshold_app(lab: ThresholdLab, threshold: float, steps: int = 200):
    """A threshold slider over `threshold_view`, spanning the range of the image scores."""
    import ipywidgets as W

    lo, hi = float(np.min(lab.scores)), float(np.max(lab.scores))
    pad = 0.05 * (hi - lo) or 1.0
    slider = W.FloatSlider(value=float(threshold), min=lo - pad, max=hi + pad,
                           step=(hi - lo + 2 * pad) / steps, readout_format=".4g",
                           description="threshold", continuous_update=False,
                           layout=W.Layout(width="600px"))
    return live(threshold_view, dict(threshold=slider), lab=lab)


def thresholds_view(labels, scores, quantile_threshold: float, subtitle: str = "") -> View:
    """The F1-optimal threshold vs a quantile of good training scores, on the score histogram."""
    from ..evaluation import plots

    f1 = metrics.f1_threshold(labels, scores)
    fig = plots.score_histogram(scores, labels, quantile_threshold,
                                title="Image scores of the test set", subtitle=subtitle)
    ax = fig.axes[0]
    rows = [dict(rule="quantile of good training scores (model default)",
                 threshold=quantile_threshold,
                 **confusion_counts(labels, scores, quantile_threshold))]
    if f1 is not None:
        ax.axvline(f1[0], color="tab:purple", ls=":", label=f"F1-optimal = {f1[0]:.4g}")
        ax.legend(fontsize=8)
        rows.append(dict(rule=f"F1-optimal on this test set (F1 {f1[1]:.3f})", threshold=f1[0],
                         **confusion_counts(labels, scores, f1[0])))
    return View(dict(rows=rows, f1_threshold=f1[0] if f1 else None, f1=f1[1] if f1 else None),
                [fig], _table(rows, ("rule", "threshold", "tp", "fn", "fp", "tn")))
