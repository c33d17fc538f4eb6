"""Live demo page: the ipywidgets that draw a `LiveDemo` (current image, verdict, counts, controls).

The page only draws the line (line.py) and forwards the controls to it; its HTML comes from
markup.py. It imports ipywidgets at once: whoever wants the line without widgets imports
line.py, and `build_app` (environment.py) imports this module only when a page is built.
An `ipywidgets.Play` widget calls `step()` on every tick, so the kernel never blocks; *loop*
starts the line again at its end. Your own parts (own.py): uploads scored as they arrive,
camera frames, teach; after teach everything on the page follows the new model. Under Voila the
page starts full screen (`pcl-full`); the presenter toggle hides explanations and turns on loop.
"""

from __future__ import annotations

import io
import os
import time

import ipywidgets as widgets
from PIL import Image

from ...errors import PatchCoreError
from . import markup, parts
from .camera import Camera, Uploader
from .line import LiveDemo
from .markup import CSS
from .own import OwnParts
from .render import to_png

SPEEDS = (("slow", 2000), ("1 / s", 1000), ("2 / s", 500), ("fast", 250))  # Play interval, ms
STYLED = ("weights", "heatmap", "verdict", "counts", "threshold", "play", "speed", "filmstrip",
          "timeline", "message", "upload", "camera", "teach", "fullscreen", "presenter", "header",
          "legend", "loop", "teach_fit", "caption")
# ^ widgets whose CSS class is CSS[their attribute name]
TITLE = "PatchCore live inspection"


def error_panel(message: str, title: str = "The live demo could not start") -> widgets.HTML:
    """A readable message on the page instead of a traceback (CSS class `pcl-error`)."""
    w = widgets.HTML(markup.error_html(message, title))
    w.add_class(CSS["error"])
    return w


def _button(description: str, width: str, css: str = "", **kw) -> widgets.Button:
    b = widgets.Button(description=description, layout=widgets.Layout(width=width), **kw)
    if css:
        b.add_class(css)
    return b


def _toggle(description: str, width: str, tooltip: str) -> widgets.ToggleButton:
    return widgets.ToggleButton(description=description, tooltip=tooltip,
                                layout=widgets.Layout(width=width))


def _box(kind, children, css: str):
    box = kind(children)
    box.add_class(css)
    return box


