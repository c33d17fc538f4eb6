"""The live demo as a person sees it: Voila server + headless Debian Chromium driven by Playwright.

Starts `voila notebooks/06_live_demo.ipynb` the way `make present` does (prepare step, then the
server on a free localhost port), opens the page, waits for the first heatmap, plays, pauses,
moves the threshold and checks the counts, and checks that bad input gives a readable message.
Then a booth: computed font sizes and page heights at 1920x1080 and 1280x720, a batch of 50
uploads of about 1 MB each and an oversize file, teach from uploads, and teach from a fake
camera (Chromium plays a .y4m written here with numpy: good parts, then defective ones).
Screenshots and timings go to runs/browser-test/.

Needs /usr/bin/chromium (Debian package `chromium`; .ci/run installs it) and Playwright for
Python; no browser is ever downloaded. Without them the test is skipped, except with CI=true,
where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from patchcore_lite.apps.live import serving

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "06_live_demo.ipynb"
OUT = REPO / "runs" / "browser-test"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
VOILA_OPTS = list(serving.VOILA_OPTS)  # as in the Makefile
# First heatmap within 30 s on 2 CPU cores with a cached model. Wall time depends on
# whatever else the machine runs, so the check passes when either the wall time (page opened ->
# first heatmap) or the CPU seconds the server and its kernel spent from their start until then
# (about what an otherwise idle machine needs: both are single-threaded until the first frame)
# are under the limit. All of them are recorded in runs/browser-test/timing.json.
MAX_FIRST_HEATMAP_S = 30.0
SERVER_START_S = 120  # bounded waits: generous for loaded CI runners, never unbounded
PAGE_S = 120


def _browser_missing() -> str | None:
    if not CHROMIUM.is_file():
        return (f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium); "
                "the test never downloads a browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        return f"Playwright for Python is not installed ({e})"
    return None


@pytest.fixture(scope="module", autouse=True)
def _need_browser():
    why = _browser_missing()
    if why and os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the browser test cannot run: {why}")
    if why:
        pytest.skip(f"browser test skipped: {why}")


# ---------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A Voila server for the live demo notebook, run as `make present` runs it."""

    def __init__(self, name: str, env: dict[str, str]):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = OUT / f"server-{name}.log"
        full_env = {**os.environ, **env}
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voila", str(NOTEBOOK), f"--port={self.port}", *VOILA_OPTS],
            cwd=REPO, env=full_env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait_listening(self, timeout: float = SERVER_START_S) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"voila exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return time.perf_counter() - self.t0
            except OSError:
                time.sleep(0.25)
        pytest.fail(f"voila did not listen on {self.port} within {timeout} s:\n{self.tail()}")

    def wait_preheated(self, timeout: float = SERVER_START_S) -> None:
        """Wait until the pre-heated kernel is registered (it then runs the notebook at once).
        A request that comes earlier gets a kernel of its own, and two kernels share the CPU."""
        deadline = time.perf_counter() + timeout
        while "Kernel pool of" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                pytest.fail(f"no pre-heated kernel within {timeout} s:\n{self.tail()}")
            time.sleep(0.25)

    def cpu_seconds(self) -> tuple[float, float]:
        """User + system CPU seconds so far of the server, and of its kernels."""
        import psutil

        def cpu(p) -> float:
            try:
                t = p.cpu_times()
                return t.user + t.system
            except psutil.Error:
                return 0.0

        server = psutil.Process(self.proc.pid)
        return cpu(server), sum(cpu(k) for k in server.children(recursive=True))

    def kernels(self) -> list:
        """The server's kernel processes now (ipykernel), by pid."""
        import psutil

        out = []
        for p in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                if any("ipykernel" in a for a in p.cmdline()):
                    out.append(p)
            except psutil.Error:
                pass
        return out

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        """SIGTERM the server, then kill what is left of it and of its kernels, by pid."""
        try:
            import psutil

            family = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(
                recursive=True)]
        except Exception:  # noqa: BLE001 - psutil missing or the server already gone
            family = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for p in family:
            try:
                p.wait(timeout=5)
            except Exception:  # noqa: BLE001
                try:
                    p.kill()
                except Exception:  # noqa: BLE001 - already gone
                    pass


