"""Live demo: test images stream past like a production line, each with its heatmap and verdict.

    from patchcore_lite.apps.live import app
    app()          # the widget; `make present` serves notebooks/06_live_demo.ipynb with Voila

Nothing heavy happens at start: the model comes from the cache (or a saved file) and each image
is scored only when it reaches the camera, one per `step()`; executed headless (nbclient,
Voila), the app renders its first frame and returns. The parts, data flowing down the list:

    render.py       heat colours on one fixed scale, ground-truth outlines, overlay, PNG
    line.py         the line model: LiveDemo (step, reset, counts), Inspection, Frame; no widgets
    markup.py       every HTML snippet and CSS class (`pcl-*`) of the page
    page.py         the ipywidgets page (LiveApp, error_panel): draws a LiveDemo
    own.py          your own parts on the page: uploads, camera frames, capture and teach
    parts.py        uploads checked and saved (their temp folder), a model taught from a few
    camera.py       browser widgets (anywidget): camera.js frames, upload.js files in pieces
    environment.py  settings from PATCHCORE_LITE_*, the model, build_app / app, --prepare
    start.py        the first frame written by --prepare; the model loading behind it
    serving.py      the Voila options and kernel manager of `make present` (reloads, culling)

Importing this package does not import ipywidgets: `build_app` imports page.py when it builds one.
"""

from .environment import (
    DEFAULT_CATEGORY,
    ENV_CATEGORY,
    ENV_DATA,
    ENV_MODEL,
    ENV_WEIGHTS,
    LiveConfig,
    app,
    build_app,
    config_from_env,
    load_live_model,
    main,
    prepare,
)
from .line import Frame, Inspection, LiveDemo, Part
from .markup import CSS, FLAG_RGB, PASS_RGB, weights_text
from .render import GAP, HEAT_ALPHA, MASK_RGB, heat_rgb, render_overlay
from .start import ENV_START, PendingModel

__all__ = ["CSS", "DEFAULT_CATEGORY", "ENV_CATEGORY", "ENV_DATA", "ENV_MODEL", "ENV_START",
           "ENV_WEIGHTS", "FLAG_RGB", "GAP", "HEAT_ALPHA", "MASK_RGB", "PASS_RGB", "Frame",
           "Inspection", "LiveConfig", "LiveDemo", "Part", "PendingModel", "app", "build_app",
           "config_from_env", "heat_rgb", "load_live_model", "main", "prepare", "render_overlay",
           "weights_text"]
