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
           explain="pcl-explain", main="pcl-main", side="pcl-side", bar="pcl-bar")
WARN_RGB = "#b35c00"  # a wrong verdict (missed defect, false alarm): as loud as a flag
# The page's stylesheet. .pcl-full: the app fills the window and scales with it (1280x720 to
# 3840x2160); .pcl-presenter hides the explanations (.pcl-explain). Without .pcl-full (JupyterLab)
# everything wraps to the output area's width.
STYLE = """<style>
.pcl-app { box-sizing: border-box; max-width: 100%; font-size: 14px; }
.pcl-app .pcl-main { flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.pcl-app .pcl-heatmap { width: 100% !important; max-width: 960px; height: auto !important; }
.pcl-app .pcl-picture { flex: 1 1 420px; min-width: 0; }
.pcl-app .pcl-side { flex: 0 1 420px; min-width: 280px; }
.pcl-app .pcl-bar { flex-wrap: wrap; gap: 4px 12px; align-items: center; }
.pcl-verdict-word { font-size: 56px; font-weight: bold; line-height: 1.1; padding: 4px 16px;
  border-radius: 8px; color: white; display: inline-block; }
.pcl-tile > div:first-child { font-size: 32px; font-weight: bold; line-height: 1.1; }
.pcl-upload { gap: 4px; align-items: center; }
.pcl-drop { border: 2px dashed #888; border-radius: 6px; padding: 2px 10px; color: #555; }
.pcl-drop.pcl-drop-over { border-color: #1a7f37; background: #eef6ee; }
.pcl-app.pcl-full > * { flex-shrink: 0; }
.pcl-bar { height: auto !important; overflow: visible !important; }
.pcl-verdict-more { display: block; font-size: max(48px, 0.6em); }
.pcl-camera-box { display: flex; gap: 8px; align-items: center; }
.pcl-app.pcl-presenter .pcl-explain { display: none !important; }
.pcl-app.pcl-full { position: fixed; inset: 0; z-index: 1000; overflow: auto; margin: 0;
  background: white; padding: 1vh 1.5vw; font-size: clamp(14px, 1.4vh, 30px); }
.pcl-full .pcl-main { flex-wrap: nowrap; }
.pcl-full .pcl-picture { flex: 1 1 auto; }
.pcl-full .pcl-heatmap { max-width: none; width: min(100%, calc((100vh - 16em) * 2.1))
  !important; }
.pcl-full .pcl-side { flex: 0 0 clamp(300px, 30vw, 1100px); }
.pcl-full .pcl-verdict-word { font-size: clamp(48px, min(9vh, 5vw), 190px); }
.pcl-full .pcl-tile > div:first-child { font-size: clamp(32px, 5vh, 110px); }
.pcl-full h2 { font-size: clamp(20px, 2.6vh, 56px); }
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


def header_html(title: str, model) -> str:
    """The page title and one line describing the model."""
    return (f"<h2 style='margin:4px 0'>{html.escape(title)}</h2>"
            f"<div class='pcl-explain' style='{MUTED};font-size:90%'>"
            f"{html.escape(model.describe())}</div>")


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


def caption_html(frame: Frame, total: int) -> str:
    """Above the big panel: which image of the line (or the camera), its file, its truth."""
    s = frame.inspection.sample
    where = ("camera frame" if frame.index < 0 else
             f"image {frame.index + 1} of {max(total, frame.index + 1)}: "
             f"<code>{html.escape(s.path.name)}</code>{_truth(s.label, s.defect)}")
    return (f"<div class='pcl-caption' style='color:#333'>{where}<div class='pcl-explain'>"
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
    if line.frame is None:
        return "<div data-verdict='none'>no image yet: upload one or start the camera</div>"
    ins = line.frame.inspection
    flagged = line.flagged(ins.score)
    word, colour, key = ("FLAGGED", FLAG_RGB, "flagged") if flagged else ("PASS", PASS_RGB, "pass")
    outcome, words, _ = _outcome(flagged, ins.label)
    if words:  # a wrong verdict takes the warning colour for the whole box
        colour = WARN_RGB if outcome in ("missed", "false-alarm") else colour
        word += f" <span class='pcl-verdict-more'>&mdash; {words}</span>"
    cmp = ">=" if flagged else "<"
    tail = (f"<div class='pcl-explain' style='margin-top:4px;{MUTED}'>End of the line: all "
            f"{len(line.samples)} images inspected. Press restart (or the stop button) "
            "to run it again.</div>") if end else ""
    return (f"<div class='pcl-verdict-box' data-verdict='{key}' data-outcome='{outcome}' "
            f"data-score='{ins.score}'><span class='pcl-verdict-word' style='background:"
            f"{colour}'>{word}</span><div style='margin-top:6px'>score <b>{ins.score:.3f}"
            f"</b> {cmp} threshold {line.threshold:.3f}</div></div>{tail}")


def message_html(text: str) -> str:
    """A one-line notice under the page (an image that was skipped)."""
    return f"<div style='color:{FLAG_RGB}'>{html.escape(text)}</div>"


def _tile(key: str, label: str, value, colour: str, hint: str) -> str:
    v = "&ndash;" if value is None else str(value)
    return (f"<div class='pcl-tile' title='{hint}' style='border:1px solid #ccc;border-radius:6px;"
            f"padding:4px 10px;min-width:70px;text-align:center'>"
            f"<div class='pcl-{key}' style='font-weight:bold;color:{colour}'"
            f">{v}</div><div style='font-size:80%;{MUTED}'>{label}</div></div>")


def counts_html(c: dict) -> str:
    """The count tiles (`pcl-shown`, `pcl-passed`, ...) of `LiveDemo.counts()`."""
    tiles = [_tile("shown", "inspected", c["shown"], "#333", "images shown so far"),
             _tile("passed", "passed", c["passed"], PASS_RGB, "score below the threshold"),
             _tile("flagged", "flagged", c["flagged"], FLAG_RGB,
                   "score at or above the threshold"),
             _tile("missed", "missed", c["missed"], WARN_RGB, "defective but passed"),
             _tile("false-alarms", "false alarms", c["false_alarms"], WARN_RGB,
                   "good but flagged")]
    return f"<div style='display:flex;flex-wrap:wrap;gap:8px;margin:8px 0'>{''.join(tiles)}</div>"


def legend_html(vmin: float, vmax: float) -> str:
    """The heatmap's colour bar from vmin to vmax (the same scale for every image)."""
    stops = ", ".join(INFERNO_STOPS)
    return (f"<div class='pcl-explain' style='font-size:85%;{MUTED};margin-top:6px'>heatmap "
            f"colour, same scale "
            f"for every image:<div style='display:flex;align-items:center;gap:6px'>"
            f"<span>{vmin:.2f}</span><span style='display:inline-block;width:200px;height:10px;"
            f"background:linear-gradient(to right, {stops})'></span><span>{vmax:.2f}</span></div>"
            "dark = like the good training parts; the threshold sits mid-scale</div>")


