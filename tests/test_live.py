"""Live demo without a browser: stepping, counting, threshold recount, error panels, self-checks
(the line model in apps/live/line.py, the page in page.py, the checks in teaching/lesson06.py)."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_CORESET as OPTS
from PIL import Image

from patchcore_lite import PatchCore, PatchCoreError
from patchcore_lite.apps import live
from patchcore_lite.apps.live import markup, page, parts
from patchcore_lite.data import test_samples as mvtec_test_samples
from patchcore_lite.evaluation.counts import confusion_counts
from patchcore_lite.teaching import lesson06
from patchcore_lite.teaching.checks import Verdict

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_live_demo.ipynb"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    """The app reads PATCHCORE_LITE_*; a developer's shell must not leak into these tests."""
    for name in (live.ENV_DATA, live.ENV_MODEL, live.ENV_WEIGHTS, live.ENV_CATEGORY,
                 live.ENV_START):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def model(tiny_category_ro):
    return PatchCore(**OPTS).fit(tiny_category_ro)


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    return model.save(tmp_path_factory.mktemp("model") / "widget.pclite")


def run_line(line: live.LiveDemo) -> int:
    n = 0
    while line.step() is not None:
        n += 1
    return n


# ---------------------------------------------------------------- the line


def test_step_advances_one_image_at_a_time(model, tiny_category_ro):
    line = live.LiveDemo.from_folder(tiny_category_ro, model)
    n = len(mvtec_test_samples(tiny_category_ro))
    assert line.history == [] and line.frame is None and not line.done
    shown = line.step()
    assert len(line.history) == 1 and line.frame.index == 0 and line.frame.inspection is shown
    assert line.frame.png.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(line.frame.png)) as im:
        assert im.size == (2 * 64 + 8, 64)  # image | overlay
    assert np.isfinite(shown.score)
    assert run_line(line) == n - 1 and line.done and line.step() is None
    assert sorted(h.sample.path for h in line.history) == sorted(
        s.path for s in mvtec_test_samples(tiny_category_ro))  # each image exactly once
    line.reset()
    assert line.history == [] and line.step() is not None


def test_scores_match_batch_predict(model, tiny_category_ro):
    line = live.LiveDemo.from_folder(tiny_category_ro, model, shuffle=False)
    run_line(line)
    batch, _ = model.predict([s.path for s in line.samples])
    np.testing.assert_allclose(line.scores(), batch, rtol=1e-4, atol=1e-5)


def test_shuffled_order_is_fixed_by_seed(model, tiny_category_ro):
    a = live.LiveDemo.from_folder(tiny_category_ro, model, seed=3)
    b = live.LiveDemo.from_folder(tiny_category_ro, model, seed=3)
    assert [s.path for s in a.samples] == [s.path for s in b.samples]


def test_counts_sum_and_agree_with_confusion_counts(model, tiny_category_ro):
    line = live.LiveDemo.from_folder(tiny_category_ro, model)
    for _ in range(3):
        line.step()
    scores, labels = line.scores(), line.labels()
    for t in (scores.min(), np.median(scores), scores.max() + 1, line.default_threshold):
        c = line.counts(t)
        cc = confusion_counts(labels, scores, t)
        assert c["shown"] == 3 == c["passed"] + c["flagged"]
        assert (c["missed"], c["false_alarms"]) == (cc["fn"], cc["fp"])
        assert c["flagged"] == cc["tp"] + cc["fp"]


def test_threshold_recount_is_monotone(model, tiny_category_ro):
    line = live.LiveDemo.from_folder(tiny_category_ro, model)
    run_line(line)
    scores = line.scores()
    ts = np.linspace(scores.min() - 1, scores.max() + 1, 25)
    cs = [line.counts(t) for t in ts]
    for key, sign in (("flagged", -1), ("false_alarms", -1), ("passed", 1), ("missed", 1)):
        diffs = np.diff([c[key] for c in cs]) * sign
        assert (diffs >= 0).all(), key
    assert cs[0]["flagged"] == len(scores) and cs[-1]["flagged"] == 0


def test_unknown_labels(model, tiny_category_ro):
    paths = [s.path for s in mvtec_test_samples(tiny_category_ro)]
    line = live.LiveDemo(model, paths)
    line.step()
    c = line.counts()
    assert c["missed"] is None and c["false_alarms"] is None and c["shown"] == 1


