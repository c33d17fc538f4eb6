"""Live demo line model: test images pass the camera one per `step()`; the history is recounted.

No widgets here: the page (page.py) only draws a `LiveDemo`, and tests drive it directly.
Nothing is scored in advance; every image shown is remembered as (score, label), so moving the
threshold recounts the whole line so far (the counts of `evaluation.counts.confusion_counts`).

    line = LiveDemo.from_folder(category, model)
    line.step()          # -> Inspection(sample, score, thumb); line.frame.png is the big panel
    line.inspect(part)   # an upload or a camera frame, scored now, counted with its source
    line.counts(t)       # shown, passed, flagged, missed, false_alarms at threshold t
    line.tallies(t)      # {source: (shown, passed, flagged)}: line, upload, camera

`loop` (a booth) starts the line again at its end; the history goes on until the model changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import PatchCoreError
from .render import GAP, render_overlay, to_png

THUMB = 72  # filmstrip thumbnail side, pixels
KEEP_THUMBS = 16  # older inspections drop their thumbnail: a camera runs for hours
SOURCES = ("line", "upload", "camera")


@dataclass
class Part:
    """An image on the line: what `data.Sample` says (label 1 = defective, None = unknown).
    Importing data.py means importing torch; the page's first frame comes without it."""

    path: Path
    defect: str = ""
    label: int | None = None
    mask: Path | None = None
    source: str = "line"  # or "upload", "camera"


@dataclass
class Inspection:
    """One image that went past the camera."""

    sample: Part  # or a data.Sample: the same fields
    score: float
    thumb: bytes  # small PNG of the overlay, for the filmstrip

    @property
    def label(self) -> int | None:
        """1 = defective, 0 = good, as the folder says."""
        return self.sample.label

    @property
    def source(self) -> str:
        """Where the image came from: line, upload or camera."""
        return getattr(self.sample, "source", "line")


@dataclass
class Frame:
    """The image under the camera now: what the big panel shows."""

    index: int  # position on the line, 0-based; -1 for an upload or a camera frame
    inspection: Inspection
    png: bytes
    number: int = 0  # the how-many-th of its source (uploads, camera frames), or pass of the line


class LiveDemo:
    """Test images in a fixed shuffled order; `step()` scores the next one.

    `samples`: `data.Sample`s or `Part`s (label 1 = defective, None = unknown) or image paths.
    The threshold starts at the model's default (learned from good training images only).
    """

    def __init__(self, model, samples, threshold: float | None = None, shuffle: bool = True,
                 seed: int = 0):
        if model.bank is None:
            raise PatchCoreError("model: not fitted")
        samples = [s if hasattr(s, "label") else Part(Path(s)) for s in samples]
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
        self.loop = False
        self._next, self.passes, self._numbers = 0, 1, {}

    @classmethod
    def from_folder(cls, category: str | Path, model, **kw) -> LiveDemo:
        """The line of a category's test images (MVTec layout)."""
        from ...data import test_samples

        return cls(model, test_samples(category), **kw)

    def restore(self, inspection: Inspection, png: bytes) -> None:
        """Put back a first frame scored earlier (start.py): the line then goes on from image 2."""
        self.history[:] = [inspection]
        self.frame = Frame(0, inspection, png, 1)
        self._next, self._numbers = 1, {"line": 1}

    # ---- stepping ----------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Every image of the line has been shown (with `loop`, never while it has images)."""
        return self._next >= len(self.samples) and not (self.loop and self.samples)

    def step(self) -> Inspection | None:
        """Score the next image (about 0.1-0.3 s on a CPU); None at the end of the line.

        An unreadable image is skipped: its message goes to `errors` and PatchCoreError is
        raised after the line has moved on, so the next call continues with the next image."""
        if self.done:
            return None
        if self._next >= len(self.samples):  # loop: the line starts again
            self._next, self.passes = 0, self.passes + 1
        index, sample = self._next, self.samples[self._next]
        self._next += 1
        return self._inspect(sample, index)

    def inspect(self, part: Part, image: Image.Image | None = None) -> Inspection:
        """Score an image of your own now (an upload, or a camera frame given as `image`): it
        goes to the big panel and into the history with its source; the line stays where it is."""
        return self._inspect(part, -1, image)

    def _inspect(self, sample, index: int, image: Image.Image | None = None) -> Inspection:
        """Score one image, draw it (image | overlay) and remember it."""
        from ...data import open_image, resize_crop, to_tensor
        from ...masks import load_mask

        c = self.model.config
        try:
            full = to_tensor(image.convert("RGB") if image is not None else
                             open_image(sample.path))  # (3, H, W) before resize/crop
            rgb = resize_crop(full, c.resize, c.crop)  # (3, S, S) as the model sees it
            mask = load_mask(sample, c.resize, c.crop).numpy() if sample.mask else None
            scores, maps = self.model.predict(full[None], progress=False)  # no bar per image
        except PatchCoreError as e:
            self.errors.append(str(e))
            raise
        rgb = (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # (S, S, 3)
        big = render_overlay(rgb, maps[0], mask, self.vmin, self.vmax, gap=GAP)  # (S, 2S+GAP, 3)
        overlay = big[:, rgb.shape[1] + GAP:]  # the right panel
        thumb = to_png(Image.fromarray(overlay).resize((THUMB, THUMB), Image.BILINEAR))
        shown = Inspection(sample, float(scores[0]), thumb)
        self.history.append(shown)
        if len(self.history) > KEEP_THUMBS:
            self.history[-KEEP_THUMBS - 1].thumb = b""
        source = shown.source
        self._numbers[source] = self._numbers.get(source, 0) + 1
        number = self.passes if index >= 0 else self._numbers[source]
        self.frame = Frame(index, shown, to_png(Image.fromarray(big)), number)
        return shown

    def use_model(self, model) -> None:
        """Inspect with another model from now on (a taught one): its threshold and heat scale,
        an empty line that your own parts (uploads, camera) fill, the tallies from zero."""
        self.model, self.samples = model, []
        self.default_threshold = self.threshold = float(model.threshold)
        lo, hi = model.map_range or (0.0, 2.0 * self.default_threshold)
        self.vmin, self.vmax = float(lo), float(hi)
        self.reset()

    def reset(self) -> None:
        """Back to the start of the line, tallies from zero (the threshold is kept)."""
        self.history.clear()
        self.errors.clear()
        self.frame = None
        self._next, self.passes, self._numbers = 0, 1, {}

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
            from ...evaluation.counts import confusion_counts

            c = confusion_counts(labels[known], scores[known], t)
            out.update(missed=c["fn"], false_alarms=c["fp"], caught=c["tp"], good_passed=c["tn"])
        return out

    def tallies(self, threshold: float | None = None) -> dict[str, tuple[int, int, int]]:
        """{source: (shown, passed, flagged)} of each source with images shown (SOURCES order)."""
        t = self.threshold if threshold is None else float(threshold)
        out = {}
        for source in SOURCES:
            scores = [h.score for h in self.history if h.source == source]
            if scores:
                flagged = int(np.sum(np.asarray(scores) >= t))
                out[source] = (len(scores), len(scores) - flagged, flagged)
        return out

    def slider_range(self) -> tuple[float, float, float]:
        """(low, high, step) of the threshold slider: from the heat scale's low end to well past
        the default threshold (the page widens it when a score goes beyond)."""
        lo, thr = self.vmin, self.default_threshold
        top = max(lo + 3.0 * (thr - lo), thr * 1.5 if thr > 0 else 1.0)
        return min(lo, thr), top, (top - lo) / 400