def filmstrip_html(line: LiveDemo) -> str:
    """The last FILMSTRIP thumbnails, newest first, framed by their verdict now."""
    items = []
    for h in line.history[-FILMSTRIP:][::-1]:
        colour = FLAG_RGB if line.flagged(h.score) else PASS_RGB
        truth = "" if h.label is None else ("defective" if h.label else "good")
        items.append(
            f"<div style='text-align:center;font-size:75%'><img src='{data_uri(h.thumb)}' "
            f"width='72' height='72' style='border:3px solid {colour};display:block'>"
            f"{h.score:.2f}<br><span style='{MUTED}'>{truth}</span></div>")
    return (f"<div style='margin-top:8px'><div class='pcl-explain' style='font-size:85%;"
            f"{MUTED}'>on the belt, "
            "newest first (frame: green = passed, red = flagged at the current threshold)</div>"
            f"<div style='display:flex;gap:6px'>{''.join(items)}</div></div>")


def timeline_html(line: LiveDemo, width: int = 720, height: int = 110) -> str:
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
    return (f"<div class='pcl-explain' style='font-size:85%;{MUTED};margin-top:8px'>image "
            f"scores along the line "
            f"(green = good, red = defective; dashed = threshold)</div>"
            f"<svg width='{width}' height='{height}' style='border:1px solid #ddd'>"
            f"<rect x='0' y='0' width='{width}' height='{ty:.1f}' fill='#fbeaea'/>"
            f"<line x1='0' x2='{width}' y1='{ty:.1f}' y2='{ty:.1f}' stroke='#333' "
            f"stroke-dasharray='6,4'/>{''.join(dots)}</svg>")
