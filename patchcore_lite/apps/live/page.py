"""Live demo page: the ipywidgets that draw a `LiveDemo` (current image, verdict, counts, controls).

The page only draws the line (line.py) and forwards the controls to it; its HTML comes from
markup.py. It imports ipywidgets at once: whoever wants the line without widgets imports
line.py, and `build_app` (environment.py) imports this module only when a page is built.
An `ipywidgets.Play` widget calls `step()` on every tick, so the kernel never blocks.
"""

from __future__ import annotations

import time

import ipywidgets as widgets

from ...errors import PatchCoreError
from . import markup
from .line import LiveDemo
from .markup import CSS

SPEEDS = (("slow", 2000), ("1 / s", 1000), ("2 / s", 500), ("fast", 250))  # Play interval, ms
STYLED = ("weights", "heatmap", "verdict", "counts", "threshold", "play", "speed", "filmstrip",
          "timeline", "message")  # widgets whose CSS class is CSS[their attribute name]


def error_panel(message: str, title: str = "The live demo could not start") -> widgets.HTML:
    """A readable message on the page instead of a traceback (CSS class `pcl-error`)."""
    w = widgets.HTML(markup.error_html(message, title))
    w.add_class(CSS["error"])
    return w


def _button(description: str, width: str, css: str, **kw) -> widgets.Button:
    b = widgets.Button(description=description, layout=widgets.Layout(width=width), **kw)
    b.add_class(css)
    return b


class LiveApp(widgets.VBox):
    """The presentation: current image + heatmap, verdict, counts, threshold, play/speed."""

    def __init__(self, line: LiveDemo, title: str = "PatchCore live inspection"):
        super().__init__()
        self.line = line
        self._last_tick_end = 0.0
        self._make_widgets()
        self._wire()
        controls = widgets.VBox([
            self.verdict, self.counts,
            widgets.HBox([self.play, self.speed]),
            widgets.HBox([self.next_button, self.restart_button]),
            widgets.HBox([self.threshold, self.default_button]),
            widgets.HTML(markup.legend_html(line.vmin, line.vmax)),
        ], layout=widgets.Layout(margin="0 0 0 16px"))
        picture = widgets.VBox([self.caption, self.heatmap])
        self.children = [widgets.HTML(markup.header_html(title, line.model)), self.weights,
                         widgets.HBox([picture, controls]), self.filmstrip, self.timeline,
                         self.message]
        if line.frame is None:
            self.step()  # the first frame: the only work done before the page appears
        else:
            self._refresh()  # a first frame scored before (start.py)

    def _make_widgets(self) -> None:
        lo, top, step = self.line.slider_range()
        self.weights = widgets.HTML(markup.weights_html(self.line.model))
        self.heatmap = widgets.Image(format="png", layout=widgets.Layout(width="600px"))
        self.caption, self.verdict, self.counts = widgets.HTML(), widgets.HTML(), widgets.HTML()
        self.threshold = widgets.FloatSlider(
            value=self.line.threshold, min=lo, max=top, step=step, description="threshold",
            readout_format=".3f", continuous_update=True, layout=widgets.Layout(width="420px"))
        self.default_button = _button("model default", "120px", CSS["default"],
                                      tooltip="0.99 quantile of leave-one-out scores "
                                      "of good training images")
        self.play = widgets.Play(value=0, min=0, max=10**6, step=1, interval=1000,
                                 show_repeat=False, description="play")
        self.speed = widgets.SelectionSlider(options=SPEEDS, value=1000, description="speed",
                                             layout=widgets.Layout(width="260px"))
        self.next_button = _button("next image", "120px", CSS["next"], icon="step-forward")
        self.restart_button = _button("restart", "100px", CSS["restart"], icon="undo")
        self.filmstrip, self.timeline, self.message = (widgets.HTML(), widgets.HTML(),
                                                       widgets.HTML())
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

    # ---- actions (tests call these directly) -----------------------------------------------
    def step(self) -> bool:
        """Next image onto the panel; False (and the Play widget paused) at the end."""
        try:
            shown = self.line.step()
        except PatchCoreError as e:
            self.message.value = markup.message_html(f"skipped an image: {e}")
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
        """Back to the first image of the line (the threshold is kept)."""
        self.line.reset()
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

    # ---- drawing ---------------------------------------------------------------------------
    def _refresh(self, image: bool = True, end: bool = False) -> None:
        line = self.line
        if line.frame is not None and image:
            self.heatmap.value = line.frame.png
            self.caption.value = markup.caption_html(line.frame, len(line.samples))
        self.verdict.value = markup.verdict_html(line, end)
        self.counts.value = markup.counts_html(line.counts())
        self.filmstrip.value = markup.filmstrip_html(line)
        self.timeline.value = markup.timeline_html(line)
