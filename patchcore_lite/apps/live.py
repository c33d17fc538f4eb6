"""Live demo: test images stream past like a production line, each with its heatmap and verdict.

Nothing heavy happens at start: the model comes from the cache (or a saved file) and each image
is scored only when it reaches the camera, one per `step()`. An `ipywidgets.Play` widget calls
`step()` on every tick, so the kernel never blocks; executed headless (nbclient, Voila), the app
renders its first frame and returns. Every image shown is remembered as (score, label), so moving
the threshold recounts the whole line so far (the counts of `metrics.confusion_counts`).

    from patchcore_lite.live import app
    app()          # the widget; `make present` serves notebooks/06_live_demo.ipynb with Voila

Configuration comes from environment variables (set by `make present`), so the notebook stays
one line:

    PATCHCORE_LITE_DATA      an MVTec-layout category folder (default: embedded data, see below)
    PATCHCORE_LITE_CATEGORY  category of the embedded data set (default: hex_nut)
    PATCHCORE_LITE_MODEL     a saved .pclite model (default: fit once and cache, cache.py)
    PATCHCORE_LITE_WEIGHTS   weights when fitting: auto (default), imagenet, none or a file

Bad input (a folder not in MVTec layout, a model file that does not load) is shown as a readable
message (CSS class `pcl-error`), never a traceback.

`python -m patchcore_lite.live --prepare` does the slow part before the server starts: it
generates the data, fits and caches the model if needed, and prints `export` lines (data folder,
resolved weights) with which the app reuses the cached model without asking the network again.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..backbone import describe_weights
from ..data import Sample, load_mask, open_image, resize_crop, test_samples, to_tensor
from ..errors import PatchCoreError
from ..evaluation.counts import confusion_counts

ENV_DATA = "PATCHCORE_LITE_DATA"
ENV_CATEGORY = "PATCHCORE_LITE_CATEGORY"
ENV_MODEL = "PATCHCORE_LITE_MODEL"
ENV_WEIGHTS = "PATCHCORE_LITE_WEIGHTS"
DEFAULT_CATEGORY = "hex_nut"

# CSS classes the browser test (and anyone styling the page) relies on: keep them stable.
CSS = dict(app="pcl-app", heatmap="pcl-heatmap", verdict="pcl-verdict", counts="pcl-counts",
           threshold="pcl-threshold", play="pcl-play", speed="pcl-speed", weights="pcl-weights",
           next="pcl-next", restart="pcl-restart", default="pcl-threshold-default",
           filmstrip="pcl-filmstrip", timeline="pcl-timeline", message="pcl-message",
           error="pcl-error")
SPEEDS = (("slow", 2000), ("1 / s", 1000), ("2 / s", 500), ("fast", 250))  # Play interval, ms
FILMSTRIP = 8  # images kept visible on the belt
GAP = 8  # pixels between the camera image and its overlay
HEAT_ALPHA = 0.5
MASK_RGB = (0, 255, 255)  # cyan ground-truth outline, absent from the inferno colormap
PASS_RGB, FLAG_RGB = "#1a7f37", "#cf222e"

log = logging.getLogger(__name__)


# ---- the line: samples, lazy scoring, history ----------------------------------------------

@dataclass
class Inspection:
    """One image that went past the camera."""

    sample: Sample
    score: float
    thumb: bytes  # small PNG of the overlay, for the filmstrip

    @property
    def label(self) -> int | None:
        """1 = defective, 0 = good, as the folder says."""
        return self.sample.label


@dataclass
class Frame:
    """The image under the camera now: what the big panel shows."""

    index: int  # position on the line, 0-based
    inspection: Inspection
    png: bytes


class LiveDemo:
    """Test images in a fixed shuffled order; `step()` scores the next one.

    `samples`: `data.Sample`s (label 1 = defective, None = unknown) or plain image paths.
    The threshold starts at the model's default (learned from good training images only).
    """

    def __init__(self, model, samples, threshold: float | None = None, shuffle: bool = True,
                 seed: int = 0):
        if model.bank is None:
            raise PatchCoreError("model: not fitted")
        samples = [s if isinstance(s, Sample) else Sample(Path(s), "", None, None)
                   for s in samples]
        if not samples:
            raise PatchCoreError("live demo: no test images")
        if shuffle:  # a production line mixes good and defective parts
            order = np.random.default_rng(seed).permutation(len(samples))
            samples = [samples[i] for i in order]
        self.model, self.samples = model, samples
        self.default_threshold = float(model.threshold)
        self.threshold = self.default_threshold if threshold is None else float(threshold)
        lo, hi = model.map_range or (0.0, 2.0 * self.default_threshold)
        self.vmin, self.vmax = float(lo), float(hi)
        self.history: list[Inspection] = []
        self.errors: list[str] = []
        self.frame: Frame | None = None
        self._next = 0

    @classmethod
    def from_folder(cls, category: str | Path, model, **kw) -> LiveDemo:
        """The line of a category's test images (MVTec layout)."""
        return cls(model, test_samples(category), **kw)

    # ---- stepping ----------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Every image of the line has been shown."""
        return self._next >= len(self.samples)

    def step(self) -> Inspection | None:
        """Score the next image (about 0.1-0.3 s on a CPU); None at the end of the line.

        An unreadable image is skipped: its message goes to `errors` and PatchCoreError is
        raised after the line has moved on, so the next call continues with the next image."""
        if self.done:
            return None
        index, sample = self._next, self.samples[self._next]
        self._next += 1
        c = self.model.config
        try:
            full = to_tensor(open_image(sample.path))  # (3, H, W) before resize/crop
            image = resize_crop(full, c.resize, c.crop)
            mask = load_mask(sample, c.resize, c.crop).numpy() if sample.mask else None
            scores, maps = self.model.predict(full[None], progress=False)  # no bar per image
        except PatchCoreError as e:
            self.errors.append(str(e))
            raise
        rgb = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        big = render_overlay(rgb, maps[0], mask, self.vmin, self.vmax, gap=GAP)
        overlay = big[:, rgb.shape[1] + GAP:]  # the right panel
        thumb = _png(Image.fromarray(overlay).resize((72, 72), Image.BILINEAR))
        shown = Inspection(sample, float(scores[0]), thumb)
        self.history.append(shown)
        self.frame = Frame(index, shown, _png(Image.fromarray(big)))
        return shown

    def reset(self) -> None:
        """Back to the start of the line (the threshold is kept)."""
        self.history.clear()
        self.errors.clear()
        self.frame = None
        self._next = 0

    # ---- counting ----------------------------------------------------------------------
    def scores(self) -> np.ndarray:
        """Scores of the images shown so far, in order."""
        return np.array([h.score for h in self.history], dtype=np.float64)

    def labels(self) -> np.ndarray:
        """Labels of the images shown (-1 where unknown)."""
        return np.array([-1 if h.label is None else h.label for h in self.history], dtype=int)

    def flagged(self, score: float, threshold: float | None = None) -> bool:
        """The verdict: anomalous when score >= threshold (like metrics.confusion_counts)."""
        return score >= (self.threshold if threshold is None else threshold)

    def counts(self, threshold: float | None = None) -> dict:
        """Counts over all images shown so far, at `threshold` (default: the current one).

        passed + flagged = shown; missed (defective but passed) and false_alarms (good but
        flagged) count only images whose label is known, and are None when none is."""
        t = self.threshold if threshold is None else float(threshold)
        scores, labels = self.scores(), self.labels()
        flagged = int(np.sum(scores >= t))
        known = labels >= 0
        out = dict(shown=len(scores), passed=len(scores) - flagged, flagged=flagged,
                   missed=None, false_alarms=None, labelled=int(known.sum()))
        if known.any():
            c = confusion_counts(labels[known], scores[known], t)
            out.update(missed=c["fn"], false_alarms=c["fp"], caught=c["tp"], good_passed=c["tn"])
        return out