def _prepare(env: dict[str, str]) -> dict[str, str]:
    """`make present`'s first step: data and cached model ready; the variables it exports."""
    r = subprocess.run([sys.executable, "-m", "patchcore_lite.apps.live", "--prepare"], cwd=REPO,
                       env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    pairs = [shlex.split(line)[1].split("=", 1) for line in r.stdout.splitlines() if line]
    return dict(pairs)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small copy of the embedded hex_nut category, and a home with its model cached."""
    from patchcore_lite.datasets.synth import generate

    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        if old.is_file():
            old.unlink()
    root = tmp_path_factory.mktemp("browser")
    (category,) = generate(root / "data", seed=0, n_train=12, n_test=20, categories=["hex_nut"])
    env = {"PATCHCORE_LITE_HOME": str(root / "home"), "PATCHCORE_LITE_DATA": str(category),
           "PATCHCORE_LITE_WEIGHTS": "none", "PATCHCORE_LITE_MODEL": ""}
    t = time.perf_counter()
    env.update(_prepare(env))  # first start: fits once and caches
    fit_s = time.perf_counter() - t
    assert env["PATCHCORE_LITE_WEIGHTS"] == "none"
    t = time.perf_counter()
    assert _prepare(env) == {k: env[k] for k in ("PATCHCORE_LITE_DATA", "PATCHCORE_LITE_WEIGHTS",
                                                  "PATCHCORE_LITE_START")}  # from the cache
    return dict(category=category, env=env, root=root, fit_s=fit_s,
                cached_prepare_s=time.perf_counter() - t)


CAMERA_W, CAMERA_H, CAMERA_FPS = 640, 480, 2
CAMERA_GOOD_S = 8  # the fake camera shows good parts for 8 s, then defective ones for 8 s


def camera_view(image: Path, defect: bool = False, width: int = CAMERA_W,
                height: int = CAMERA_H):
    """What a camera sees of a square part photo: the part in the middle of a wider frame,
    the sides filled with the photo's border colour; `defect` paints a bright scratch and a
    dark notch on the part. (H, W, 3) uint8."""
    import numpy as np
    from PIL import Image

    part = np.array(Image.open(image).convert("RGB").resize((height, height), Image.BILINEAR))
    if defect:
        s = height // 20
        part[9 * s:10 * s, 6 * s:14 * s] = 245
        part[12 * s:15 * s, 5 * s:7 * s] = 20
    border = np.concatenate([part[0], part[-1], part[:, 0], part[:, -1]]).mean(0)
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = border.round().astype(np.uint8)
    left = (width - height) // 2
    frame[:, left:left + height] = part
    return frame


def write_y4m(path: Path, frames, fps: int = CAMERA_FPS) -> Path:
    """A .y4m video (YUV 4:2:0, BT.601 full range) of RGB frames (H, W, 3) uint8: Chromium's fake
    camera plays it in a loop. numpy only: no ffmpeg."""
    import numpy as np

    h, w = frames[0].shape[:2]
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            r, g, b = (np.asarray(rgb, np.float64)[..., i] for i in range(3))
            y = 0.299 * r + 0.587 * g + 0.114 * b
            u = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
            v = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
            planes = [y] + [c.reshape(h // 2, 2, w // 2, 2).mean((1, 3)) for c in (u, v)]
            f.write(b"FRAME\n" + b"".join(np.clip(p.round(), 0, 255).astype(np.uint8).tobytes()
                                           for p in planes))
    return path


def camera_frames(category: Path) -> list:
    """The fake camera's video: two good parts, then the same two with a defect, each part
    CAMERA_GOOD_S / 2 seconds."""
    good = sorted((category / "test" / "good").glob("*.png"))[:2]
    n = CAMERA_GOOD_S * CAMERA_FPS // len(good)
    return [camera_view(p, bad) for bad in (False, True) for p in good for _ in range(n)]


@pytest.fixture(scope="module")
def browser(tmp_path_factory, dataset):
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path_factory.getbasetemp())
    video = write_y4m(Path(profile).with_suffix(".y4m"), camera_frames(dataset["category"]))
    camera = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-video-capture={video}"]
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + camera, headless=True,
            viewport={"width": 1400, "height": 1000})
        ctx.set_default_timeout(PAGE_S * 1000)
        try:
            yield ctx
        finally:
            ctx.close()


# ---------------------------------------------------------------- page helpers


def counts(page) -> dict[str, int | None]:
    """The count tiles, read at one instant (a recount may land between two reads)."""
    texts = page.evaluate("""() => ["shown", "passed", "flagged", "missed", "false-alarms"].map(
        (k) => [k, document.querySelector(`.pcl-counts .pcl-${k}`).textContent.trim()])""")
    return {k: int(t) if t.isdigit() else None for k, t in texts}


def wait_for(page, what: str, cond, timeout: float = 60.0):
    """Poll `cond()` until truthy (bounded); returns its value."""
    deadline = time.perf_counter() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.perf_counter() > deadline:
            shot(page, f"timeout-{re.sub(r'[^a-z]+', '-', what.lower())}")
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        page.wait_for_timeout(200)


def shot(page, name: str) -> Path:
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def drag_slider(page, css: str, fraction: float) -> None:
    """Drag a slider's handle with the mouse to `fraction` of its track (0 = left end,
    1 = right end; beyond the ends clamps, like a person overshooting)."""
    handle = page.locator(f"{css} .noUi-handle")
    track = page.locator(f"{css} .noUi-base").bounding_box()
    h = handle.bounding_box()
    y = h["y"] + h["height"] / 2
    page.mouse.move(h["x"] + h["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(track["x"] + fraction * track["width"], y, steps=12)
    page.mouse.up()


def play_button(page):
    return page.locator(".pcl-play button").first


def is_playing(page) -> bool:
    return "fa-pause" in (play_button(page).locator("i").get_attribute("class") or "")


def open_app(page, url: str) -> float:
    """Open the page; seconds until the first heatmap image is decoded and visible."""
    t = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=PAGE_S * 1000)
    page.wait_for_function(
        "() => { const e = document.querySelector('.pcl-heatmap');"
        " return e && e.complete && e.naturalWidth > 0 && e.offsetWidth > 0; }",
        timeout=PAGE_S * 1000)
    return time.perf_counter() - t


# ---------------------------------------------------------------- tests


def test_live_demo_in_the_browser(dataset, browser, capsys):
    server = Server("demo", dataset["env"])
    timing = dict(fit_first_start_s=dataset["fit_s"], prepare_cached_s=dataset["cached_prepare_s"])
    try:
        timing["server_listening_s"] = server.wait_listening()
        server.wait_preheated()
        timing["server_preheating_s"] = time.perf_counter() - server.t0
        page = browser.new_page()
        timing["page_open_to_first_heatmap_s"] = open_app(page, server.url)
        timing["server_start_to_first_heatmap_s"] = time.perf_counter() - server.t0
        cpu_server, cpu_kernels = server.cpu_seconds()
        timing["server_cpu_s_to_first_heatmap"] = cpu_server
        timing["kernel_cpu_s_to_first_heatmap"] = cpu_kernels
        shot(page, "01-first-heatmap")

        # what is on the page
        assert "RANDOM-INIT (not pretrained)" in page.locator(".pcl-weights").inner_text()
        c0 = counts(page)
        assert c0["shown"] == 1 and c0["passed"] + c0["flagged"] == 1
        assert c0["missed"] is not None and c0["false-alarms"] is not None  # labels known
        verdict = page.locator(".pcl-verdict .pcl-verdict-box")
        assert verdict.get_attribute("data-verdict") in ("pass", "flagged")
        assert re.search(r"(PASS|FLAGGED)", page.locator(".pcl-verdict").inner_text())
        assert not is_playing(page)  # starts paused; nothing moves until the presenter says so

        # speed control, then play
        drag_slider(page, ".pcl-speed", 1.2)
        wait_for(page, "speed 'fast'",
                 lambda: page.locator(".pcl-speed .widget-readout").inner_text() == "fast")
        play_button(page).click()
        wait_for(page, "play icon to turn into pause", lambda: is_playing(page), 10)
        wait_for(page, "4 images inspected", lambda: counts(page)["shown"] >= 4, 90)
        shot(page, "02-playing")

        # pause: the line stops
        play_button(page).click()
        wait_for(page, "pause", lambda: not is_playing(page), 10)
        page.wait_for_timeout(1500)  # a tick already sent may still land
        paused = counts(page)
        page.wait_for_timeout(2000)  # 8 ticks at 'fast': nothing may move
        assert counts(page) == paused
        shot(page, "03-paused")
        n = paused["shown"]
        assert paused["passed"] + paused["flagged"] == n

        # threshold to the far left: everything is flagged, no miss
        readout = page.locator(".pcl-threshold .widget-readout")
        before = readout.inner_text()
        drag_slider(page, ".pcl-threshold", -0.1)
        low = wait_for(page, "recount at the lowest threshold",
                       lambda: (c := counts(page))["flagged"] == n and c)
        assert readout.inner_text() != before
        assert low["passed"] == 0 and low["missed"] == 0
        assert low["flagged"] >= paused["flagged"] and low["false-alarms"] >= paused[
            "false-alarms"]
        assert verdict.get_attribute("data-verdict") == "flagged"
        shot(page, "04-threshold-lowest")

        # threshold to the far right: everything passes, every defect is missed
        drag_slider(page, ".pcl-threshold", 1.1)
        high = wait_for(page, "recount at the highest threshold",
                        lambda: (c := counts(page))["flagged"] == 0 and c)
        assert high["passed"] == n and high["false-alarms"] == 0
        assert high["missed"] >= low["missed"] and high["missed"] + low["false-alarms"] == n
        assert verdict.get_attribute("data-verdict") == "pass"
        shot(page, "05-threshold-highest")

        # resume: the line moves on, new images counted at the current threshold
        play_button(page).click()
        wait_for(page, "more images after resuming", lambda: counts(page)["shown"] > n, 90)
        play_button(page).click()
        wait_for(page, "pause", lambda: not is_playing(page), 10)
        page.wait_for_timeout(1500)
        resumed = counts(page)
        assert resumed["passed"] + resumed["flagged"] == resumed["shown"] > n
        assert resumed["flagged"] == 0  # still the highest threshold
        shot(page, "06-resumed")
        page_text = page.locator("body").inner_text()
        assert "Traceback" not in page_text and "Exercise" not in page_text  # lesson cells out
    finally:
        server.stop()
        (OUT / "timing.json").write_text(json.dumps(timing, indent=2))
        with capsys.disabled():
            print(f"\nbrowser test: screenshots and timing in {OUT}: "
                  + ", ".join(f"{k}={v:.1f}" for k, v in timing.items()))
    cpu = timing["server_cpu_s_to_first_heatmap"] + timing["kernel_cpu_s_to_first_heatmap"]
    assert min(timing["page_open_to_first_heatmap_s"], cpu) < MAX_FIRST_HEATMAP_S, timing


def test_bad_input_shows_a_readable_message(dataset, browser, tmp_path):
    not_mvtec = tmp_path / "holiday_photos"
    not_mvtec.mkdir()
    for f in sorted((dataset["category"] / "train" / "good").iterdir())[:2]:
        (not_mvtec / f.name).write_bytes(f.read_bytes())
    cached = next((Path(dataset["env"]["PATCHCORE_LITE_HOME"]) / "cache").glob("*.pclite"))
    bad_model = tmp_path / "broken.pclite"
    bad_model.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])  # truncated copy
    cases = {
        "bad-folder": ({"PATCHCORE_LITE_DATA": str(not_mvtec)}, "not an MVTec AD layout"),
        "bad-model": ({"PATCHCORE_LITE_MODEL": str(bad_model)}, "broken.pclite"),
    }
    servers = {name: Server(name, {**dataset["env"], **env}) for name, (env, _) in cases.items()}
    try:
        for i, (name, (_, expected)) in enumerate(cases.items()):
            servers[name].wait_listening()
            servers[name].wait_preheated()
            page = browser.new_page()
            page.goto(servers[name].url, wait_until="commit")
            error = page.locator(".pcl-error")
            error.wait_for(state="visible", timeout=PAGE_S * 1000)
            text = error.inner_text()
            shot(page, f"{7 + i:02d}-error-{name}")
            assert expected in text, text
            body = page.locator("body").inner_text()
            assert "Traceback" not in body and "There was an error" not in body
            assert page.locator(".pcl-heatmap").count() == 0
            page.close()
    finally:
        for s in servers.values():
            s.stop()


RELOADS = 6
MAX_RELOAD_HEATMAP_S = 10.0  # every load, however soon after the last one
MAX_KERNELS_AFTER = 2  # ten seconds after the last of six loads closed


def test_reloads_are_instant_and_free_their_kernels(dataset, browser):
    """Open, wait for the heatmap, close the tab (no unload event), open again: six times."""
    server = Server("reloads", dataset["env"])
    result: dict = {}
    try:
        server.wait_listening()
        server.wait_preheated()
        seconds = []
        for _ in range(RELOADS):
            page = browser.new_page()
            seconds.append(round(open_app(page, server.url), 2))
            page.close()
        result["first_heatmap_s"] = seconds
        after_close = []
        for _ in range(10):
            time.sleep(1)
            after_close.append(len(server.kernels()))
        result["kernels_each_second_after_last_close"] = after_close
    finally:
        server.stop()
        (OUT / "reloads.json").write_text(json.dumps(result, indent=2))
    assert max(result["first_heatmap_s"]) < MAX_RELOAD_HEATMAP_S, result
    assert after_close[-1] <= MAX_KERNELS_AFTER, result


# ---------------------------------------------------------------- a booth: layout, uploads, teach

SIZES = ((1920, 1080), (1280, 720))
MIN_TEXT_PX = 18  # every text at 1920x1080 in presenter mode
UPLOADS, UPLOAD_BYTES = 50, 10**6
MAX_UPLOAD_BATCH_S = 120  # 50 x 1 MB, from choosing the files to the last one scored
MIN_CAMERA_FPS = 1.0

MEASURE = """() => {
  const app = document.querySelector('.pcl-app');
  let min = 1e9, smallest = '';
  const walk = document.createTreeWalker(app, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const el = walk.currentNode.parentElement, text = walk.currentNode.textContent.trim();
    if (!text || el.closest('style') || !el.getClientRects().length) continue;
    const css = getComputedStyle(el);
    if (css.visibility === 'hidden') continue;
    const px = parseFloat(css.fontSize);
    if (px < min) { min = px; smallest = `${el.className || el.tagName}: ${text.slice(0, 40)}`; }
  }
  const img = document.querySelector('.pcl-heatmap'), box = img.getBoundingClientRect();
  const k = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight);  // contain
  return { min_font_px: min, smallest, app_scroll_h: app.scrollHeight,
           app_client_h: app.clientHeight, doc_scroll_h: document.scrollingElement.scrollHeight,
           window_h: innerHeight, heatmap_w: img.naturalWidth * k,
           heatmap_bottom: box.top + img.naturalHeight * k };
}"""


def measure(page, size: tuple[int, int], name: str) -> dict:
    """Computed font sizes and heights at this window size; a screenshot of what it shows."""
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.wait_for_timeout(600)
    got = page.evaluate(MEASURE)
    page.screenshot(path=str(OUT / f"{name}-{size[0]}x{size[1]}.png"))
    return got


def fits(m: dict) -> bool:
    return m["app_scroll_h"] <= m["app_client_h"] + 1 and m["doc_scroll_h"] <= m["window_h"] + 1


def tally(page, source: str) -> int:
    """Images of one source (line, upload, camera) inspected by the current model."""
    row = page.locator(f".pcl-tally[data-source='{source}']")
    return int(row.inner_text().split(":")[1].split()[0]) if row.count() else 0


def upload(page, paths) -> None:
    """The upload button's file dialog, as a person uses it."""
    with page.expect_file_chooser() as chooser:
        page.locator(".pcl-upload button").first.click()
    chooser.value.set_files([str(p) for p in paths])