def test_unreadable_image_is_skipped(model, tiny_category):
    bad = sorted((tiny_category / "test" / "good").iterdir())[0]
    bad.write_bytes(b"not a png")
    line = live.LiveDemo.from_folder(tiny_category, model, shuffle=False)
    n_errors = 0
    while not line.done:
        try:
            line.step()
        except PatchCoreError as e:
            assert bad.name in str(e)
            n_errors += 1
    assert n_errors == 1 and len(line.history) == len(line.samples) - 1


def test_render_overlay_outlines_ground_truth():
    img = np.full((32, 32, 3), 128, np.uint8)
    amap = np.zeros((32, 32))
    mask = np.zeros((32, 32), bool)
    mask[8:20, 8:20] = True
    out = live.render_overlay(img, amap, mask, 0.0, 1.0, gap=4)
    assert out.shape == (32, 68, 3) and out.dtype == np.uint8
    cyan = (out == live.MASK_RGB).all(-1)
    assert cyan[:, :32].sum() == cyan[:, 36:].sum() > 0  # outline on both panels
    assert not cyan[12:16, 12:16].any()  # an outline, not a filled region
    plain = live.render_overlay(img, amap, None, 0.0, 1.0, gap=4)
    assert (plain[:, :32] == img).all()


def test_heat_colours_use_one_fixed_scale():
    low, high = live.heat_rgb(np.array([[0.0, 10.0]]), 0.0, 1.0)[0]
    assert low.sum() < 30 and high.sum() > 500  # dark below vmin, bright (clipped) above vmax


# ---------------------------------------------------------------- the widget app


def test_app_first_frame_and_css_classes(model, tiny_category_ro):
    app = live.build_app(category=tiny_category_ro, model=model)
    assert app.line.counts()["shown"] == 1  # the first frame is rendered on build
    assert bytes(app.heatmap.value).startswith(b"\x89PNG")
    for name in ("threshold", "play", "speed", "counts", "verdict", "weights", "heatmap"):
        assert live.CSS[name] in getattr(app, name)._dom_classes, name
    assert "RANDOM-INIT (not pretrained)" in app.weights.value
    assert "pcl-passed" in app.counts.value and "pcl-false-alarms" in app.counts.value
    assert "data-verdict=" in app.verdict.value


def test_app_step_threshold_and_play(model, tiny_category_ro):
    app = live.build_app(category=tiny_category_ro, model=model)
    n = len(app.line.samples)
    assert app.step() and app.line.counts()["shown"] == 2
    app.set_threshold(app.threshold.min)  # everything shown is flagged
    assert app.line.counts()["flagged"] == 2
    assert "data-verdict='flagged'" in app.verdict.value
    assert "<div class='pcl-flagged' " in app.counts.value
    app.set_threshold(app.threshold.max)
    assert app.line.counts()["flagged"] == 0 and "data-verdict='pass'" in app.verdict.value
    app.play.playing = True
    app.play.value += 1  # one tick of the Play widget = one step
    assert app.line.counts()["shown"] == 3
    app.play.value += 1  # a tick queued while the last step ran is dropped (no backlog)
    assert app.line.counts()["shown"] == 3
    while app.step():
        pass
    assert app.line.counts()["shown"] == n and not app.play.playing  # end of line: paused
    assert "End of the line" in app.verdict.value
    app.play.value = 0  # the stop button rewinds the line
    assert app.line.counts()["shown"] == 1
    assert max(h.score for h in app.line.history) <= app.threshold.max


def test_speed_sets_play_interval(model, tiny_category_ro):
    app = live.build_app(category=tiny_category_ro, model=model)
    app.speed.value = 250
    assert app.play.interval == 250


def test_app_model_from_file_and_env(model_file, tiny_category_ro, monkeypatch):
    monkeypatch.setenv(live.ENV_DATA, str(tiny_category_ro))
    monkeypatch.setenv(live.ENV_MODEL, str(model_file))
    app = live.app()
    assert hasattr(app, "step") and app.line.counts()["shown"] == 1


def _error_text(widget) -> str:
    assert live.CSS["error"] in widget._dom_classes
    assert "Traceback" not in widget.value
    return html.unescape(widget.value)


