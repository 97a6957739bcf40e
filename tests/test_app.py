"""`nst-keras app` in a real browser: the system Chromium driven by Playwright.

One app server (a subprocess, as a user starts it: `python -m nst_keras app --weights none`)
and one browser for the module; random weights and tiny images. Skips without Gradio; the
tests that drive a page skip without Playwright or /usr/bin/chromium, the loopback check
runs without them.

`NST_KERAS_SCREENSHOT=docs/app.png` also saves the page mid-run (the README's picture);
`NST_KERAS_APP_ARGS` adds options to the server (e.g. real weights for that picture).
"""

import hashlib
import importlib.util
import io
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, make_image

pytest.importorskip("gradio")  # Every test here serves the app.
# Under pytest-xdist (the README's `-n 2 --dist loadgroup`) the module's tests stay on one
# worker: they share one app server and one browser (module fixtures), which a second worker
# would start again.
pytestmark = pytest.mark.xdist_group("app")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _browser_missing() -> str:
    """Why the page cannot be driven here ("" when it can)."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install playwright)"
    if not os.path.exists(CHROMIUM):
        return "the system chromium is not installed (apt-get install chromium)"
    return ""


#: The tests that drive a page; the others need the server only.
needs_browser = pytest.mark.skipif(bool(_browser_missing()), reason=_browser_missing() or "-")

# Playwright adds its own temporary profile (--user-data-dir must not be passed) and most
# offline switches; these keep Chromium's background services quiet too.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(tmp))
    args = [sys.executable, "-m", "nst_keras", "app", "--weights", "none", "--port", str(port),
            "--preview-every", "2", *shlex.split(os.environ.get("NST_KERAS_APP_ARGS", ""))]
    log = open(tmp / "app.log", "w")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    else:
        proc.kill()
    if proc.poll() is not None:
        raise RuntimeError((tmp / "app.log").read_text())
    yield dict(url=url, port=port, tmp=tmp, proc=proc)
    proc.terminate()
    proc.wait(20)
    log.close()
    # The app's temporary folder (uploads, previews, results) is gone with it.
    assert not [p for p in tmp.iterdir() if p.name.startswith("nst_keras_app_")]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def new_page(browser, app):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100,
                                                                   "height": 900})
    page = context.new_page()
    page.external = []
    page.on("request", lambda r: None if r.url.startswith((app["url"], "data:", "blob:"))
            else page.external.append(r.url))
    page.goto(app["url"], wait_until="networkidle")
    return page


@pytest.fixture
def page(browser, app):
    page = new_page(browser, app)
    yield page
    assert page.external == [], page.external  # Nothing fetched off this machine.
    page.context.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inputs")
    content, style, text = tmp / "content.png", tmp / "style.png", tmp / "notes.txt"
    Image.fromarray(make_image(48, 64, seed=1)).save(content)
    Image.fromarray(make_image(48, 48, seed=2)).save(style)
    text.write_text("not an image at all\n")
    return dict(content=str(content), style=str(style), text=str(text))


def status(page):
    return page.locator("#status textarea").input_value()


def wait_status(page, pattern, timeout=30000):
    """Waits until the progress line matches the regular expression `pattern` (at its start)."""
    page.wait_for_function(
        "p => new RegExp('^' + p).test(document.querySelector('#status textarea').value)",
        arg=pattern, timeout=timeout)
    return status(page)


def fill(page, content, style, *, height=48, evals=20, seed=0):
    for where in ("content", "style"):  # A file already there hides the upload input.
        clear = page.locator(f"#{where} button[aria-label='Clear']")
        if clear.count():
            clear.first.click()
    page.locator("#content input[type=file]").set_input_files(content)
    page.locator("#style input[type=file]").set_input_files(style)
    for where, name in (("content", content), ("style", style)):  # The uploads are done.
        page.locator(f"#{where} td.filename[aria-label='{os.path.basename(name)}']").wait_for()
    # The picked photo and style show as pictures (no preview for a file that is no image).
    if not content.endswith(".txt"):
        page.locator("#content_preview img").wait_for()
    page.locator("#style_preview img").first.wait_for()
    page.locator("#height input").fill(str(height))
    page.locator("#evals input").fill(str(evals))
    page.locator("#seed input").fill(str(seed))


def record_of(page):
    href = page.locator("#dl_json a").first.get_attribute("href")
    return json.loads(page.request.get(href).body())


def downloaded_png(page, tmp_path):
    with page.expect_download() as download:
        page.click("#dl_png")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    return np.asarray(Image.open(path))


WATCH_RESULT = """() => {
  window.updates = [];
  new MutationObserver(() => {
    const img = document.querySelector('#result img');
    const text = document.querySelector('#status textarea').value;
    if (img && img.src && !window.updates.some(u => u[0] === img.src))
      window.updates.push([img.src, text]);
  }).observe(document.body, {subtree: true, childList: true, attributes: true,
                             attributeFilter: ['src']});
}"""


@needs_browser
def test_run_streams_progress_and_downloads_the_result(page, app, files, tmp_path):
    fill(page, files["content"], files["style"], evals=24)
    page.evaluate(WATCH_RESULT)
    page.click("#run")
    wait_status(page, r"iteration ([3-9]|\d\d)")
    shot = os.environ.get("NST_KERAS_SCREENSHOT")
    if shot:  # The README's picture, mid-run, kept small (a palette PNG).
        image = Image.open(io.BytesIO(page.screenshot(full_page=True)))
        image.thumbnail((900, 900))
        image.convert("P", palette=Image.ADAPTIVE, colors=128).save(shot, optimize=True)
    text = wait_status(page, "done")
    progress = [u for u in page.evaluate("window.updates") if u[1].startswith("iteration")]
    assert len({src for src, _ in progress}) >= 2, progress  # Two distinct images streamed.
    record = record_of(page)
    assert record["evaluations"] == 24 and record["size"] == [48, 64], text
    pixels = downloaded_png(page, tmp_path)
    assert pixels.shape == (48, 64, 3)
    # The PNG is the image the run returned, pixel for pixel.
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == record["app"]["image_sha256"]
    assert page.locator("#before_after img").is_visible()


@needs_browser
def test_stop_keeps_the_best_image(page, app, files, tmp_path):
    fill(page, files["content"], files["style"], height=64, evals=5000)
    page.click("#run")
    wait_status(page, r"iteration ([2-9]|\d\d)")
    page.click("#stop")
    text = wait_status(page, "stopped", timeout=20000)
    assert "best image so far" in text
    record = record_of(page)
    assert 2 <= record["evaluations"] < 5000
    assert record["app"]["ending"].startswith("stopped")
    # The one delivery's record: the same fields as the command line's (test_delivery).
    assert record["stopped"] == "stopped" and len(record["job_key"]) == 64
    assert record["stop_reason"] == "stopped (stopped)" and record["history"]
    pixels = downloaded_png(page, tmp_path)
    assert pixels.shape[:2] == (64, 85)
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == record["app"]["image_sha256"]


@needs_browser
def test_a_text_file_as_content_shows_the_message_and_the_next_run_works(page, app, files):
    fill(page, files["text"], files["style"], evals=4)
    page.click("#run")
    text = wait_status(page, "error:")
    # The command line's message for the same input (as_usage of the plan's error).
    assert text == ("error: cannot read the content image (20 bytes): it is not an image "
                    "file; use a JPEG, PNG, WebP, BMP, TIFF or GIF image"), text
    assert "\n" not in text
    fill(page, files["content"], files["style"], evals=4)
    page.click("#run")
    wait_status(page, "done")


@needs_browser
def test_a_second_page_waits_in_the_queue_then_runs(browser, app, files):
    first, second = new_page(browser, app), new_page(browser, app)
    try:
        # The first run's budget outlasts a busy machine's slowest page (30 evaluations
        # could end before the second page showed its place in the queue, with the other
        # test worker on the second core); it is stopped once the queue has been seen.
        fill(first, files["content"], files["style"], evals=2000)
        fill(second, files["content"], files["style"], evals=4)
        first.click("#run")
        wait_status(first, "iteration")
        second.click("#run")
        second.wait_for_function(
            "() => (document.querySelector('#result [data-testid=\"status-tracker\"]')"
            "        || {innerText: ''}).innerText.includes('queue')", timeout=30000)
        tracker = second.locator("#result [data-testid='status-tracker']").inner_text()
        assert "queue: 1/1" in " ".join(tracker.split())
        assert not status(second).startswith("iteration")  # Still waiting.
        first.click("#stop")
        wait_status(first, "stopped", timeout=30000)
        wait_status(second, "done", timeout=30000)
        assert first.external == [] and second.external == []
    finally:
        first.context.close()
        second.context.close()


def test_the_server_listens_on_loopback_only(app):
    port = f"{app['port']:04X}"
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local.endswith(":" + port):
                listening.append(local.split(":")[0])
    # 127.0.0.1 as /proc/net/tcp writes it (little-endian hex).
    assert listening == ["0100007F"], listening
    # The port listens before the app prints its line (`demo.launch` returns first): wait
    # for the line itself, a bounded while.
    line = f"serving on http://127.0.0.1:{app['port']}/"
    assert wait_for_line(app["tmp"] / "app.log", line, timeout=60), \
        (app["tmp"] / "app.log").read_text()


def wait_for_line(path, text, timeout: float) -> bool:
    """Whether `text` appears in the file at `path` within `timeout` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while True:
        if text in path.read_text():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