def drop(page, css: str, paths) -> None:
    """Drop files on an element, as a file manager does (a DataTransfer of Files)."""
    import base64

    page.evaluate("""([css, files]) => {
        const data = new DataTransfer();
        for (const [name, b64] of files)
            data.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name,
                                    { type: "image/png" }));
        const el = document.querySelector(css);
        for (const type of ["dragenter", "dragover", "drop"])
            el.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true }));
    }""", [css, [[p.name, base64.b64encode(p.read_bytes()).decode()] for p in paths]])


def message(page) -> tuple[str, str]:
    el = page.locator(".pcl-message .pcl-message-text")
    return (el.inner_text(), el.get_attribute("data-kind")) if el.count() else ("", "")


def open_booth(server, browser):
    server.wait_listening()
    server.wait_preheated()
    page = browser.new_page()
    page.set_viewport_size({"width": 1920, "height": 1080})
    open_app(page, server.url)
    return page


def check_layout(page) -> dict:
    """Both sizes, outside and in presenter mode (which turns loop on); back at 1920x1080."""
    assert page.locator(".pcl-app.pcl-full").count() == 1  # Voila: full screen at once
    result = {f"normal {size}": measure(page, size, "10-normal") for size in SIZES}
    page.locator(".pcl-presenter").click()
    wait_for(page, "presenter mode", lambda: page.locator(".pcl-app.pcl-presenter").count())
    assert "mod-active" in page.locator(".pcl-loop").get_attribute("class")  # loop on
    result.update({f"presenter {size}": measure(page, size, "11-presenter") for size in SIZES})
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
    (OUT / "layout.json").write_text(json.dumps(result, indent=2))
    return result


