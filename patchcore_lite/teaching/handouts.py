"""Offline handouts: each executed notebook as one self-contained HTML file.

Plotly figures are drawn by plotly.js inlined in the page, with their static PNG twin beside them
(`view.Interactive`); widgets are rendered from the state saved at execution by the widget
manager script shipped in `static/` (@jupyter-widgets/html-manager, BSD-3-Clause, licence
beside it), and each says that it shows its state at execution, with the PNG figures of that
state beside it. Nothing is fetched from a network: every external script tag is removed.
`make handouts` reuses the executions of `make assignments` when they are newer than the
notebook, and executes the notebook otherwise.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import nbformat

from . import assignments

STATIC = Path(__file__).resolve().parent / "static"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
NOTE = ("<p class='pcl-handout-note'><em>Widget: this handout shows its state at execution "
        "(the controls do not recompute here; run the notebook to explore).</em></p>")


def _plotly_html(output: dict) -> str:
    """The plotly figure as a div (plotly.js is inlined once per page) with its PNG twin."""
    import plotly.io as pio

    div = pio.to_html(pio.from_json(json.dumps(output["data"][PLOTLY_MIME])), full_html=False,
                      include_plotlyjs=False)
    png = output["data"].get("image/png")
    img = (f"<img class='pcl-static' alt='static copy of the figure above' "
           f"src='data:image/png;base64,{png}'>" if png else "")
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
                imgs = "".join(f"<img class='pcl-static' src='data:image/png;base64,{p}'>"
                               for p in _widget_pngs(nb, data[WIDGET_MIME]["model_id"]))
                outputs.append(o)
                o = nbformat.v4.new_output("display_data", {"text/html": NOTE + imgs})
            outputs.append(o)
        if cell.cell_type == "code":
            cell.outputs = outputs
    return nb


def to_html(nb) -> str:
    """One self-contained HTML page of an executed notebook (no network needed to open it)."""
    import plotly.offline
    from nbconvert import HTMLExporter

    html, _ = HTMLExporter(template_name="lab").from_notebook_node(prepare(nb))
    html = re.sub(r"<script>\s*\(function\(\) \{\s*function addWidgetsRenderer.*?</script>", "",
                  html, count=1, flags=re.S)  # the template's loader from unpkg.com
    html = re.sub(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", "", html)
    html = re.sub(r"<link[^>]*\bhref=[\"']https?://[^>]*>", "", html)
    head = (f"<script>{plotly.offline.get_plotlyjs()}</script>\n"
            "<style>.pcl-static{max-width:100%;display:block;margin:4px 0}</style>\n")
    manager = base64.b64encode((STATIC / "html-manager-embed.js").read_bytes()).decode()
    # a data: URL, not an inline script: webpack derives its public path from the script's src
    body = f"<script src='data:text/javascript;base64,{manager}'></script>\n"
    html = html.replace("</head>", head + "</head>", 1)
    return html.replace("</body>", body + "</body>", 1)  # after the widget state it renders


def executed(path: Path, reuse: Path) -> nbformat.NotebookNode:
    """The executed notebook: the copy under `reuse` when newer than `path`, else a new run."""
    done = reuse / path.name
    if done.exists() and done.stat().st_mtime >= path.stat().st_mtime:
        return nbformat.read(done, as_version=4)
    nb, _ = assignments.execute(nbformat.read(path, as_version=4), path.parent)
    return nb


def build(out: Path = assignments.REPO / "handouts",
          reuse: Path = assignments.REPO / "assignments" / "executed" / "source") -> list[Path]:
    """A handout per notebook of the course (00-05) under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in assignments.sources():
        target = out / path.with_suffix(".html").name
        target.write_text(to_html(executed(path, reuse)), encoding="utf-8")
        written.append(target)
        print(f"wrote {target}", file=sys.stderr)
    return written


if __name__ == "__main__":
    build()
