"""Open an HTML report in a real headless Chromium and check it as a reader would.

``check_page(html_path, screenshot_path)`` starts Chromium (Debian package ``chromium``) with a fresh
profile, drives it over the DevTools protocol (a websocket; the ``websocket-client`` package, pure
Python, no browser download), loads the page from ``file://``, and returns::

    {"requests": [url, ...],            every request the page made (images, audio, ...)
     "failed": [(url, reason), ...],    requests that failed (missing file, HTTP status >= 400)
     "audio": [{"src", "duration", "error"}, ...],   one per <audio> element, after its metadata loaded
     "images": [{"src", "width"}],      naturalWidth 0 = a broken image
     "title": str, "screenshot": path}

Only the tests use it (``tests/sim_models/report/test_report_html.py``); it is here so that anyone can run
the same check on a report of their own::

    python -m sim_models.report.browser_check runs/sim/report.html shot.png

Flags: the ones that start Chromium headless as root in a container with no GPU and no network
(--no-sandbox, --disable-gpu, ...) plus a throw-away --user-data-dir.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["find_chromium", "check_page", "CHROMIUM_FLAGS"]

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--mute-audio", "--autoplay-policy=no-user-gesture-required")

# Resolves once every <audio> has its metadata (or an error), or after the timeout: a list of results.
_AUDIO_JS = """
(async () => {
  const els = Array.from(document.querySelectorAll('audio'));
  const one = (a) => new Promise((resolve) => {
    const done = () => resolve({src: a.currentSrc || a.src || (a.querySelector('source') || {}).src || '',
                                duration: isFinite(a.duration) ? a.duration : -1,
                                error: a.error ? a.error.code : null});
    if (a.readyState >= 1 || a.error) { done(); return; }
    a.addEventListener('loadedmetadata', done, {once: true});
    a.addEventListener('error', done, {once: true});
    const s = a.querySelector('source'); if (s) s.addEventListener('error', done, {once: true});
    setTimeout(done, %d);
    if (a.preload === 'none') a.preload = 'metadata';
    a.load();
  });
  const out = [];
  for (const a of els) out.push(await one(a));
  return JSON.stringify(out);
})()
"""

_IMG_JS = """JSON.stringify(Array.from(document.images).map(i => ({src: i.currentSrc || i.src, width: i.naturalWidth})))"""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``SIM_CHROMIUM`` first, then the usual names), or None."""
    env = os.environ.get("SIM_CHROMIUM")
    if env:
        return env if os.path.isfile(env) and os.access(env, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


class _CDP:
    """A minimal DevTools-protocol client over one websocket (browser endpoint, flat sessions)."""

    def __init__(self, ws_url: str, timeout: float):
        import websocket  # deferred optional import (websocket-client, the test extra)

        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.next_id, self.events = 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)
        raise TimeoutError(f"DevTools {method}: no reply in {timeout} s")

    def wait_event(self, name: str, timeout: float):
        deadline = time.monotonic() + timeout
        for e in self.events:
            if e["method"] == name:
                return e
        while time.monotonic() < deadline:
            e = json.loads(self.ws.recv())
            if "method" in e:
                self.events.append(e)
                if e["method"] == name:
                    return e
        raise TimeoutError(f"no {name} in {timeout} s")

    def close(self):
        self.ws.close()