class LiveApp(OwnParts, widgets.VBox):
    """The presentation: current image + heatmap, verdict, counts, threshold, play/speed."""

    def __init__(self, line: LiveDemo, title: str = TITLE, full: bool | None = None):
        super().__init__()
        self.line, self.title = line, title
        self._last_tick_end, self._ended = 0.0, False
        self._init_own()
        self._make_widgets()
        self._make_own_parts()
        self._wire()
        side = _box(widgets.VBox, [self.verdict, self.counts, self.weights, self.legend,
                                   self.message], CSS["side"])
        picture = _box(widgets.VBox, [self.caption, self.heatmap], CSS["picture"])
        main = _box(widgets.HBox, [picture, side], CSS["main"])
        bar = _box(widgets.HBox, [self.play, self.speed, self.next_button, self.restart_button,
                                  self.loop, self.threshold, self.default_button, self.upload,
                                  self.teach, self.teach_fit, self.camera, self.presenter,
                                  self.fullscreen], CSS["bar"])
        belt = _box(widgets.HBox, [self.filmstrip, self.timeline], CSS["belt"])
        self.children = [widgets.HTML(markup.STYLE), self.header, main, bar, belt]
        self.fullscreen.value = bool(os.environ.get("VOILA_BASE_URL")) if full is None else full
        self.camera.aspect = parts.aspect_of(s.path for s in line.samples[:10])
        if line.frame is None:
            self.step()  # the first frame: the only work done before the page appears
        else:
            self._refresh()  # a first frame scored before (start.py)

    def _make_widgets(self) -> None:
        lo, top, step = self.line.slider_range()
        self.header = widgets.HTML(markup.header_html(self.title, self.line.model))
        self.weights = widgets.HTML(markup.weights_html(self.line.model))
        self.legend = widgets.HTML(markup.legend_html(self.line.vmin, self.line.vmax))
        self.heatmap = widgets.Image(format="png")
        self.caption, self.verdict, self.counts = widgets.HTML(), widgets.HTML(), widgets.HTML()
        self.threshold = widgets.FloatSlider(
            value=self.line.threshold, min=lo, max=top, step=step, description="threshold",
            readout_format=".3f", continuous_update=True, layout=widgets.Layout(width="22em"))
        self.default_button = _button("model default", "auto", CSS["default"],
                                      tooltip="0.99 quantile of leave-one-out scores "
                                      "of good training images")
        self.play = widgets.Play(value=0, min=0, max=10**6, step=1, interval=1000,
                                 show_repeat=False, description="play")
        self.speed = widgets.SelectionSlider(options=SPEEDS, value=1000, description="speed",
                                             layout=widgets.Layout(width="15em"))
        self.next_button = _button("next image", "auto", CSS["next"], icon="step-forward")
        self.restart_button = _button("restart", "auto", CSS["restart"], icon="undo")
        self.loop = _toggle("loop", "auto", "start the line again at its end")
        self.filmstrip, self.timeline, self.message = (widgets.HTML(), widgets.HTML(),
                                                       widgets.HTML())
        self.presenter = _toggle("presenter", "auto", "hide the explanations, loop the line")
        self.fullscreen = _toggle("full screen", "auto", "the app fills the window")

    def _make_own_parts(self) -> None:
        self.upload = Uploader(self.add_file, self.refuse, self.on_batch)
        self.teach = _toggle("teach", "auto", "uploads are good parts to learn from")
        self.teach_fit = _button("learn 0 parts", "auto", disabled=True)
        self.camera = Camera(self.camera_frame, self._show_message)
        for name in STYLED:
            getattr(self, name).add_class(CSS[name])
        self.add_class(CSS["app"])

    def _wire(self) -> None:
        self.threshold.observe(self._on_threshold, "value")
        self.speed.observe(lambda ch: setattr(self.play, "interval", int(ch["new"])), "value")
        self.play.observe(self._on_tick, "value")
        self.next_button.on_click(lambda _: self.step())
        self.restart_button.on_click(lambda _: self.restart())
        self.default_button.on_click(
            lambda _: setattr(self.threshold, "value", self.line.default_threshold))
        self.teach_fit.on_click(lambda _: self.learn())
        self.loop.observe(lambda ch: setattr(self.line, "loop", ch["new"]), "value")
        self.presenter.observe(self._on_presenter, "value")
        self.fullscreen.observe(lambda ch: self._toggle_class(CSS["full"], ch["new"]), "value")

    def _toggle_class(self, css: str, on: bool) -> None:
        (self.add_class if on else self.remove_class)(css)

    def _on_presenter(self, change) -> None:
        self._toggle_class(CSS["presenter"], change["new"])
        self.loop.value = change["new"]  # a booth: the line runs on by itself

    def _show_message(self, text: str, kind: str = "error") -> None:
        self.message.value = markup.message_html(text, kind) if text else ""

    # ---- actions (tests call these directly) -----------------------------------------------
    def step(self) -> bool:
        """Next image onto the panel; False (and the Play widget paused) at the end."""
        try:
            shown = self.line.step()
        except PatchCoreError as e:
            self._show_message(f"skipped an image: {e}", "error")
            return not self.line.done
        if shown is None:
            self.play.playing = False
            self._ended = bool(self.line.samples)
            self._refresh()
            return False
        self._refresh()
        return True

    def restart(self) -> None:
        """Back to the first image of the line (the threshold is kept)."""
        self.line.reset()
        self._ended = False
        self.message.value = ""
        self.step()

    def set_threshold(self, value: float) -> None:
        """Move the threshold slider (the observer recounts the line)."""
        self.threshold.value = value

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

    def _follow_model(self, model, what: str, aspect: float) -> None:
        """Another model inspects from now on: title, model line, weights, colour scale,
        threshold slider, camera crop; the panel, verdict and tallies start empty."""
        self.line.use_model(model)
        self._ended = False
        self.title = f"{TITLE}: {what}"
        self.header.value = markup.header_html(self.title, model)
        self.weights.value = markup.weights_html(model)
        self.legend.value = markup.legend_html(self.line.vmin, self.line.vmax)
        lo, top, step = self.line.slider_range()
        self.threshold.max = max(top, self.threshold.max)  # widen first: min <= value <= max
        self.threshold.min, self.threshold.max, self.threshold.step = lo, top, step
        self.threshold.value = self.line.threshold
        self.camera.aspect = aspect
        size = Image.open(io.BytesIO(self.heatmap.value)).size if self.heatmap.value else (72, 32)
        self.heatmap.value = to_png(Image.new("RGB", size, (238, 238, 238)))  # no image yet
        self._refresh()

    # ---- drawing ---------------------------------------------------------------------------
    def _refresh(self, image: bool = True) -> None:
        line = self.line
        if image:
            if line.frame is not None:
                self.heatmap.value = line.frame.png
                score = line.frame.inspection.score
                if score > self.threshold.max:  # keep every score reachable by the slider
                    self.threshold.max = score * 1.05
            self.caption.value = markup.caption_html(line.frame, len(line.samples))
        self.verdict.value = markup.verdict_html(line, self._ended)
        self.counts.value = markup.counts_html(line.counts(), line.tallies())
        self.filmstrip.value = markup.filmstrip_html(line)
        self.timeline.value = markup.timeline_html(line)
