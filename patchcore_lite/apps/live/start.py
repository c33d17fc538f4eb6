"""Live demo quick start: the first frame scored by `--prepare`, the model loading behind it.

A page load takes a pre-heated kernel, and the next one must be warm before the next load.
Importing torch and torchvision costs a kernel 4-8 s of CPU, so the page does not wait for it:
`--prepare` scores the line's first image once and writes it, with what the page shows about
the model (threshold, heat scale, weights), to a start file (`PATCHCORE_LITE_START`). A kernel
draws that frame at once and loads the model in a background thread (`PendingModel`); the first
`step()` waits for it. The file is used only when data, model and weights match its key.

    write_start(path, cfg, line)        # --prepare, after line.step()
    read_start(path, cfg) -> dict|None  # the kernel: facts, parts in line order, first frame
"""

from __future__ import annotations

import base64
import json
import sys
import threading
from pathlib import Path

from .line import Inspection, Part

ENV_START = "PATCHCORE_LITE_START"
FACTS = ("threshold", "map_range", "weights_used", "weights_text", "description", "model_line")


def _key(cfg) -> dict:
    """What the start file was made for: data folder, model file (and its stamp), weights."""
    model = cfg.model
    stamp = [model.stat().st_mtime_ns, model.stat().st_size] if model and model.is_file() else None
    data_stamp = cfg.data.parent / ".complete"  # embedded data: regenerated means refitted
    return dict(data=str(Path(cfg.data).resolve()), model=str(model) if model else None,
                model_stamp=stamp, weights=cfg.weights,
                data_stamp=data_stamp.read_text() if data_stamp.is_file() else None)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write_start(path: Path, cfg, line) -> Path:
    """The start file for this configuration: facts about the model, the parts, frame 1."""
    from .markup import model_line, weights_text

    m, ins = line.model, line.frame.inspection
    facts = dict(threshold=float(m.threshold), map_range=list(m.map_range or ()) or None,
                 weights_used=m.weights_used, weights_text=weights_text(m),
                 description=m.describe(), model_line=model_line(m))
    parts = [dict(path=str(s.path), defect=s.defect, label=s.label,
                  mask=str(s.mask) if s.mask else None) for s in line.samples]
    doc = dict(key=_key(cfg), facts=facts, parts=parts, score=ins.score,
               thumb=_b64(ins.thumb), png=_b64(line.frame.png))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)
    return path


def read_start(path: str | Path, cfg) -> dict | None:
    """The start file's contents if it was made for `cfg`, else None (then the page waits)."""
    try:
        doc = json.loads(Path(path).read_text())
        if doc["key"] != json.loads(json.dumps(_key(cfg))) or set(FACTS) - set(doc["facts"]):
            return None
        parts = [Part(Path(p["path"]), p["defect"], p["label"],
                      Path(p["mask"]) if p["mask"] else None) for p in doc["parts"]]
        first = Inspection(parts[0], float(doc["score"]), base64.b64decode(doc["thumb"]))
        return dict(facts=doc["facts"], parts=parts, first=first,
                    png=base64.b64decode(doc["png"]))
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


class PendingModel:
    """A model that loads in a background thread; what the first frame needs is known already.

    Attributes in FACTS answer at once; anything else (predict, config, ...) waits for the model.
    """

    def __init__(self, load, facts: dict):
        self._facts = dict(facts, map_range=tuple(facts["map_range"] or ()) or None)
        self._model, self._error = None, None
        self._loader = load
        self._thread = threading.Thread(target=self._load, daemon=True)

    def start(self) -> PendingModel:
        """Start loading (after the page is built: the import of torch holds the GIL)."""
        if self._thread.ident is None:
            self._thread.start()
        return self

    def _load(self) -> None:
        try:
            self._model = self._loader()
        except BaseException as e:  # noqa: BLE001 - raised again where the model is used
            self._error = e
            print(f"live demo: the model did not load: {e}", file=sys.stderr)

    def wait(self):
        """The loaded model (blocks until it is there; raises what loading raised)."""
        self.start()._thread.join()
        if self._error is not None:
            raise self._error
        return self._model

    bank = True  # fitted: the start file was written from a fitted model

    def describe(self) -> str:
        """The model's one-line description, as --prepare saw it."""
        return self._facts["description"]

    def __getattr__(self, name: str):
        if name in FACTS:
            return self._facts[name]
        return getattr(self.wait(), name)