def assert_legible(result: dict) -> None:
    """Presenter mode: every text >= 18 px at 1920x1080, no scrolling at either size; outside
    presenter mode the app fits 1920x1080 too; a large heatmap inside the window."""
    big, small = result[f"presenter {SIZES[0]}"], result[f"presenter {SIZES[1]}"]
    assert big["min_font_px"] >= MIN_TEXT_PX, big
    assert fits(big) and fits(small) and fits(result[f"normal {SIZES[0]}"]), result
    for m, (w, h) in ((big, SIZES[0]), (small, SIZES[1])):
        assert m["heatmap_w"] >= 0.5 * w and m["heatmap_bottom"] <= h + 1, m


def _upload_batch(tmp_path: Path, category: Path) -> list[Path]:
    """UPLOADS part photos of about 1 MB each (an enlarged test image with sensor noise)."""
    import numpy as np
    from PIL import Image

    sources = sorted((category / "test").rglob("*.png"))
    rng = np.random.default_rng(0)
    out = []
    for i in range(UPLOADS):
        big = np.asarray(Image.open(sources[i % len(sources)]).convert("RGB").resize(
            (740, 740), Image.BILINEAR), np.float64)
        noisy = np.clip(big + rng.normal(0, 3, big.shape), 0, 255).astype(np.uint8)
        path = tmp_path / f"part {i + 1:02d}.png"  # spaces: names are kept as they are
        Image.fromarray(noisy).save(path, compress_level=1)
        out.append(path)
    return out


