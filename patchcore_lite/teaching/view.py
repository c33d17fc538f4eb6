"""What every lesson shares: the `View` a callback returns, `live` widgets, source and tables.

A lesson's view is a plain function: it takes the data it shows plus the widget values and
returns a View, the numbers it shows (`view.data`, what tests and self-checks read), its figures
and a caption. `live()` wires such a function to ipywidgets controls; `source()` shows the
library's own code; `table()` writes rows as Markdown. The few data helpers every notebook needs
(which category, which test images, how to name them) sit here too, so lessons do not repeat them.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..backbone import FeatureExtractor, describe_weights, load_backbone
from ..data import Sample, load_image, test_samples

CATEGORY = "hex_nut"  # the course's default category of the embedded data set
DATA_ENV = "PATCHCORE_LITE_DATA"  # one category folder for every notebook and the live demo
MIN_PX = 12  # smallest text on screen: a 1080p display at 100% zoom
MAX_WIDTH_PX = 1000  # a PNG this wide fits a notebook or handout column unscaled
RESNET_LAYERS = ("layer1", "layer2", "layer3", "layer4")


# ---- View and live widgets ------------------------------------------------------------------

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
                fig.savefig(buf, format="png", dpi=legible(fig), bbox_inches="tight")
                out.append(Image(data=buf.getvalue(), format="png"))
            else:
                out.append(fig)
        return out

    def _ipython_display_(self) -> None:
        from IPython.display import display

        for obj in self.rendered():
            display(obj)


class Interactive:
    """A plotly figure with a static matplotlib twin: notebooks show the plotly one, and its
    display bundle carries the twin as image/png, which handouts put beside it (and which a
    front end without plotly shows instead). Attributes are the plotly figure's."""

    def __init__(self, figure, static: Figure):
        self.figure, self.static = figure, static

    def __getattr__(self, name):
        return getattr(self.figure, name)

    def png(self) -> bytes:
        """The static twin as PNG bytes (legible sizes)."""
        buf = io.BytesIO()
        self.static.savefig(buf, format="png", dpi=legible(self.static), bbox_inches="tight")
        return buf.getvalue()

    def _repr_mimebundle_(self, include=None, exclude=None):
        import base64
        import json

        bundle = {"application/vnd.plotly.v1+json": json.loads(self.figure.to_json()),
                  "image/png": base64.b64encode(self.png()).decode("ascii"),
                  "text/plain": "interactive figure (plotly), static copy as PNG"}
        return bundle


def plotly_title(text: str, size_px: int = 16) -> dict:
    """A plotly title whose `<sub>` subtitle stays legible (MIN_PX, not plotly's ~0.6 em)."""
    text = text.replace("<sub>", f"<span style='font-size:{MIN_PX}px'>").replace("</sub>",
                                                                              "</span>")
    return dict(text=text, font=dict(size=size_px))


def legible(fig: Figure, min_px: float = MIN_PX, max_width_px: int = MAX_WIDTH_PX) -> float:
    """Raise every text of `fig` to at least min_px on screen; the dpi to save it at.

    A figure wider than max_width_px is saved at a lower dpi rather than scaled down by the
    page, so the sizes set here are the sizes the learner sees."""
    from matplotlib.text import Text

    dpi = min(90.0, max_width_px / fig.get_figwidth())
    min_pt = min_px * 72 / dpi
    for ax in fig.axes:
        if ax.xaxis.get_ticklabels() and ax.xaxis.get_ticklabels()[0].get_fontsize() < min_pt:
            ax.tick_params(labelsize=min_pt)
    for t in fig.findobj(Text):
        if t.get_text() and t.get_fontsize() < min_pt:
            t.set_fontsize(min_pt)
    return dpi


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


# ---- source and tables ----------------------------------------------------------------------

