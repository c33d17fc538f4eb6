"""Live demo browser widgets (anywidget): the camera that streams frames, and the drop zone.

The browser (camera.js) grabs a square frame from getUserMedia, JPEG-encodes it and sends it as
a binary message; `on_frame(jpeg_bytes)` scores it (page.py shows it on the big panel) and the
widget answers, and only then does the browser send the next frame: frames are skipped rather
than queued, so the rate is what the machine allows. `scored` counts the frames answered.
`DropZone(on_files)` (drop.js) hands over images dropped on it as [(name, bytes)].
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import anywidget
import traitlets

from ...errors import PatchCoreError


class Camera(anywidget.AnyWidget):
    """The camera control (CSS class `pcl-camera`): a button, the count of frames scored."""

    _esm = Path(__file__).with_name("camera.js")
    scored = traitlets.Int(0).tag(sync=True)
    streaming = traitlets.Bool(False).tag(sync=True)

    def __init__(self, on_frame, on_error=None, **kwargs):
        super().__init__(**kwargs)
        self._on_frame, self._on_error = on_frame, on_error or (lambda _: None)
        self.on_msg(self._message)

    def _message(self, _widget, content, buffers) -> None:
        if not isinstance(content, dict) or content.get("type") != "frame" or not buffers:
            return
        try:
            self._on_frame(bytes(buffers[0]))
        except PatchCoreError as e:
            self._on_error(f"camera frame skipped: {e}")
        except Exception as e:  # noqa: BLE001 - the page shows a message, the log the traceback
            traceback.print_exc(file=sys.stderr)
            self._on_error(f"camera frame skipped: {type(e).__name__}: {e}")
        finally:
            self.scored += 1
            self.send({"type": "scored", "n": self.scored})


class DropZone(anywidget.AnyWidget):
    """A box that takes images dragged onto it (CSS class `pcl-drop`, inside `pcl-upload`)."""

    _esm = Path(__file__).with_name("drop.js")

    def __init__(self, on_files, **kwargs):
        super().__init__(**kwargs)
        self._on_files = on_files
        self.on_msg(self._message)

    def _message(self, _widget, content, buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "files":
            names = [str(n) for n in content.get("names", [])]
            self._on_files(list(zip(names, (bytes(b) for b in buffers))))