def test_booth_layout_and_uploads_of_any_size(dataset, browser, tmp_path):
    """The layout at both sizes (assert_legible). 50 photos of ~1 MB in one batch (50 MB: five
    times the server's default websocket limit) are all scored, in order, with their names; an
    oversize file gets its message and the next upload works; a dropped pair arrives; the upload
    folder goes when the kernel ends."""
    batch = _upload_batch(tmp_path, dataset["category"])
    tmp = tmp_path / "server-tmp"
    tmp.mkdir()
    server = Server("uploads", {**dataset["env"], "TMPDIR": str(tmp)})
    result: dict = dict(batch_mb=round(sum(p.stat().st_size for p in batch) / 1e6, 1))
    try:
        page = open_booth(server, browser)
        layout = check_layout(page)
        t = time.perf_counter()
        upload(page, batch)
        result["first_scored_s"] = wait_for(
            page, "the first upload scored", lambda: tally(page, "upload") and round(
                time.perf_counter() - t, 2), MAX_UPLOAD_BATCH_S)
        wait_for(page, f"{UPLOADS} uploads scored",
                 lambda: tally(page, "upload") == UPLOADS, MAX_UPLOAD_BATCH_S)
        result["all_scored_s"] = round(time.perf_counter() - t, 2)
        caption = page.locator(".pcl-caption").inner_text()
        assert f"upload {UPLOADS}: {batch[-1].name}" in caption, caption  # last, name kept
        assert page.locator(".pcl-shown").inner_text() == str(UPLOADS + 1)
        shot(page, "12-uploads-50")

        oversize = tmp_path / "huge scan.png"
        oversize.write_bytes(os.urandom(26 * 10**6))
        upload(page, [oversize])
        wait_for(page, "the oversize message", lambda: "over the upload limit" in message(
            page)[0], 30)
        text, kind = message(page)
        assert "huge scan.png: 26.0 MB is over the upload limit of 25 MB" in text and (
            kind == "error")
        upload(page, batch[:1])  # the next upload still works
        wait_for(page, "an upload after the oversize one",
                 lambda: tally(page, "upload") == UPLOADS + 1, 60)
        drop(page, ".pcl-drop", batch[1:3])  # drag and drop, several at once
        wait_for(page, "two dropped files", lambda: tally(page, "upload") == UPLOADS + 3, 60)
        assert batch[2].name in page.locator(".pcl-caption").inner_text()
        shot(page, "13-oversize-then-drop")
        assert len(list(tmp.glob("pcl-uploads-*"))) == 1  # kept while the page is open
        page.close()
        deadline = time.perf_counter() + 60  # the culler ends the kernel of a closed page
        while list(tmp.glob("pcl-uploads-*")) and time.perf_counter() < deadline:
            time.sleep(0.5)
        result["folders_left_after_close"] = [p.name for p in tmp.glob("pcl-uploads-*")]
    finally:
        server.stop()
        result["folders_left_after_stop"] = [p.name for p in tmp.glob("pcl-uploads-*")]
        (OUT / "uploads.json").write_text(json.dumps(result, indent=2))
    assert_legible(layout)
    assert result["folders_left_after_close"] == result["folders_left_after_stop"] == [], result


