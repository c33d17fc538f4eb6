"""Live demo page: the ipywidgets that draw a `LiveDemo` (current image, verdict, counts, controls).

The page only draws the line (line.py) and forwards the controls to it; its HTML comes from
markup.py. It imports ipywidgets at once: whoever wants the line without widgets imports
line.py, and `build_app` (environment.py) imports this module only when a page is built.
An `ipywidgets.Play` widget calls `step()` on every tick, so the kernel never blocks. Your own
parts: the upload control (drop images on it) puts them on the line; in teach mode they are the
good images a new model is fitted on (parts.py); the camera (camera.py) scores live frames.
Under Voila the page starts full screen (`pcl-full`); the presenter toggle hides explanations.
"""

from __future__ import annotations

import io
import os
import tempfile
import time

import ipywidgets as widgets

from ...errors import PatchCoreError
from . import markup, parts
from .camera import Camera, DropZone
from .line import LiveDemo
from .markup import CSS

SPEEDS = (("slow", 2000), ("1 / s", 1000), ("2 / s", 500), ("fast", 250))  # Play interval, ms
STYLED = ("weights", "heatmap", "verdict", "counts", "threshold", "play", "speed", "filmstrip",
          "timeline", "message", "upload", "camera", "teach", "fullscreen", "presenter")
