"""Live demo HTML and CSS, all in one place: the page's snippets, colours and stable CSS classes.

Each function takes plain data (a `LiveDemo`, a counts dict, a model) and returns an HTML string
for one `ipywidgets.HTML` of the page (page.py); nothing here imports widgets, so the strings
can be tested on their own. The `pcl-*` classes are what the browser test (and anyone styling
the page) relies on: keep them stable.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from .render import data_uri

if TYPE_CHECKING:
    from .line import Frame, LiveDemo

CSS = dict(app="pcl-app", heatmap="pcl-heatmap", verdict="pcl-verdict", counts="pcl-counts",
           threshold="pcl-threshold", play="pcl-play", speed="pcl-speed", weights="pcl-weights",
           next="pcl-next", restart="pcl-restart", default="pcl-threshold-default",
           filmstrip="pcl-filmstrip", timeline="pcl-timeline", message="pcl-message",
           error="pcl-error", upload="pcl-upload", camera="pcl-camera", teach="pcl-teach",
           fullscreen="pcl-fullscreen", presenter="pcl-presenter", full="pcl-full",
           explain="pcl-explain", main="pcl-main", side="pcl-side", bar="pcl-bar",
           header="pcl-header", legend="pcl-legend", loop="pcl-loop", teach_fit="pcl-teach-fit",
           caption="pcl-caption-box", picture="pcl-picture", belt="pcl-belt")
WARN_RGB = "#b35c00"  # a wrong verdict (missed defect, false alarm): as loud as a flag
# The page's stylesheet. .pcl-full: the app fills the window as a column (header, picture and
# side panel, controls, belt); the heatmap takes what height is left, so nothing scrolls from
# 1280x720 to 3840x2160, and no text is under 18 px at 1080 lines (1.75vh). .pcl-presenter hides
# the explanations (.pcl-explain). Without .pcl-full (JupyterLab) everything wraps to the output
# area's width.
STYLE = """<style>
.pcl-app { box-sizing: border-box; max-width: 100%; font-size: 14px; }
.pcl-app .widget-html-content { line-height: 1.25; }
.pcl-app .pcl-main { flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.pcl-app .pcl-heatmap { width: 100% !important; max-width: 960px; height: auto !important; }
.pcl-app .pcl-picture { flex: 1 1 420px; min-width: 0; }
.pcl-app .pcl-side { flex: 0 1 420px; min-width: 280px; }
.pcl-app .pcl-bar { flex-wrap: wrap; gap: 4px 10px; align-items: center; height: auto;
  overflow: visible; }
.pcl-app .pcl-belt { flex-wrap: wrap; gap: 4px 24px; align-items: flex-end; }
.pcl-app .pcl-timeline { flex: 1 1 300px; min-width: 0; }
.pcl-title { margin: 2px 0; font-size: 150%; font-weight: bold; line-height: 1.2; }
.pcl-model { color: #444; }
.pcl-verdict-word { font-size: 56px; font-weight: bold; line-height: 1.1; padding: 4px 16px;
  border-radius: 8px; color: white; display: inline-block; }
.pcl-verdict-more { display: block; font-size: max(32px, 0.5em); }
.pcl-tile > div:first-child { font-size: 32px; font-weight: bold; line-height: 1.1; }
.pcl-tiles { display: flex; flex-wrap: wrap; gap: 8px; margin: 6px 0; }
.pcl-tile { border: 1px solid #ccc; border-radius: 6px; padding: 2px 10px; min-width: 4em;
  text-align: center; }
.pcl-small { font-size: 85%; }
.pcl-upload-box, .pcl-camera-box { display: flex; gap: 6px; align-items: center; }
.pcl-upload-box button, .pcl-camera-box button { width: auto; padding: 0 0.8em; }
.pcl-drop { border: 2px dashed #888; border-radius: 6px; padding: 0 10px; color: #444; }
.pcl-drop.pcl-drop-over { border-color: #1a7f37; background: #eef6ee; }
.pcl-app.pcl-presenter .pcl-explain { display: none !important; }
.pcl-app.pcl-full { position: fixed; inset: 0; z-index: 1000; overflow: auto; margin: 0;
  background: white; padding: 0.5vh 1.2vw; display: flex; flex-direction: column;
  flex-wrap: nowrap; font-size: clamp(14px, 1.75vh, 38px);
  --jp-widgets-font-size: clamp(14px, 1.75vh, 38px); --jp-widgets-inline-height: 1.8em;
  --jp-widgets-inline-label-width: auto; --jp-widgets-slider-handle-size: 0.9em; }
.pcl-full > * { flex: 0 0 auto; }
.pcl-full .pcl-small { font-size: 100%; }
.pcl-full .widget-label, .pcl-full .widget-readout { min-width: 0; }
.pcl-full .widget-readout { width: auto; min-width: max-content; flex-shrink: 0; }
.pcl-full .pcl-main { flex: 1 1 0; min-height: 0; flex-wrap: nowrap; gap: 1.2vw; }
.pcl-full .pcl-picture { flex: 1 1 auto; height: 100%; min-height: 0; display: flex;
  flex-direction: column; }
.pcl-full .pcl-picture > * { flex: 0 0 auto; }
.pcl-full .pcl-heatmap { flex: 1 1 0 !important; min-height: 0; max-width: none;
  width: 100% !important; height: auto !important; object-fit: contain;
  object-position: left top; }
.pcl-full .pcl-side { flex: 0 0 clamp(300px, 30vw, 1100px); height: 100%; overflow: hidden; }
.pcl-full .pcl-verdict-word { font-size: clamp(44px, min(8vh, 5vw), 180px); }
.pcl-full .pcl-tile > div:first-child { font-size: clamp(28px, 4.5vh, 100px); }
.pcl-full .pcl-title { font-size: clamp(20px, 2.6vh, 56px); }
.pcl-full .pcl-filmstrip img { width: 4.2em; height: 4.2em; }
.pcl-full .pcl-timeline svg { height: 5em; }
</style>"""
PASS_RGB, FLAG_RGB = "#1a7f37", "#cf222e"
FILMSTRIP = 8  # images kept visible on the belt
MUTED = "color:#555"
# matplotlib's inferno at 8 even steps: the legend needs no matplotlib import before a frame
INFERNO_STOPS = ("#000003", "#270b52", "#65156e", "#9e2963", "#d44841", "#f57c15", "#fac128",
                 "#fcfea4")
BOX = "padding:4px 10px;border-radius:4px;display:inline-block"  # the weights badge


def weights_text(model) -> str:
    """What the app says about the weights: never hide a random init."""
    known = getattr(model, "weights_text", None)  # a model still loading (start.py) knows it
    if known:
        return known
    from ...backbone import describe_weights  # torchvision: only once the model is there

    return describe_weights(model.weights_used)


def error_html(message: str, title: str) -> str:
    """A readable error message with what to check (the page's `pcl-error` panel)."""
    return (
        f"<div style='border:2px solid {FLAG_RGB};border-radius:6px;padding:12px 16px;"
        f"background:#fff5f5;max-width:900px'><b style='color:{FLAG_RGB}'>"
        f"{html.escape(title)}</b><p class='pcl-error-text' style='margin:8px 0 0 0;"
        f"white-space:pre-wrap'>{html.escape(message)}</p>"
        f"<p style='margin:8px 0 0 0;{MUTED}'>Check <code>DATA=</code> (a category folder in "
        "MVTec AD layout: <code>train/good</code>, <code>test/&lt;defect&gt;</code>) and "
        "<code>MODEL=</code> (a file saved by <code>python -m patchcore_lite fit</code>), "
        "then start again.</p></div>")


def model_line(model) -> str:
    """One line about the model: backbone, layers, weights, sampling, input size, bank size."""
    known = getattr(model, "model_line", None)  # a model still loading (start.py) knows it
    if isinstance(known, str):
        return known
    n = (getattr(model, "info", None) or {}).get("memory_bank_size")
    if n is None:  # a model saved without it: count the bank's rows
        n = int(getattr(model.bank, "patches", model.bank).shape[0])
    return f"{model.describe()}; memory bank {n:,} patches"


def header_html(title: str, model) -> str:
    """The page title and, right after it, the line that says which model inspects."""
    return (f"<h2 class='pcl-title'>{html.escape(title)}</h2>"
            f"<div class='pcl-model'>{html.escape(model_line(model))}</div>")


def weights_html(model) -> str:
    """The weights badge: green for pretrained, yellow with a warning for a random init."""
    text = weights_text(model)
    if model.weights_used == "random":
        style, note = ("background:#fff1cc;border:1px solid #d4a72c", " &mdash; heatmaps "
                       "show what a random-init backbone finds, not what the paper "
                       "measures (see README: Weights)")
    else:
        style, note = "background:#eef6ee;border:1px solid #8c8", ""
    return (f"<div style='{style};{BOX}'"
            f">Weights: <b class='pcl-weights-text'>{html.escape(text)}</b>{note}</div>")


def _truth(label: int | None, defect: str) -> str:
    if label is None:
        return " &middot; truth unknown"
    kind = "good" if not label else f"defective ({html.escape(defect)})"
    return f" &middot; truth: {kind}"


def caption_html(frame: Frame | None, total: int) -> str:
    """Above the big panel: which image (of the line, an upload, a camera frame), its truth."""
    if frame is None:
        return "<div class='pcl-caption'>no image yet</div>"
    s, source = frame.inspection.sample, frame.inspection.source
    name = f"<code>{html.escape(s.path.name)}</code>"
    if source == "camera":
        where = f"camera frame {frame.number}"
    elif source == "upload":
        where = f"upload {frame.number}: {name}{_truth(s.label, s.defect)}"
    else:
        lap = f" (round {frame.number})" if frame.number > 1 else ""
        where = (f"image {frame.index + 1} of {max(total, frame.index + 1)}{lap}: "
                 f"{name}{_truth(s.label, s.defect)}")
    return (f"<div class='pcl-caption'>{where}<div class='pcl-explain'>"
            "left: camera image" + (", ground truth outlined in cyan" if s.mask else "") +
            "; right: PatchCore heatmap</div></div>")


def _outcome(flagged: bool, label: int | None) -> tuple[str, str, str]:
    """(key, words, colour) of whether the verdict was right; labels unknown: ('unknown', ...)."""
    if label is None:
        return "unknown", "", ""
    if flagged == bool(label):
        return ("caught", "DEFECT CAUGHT", FLAG_RGB) if label else ("correct", "CORRECT",
                                                                    PASS_RGB)
    return ("missed", "MISSED DEFECT", WARN_RGB) if label else ("false-alarm", "FALSE ALARM",
                                                                WARN_RGB)


def verdict_html(line: LiveDemo, end: bool = False) -> str:
    """PASS or FLAGGED for the image under the camera, in large type, and (labels known)
    whether that was right: a missed defect as loud as a flag; `end` adds the end-of-line note."""
    note = (f"<div class='pcl-end'>End of the line: all {len(line.samples)} images inspected. "
            "Press restart (or turn on loop) to run it again.</div>") if end else ""
    if line.frame is None:
        return (f"<div data-verdict='none'>no image yet: upload one or start the camera</div>"
                f"{note}")
    ins = line.frame.inspection
    flagged = line.flagged(ins.score)
    word, colour, key = ("FLAGGED", FLAG_RGB, "flagged") if flagged else ("PASS", PASS_RGB, "pass")
    outcome, words, _ = _outcome(flagged, ins.label)
    if words:  # a wrong verdict takes the warning colour for the whole box
        colour = WARN_RGB if outcome in ("missed", "false-alarm") else colour
        word += f" <span class='pcl-verdict-more'>&mdash; {words}</span>"
    cmp = ">=" if flagged else "<"
    return (f"<div class='pcl-verdict-box' data-verdict='{key}' data-outcome='{outcome}' "
            f"data-score='{ins.score}'><span class='pcl-verdict-word' style='background:"
            f"{colour}'>{word}</span><div style='margin-top:4px'>score <b>{ins.score:.3f}"
            f"</b> {cmp} threshold {line.threshold:.3f}</div></div>{note}")


MESSAGE_RGB = dict(error=FLAG_RGB, ok=PASS_RGB, info="#333")


def message_html(text: str, kind: str = "error") -> str:
    """A notice under the verdict, coloured by what it is: error (red), ok (green), info."""
    return (f"<div class='pcl-message-text' data-kind='{kind}' style='color:"
            f"{MESSAGE_RGB[kind]}'>{html.escape(text)}</div>")


def _tile(key: str, label: str, value, colour: str, hint: str) -> str:
    v = "&ndash;" if value is None else str(value)
    return (f"<div class='pcl-tile' title='{hint}'><div class='pcl-{key}' style='color:{colour}'"
            f">{v}</div><div class='pcl-small' style='{MUTED}'>{label}</div></div>")


SOURCE_WORDS = dict(line="line", upload="uploads", camera="camera")


def counts_html(c: dict, tallies: dict | None = None) -> str:
    """The count tiles (`pcl-shown`, `pcl-passed`, ...) of `LiveDemo.counts()`, then one row
    per source (`LiveDemo.tallies()`): line images, uploads, camera frames."""
    tiles = [_tile("shown", "inspected", c["shown"], "#333", "images shown so far"),
             _tile("passed", "passed", c["passed"], PASS_RGB, "score below the threshold"),
             _tile("flagged", "flagged", c["flagged"], FLAG_RGB,
                   "score at or above the threshold"),
             _tile("missed", "missed", c["missed"], WARN_RGB, "defective but passed"),
             _tile("false-alarms", "false alarms", c["false_alarms"], WARN_RGB,
                   "good but flagged")]
    rows = [f"<div class='pcl-tally' data-source='{k}'>{SOURCE_WORDS[k]}: {n} inspected, "
            f"{p} passed, {f} flagged</div>" for k, (n, p, f) in (tallies or {}).items()]
    return (f"<div class='pcl-tiles'>{''.join(tiles)}</div>{''.join(rows)}"
            "<div class='pcl-explain pcl-small' style='color:#555'>counts restart with each "
            "model</div>")


def legend_html(vmin: float, vmax: float) -> str:
    """The heatmap's colour bar from vmin to vmax (the same scale for every image)."""
    stops = ", ".join(INFERNO_STOPS)
    return (f"<div class='pcl-explain pcl-small' style='{MUTED}'>heatmap colour, same scale for "
            "every image (dark = like the good training parts):</div>"
            f"<div style='display:flex;align-items:center;gap:6px'>"
            f"<span class='pcl-vmin'>{vmin:.3g}</span><span style='display:inline-block;"
            f"width:8em;height:0.7em;background:linear-gradient(to right, {stops})'></span>"
            f"<span class='pcl-vmax'>{vmax:.3g}</span></div>")


def filmstrip_html(line: LiveDemo) -> str:
    """The last FILMSTRIP thumbnails, newest first, framed by their verdict now."""
    items = []
    for h in line.history[-FILMSTRIP:][::-1]:
        colour = FLAG_RGB if line.flagged(h.score) else PASS_RGB
        truth = {None: h.source if h.source != "line" else "", 0: "good", 1: "defect"}[h.label]
        items.append(
            f"<div style='text-align:center'><img src='{data_uri(h.thumb)}' width='72' "
            f"height='72' style='border:3px solid {colour};display:block'>"
            f"{h.score:.2f}<br><span style='{MUTED}'>{truth}&nbsp;</span></div>")
    return (f"<div class='pcl-explain pcl-small' style='{MUTED}'>on the belt, newest first "
            "(frame: green = passed, red = flagged at the current threshold)</div>"
            f"<div style='display:flex;gap:6px'>{''.join(items)}</div>")


TIMELINE = 200  # inspections on the timeline (the latest)
DOT = "stroke-width='7' stroke-linecap='round' vector-effect='non-scaling-stroke'"


def timeline_html(line: LiveDemo, width: int = 720, height: int = 90) -> str:
    """The latest scores as an SVG dot plot with the threshold line: green good, red defective,
    grey unknown (uploads, camera)."""
    scores, labels = line.scores()[-TIMELINE:], line.labels()[-TIMELINE:]
    if len(scores) == 0:
        return ""
    lo = min(float(scores.min()), line.threshold, line.vmin)
    hi = max(float(scores.max()), line.threshold) * 1.05 + 1e-9
    n = max(min(max(len(line.samples), len(line.history)), TIMELINE), 2)

    def y(v: float) -> float:
        return 8 + (height - 16) * (1 - (v - lo) / max(hi - lo, 1e-12))

    dots = []
    for i, (s, lab) in enumerate(zip(scores, labels)):
        colour = "#888" if lab < 0 else (FLAG_RGB if lab else PASS_RGB)
        x = 10 + (width - 20) * i / (n - 1)
        dots.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y(s):.1f}' y2='{y(s):.1f}' "
                    f"stroke='{colour}' {DOT}/>")  # a round dot however the plot is stretched
    ty = y(line.threshold)
    return (f"<div class='pcl-explain pcl-small' style='{MUTED}'>latest scores (green = good, "
            "red = defective, grey = unknown; dashed = threshold)</div>"
            f"<svg viewBox='0 0 {width} {height}' preserveAspectRatio='none' width='100%' "
            f"height='{height}' style='border:1px solid #ddd;display:block'>"
            f"<rect x='0' y='0' width='{width}' height='{ty:.1f}' fill='#fbeaea'/>"
            f"<line x1='0' x2='{width}' y1='{ty:.1f}' y2='{ty:.1f}' stroke='#333' "
            f"stroke-dasharray='6,4' vector-effect='non-scaling-stroke'/>{''.join(dots)}</svg>")