# ---- pictures ------------------------------------------------------------------------------

def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def heat_rgb(amap: np.ndarray, vmin: float, vmax: float, cmap: str = "inferno") -> np.ndarray:
    """(H, W) scores -> (H, W, 3) uint8 colours on one fixed scale (matplotlib maps values only)."""
    from matplotlib import colormaps

    norm = np.clip((np.asarray(amap, np.float64) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    lut = (colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)
    return lut[(norm * 255).round().astype(np.intp)]


def _outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """Boundary pixels of a bool mask, `width` pixels thick, inside the region (numpy erosion
    with a 4-neighbourhood: no scipy import before the first frame)."""
    inner = mask
    for _ in range(width):
        p = np.pad(inner, 1, constant_values=False)
        inner = inner & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def render_overlay(image: np.ndarray, amap: np.ndarray, mask: np.ndarray | None, vmin: float,
                   vmax: float, alpha: float = HEAT_ALPHA, gap: int = GAP) -> np.ndarray:
    """Image | heatmap overlay side by side, ground truth outlined in cyan on both: (S, 2S+gap, 3).

    Plain numpy compositing (matplotlib only maps values to colours): a few milliseconds
    instead of a matplotlib figure per frame."""
    image = np.asarray(image, np.uint8)
    heat = heat_rgb(amap, vmin, vmax)
    blend = ((1 - alpha) * image + alpha * heat).round().astype(np.uint8)
    left, right = image.copy(), blend
    if mask is not None and np.any(mask):
        edge = _outline(np.asarray(mask) > 0.5)
        left[edge] = MASK_RGB
        right[edge] = MASK_RGB
    sep = np.full((image.shape[0], gap, 3), 255, np.uint8)
    return np.concatenate([left, sep, right], axis=1)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def weights_text(model) -> str:
    """What the app says about the weights: never hide a random init."""
    return describe_weights(model.weights_used)


# ---- the widget app ----------------------------------------------------------------------

def _widgets():
    import ipywidgets

    return ipywidgets


def error_panel(message: str, title: str = "The live demo could not start"):
    """A readable message on the page instead of a traceback (CSS class `pcl-error`)."""
    w = _widgets().HTML(
        f"<div style='border:2px solid {FLAG_RGB};border-radius:6px;padding:12px 16px;"
        f"background:#fff5f5;max-width:900px'><b style='color:{FLAG_RGB}'>"
        f"{html.escape(title)}</b><p class='pcl-error-text' style='margin:8px 0 0 0;"
        f"white-space:pre-wrap'>{html.escape(message)}</p>"
        "<p style='margin:8px 0 0 0;color:#555'>Check <code>DATA=</code> (a category folder in "
        "MVTec AD layout: <code>train/good</code>, <code>test/&lt;defect&gt;</code>) and "
        "<code>MODEL=</code> (a file saved by <code>python -m patchcore_lite fit</code>), "
        "then start again.</p></div>")
    w.add_class(CSS["error"])
    return w


def _app_class():
    """LiveApp is defined lazily so that importing this module does not import ipywidgets."""
    widgets = _widgets()

    class LiveApp(widgets.VBox):
        """The presentation: current image + heatmap, verdict, counts, threshold, play/speed."""

        def __init__(self, line: LiveDemo, title: str = "PatchCore live inspection"):
            super().__init__()
            self.line = line
            model = line.model
            self._last_tick_end = 0.0
            lo, thr = line.vmin, line.default_threshold
            top = max(lo + 3.0 * (thr - lo), thr * 1.5 if thr > 0 else 1.0)
            self.weights = widgets.HTML(self._weights_html(model))
            self.heatmap = widgets.Image(format="png", layout=widgets.Layout(width="600px"))
            self.caption = widgets.HTML()
            self.verdict = widgets.HTML()
            self.counts = widgets.HTML()
            self.threshold = widgets.FloatSlider(
                value=line.threshold, min=min(lo, thr), max=top, step=(top - lo) / 400,
                description="threshold", readout_format=".3f", continuous_update=True,
                layout=widgets.Layout(width="420px"))
            self.default_button = widgets.Button(description="model default",
                                                 tooltip="0.99 quantile of leave-one-out scores "
                                                 "of good training images",
                                                 layout=widgets.Layout(width="120px"))
            self.play = widgets.Play(value=0, min=0, max=10**6, step=1, interval=1000,
                                     show_repeat=False, description="play")
            self.speed = widgets.SelectionSlider(options=SPEEDS, value=1000, description="speed",
                                                 layout=widgets.Layout(width="260px"))
            self.next_button = widgets.Button(description="next image", icon="step-forward",
                                              layout=widgets.Layout(width="120px"))
            self.restart_button = widgets.Button(description="restart", icon="undo",
                                                 layout=widgets.Layout(width="100px"))
            self.filmstrip = widgets.HTML()
            self.timeline = widgets.HTML()
            self.message = widgets.HTML()
            for name in ("weights", "heatmap", "verdict", "counts", "threshold", "play", "speed",
                         "filmstrip", "timeline", "message"):
                getattr(self, name).add_class(CSS[name])
            self.next_button.add_class(CSS["next"])
            self.restart_button.add_class(CSS["restart"])
            self.default_button.add_class(CSS["default"])
            self.add_class(CSS["app"])

            self.threshold.observe(self._on_threshold, "value")
            self.speed.observe(lambda ch: setattr(self.play, "interval", int(ch["new"])), "value")
            self.play.observe(self._on_tick, "value")
            self.next_button.on_click(lambda _: self.step())
            self.restart_button.on_click(lambda _: self.restart())
            self.default_button.on_click(
                lambda _: setattr(self.threshold, "value", line.default_threshold))

            header = widgets.HTML(
                f"<h2 style='margin:4px 0'>{html.escape(title)}</h2>"
                f"<div style='color:#555;font-size:90%'>{html.escape(model.describe())}</div>")
            controls = widgets.VBox([
                self.verdict, self.counts,
                widgets.HBox([self.play, self.speed]),
                widgets.HBox([self.next_button, self.restart_button]),
                widgets.HBox([self.threshold, self.default_button]),
                widgets.HTML(_legend_html(line.vmin, line.vmax)),
            ], layout=widgets.Layout(margin="0 0 0 16px"))
            picture = widgets.VBox([self.caption, self.heatmap])
            self.children = [header, self.weights, widgets.HBox([picture, controls]),
                             self.filmstrip, self.timeline, self.message]
            self.step()  # the first frame: the only work done before the page appears

        # ---- actions (tests call these directly) -------------------------------------------
        def step(self) -> bool:
            """Next image onto the panel; False (and the Play widget paused) at the end."""
            try:
                shown = self.line.step()
            except PatchCoreError as e:
                self.message.value = _message_html(f"skipped an image: {e}")
                return not self.line.done
            if shown is None:
                self.play.playing = False
                self._refresh(end=True)
                return False
            if shown.score > self.threshold.max:  # keep every score reachable by the slider
                self.threshold.max = shown.score * 1.05
            self._refresh()
            return True

        def restart(self) -> None:
            self.line.reset()
            self.message.value = ""
            self.step()

        def set_threshold(self, value: float) -> None:
            self.threshold.value = value  # the observer recounts

        def _on_threshold(self, change) -> None:
            self.line.threshold = float(change["new"])
            self._refresh(image=False)

        def _on_tick(self, change) -> None:
            """Play widget tick. Ticks that queued up while a slow step ran are dropped, so a
            fast speed on a slow machine shows images as fast as they are scored, no backlog."""
            if change["new"] < change["old"]:  # the stop button: back to the start of the line
                self.restart()
                return
            if time.monotonic() - self._last_tick_end < 0.4 * self.play.interval / 1000:
                return
            try:
                self.step()
            finally:
                self._last_tick_end = time.monotonic()

        # ---- drawing ---------------------------------------------------------------------
        def _refresh(self, image: bool = True, end: bool = False) -> None:
            line, frame = self.line, self.line.frame
            if frame is not None and image:
                self.heatmap.value = frame.png
                s = frame.inspection.sample
                truth = _truth(s)
                self.caption.value = (
                    f"<div style='font-size:90%;color:#333'>image {frame.index + 1} of "
                    f"{len(line.samples)}: <code>{html.escape(s.path.name)}</code>{truth}<br>"
                    "left: camera image" + (", ground truth outlined in cyan"
                                            if s.mask else "") +
                    "; right: PatchCore heatmap</div>")
            self.verdict.value = self._verdict_html(end)
            self.counts.value = _counts_html(line.counts())
            self.filmstrip.value = _filmstrip_html(line)
            self.timeline.value = _timeline_html(line)

        def _verdict_html(self, end: bool) -> str:
            line, frame = self.line, self.line.frame
            if frame is None:
                return "<div data-verdict='none'>no image yet</div>"
            ins = frame.inspection
            flagged = line.flagged(ins.score)
            word, colour, key = (("FLAGGED", FLAG_RGB, "flagged") if flagged
                                 else ("PASS", PASS_RGB, "pass"))
            cmp = ">=" if flagged else "<"
            right = ""
            if ins.label is not None:
                ok = flagged == bool(ins.label)
                what = ("caught" if ins.label else "correct") if ok else (
                    "MISSED" if ins.label else "FALSE ALARM")
                right = (f" &middot; truth: {'defective' if ins.label else 'good'} "
                         f"&rarr; <b>{what}</b>")
            tail = (f"<div style='margin-top:4px;color:#555'>End of the line: all "
                    f"{len(line.samples)} images inspected. Press restart (or the stop button) "
                    "to run it again.</div>") if end else ""
            return (f"<div class='pcl-verdict-box' data-verdict='{key}' data-score='{ins.score}'"
                    f" style='display:flex;align-items:center;gap:12px'>"
                    f"<span style='background:{colour};color:white;font-size:160%;"
                    f"font-weight:bold;padding:4px 14px;border-radius:6px'>{word}</span>"
                    f"<span>score <b>{ins.score:.3f}</b> {cmp} threshold "
                    f"{line.threshold:.3f}{right}</span></div>{tail}")

        @staticmethod
        def _weights_html(model) -> str:
            text = weights_text(model)
            if model.weights_used == "random":
                style, note = ("background:#fff1cc;border:1px solid #d4a72c", " &mdash; heatmaps "
                               "show what a random-init backbone finds, not what the paper "
                               "measures (see README: Weights)")
            else:
                style, note = "background:#eef6ee;border:1px solid #8c8", ""
            return (f"<div style='{style};padding:4px 10px;border-radius:4px;display:inline-block'"
                    f">Weights: <b class='pcl-weights-text'>{html.escape(text)}</b>{note}</div>")

    return LiveApp


def _truth(s: Sample) -> str:
    if s.label is None:
        return " &middot; truth unknown"
    kind = "good" if not s.label else f"defective ({html.escape(s.defect)})"
    return f" &middot; truth: {kind}"


def _message_html(text: str) -> str:
    return f"<div style='color:{FLAG_RGB}'>{html.escape(text)}</div>"


def _counts_html(c: dict) -> str:
    def tile(key: str, label: str, value, colour: str, hint: str) -> str:
        v = "&ndash;" if value is None else str(value)
        return (f"<div title='{hint}' style='border:1px solid #ccc;border-radius:6px;"
                f"padding:4px 10px;min-width:70px;text-align:center'>"
                f"<div class='pcl-{key}' style='font-size:150%;font-weight:bold;color:{colour}'"
                f">{v}</div><div style='font-size:80%;color:#555'>{label}</div></div>")

    tiles = [tile("shown", "inspected", c["shown"], "#333", "images shown so far"),
             tile("passed", "passed", c["passed"], PASS_RGB, "score below the threshold"),
             tile("flagged", "flagged", c["flagged"], FLAG_RGB, "score at or above the threshold"),
             tile("missed", "missed", c["missed"], "#9a6700", "defective but passed"),
             tile("false-alarms", "false alarms", c["false_alarms"], "#9a6700",
                  "good but flagged")]
    return f"<div style='display:flex;gap:8px;margin:8px 0'>{''.join(tiles)}</div>"


def _legend_html(vmin: float, vmax: float) -> str:
    from matplotlib import colormaps

    stops = ", ".join(
        "rgb({},{},{})".format(*(int(255 * v) for v in colormaps["inferno"](x)[:3]))
        for x in np.linspace(0, 1, 8))
    return (f"<div style='font-size:85%;color:#555;margin-top:6px'>heatmap colour, same scale "
            f"for every image:<div style='display:flex;align-items:center;gap:6px'>"
            f"<span>{vmin:.2f}</span><span style='display:inline-block;width:200px;height:10px;"
            f"background:linear-gradient(to right, {stops})'></span><span>{vmax:.2f}</span></div>"
            "dark = like the good training parts; the threshold sits mid-scale</div>")


def _filmstrip_html(line: LiveDemo) -> str:
    items = []
    for h in line.history[-FILMSTRIP:][::-1]:
        flagged = line.flagged(h.score)
        colour = FLAG_RGB if flagged else PASS_RGB
        truth = "" if h.label is None else ("defective" if h.label else "good")
        items.append(
            f"<div style='text-align:center;font-size:75%'><img src='{_data_uri(h.thumb)}' "
            f"width='72' height='72' style='border:3px solid {colour};display:block'>"
            f"{h.score:.2f}<br><span style='color:#555'>{truth}</span></div>")
    return ("<div style='margin-top:8px'><div style='font-size:85%;color:#555'>on the belt, "
            "newest first (frame: green = passed, red = flagged at the current threshold)</div>"
            f"<div style='display:flex;gap:6px'>{''.join(items)}</div></div>")


def _timeline_html(line: LiveDemo, width: int = 720, height: int = 110) -> str:
    """Scores so far as an SVG dot plot with the threshold line: green good, red defective."""
    scores, labels = line.scores(), line.labels()
    if len(scores) == 0:
        return ""
    lo = min(float(scores.min()), line.threshold, line.vmin)
    hi = max(float(scores.max()), line.threshold) * 1.05 + 1e-9
    n = max(len(line.samples), 2)

    def y(v: float) -> float:
        return 8 + (height - 16) * (1 - (v - lo) / max(hi - lo, 1e-12))

    dots = []
    for i, (s, lab) in enumerate(zip(scores, labels)):
        colour = "#888" if lab < 0 else (FLAG_RGB if lab else PASS_RGB)
        x = 10 + (width - 20) * i / (n - 1)
        dots.append(f"<circle cx='{x:.1f}' cy='{y(s):.1f}' r='3.5' fill='{colour}'/>")
    ty = y(line.threshold)
    return (f"<div style='font-size:85%;color:#555;margin-top:8px'>image scores along the line "
            f"(green = good, red = defective; dashed = threshold)</div>"
            f"<svg width='{width}' height='{height}' style='border:1px solid #ddd'>"
            f"<rect x='0' y='0' width='{width}' height='{ty:.1f}' fill='#fbeaea'/>"
            f"<line x1='0' x2='{width}' y1='{ty:.1f}' y2='{ty:.1f}' stroke='#333' "
            f"stroke-dasharray='6,4'/>{''.join(dots)}</svg>")


# ---- configuration and entry points ---------------------------------------------------------

@dataclass
class LiveConfig:
    data: Path  # the category folder
    model: Path | None
    weights: str


def config_from_env() -> LiveConfig:
    """Settings from PATCHCORE_LITE_* variables (see module docstring); data generated on use."""
    data = os.environ.get(ENV_DATA, "").strip()
    model = os.environ.get(ENV_MODEL, "").strip()
    weights = os.environ.get(ENV_WEIGHTS, "").strip() or "auto"
    if data:
        folder = Path(data).expanduser()
    else:
        from ..datasets.cache import embedded_data
        from ..datasets.synth import CATEGORIES

        category = os.environ.get(ENV_CATEGORY, "").strip() or DEFAULT_CATEGORY
        if category not in CATEGORIES:
            raise PatchCoreError(f"{ENV_CATEGORY}: unknown category '{category}' "
                                 f"(one of {', '.join(CATEGORIES)})")
        folder = embedded_data() / category
    return LiveConfig(folder, Path(model).expanduser() if model else None, weights)


def load_live_model(cfg: LiveConfig):
    """The saved model if one is given, else the cached fit on <data>/train/good."""
    from ..datasets.cache import cached_model
    from ..model import PatchCore

    test_samples(cfg.data)  # check the layout first: a clear message before any fitting
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'auto' fell back to random init: the page says so
        if cfg.model is not None:
            return PatchCore.load(cfg.model, progress=False)
        return cached_model(cfg.data, weights=cfg.weights, progress=False)


def build_app(category: str | Path | None = None, model=None, title: str | None = None,
              shuffle: bool = True, seed: int = 0):
    """The live demo widget (an ipywidgets.VBox with `.step()`), or an error panel.

    category: MVTec-layout folder (default: from the environment, else embedded hex_nut);
    model: a fitted PatchCore, or a path to a saved one (default: environment, else cache)."""
    try:
        cfg = config_from_env()
        if category is not None:
            cfg.data = Path(category)
        if model is not None and not hasattr(model, "predict"):
            cfg.model, model = Path(model), None
        if model is None:
            model = load_live_model(cfg)
        line = LiveDemo.from_folder(cfg.data, model, shuffle=shuffle, seed=seed)
        name = cfg.data.name or str(cfg.data)
        return _app_class()(line, title or f"PatchCore live inspection: {name}")
    except PatchCoreError as e:
        return error_panel(str(e))
    except Exception as e:  # noqa: BLE001 - an app shows a message; the log keeps the traceback
        traceback.print_exc(file=sys.stderr)
        return error_panel(f"unexpected error: {type(e).__name__}: {e}")


def app(**kwargs):
    """The notebook's (and Voila's) one call: build the app from the environment."""
    return build_app(**kwargs)


def prepare() -> int:
    """Before the server starts: data and model ready (fit once, then cached).

    Prints shell `export` lines for the app (`make present` evals them): the data folder as an
    absolute path, and the weights spec that `auto` resolved to (`none`, `imagenet` or a path),
    so the app finds the cached model without generating data or asking the network again.
    Bad input is reported on stderr but is not fatal: the page shows the same message."""
    import shlex

    weights = os.environ.get(ENV_WEIGHTS, "").strip() or "auto"
    try:
        cfg = config_from_env()
        t0 = time.perf_counter()
        print(f"live demo: data {cfg.data}", file=sys.stderr)
        print("live demo: " + (f"model {cfg.model}" if cfg.model else
                               "model fitted on train/good (first time only, then cached)"),
              file=sys.stderr)
        model = load_live_model(cfg)
        print(f"live demo: ready in {time.perf_counter() - t0:.1f} s: {model.describe()}",
              file=sys.stderr)
    except PatchCoreError as e:
        print(f"live demo: error: {e} (the page will show this message)", file=sys.stderr)
        return 0
    if cfg.model is None:
        weights = {"random": "none"}.get(model.weights_used, model.weights_used)
    print(f"export {ENV_DATA}={shlex.quote(str(cfg.data.resolve()))}")
    print(f"export {ENV_WEIGHTS}={shlex.quote(weights)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """python -m patchcore_lite.apps.live --prepare: data and model ready, env lines printed."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m patchcore_lite.live", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepare", action="store_true",
                   help="generate data, fit and cache the model; print export lines")
    a = p.parse_args(argv)
    if a.prepare:
        return prepare()
    p.print_help()
    return 0


# ---- self-checks for the "try it" exercises of notebook 06 ----------------------------------

def _line_of(demo) -> LiveDemo | None:
    line = getattr(demo, "line", demo)
    return line if isinstance(line, LiveDemo) else None


def _report(ok: bool, text: str) -> bool:
    print(("\u2714 " if ok else "\u2718 ") + text)
    return ok


def _unanswered(answer, name: str) -> bool:
    if answer is None:
        print(f"Not answered yet: set {name} and run this cell again.")
        return True
    return False


def check_no_false_alarm_threshold(demo, threshold) -> bool:
    """Exercise 1: the lowest threshold (within 2 %) with no false alarm on the images shown."""
    if _unanswered(threshold, "my_threshold"):
        return False
    line = _line_of(demo)
    if line is None:
        return _report(False, "the live demo did not start; nothing to check")
    good = line.scores()[line.labels() == 0]
    if len(good) == 0:
        return _report(False, "no good image inspected yet: let the line run a little longer")
    top = float(good.max())
    c = line.counts(threshold)
    if c["false_alarms"]:
        return _report(False, f"at {threshold:.4g} there are still {c['false_alarms']} false "
                              "alarm(s): which good image has the highest score?")
    if threshold > top + 0.02 * abs(top) + 1e-9:
        return _report(False, f"no false alarms at {threshold:.4g}, but a lower threshold "
                              "would do too: lower it until just above the highest good score")
    return _report(True, f"right: the highest good score so far is {top:.4g}, so any threshold "
                         "just above it gives no false alarm on these images")


def check_missed(demo, threshold, answer) -> bool:
    """Exercise 2: how many defective images shown so far pass at `threshold`."""
    if _unanswered(answer, "my_missed") or _unanswered(threshold, "my_threshold"):
        return False
    line = _line_of(demo)
    if line is None:
        return _report(False, "the live demo did not start; nothing to check")
    c = line.counts(threshold)
    if c["missed"] is None:
        return _report(False, "no labelled image shown yet")
    if int(answer) != answer or int(answer) != c["missed"]:
        return _report(False, f"not quite: count the red dots (defective) below the dashed "
                              f"line at threshold {threshold:.4g}")
    return _report(True, f"right: {c['missed']} defective image(s) would pass; lowering the "
                         "threshold catches them at the price of false alarms")


def check_recall(demo, answer) -> bool:
    """Exercise 3: fraction of defective images shown that the model's default threshold flags."""
    if _unanswered(answer, "my_recall"):
        return False
    line = _line_of(demo)
    if line is None:
        return _report(False, "the live demo did not start; nothing to check")
    c = line.counts(line.default_threshold)
    if c["missed"] is None or c["caught"] + c["missed"] == 0:
        return _report(False, "no defective image inspected yet: let the line run longer")
    recall = c["caught"] / (c["caught"] + c["missed"])
    if not 0 <= answer <= 1:
        return _report(False, "give a fraction between 0 and 1, not a percentage")
    if abs(answer - recall) > 0.01:
        return _report(False, "not quite: flagged defective / all defective shown, at the "
                              "model default threshold (press 'model default')")
    return _report(True, f"right: recall {recall:.2f} ({c['caught']} of "
                         f"{c['caught'] + c['missed']} defective images caught)")


if __name__ == "__main__":
    sys.exit(main())