def test_error_panel_for_folder_not_in_mvtec_layout(tmp_path, model, monkeypatch):
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "photos" / "a.png")
    text = _error_text(live.build_app(category=tmp_path / "photos", model=model))
    assert "not an MVTec AD layout" in text and "photos" in text
    monkeypatch.setenv(live.ENV_DATA, str(tmp_path / "missing"))
    assert "folder not found" in _error_text(live.app())


def test_error_panel_for_model_file_that_does_not_load(tmp_path, model_file, tiny_category_ro,
                                                       monkeypatch):
    bad = tmp_path / "bad.pclite"
    bad.write_bytes(model_file.read_bytes()[: 1000])
    monkeypatch.setenv(live.ENV_DATA, str(tiny_category_ro))
    monkeypatch.setenv(live.ENV_MODEL, str(bad))
    assert "bad.pclite" in _error_text(live.app())
    text = _error_text(live.build_app(category=tiny_category_ro, model=tmp_path / "none.pclite"))
    assert "file not found" in text


def test_error_panel_for_unknown_embedded_category(monkeypatch):
    monkeypatch.setenv(live.ENV_CATEGORY, "teapot")
    assert "unknown category 'teapot'" in _error_text(live.app())


def _exports(out: str) -> dict[str, str]:
    """`export NAME=value` lines printed by --prepare, as make present evals them."""
    import shlex

    pairs = [shlex.split(line)[1].split("=", 1) for line in out.splitlines() if line.strip()]
    return dict(pairs)