def _devtools_url(proc, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        m = re.search(r"DevTools listening on (ws://\S+)", line)
        if m:
            return m.group(1)
    raise RuntimeError("Chromium did not start (no 'DevTools listening on' line); its output:\n" + "".join(lines[-20:]))


def check_page(html_path, screenshot_path, chromium: str | None = None, width: int = 1280,
               max_height: int = 12000, timeout: float = 90.0, audio_timeout_ms: int = 15000) -> dict:
    """Load ``html_path`` in headless Chromium, collect failed requests and every <audio>'s duration,
    write a full-page PNG screenshot (``width`` px wide, at most ``max_height`` px tall) to
    ``screenshot_path``. Raises FileNotFoundError for a missing page or browser, RuntimeError if
    Chromium does not start or the page does not load within ``timeout`` seconds."""
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"html_path {html_path} does not exist")
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium, or set SIM_CHROMIUM)")
    screenshot_path = Path(screenshot_path)
    # Chromium's helper processes (renderer, zygote, crashpad) can outlive the browser process and keep
    # writing to the profile: the browser starts in a session of its own and the whole group is ended
    # before the profile is removed (a plain terminate left "Directory not empty" behind once, in CI).
    with tempfile.TemporaryDirectory(prefix="sim-chromium-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                 "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            cdp = _CDP(_devtools_url(proc, timeout), timeout)
            try:
                return _inspect(cdp, html_path, screenshot_path, width, max_height, timeout, audio_timeout_ms)
            finally:
                cdp.close()
        finally:
            _end_process_group(proc)


def _end_process_group(proc) -> None:
    """SIGTERM to the browser's process group, up to 10 s for the browser to exit, then SIGKILL to
    whatever is left of the group (helpers outlive the browser), and reap the browser."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:  # the whole group is gone already
            break
        if sig == signal.SIGTERM:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
    proc.wait()


def _inspect(cdp: _CDP, html_path: Path, screenshot_path: Path, width, max_height, timeout, audio_timeout_ms) -> dict:
    target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    sid = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Network", "Runtime"):
        cdp.send(f"{domain}.enable", session=sid)
    cdp.send("Emulation.setDeviceMetricsOverride",
             {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=sid)
    cdp.events.clear()
    cdp.send("Page.navigate", {"url": html_path.as_uri()}, session=sid)
    cdp.wait_event("Page.loadEventFired", timeout)

    def evaluate(expr, await_promise=False):
        r = cdp.send("Runtime.evaluate", {"expression": expr, "awaitPromise": await_promise, "returnByValue": True},
                     session=sid, timeout=timeout)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page script failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    audio = json.loads(evaluate(_AUDIO_JS % audio_timeout_ms, await_promise=True))
    images = json.loads(evaluate(_IMG_JS))
    title = evaluate("document.title")
    height = int(evaluate("Math.ceil(document.documentElement.scrollHeight)"))
    cdp.send("Emulation.setDeviceMetricsOverride",
             {"width": width, "height": max(200, min(height, max_height)), "deviceScaleFactor": 1, "mobile": False},
             session=sid)
    time.sleep(0.3)  # let the resize lay out before capturing (not a timing check)
    shot = cdp.send("Page.captureScreenshot", {"format": "png"}, session=sid, timeout=timeout)["data"]

    screenshot_path.parent.mkdir(parents=True, exist_ok=True)
    screenshot_path.write_bytes(base64.b64decode(shot))
    # drain what arrived meanwhile, then read the network log
    requests, failed = {}, []
    for e in cdp.events:
        p = e.get("params", {})
        if e["method"] == "Network.requestWillBeSent":
            requests[p["requestId"]] = p["request"]["url"]
        elif e["method"] == "Network.responseReceived":
            status = p["response"].get("status", 0)
            if status >= 400:
                failed.append((p["response"]["url"], f"HTTP {status}"))
        elif e["method"] == "Network.loadingFailed" and not p.get("canceled"):
            failed.append((requests.get(p["requestId"], p["requestId"]), p.get("errorText", "failed")))
    return {"requests": sorted(set(requests.values())), "failed": failed, "audio": audio, "images": images,
            "title": title, "height": height, "screenshot": screenshot_path}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m sim_models.report.browser_check PAGE.html SCREENSHOT.png", file=sys.stderr)
        return 2
    r = check_page(argv[0], argv[1])
    bad_audio = [a for a in r["audio"] if not a["duration"] > 0]
    bad_img = [i for i in r["images"] if not i["width"]]
    print(f"{r['title']!r}: {len(r['requests'])} requests, {len(r['failed'])} failed, {len(r['audio'])} audio "
          f"({len(bad_audio)} without a duration), {len(r['images'])} images ({len(bad_img)} broken); "
          f"screenshot {r['screenshot']}")
    for url, why in r["failed"]:
        print(f"  failed: {url} ({why})")
    return 1 if r["failed"] or bad_audio or bad_img else 0


if __name__ == "__main__":
    sys.exit(main())