def source(obj) -> object:
    """The library's own code for `obj`, as a Markdown code block: the lesson is the code."""
    import inspect

    from IPython.display import Markdown

    return Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```")


def table(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of dicts (keys as headers; floats to 4 significant digits)."""
    columns = list(columns or rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def compare(a: float, b: float, digits: int = 4) -> tuple[str, str]:
    """a and b with at least `digits` significant digits, and as many more as it takes for
    them to read differently when they differ (3.2961 vs 3.3012, never '3.3 vs 3.3')."""
    for d in range(digits, 17):
        sa, sb = f"{a:.{d}g}", f"{b:.{d}g}"
        if sa != sb or a == b:
            return sa, sb
    return repr(a), repr(b)


def fmt(v) -> str:
    """One table cell: '-' for None, 4 significant digits for a float."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def array(x) -> np.ndarray:
    """A numpy array from a tensor (detached, on the CPU) or anything array-like."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def weights_label(weights_used: str, backbone: str = "resnet18") -> str:
    """Which weights a figure was made with, in words (never hide a random init)."""
    return f"{backbone}, {describe_weights(weights_used)} weights"


# ---- helpers two lessons share -------------------------------------------------------------

@functools.cache
def layer_shapes(backbone: str = "resnet18", size: int = 224,
                 layers: tuple[str, ...] = RESNET_LAYERS) -> dict[str, tuple[int, int, int]]:
    """(C, H, W) of each layer's output for a size x size input (random init: shapes only)."""
    net, _ = load_backbone(backbone, None)
    feats = FeatureExtractor(net, layers)(torch.zeros(1, 3, size, size))
    return {layer: tuple(f.shape[1:]) for layer, f in zip(layers, feats)}


def pca(x: torch.Tensor, n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-n principal components of rows of x: projections (N, n), explained ratios (n,)."""
    x = x.double() - x.double().mean(0)
    cov = x.T @ x / max(1, x.shape[0] - 1)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    total = evals.clamp_min(0).sum().clamp_min(1e-12)
    evals, evecs = evals.flip(0)[:n], evecs.flip(1)[:, :n]
    evecs = evecs * torch.sign(evecs[evecs.abs().argmax(0), torch.arange(evecs.shape[1])])
    return (x @ evecs).float(), (evals.clamp_min(0) / total).float()



# ---- the course's data ----------------------------------------------------------------------

def category_dir(category: str = CATEGORY, folder: str | Path | None = None) -> Path:
    """`folder` if given, else $PATCHCORE_LITE_DATA if set (your own or an MVTec category, one
    setting for every notebook: `make lab DATA=path`), else `category` of the embedded data set.

    The embedded data set is generated on first use, then reused."""
    folder = folder if folder is not None else (os.environ.get(DATA_ENV) or None)
    if folder is not None:
        return Path(folder).expanduser()
    from ..datasets import cache

    return cache.embedded_data() / category


def cached_model(category: Path):
    """The category's PatchCore, fitted once (notebook 00) and loaded from the cache after that."""
    from ..datasets import cache

    return cache.cached_model(category, weights="auto", progress=False)


def sample_name(sample: Sample) -> str:
    """'defect/file.png': how the notebooks name a test image."""
    return f"{sample.defect}/{sample.path.name}"


def defect_types(category: str | Path) -> list[str]:
    """Test folders of a category: 'good' first, then the defect types."""
    names = sorted({s.defect for s in test_samples(category)})
    return sorted(names, key=lambda d: d != "good")


def first_of_each(samples: Sequence[Sample], n: int = 1) -> dict[str, list[int]]:
    """Indices of the first n samples of each type ('good' first, then the defect types)."""
    out: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        if len(out.setdefault(s.defect, [])) < n:
            out[s.defect].append(i)
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != "good", kv[0])))


def image_batch(samples: Sequence[Sample], resize: int = 256,
                crop: int = 224) -> tuple[torch.Tensor, list[str]]:
    """The samples' images as one (B, 3, crop, crop) batch, and their names."""
    x = torch.stack([load_image(s.path, resize, crop) for s in samples])
    return x, [sample_name(s) for s in samples]