def test_prepare_reports_bad_input_without_failing(tmp_path, monkeypatch, capsys, model_file,
                                                   tiny_category_ro):
    monkeypatch.setenv(live.ENV_DATA, str(tmp_path))
    assert live.main(["--prepare"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "not an MVTec AD layout" in err  # env unchanged: the page says it
    monkeypatch.setenv(live.ENV_DATA, str(tiny_category_ro))
    monkeypatch.setenv(live.ENV_MODEL, str(model_file))
    assert live.main(["--prepare"]) == 0
    out, err = capsys.readouterr()
    exports = _exports(out)
    assert exports.pop(live.ENV_START).endswith(".json") and "ready" in err
    assert exports == {live.ENV_DATA: str(tiny_category_ro.resolve()), live.ENV_WEIGHTS: "auto"}


def test_prepare_fits_once_and_exports_resolved_weights(tmp_path, monkeypatch, capsys,
                                                        tiny_category_ro):
    from patchcore_lite.datasets import cache

    monkeypatch.setenv("PATCHCORE_LITE_HOME", str(tmp_path))
    monkeypatch.setenv(live.ENV_DATA, str(tiny_category_ro))
    monkeypatch.setenv(live.ENV_WEIGHTS, "none")
    real = cache.cached_model
    monkeypatch.setattr(cache, "cached_model",
                        lambda cat, **kw: real(cat, **kw, resize=64, crop=0))
    assert live.main(["--prepare"]) == 0
    assert _exports(capsys.readouterr().out)[live.ENV_WEIGHTS] == "none"
    assert len(list((tmp_path / "cache").glob("*.pclite"))) == 1


# ---------------------------------------------------------------- self-checks of the exercises


@pytest.fixture(scope="module")
def full_line(model, tiny_category_ro):
    line = live.LiveDemo.from_folder(tiny_category_ro, model)
    run_line(line)
    return line


def test_check_no_false_alarm_threshold(full_line):
    top = float(full_line.scores()[full_line.labels() == 0].max())
    assert lesson06.check_no_false_alarm_threshold(full_line, top * 1.001 + 1e-9).ok
    assert not lesson06.check_no_false_alarm_threshold(full_line, top).ok  # >= flags it
    assert not lesson06.check_no_false_alarm_threshold(full_line, top * 2 + 1).ok  # too high
    verdict = lesson06.check_no_false_alarm_threshold(full_line, None)
    assert not verdict.ok
    assert "Not answered yet" in verdict.message and "Not answered yet" in repr(verdict)


def test_check_missed(full_line):
    t = float(np.median(full_line.scores()))
    right = full_line.counts(t)["missed"]
    assert lesson06.check_missed(full_line, t, right).ok
    assert not lesson06.check_missed(full_line, t, right + 1).ok
    assert not lesson06.check_missed(full_line, t, None).ok


def test_check_recall(full_line, model):
    c = full_line.counts(full_line.default_threshold)
    right = c["caught"] / (c["caught"] + c["missed"])
    assert lesson06.check_recall(full_line, right).ok
    assert not lesson06.check_recall(full_line, right + 0.2 if right < 0.5 else right - 0.2).ok
    assert not lesson06.check_recall(full_line, 50).ok  # a percentage, not a fraction
    assert not lesson06.check_recall(full_line, None).ok


def test_checks_accept_the_app_widget(model, tiny_category_ro):
    app = live.build_app(category=tiny_category_ro, model=model)
    while app.step():
        pass
    c = app.line.counts(app.line.default_threshold)
    assert lesson06.check_recall(app, c["caught"] / (c["caught"] + c["missed"])).ok
    assert not lesson06.check_recall(page.error_panel("x"), 0.5).ok


def test_checks_return_verdicts_shown_with_a_mark(full_line):
    """One check protocol (teaching/checks.py): a Verdict whose repr is the notebook's line."""
    verdicts = [lesson06.check_no_false_alarm_threshold(full_line, None),
                lesson06.check_missed(full_line, 1.0, None),
                lesson06.check_recall(full_line, None),
                lesson06.check_recall(page.error_panel("x"), 0.5)]
    for v in verdicts:
        assert isinstance(v, Verdict) and repr(v).startswith("\u2717 ")
    assert "my_missed" in verdicts[1].message and "did not start" in verdicts[3].message


def test_importing_the_live_package_imports_no_widgets():
    """The line model and --prepare go without ipywidgets; building a page imports it."""
    import subprocess
    import sys

    code = ("import sys, patchcore_lite.apps.live, patchcore_lite.teaching.lesson06\n"
            "print('ipywidgets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- the notebook


def test_notebook_is_tiny_for_voila_and_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    untagged = [c for c in nb["cells"] if "lesson" not in c["metadata"].get("tags", [])]
    # Voila (make present) drops cells tagged "lesson": only the app cell is left to run
    assert len(untagged) == 1 and untagged[0]["cell_type"] == "code"
    assert "app()" in "".join(untagged[0]["source"])
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            assert c["outputs"] == [] and c["execution_count"] is None
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert "Learning goals" in text and text.count("check_") >= 3 + 3


NOTEBOOK_LIMIT_S = 90  # top to bottom, offline, 2 CPU cores, random-init weights


def test_notebook_runs_headless_and_returns_after_the_first_frame(capsys):
    """nbclient runs notebook 06 like the course notebooks (tests/test_notebooks.py runs 00-05).

    The model is fitted (or loaded) first, outside the timed part: in a full test run the first
    notebook to ask for it pays for the fit, and test order puts this file before the course."""
    import os
    import sys
    import time

    import nbformat
    from nbclient import NotebookClient

    from patchcore_lite.datasets import cache

    cache.cached_model(cache.embedded_data() / live.DEFAULT_CATEGORY, weights="auto",
                       progress=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        f"import sys\nassert sys.prefix == {sys.prefix!r}, sys.prefix"))
    env = {k: v for k, v in os.environ.items()
           if k != "OMP_NUM_THREADS" and not k.startswith("PATCHCORE_LITE_")}
    t0 = time.perf_counter()
    NotebookClient(nb, kernel_name="python3", timeout=NOTEBOOK_LIMIT_S,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute(env=env)
    seconds = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n06_live_demo.ipynb: {seconds:.1f} s", flush=True)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    view = "application/vnd.jupyter.widget-view+json"
    assert [o for o in outputs if view in o.get("data", {})], "the app widget was not displayed"
    text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                   for o in outputs)
    assert "'shown': 2" in text  # first frame on build + the one demo.step() cell: no playing
    assert "Traceback" not in text and "pcl-error" not in text
    assert seconds < NOTEBOOK_LIMIT_S


def test_make_present_wiring():
    """`make present` = prepare step, then Voila on localhost with the lesson cells left out."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make not installed")
    repo = NOTEBOOK.parents[1]
    r = subprocess.run(["make", "-n", "present", "PORT=8123", "DATA=some/cat", "MODEL=m.pclite"],
                       cwd=repo, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f'PATCHCORE_LITE_DATA="{repo}/some/cat"' in out  # absolute: the kernel runs elsewhere
    assert f'PATCHCORE_LITE_MODEL="{repo}/m.pclite"' in out
    assert "-m patchcore_lite.apps.live --prepare" in out and 'eval "$prepared"' in out
    assert "http://127.0.0.1:8123/" in out
    from patchcore_lite.apps.live import serving

    for flag in ("voila notebooks/06_live_demo.ipynb", "--port=8123", *serving.VOILA_OPTS):
        assert flag in out, flag  # the same list as test_browser.py's server


# ---------------------------------------------------------------- quick start and serving


def test_quick_start_draws_the_first_frame_without_torch(model_file, tiny_category_ro,
                                                         tmp_path, monkeypatch, capsys):
    """--prepare writes the first frame; a kernel draws it before importing torch, and the
    model that loads behind it scores the rest of the line exactly as a plain start does."""
    import subprocess
    import sys

    monkeypatch.setenv("PATCHCORE_LITE_HOME", str(tmp_path))
    monkeypatch.setenv(live.ENV_DATA, str(tiny_category_ro))
    monkeypatch.setenv(live.ENV_MODEL, str(model_file))
    assert live.main(["--prepare"]) == 0
    exports = _exports(capsys.readouterr().out)
    code = ("import sys\nfrom patchcore_lite.apps.live import app\na = app()\n"
            "print(type(a.line.model).__name__, 'torch' in sys.modules, a.line.counts()['shown'])"
            "\na.step(); print(a.line.scores().tolist())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**__import__("os").environ, **exports})
    first, scores = r.stdout.splitlines()
    assert first == "PendingModel False 1"  # the frame is drawn, torch not yet imported
    plain = live.build_app(category=tiny_category_ro, model=model_file)
    plain.step()
    np.testing.assert_allclose(json.loads(scores), plain.line.scores(), rtol=1e-5)
    monkeypatch.setenv(live.ENV_MODEL, "")  # another configuration: the start file is ignored
    assert live.start.read_start(exports[live.ENV_START], live.config_from_env()) is None


def test_culling_waits_for_a_loading_page():
    """A kernel just out of the pool is kept until its page connects (or the grace ends)."""
    import asyncio

    from patchcore_lite.apps.live.serving import LiveKernelManager

    culled = []

    class Probe(LiveKernelManager):
        async def _cull(self, kernel_id):
            culled.append(kernel_id)

    km = Probe(page_grace=0.3)
    km._kernels = {"a": object(), "b": object()}
    base = type(km).__mro__[2]  # AsyncMappingKernelManager: record instead of culling
    base_cull = base.cull_kernel_if_idle
    try:
        base.cull_kernel_if_idle = lambda self, k: Probe._cull(self, k)
        asyncio.run(km.cull_kernel_if_idle("a"))
        km._had_page.add("b")  # b's page connected (notify_connect), then closed
        asyncio.run(km.cull_kernel_if_idle("b"))
        assert culled == ["b"]
        import time

        time.sleep(0.35)
        asyncio.run(km.cull_kernel_if_idle("a"))
        assert culled == ["b", "a"]
    finally:
        base.cull_kernel_if_idle = base_cull


# ---------------------------------------------------------------- your own parts and the camera


def _png_bytes(path: Path) -> bytes:
    return Path(path).read_bytes()


def _jpeg(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_uploads_are_scored_in_order_with_their_names(model, tiny_category_ro):
    app = live.build_app(category=tiny_category_ro, model=model)
    good = sorted((tiny_category_ro / "train" / "good").iterdir())
    sixteen = io.BytesIO()
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(
        sixteen, format="PNG")  # 16-bit grey: read like everywhere in the kit
    names = ["notes.txt", "my part (1).png", "cut.png", "deep.png", "my part (1).png"]
    contents = [b"hello", _png_bytes(good[0]), _png_bytes(good[0])[:300], sixteen.getvalue(),
                _png_bytes(good[1])]
    refused = app.add_files(list(zip(names, contents)))
    assert len(refused) == 2 and "notes.txt: cannot read image" in refused[0]
    assert "cut.png" in refused[1] and "Traceback" not in app.message.value
    assert "data-kind='error'" in app.message.value
    assert app.line.counts()["shown"] == 1 + 3  # the first frame + each good upload, scored now
    uploads = [h for h in app.line.history if h.source == "upload"]
    assert [h.sample.path.name for h in uploads] == ["my part (1).png", "deep.png",
                                                     "my part (1).png"]  # order and names kept
    assert uploads[0].sample.path != uploads[2].sample.path
    assert app.line.frame.number == 3 and "upload 3" in app.caption.value
    assert app.line.tallies()["upload"][0] == 3 and app.line.tallies()["line"][0] == 1
    assert app.line._next == 1  # the line itself did not move
    with pytest.raises(PatchCoreError, match="big.png: .* over the upload limit"):
        parts.save_upload(app._uploads, "big.png", _png_bytes(good[0]), limit=10)


def test_upload_pieces_are_joined_and_oversize_files_refused(model, tiny_category_ro):
    app = live.build_app(category=tiny_category_ro, model=model)
    data = _png_bytes(sorted((tiny_category_ro / "train" / "good").iterdir())[0])
    up, third = app.upload, len(data) // 3 + 1
    up._message(up, {"type": "batch", "count": 2}, [])
    up._message(up, {"type": "oversize", "name": "huge.tif", "size": 30_000_000}, [])
    assert "huge.tif: 30.0 MB is over the upload limit of 25 MB per file" in app.message.value
    for i in range(3):  # three pieces, as upload.js sends them
        up._message(up, {"type": "piece", "id": "a", "name": "part.png", "index": i,
                         "count": 3}, [data[i * third:(i + 1) * third]])
    assert app.line.frame.inspection.sample.path.read_bytes() == data
    assert app.line.tallies()["upload"] == (1, *app.line.tallies()["upload"][1:])
    up._message(up, {"type": "batch", "count": 1}, [])  # the next batch still works
    up._message(up, {"type": "piece", "id": "b", "name": "x.png", "index": 0, "count": 1},
                [data])
    assert app.line.tallies()["upload"][0] == 2 and up._pieces == {}


def test_teach_fits_a_new_part_with_mobilenet(tiny_category_ro):
    """Teach mode with another backbone: the taught model keeps backbone, layers, input size,
    and the page follows it: title, model line, colour scale, empty panel, tallies from zero."""
    import time

    small = PatchCore(backbone="mobilenet_v2", layers=("features.6", "features.13"),
                      **OPTS).fit(tiny_category_ro)
    app = live.build_app(category=tiny_category_ro, model=small)
    good = sorted((tiny_category_ro / "train" / "good").iterdir())
    app.teach.value = True
    app.add_files([(good[0].name, _png_bytes(good[0]))])
    assert not app.learn() and "at least 2" in app.message.value and app.teach_fit.disabled
    app.add_files([(p.name, _png_bytes(p)) for p in good[1:4]])
    assert app.teach_fit.description == "learn 4 parts" and app.line.counts()["shown"] == 1
    header, legend = app.header.value, app.legend.value
    t = time.perf_counter()
    assert app.learn()
    assert time.perf_counter() - t < 30
    taught = app.line.model
    assert taught is not small and taught.config.backbone == "mobilenet_v2"
    assert taught.config.sampling == "random" and taught.config.resize == 64
    assert "learned a new part from 4 good images" in app.message.value
    assert "data-kind='ok'" in app.message.value  # success in green, not error red
    assert app.header.value != header and "taught from 4 good images" in app.header.value
    n_bank = taught.info["memory_bank_size"]
    assert "sampling random 0.25" in app.header.value
    assert f"{n_bank:,} patches" in app.header.value
    assert f">{taught.map_range[1]:.3g}<" in app.legend.value and app.legend.value != legend
    assert "data-verdict='none'" in app.verdict.value and "no image yet" in app.caption.value
    with Image.open(io.BytesIO(app.heatmap.value)) as im:  # the old image is gone
        assert np.ptp(np.asarray(im)) == 0
    assert app.line.counts()["shown"] == 0 and app.threshold.value == taught.threshold
    assert app.line.tallies() == {}
    app.add_files([(good[5].name, _png_bytes(good[5]))])
    assert app.line.counts()["shown"] == 1 and np.isfinite(app.line.scores()).all()


def test_camera_frames_are_scored_counted_and_answered(model, tiny_category_ro):
    app = live.build_app(category=tiny_category_ro, model=model)
    sent = []
    app.camera.send = lambda content, buffers=None: sent.append(content)
    image = sorted((tiny_category_ro / "test" / "good").iterdir())[0]
    app.camera._message(app.camera, {"type": "frame"}, [_jpeg(image)])
    assert app.camera.scored == 1 and sent == [{"type": "scored", "n": 1}]
    assert app.line.frame.index == -1 and "camera frame 1" in app.caption.value
    assert app.line.counts()["shown"] == 2  # frames count, with their own row
    assert app.line.tallies()["camera"][0] == 1 and "pcl-tally' data-source='camera'" in (
        app.counts.value)
    app.camera._message(app.camera, {"type": "frame"}, [b"junk"])  # answered, with a message
    assert app.camera.scored == 2 and "camera frame skipped" in app.message.value
    # a frame is prepared as the model's own images are: the same image, the same score
    upload = app.line.history[-1].score
    app.add_files([("same.jpg", _jpeg(image))])
    np.testing.assert_allclose(app.line.history[-1].score, upload, rtol=1e-5)
    assert app.camera.aspect == pytest.approx(1.0)  # the data set's images are square


def test_teach_from_camera_captures(model, tiny_category_ro):
    """capture good keeps frames; learn fits on them; the same part on the camera then passes
    and a defective one is flagged (scores against the taught model's threshold)."""
    app = live.build_app(category=tiny_category_ro, model=model)
    app.camera.send = lambda content, buffers=None: None
    good = sorted((tiny_category_ro / "train" / "good").iterdir())
    for p in good[:6]:
        app.camera._message(app.camera, {"type": "frame", "capture": True}, [_jpeg(p)])
    assert app.camera.captured == 6 and app.teach_fit.description == "learn 6 parts"
    assert app.learn() and "(camera)" in app.message.value and app.camera.captured == 0
    assert app.line.counts()["shown"] == 0
    app.camera._message(app.camera, {"type": "frame"}, [_jpeg(good[2])])  # a taught part
    assert "data-verdict='pass'" in app.verdict.value
    defect = sorted(p for p in (tiny_category_ro / "test").rglob("*.png")
                    if "good" not in p.parts and "ground_truth" not in p.parts)[0]
    app.camera._message(app.camera, {"type": "frame"}, [_jpeg(defect)])
    assert "data-verdict='flagged'" in app.verdict.value
    assert app.line.tallies()["camera"] == (2, 1, 1)


def test_loop_restarts_the_line_and_the_end_is_announced(model, tiny_category_ro):
    app = live.build_app(category=tiny_category_ro, model=model)
    n = len(app.line.samples)
    app.presenter.value = True  # presenter mode: loop on by default
    assert app.loop.value and app.line.loop
    for _ in range(n + 2):
        assert app.step()
    assert app.line.counts()["shown"] == n + 3 and app.line.frame.number == 2
    assert "round 2" in app.caption.value and "End of the line" not in app.verdict.value
    app.loop.value = False
    while app.step():
        pass
    assert "End of the line" in app.verdict.value
    assert "pcl-explain" not in app.verdict.value.split("End of the line")[0][-60:]


def test_upload_folder_goes_when_the_kernel_ends(tmp_path):
    import subprocess
    import sys

    code = ("import tempfile; from patchcore_lite.apps.live import parts\n"
            "f = parts.upload_folder(); open(f + '/x', 'w').write('x'); print(f)")
    env = {**__import__("os").environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout.strip()
    assert out.startswith(str(tmp_path)) and not Path(out).exists()
    stale = tmp_path / f"{parts.PREFIX}999999999-abc"  # a kernel that was killed
    stale.mkdir()
    parts.remove_stale(tmp_path)
    assert not stale.exists()


def test_verdict_says_whether_it_was_right(model, tiny_category_ro):
    line = live.LiveDemo.from_folder(tiny_category_ro, model, shuffle=False)
    while line.step() is not None and line.frame.inspection.label != 1:
        pass
    line.threshold = line.frame.inspection.score + 1  # a defect that passes: missed
    text = markup.verdict_html(line)
    assert "data-outcome='missed'" in text and "MISSED DEFECT" in text
    assert markup.WARN_RGB in text
    line.threshold = line.frame.inspection.score
    assert "DEFECT CAUGHT" in markup.verdict_html(line)
