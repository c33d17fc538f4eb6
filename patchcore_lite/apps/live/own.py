"""Live demo, your own parts on the page: uploads, camera frames, and teaching a new part.

`OwnParts` is the part of the page (`page.LiveApp` inherits it) that handles what a visitor
brings: each upload is scored as soon as it arrives (or, in teach mode, kept as a good part);
each camera frame is scored and counted; *capture good* keeps the current frame as a good part;
*learn* fits a new model on the parts kept (parts.teach_model) and the page follows it.
"""

from __future__ import annotations

import io
from pathlib import Path

from ...errors import PatchCoreError
from . import parts
from .line import Part


class OwnParts:
    """Uploads, camera frames and teach, for a page that has `line`, `teach`, `teach_fit`,
    `camera`, `_show_message`, `_refresh` and `_follow_model`."""

    def _init_own(self) -> None:
        self._taught: list[Path] = []  # good parts kept in teach mode or captured
        self._sources: set[str] = set()  # where they came from: uploads, camera
        self._refused: list[str] = []  # messages of this batch's refused uploads
        self._taught_from = ""
        self._folder: str | None = None

    @property
    def _uploads(self) -> str:
        """This kernel's upload folder, made at the first upload (removed when the kernel ends)."""
        if self._folder is None:
            self._folder = parts.upload_folder()
        return self._folder

    def on_batch(self, n: int) -> None:
        """A new batch of uploads starts: its messages replace the last batch's."""
        self._refused = []
        self._show_message("")

    def refuse(self, message: str) -> None:
        """An upload that was refused (oversize, not an image): its message, with the others'."""
        self._refused.append(message)
        self._show_message("; ".join(self._refused[-3:]), "error")

    def add_file(self, name: str, content: bytes) -> None:
        """One uploaded file: scored now (it goes to the big panel and the tallies), or in teach
        mode kept as a good part. PatchCoreError (naming the file) for a bad one."""
        path = parts.save_upload(self._uploads, name, bytes(content))
        if self.teach.value:
            self._keep(path, "uploads")
            return
        try:
            self.line.inspect(Part(path, source="upload"))
        except PatchCoreError as e:
            raise PatchCoreError(str(e).replace(str(path), path.name)) from None
        self._refresh()

    def add_files(self, files) -> list[str]:
        """Several uploads [(name, bytes)] in their order; returns the messages of those refused
        (never raises): the upload control's batch, for tests and notebooks."""
        self.on_batch(len(files))
        for name, content in files:
            try:
                self.add_file(name, content)
            except PatchCoreError as e:
                self.refuse(f"upload refused: {e}")
        if not self._refused:
            self._show_message("")
        return list(self._refused)

    def _keep(self, path: Path, source: str) -> None:
        """A good part to learn from (teach mode, or captured from the camera)."""
        self._taught.append(path)
        self._sources.add(source)
        self.teach_fit.description = f"learn {len(self._taught)} parts"
        self.teach_fit.disabled = len(self._taught) < parts.TEACH_MIN

    def learn(self) -> bool:
        """Teach: fit a new model on the good parts kept, then the whole page follows it."""
        try:
            model = parts.teach_model(self.line.model, self._taught)  # a PendingModel waits
        except PatchCoreError as e:
            self._show_message(f"teach: {e}", "error")
            return False
        n, sources = len(self._taught), " and ".join(sorted(self._sources))
        self._taught_from = f"part taught from {n} good images ({sources})"
        aspect = parts.aspect_of(self._taught)
        self._taught, self._sources = [], set()
        self.teach.value = False
        self.teach_fit.description, self.teach_fit.disabled = "learn 0 parts", True
        self.camera.captured = 0
        self._follow_model(model, self._taught_from, aspect)
        self._show_message(f"learned a new part from {n} good images ({sources}); counts "
                           "restart with this model: upload parts or use the camera", "ok")
        return True

    def camera_frame(self, jpeg: bytes, capture: bool = False) -> None:
        """One camera frame (JPEG bytes from camera.js): scored, shown and counted; with
        `capture`, also kept as a good part to learn from."""
        from PIL import Image

        try:
            with Image.open(io.BytesIO(jpeg)) as im:
                im.load()
                frame = im.convert("RGB")
        except (OSError, ValueError) as e:
            raise PatchCoreError(f"not a JPEG image ({e})") from None
        if capture:
            n = self.camera.captured + 1
            self._keep(parts.save_upload(self._uploads, f"capture-{n}.jpg", jpeg), "camera")
            self.camera.captured = n
            self._show_message(f"captured {n} good frames (learn takes {parts.TEACH_MIN} or "
                               "more)", "info")
        self.line.inspect(Part(Path("camera"), source="camera"), frame)
        self._refresh()
