"""Live demo browser widgets (anywidget): the camera that streams frames, and the uploads.

The browser (camera.js) crops each frame to the model's aspect (`aspect`, the width / height of
the images it learned from), JPEG-encodes it and sends it as a binary message; `on_frame(jpeg,
capture)` scores it (page.py shows it on the big panel) and the widget answers, and only then
does the browser send the next frame: frames are skipped rather than queued, so the rate is what
the machine allows. `scored` counts the frames answered, `captured` the good ones kept to learn.
`Uploader(on_file, on_refused)` (upload.js) takes files from its button or dropped on it and
hands each over as (name, bytes) as soon as all its pieces arrived (pieces of 1 MiB: batches of
any size pass the server's message limit); a file over `limit` is refused in the browser.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import anywidget
import traitlets

from ...errors import PatchCoreError
from .parts import MAX_UPLOAD_BYTES, check_size


def _guarded(action, on_error, what: str) -> None:
    """Run `action()`; a failure becomes a message on the page (the log keeps the traceback)."""
    try:
        action()
    except PatchCoreError as e:
        on_error(f"{what}: {e}")
    except Exception as e:  # noqa: BLE001 - the page shows a message, the log the traceback
        traceback.print_exc(file=sys.stderr)
        on_error(f"{what}: {type(e).__name__}: {e}")


class Camera(anywidget.AnyWidget):
    """The camera control (CSS class `pcl-camera`): a button, the count of frames scored, and
    (streaming) *capture good* with the count of frames captured."""

    _esm = Path(__file__).with_name("camera.js")
    scored = traitlets.Int(0).tag(sync=True)
    captured = traitlets.Int(0).tag(sync=True)
    streaming = traitlets.Bool(False).tag(sync=True)
    aspect = traitlets.Float(1.0).tag(sync=True)  # width / height the frames are cropped to

    def __init__(self, on_frame, on_error=None, **kwargs):
        super().__init__(**kwargs)
        self._on_frame, self._on_error = on_frame, on_error or (lambda _: None)
        self.on_msg(self._message)

    def _message(self, _widget, content, buffers) -> None:
        if not isinstance(content, dict) or content.get("type") != "frame" or not buffers:
            return
        jpeg, capture = bytes(buffers[0]), bool(content.get("capture"))
        try:
            _guarded(lambda: self._on_frame(jpeg, capture), self._on_error,
                     "camera frame skipped")
        finally:
            self.scored += 1
            self.send({"type": "scored", "n": self.scored})


class Uploader(anywidget.AnyWidget):
    """The upload button and drop zone (CSS class `pcl-drop` inside `pcl-upload`)."""

    _esm = Path(__file__).with_name("upload.js")
    limit = traitlets.Int(MAX_UPLOAD_BYTES).tag(sync=True)  # bytes per file

    def __init__(self, on_file, on_refused, on_batch=None, **kwargs):
        super().__init__(**kwargs)
        self._on_file, self._on_refused = on_file, on_refused
        self._on_batch = on_batch or (lambda n: None)
        self._pieces: dict[str, list[bytes]] = {}
        self.on_msg(self._message)

    def _message(self, _widget, content, buffers) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        name = str(content.get("name", "upload")) if kind else ""
        if kind == "batch":
            self._on_batch(int(content.get("count", 0)))
        elif kind == "oversize":
            _guarded(lambda: check_size(name, int(content["size"]), self.limit),
                     self._on_refused, "upload refused")
        elif kind == "failed":
            self._on_refused(f"upload refused: {name}: {content.get('error', '')}")
        elif kind == "piece" and buffers:
            key = str(content.get("id"))
            got = self._pieces.setdefault(key, [])
            got.append(bytes(buffers[0]))
            if len(got) >= int(content.get("count", 1)):
                data = b"".join(self._pieces.pop(key))
                _guarded(lambda: self._on_file(name, data), self._on_refused, "upload refused")