def _page_names(page) -> dict:
    return dict(title=page.locator(".pcl-title").inner_text(), verdict=page.locator(
        ".pcl-verdict [data-verdict]").first.get_attribute("data-verdict"),
        model=page.locator(".pcl-model").inner_text(),
        vmax=page.locator(".pcl-vmax").inner_text(), shown=page.locator(".pcl-shown").inner_text())


def _camera_verdicts(page, seconds: float) -> list[tuple[float, str, float]]:
    """(seconds since the camera started, verdict, score) of each camera frame scored."""
    seen, out, t0 = set(), [], time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        state = page.evaluate("""() => {
            const v = document.querySelector('.pcl-verdict [data-verdict]');
            const c = document.querySelector('.pcl-caption');
            return [c ? c.textContent : '', v ? v.dataset.verdict : '',
                    v ? v.dataset.score : ''];
        }""")
        m = re.search(r"camera frame (\d+)", state[0])
        if m and m.group(1) not in seen and state[2]:
            seen.add(m.group(1))
            out.append((round(time.perf_counter() - t0, 2), state[1], float(state[2])))
        page.wait_for_timeout(50)
    return out


def test_teach_then_camera_follows_the_model(dataset, browser):
    """Teach from uploads: the page names and draws the new model. Then teach from the camera:
    capture good parts, learn; the good parts on the camera pass and the defective ones that
    follow them in the video are flagged; camera frames are counted."""
    server = Server("teach", dataset["env"])
    result: dict = {}
    train = sorted((dataset["category"] / "train" / "good").iterdir())
    try:
        page = open_booth(server, browser)
        before = _page_names(page)
        page.locator(".pcl-teach").click()
        upload(page, train[:4])
        fit = page.locator(".pcl-teach-fit")
        wait_for(page, "4 parts to learn", lambda: "learn 4" in fit.inner_text(), 60)
        fit.click()
        wait_for(page, "the taught model", lambda: "learned" in message(page)[0], 120)
        after = _page_names(page)
        assert message(page)[1] == "ok" and "from 4 good images" in message(page)[0]
        assert "taught from 4 good images" in after["title"] and after["title"] != before[
            "title"]
        assert "sampling random" in after["model"] and after["model"] != before["model"]
        assert after["vmax"] != before["vmax"] and after["verdict"] == "none"
        assert after["shown"] == "0" and "no image yet" in page.locator(".pcl-caption").inner_text()
        shot(page, "14-taught-from-uploads")

        button = page.locator(".pcl-camera .pcl-camera-button")
        button.click()  # the fake camera starts with the good parts, two of each
        t = time.perf_counter()
        for n, at in enumerate((1.5, 2.5, 5.5, 6.5), 1):
            page.wait_for_timeout(max(0.0, at - (time.perf_counter() - t)) * 1000)
            page.locator(".pcl-capture").click()
            wait_for(page, f"capture {n}", lambda n=n: f"{n} captured" in page.locator(
                ".pcl-captured").inner_text(), 30)
        button.click()
        fit.click()
        wait_for(page, "the model taught from the camera",
                 lambda: "(camera)" in message(page)[0], 120)
        frames = page.locator(".pcl-camera-count")
        n0 = int(frames.inner_text().split()[0])
        button.click()  # a new camera session plays the video from its start: good, then bad
        verdicts = _camera_verdicts(page, 2 * CAMERA_GOOD_S - 0.5)
        result["camera_fps"] = round((int(frames.inner_text().split()[0]) - n0) / (
            2 * CAMERA_GOOD_S - 0.5), 2)
        shot(page, "15-camera-after-teach")
        button.click()
        result["camera_verdicts"] = verdicts
        result["camera_tally"] = tally(page, "camera")
    finally:
        server.stop()
        (OUT / "teach.json").write_text(json.dumps(result, indent=2))
    margin = 2.5  # the video starts up to a second after the click; a frame is scored later
    good_seen = [v for t, v, _ in verdicts if 1.0 <= t <= CAMERA_GOOD_S - margin]
    bad_seen = [v for t, v, _ in verdicts if CAMERA_GOOD_S + margin <= t]
    assert good_seen and set(good_seen) == {"pass"}, verdicts
    assert bad_seen and set(bad_seen) == {"flagged"}, verdicts
    assert result["camera_fps"] >= MIN_CAMERA_FPS and result["camera_tally"] >= len(verdicts)