# ^ widgets whose CSS class is CSS[their attribute name]


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

    def __init__(self, line: LiveDemo, title: str = "PatchCore live inspection",
                 full: bool | None = None):
        super().__init__()
        self.line = line
        self._last_tick_end = 0.0
        self._uploads = tempfile.mkdtemp(prefix="pcl-uploads-")
        self._taught: list = []  # good images collected in teach mode
        self._make_widgets()
        self._make_own_parts()
        self._wire()
        side = widgets.VBox([self.verdict, self.counts, self.weights, self.message])
        picture = widgets.VBox([self.caption, self.heatmap])
        for box, css in ((side, "side"), (picture, "picture")):
            box.add_class(CSS.get(css, f"pcl-{css}"))
        main = widgets.HBox([picture, side])
        bar = widgets.HBox([self.play, self.speed, self.next_button, self.restart_button,
                            self.threshold, self.default_button, self.upload, self.teach,
                            self.teach_fit, self.camera, self.presenter, self.fullscreen])
        main.add_class(CSS["main"])
        bar.add_class(CSS["bar"])
        self.children = [widgets.HTML(markup.STYLE),
                         widgets.HTML(markup.header_html(title, line.model)), main, bar,
                         self.filmstrip, self.timeline,
                         widgets.HTML(markup.legend_html(line.vmin, line.vmax))]
        self.fullscreen.value = bool(os.environ.get("VOILA_BASE_URL")) if full is None else full
        if line.frame is None:
            self.step()  # the first frame: the only work done before the page appears
        else:
            self._refresh()  # a first frame scored before (start.py)

    def _make_widgets(self) -> None:
        lo, top, step = self.line.slider_range()
        self.weights = widgets.HTML(markup.weights_html(self.line.model))
        self.heatmap = widgets.Image(format="png")
        self.caption, self.verdict, self.counts = widgets.HTML(), widgets.HTML(), widgets.HTML()
        self.threshold = widgets.FloatSlider(
            value=self.line.threshold, min=lo, max=top, step=step, description="threshold",
            readout_format=".3f", continuous_update=True, layout=widgets.Layout(width="360px"))
        self.default_button = _button("model default", "120px", CSS["default"],
                                      tooltip="0.99 quantile of leave-one-out scores "
                                      "of good training images")
        self.play = widgets.Play(value=0, min=0, max=10**6, step=1, interval=1000,
                                 show_repeat=False, description="play")
        self.speed = widgets.SelectionSlider(options=SPEEDS, value=1000, description="speed",
                                             layout=widgets.Layout(width="240px"))
        self.next_button = _button("next image", "120px", CSS["next"], icon="step-forward")
        self.restart_button = _button("restart", "100px", CSS["restart"], icon="undo")
        self.filmstrip, self.timeline, self.message = (widgets.HTML(), widgets.HTML(),
                                                       widgets.HTML())
        self.presenter = widgets.ToggleButton(description="presenter", tooltip="hide the "
                                              "explanations", layout=widgets.Layout(width="100px"))
        self.fullscreen = widgets.ToggleButton(description="full screen", tooltip="the app "
                                               "fills the window", layout=widgets.Layout(
                                                   width="110px"))

    def _make_own_parts(self) -> None:
        self.upload = widgets.HBox([
            widgets.FileUpload(accept="image/*", multiple=True, description="upload",
                               icon="upload", layout=widgets.Layout(width="100px")),
            DropZone(self.add_files)])
        self.upload.children[0].observe(self._on_upload, "value")
        self.teach = widgets.ToggleButton(description="teach", tooltip="uploads are good parts "
                                          "to learn from", layout=widgets.Layout(width="80px"))
        self.teach_fit = _button("learn 0 parts", "130px", "pcl-teach-fit", disabled=True)
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
        self.presenter.observe(lambda ch: self._toggle_class(CSS["presenter"], ch["new"]),
                               "value")
        self.fullscreen.observe(lambda ch: self._toggle_class(CSS["full"], ch["new"]), "value")

    def _toggle_class(self, css: str, on: bool) -> None:
        (self.add_class if on else self.remove_class)(css)

    def _show_message(self, text: str) -> None:
        self.message.value = markup.message_html(text) if text else ""

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

    def add_files(self, files) -> list[str]:
        """Uploaded files [(name, bytes)]: on the line and scored, or (teach mode) kept as good
        parts to learn from. Returns the messages of the ones refused (never raises)."""
        refused, added = [], 0
        for name, content in files:
            try:
                path = parts.save_upload(self._uploads, name, bytes(content))
            except PatchCoreError as e:
                refused.append(str(e).replace(self._uploads + os.sep, ""))
                continue
            added += 1
            if self.teach.value:
                self._taught.append(path)
            else:
                self.line.add_part(path)
        self.teach_fit.description = f"learn {len(self._taught)} parts"
        self.teach_fit.disabled = len(self._taught) < parts.TEACH_MIN
        self._show_message("; ".join(refused) if refused else "")
        if added and not self.teach.value:
            self.step()
        return refused

    def learn(self) -> bool:
        """Teach: fit a new model on the good parts collected, then inspect with it."""
        try:
            model = parts.teach_model(self.line.model, self._taught)  # a PendingModel waits
        except PatchCoreError as e:
            self._show_message(f"teach: {e}")
            return False
        n, self._taught = len(self._taught), []
        self.line.use_model(model)
        lo, top, step = self.line.slider_range()
        self.threshold.max = max(top, self.threshold.max)  # widen first: min <= value <= max
        self.threshold.min, self.threshold.max, self.threshold.step = lo, top, step
        self.threshold.value = self.line.threshold
        self.teach.value, self.teach_fit.description = False, "learn 0 parts"
        self.teach_fit.disabled = True
        self._show_message(f"learned a new part from {n} good images: upload parts or start "
                           "the camera to inspect them")
        self._refresh()
        return True

    def camera_frame(self, jpeg: bytes) -> None:
        """One camera frame (JPEG bytes from camera.js): scored, shown on the big panel."""
        from PIL import Image

        try:
            with Image.open(io.BytesIO(jpeg)) as im:
                im.load()
                frame = im.convert("RGB")
        except (OSError, ValueError) as e:
            raise PatchCoreError(f"not a JPEG image ({e})") from None
        self.line.score_frame(frame)
        self._refresh()

    def _on_upload(self, change) -> None:
        files = [(f["name"], f["content"]) for f in change["new"]]
        if files:
            self.add_files(files)

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
