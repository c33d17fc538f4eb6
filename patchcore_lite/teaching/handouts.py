"""Offline handouts: each executed notebook as one HTML page, its two scripts in `assets/`.

Two sets: **student handouts** (`handouts/NN_*.html`) are the executed student release
(exercises unsolved, their tests saying "not solved yet", no solution anywhere), and
**instructor handouts** (`handouts/instructor/NN_*.html`) the executed instructor notebooks.
Plotly figures are drawn by plotly.js (`assets/plotly.min.js`, loaded only by pages with a
plotly figure), with their static PNG twin beside them (`view.Interactive`); widgets are
rendered from the state saved at execution by the widget manager script shipped in `static/`
(@jupyter-widgets/html-manager, BSD-3-Clause, licence beside it), and each says that it shows
its state at execution, with the PNG figures of that state beside it. The scripts are shared
files next to the pages (not inlined per page), so the whole folder stays small enough to mail;
nothing is fetched from a network. `make handouts` reuses the executions of `make assignments`
when they are newer than the notebook, and executes the notebook otherwise.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import sys
from pathlib import Path

import nbformat

from . import assignments

STATIC = Path(__file__).resolve().parent / "static"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
NOTE = ("<p class='pcl-handout-note'><em>Widget: this handout shows its state at execution "
        "(the controls do not recompute here; run the notebook to explore).</em></p>")


def _static(png: str) -> str:
    """A data: URL of a figure's static copy: JPEG (quality 85) when that is smaller than the
    PNG, which it is for heatmaps and photos; the copies keep the handouts small enough to mail."""
    from PIL import Image

    raw = base64.b64decode(png)
    im = Image.open(io.BytesIO(raw))
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=85)
    if buf.tell() < len(raw):
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    return "data:image/png;base64," + png


def _plotly_html(output: dict) -> str:
    """The plotly figure as a div (plotly.js is inlined once per page) with its PNG twin."""
    import plotly.io as pio

    div = pio.to_html(pio.from_json(json.dumps(output["data"][PLOTLY_MIME])), full_html=False,
                      include_plotlyjs=False)
    png = output["data"].get("image/png")
    img = (f"<img class='pcl-static' alt='static copy of the figure above' "
           f"src='{_static(png)}'>" if png else "")
    return f"<div class='pcl-figure'>{div}{img}</div>"


def _widget_pngs(nb, model_id: str) -> list[str]:
    """PNG images (base64) in the Output widgets reachable from one widget model's state."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    models, seen, todo, pngs = state.get("state", {}), set(), [model_id], []
    while todo:
        m = models.get(todo.pop(0))
        if m is None or id(m) in seen:
            continue
        seen.add(id(m))
        for o in m["state"].get("outputs", []):
            if "image/png" in o.get("data", {}):
                pngs.append(o["data"]["image/png"])
        todo += [c.removeprefix("IPY_MODEL_") for c in m["state"].get("children", [])]
    return pngs


def prepare(nb) -> nbformat.NotebookNode:
    """Plotly outputs replaced by inline divs with PNGs; widgets noted, their PNGs beside them."""
    for cell in nb.cells:
        outputs = []
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if PLOTLY_MIME in data:
                o = nbformat.v4.new_output("display_data", {"text/html": _plotly_html(o)})
            elif WIDGET_MIME in data:
                imgs = "".join(f"<img class='pcl-static' src='{_static(p)}'>"
                               for p in _widget_pngs(nb, data[WIDGET_MIME]["model_id"]))
                outputs.append(o)
                o = nbformat.v4.new_output("display_data", {"text/html": NOTE + imgs})
            outputs.append(o)
        if cell.cell_type == "code":
            cell.outputs = outputs
    return nb


def to_html(nb, assets: str = "assets") -> str:
    """One HTML page of an executed notebook; its scripts are read from the `assets` folder
    (relative to the page), written by `write_assets`. No network is needed to open it."""
    from nbconvert import HTMLExporter

    html, _ = HTMLExporter(template_name="lab").from_notebook_node(prepare(nb))
    html = re.sub(r"<script>\s*\(function\(\) \{\s*function addWidgetsRenderer.*?</script>", "",
                  html, count=1, flags=re.S)  # the template's loader from unpkg.com
    html = re.sub(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", "", html)
    html = re.sub(r"<link[^>]*\bhref=[\"']https?://[^>]*>", "", html)
    plotly = f"<script src='{assets}/plotly.min.js'></script>\n" if "plotly-graph-div" in html \
        else ""
    head = plotly + "<style>.pcl-static{max-width:100%;display:block;margin:4px 0}</style>\n"
    body = (f"<script src='{assets}/html-manager-embed.js'></script>\n"
            if "application/vnd.jupyter.widget-state+json" in html else "")
    html = html.replace("</head>", head + "</head>", 1)
    return html.replace("</body>", body + "</body>", 1)  # after the widget state it renders


def write_assets(folder: Path) -> Path:
    """plotly.js and the widget manager script in `folder`/assets (what every page loads)."""
    import plotly.offline

    assets = Path(folder) / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    (assets / "plotly.min.js").write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    for name in ("html-manager-embed.js", "html-manager-embed.js.LICENSE.txt",
                 "LICENSE-html-manager.txt"):
        shutil.copyfile(STATIC / name, assets / name)
    return assets


def write_page(nb, target: Path, assets: str = "assets") -> Path:
    """Write the handout of an executed notebook to `target` (assets where `assets` says)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(to_html(nb, assets), encoding="utf-8")
    return target


def executed(path: Path, reuse: Path, student: bool) -> nbformat.NotebookNode:
    """The executed notebook (student release or instructor version): the copy under `reuse`
    when newer than `path`, else a new run."""
    done = reuse / ("release" if student else "source") / path.name
    if done.exists() and done.stat().st_mtime >= path.stat().st_mtime:
        return nbformat.read(done, as_version=4)
    nb = nbformat.read(path, as_version=4)
    nb, _ = assignments.execute(assignments.release(nb) if student else nb, path.parent)
    return nb


def build(out: Path = assignments.REPO / "handouts",
          reuse: Path = assignments.REPO / "assignments" / "executed") -> list[Path]:
    """Student handouts under `out`, instructor handouts under `out`/instructor (00-05)."""
    write_assets(out)
    written = []
    for path in assignments.sources():
        name = path.with_suffix(".html").name
        written.append(write_page(executed(path, reuse, True), out / name))
        written.append(write_page(executed(path, reuse, False), out / "instructor" / name,
                                  "../assets"))
    for p in written:
        print(f"wrote {p}", file=sys.stderr)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()
               and "instructor" not in f.parts)
    print(f"student handouts with assets: {size / 1e6:.1f} MB", file=sys.stderr)
    return written


if __name__ == "__main__":
    build()
