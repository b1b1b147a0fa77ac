"""A real headless Chromium driven over the DevTools protocol (websockets), for UI tests.

Only what the UI tests need: open a URL, wait until the rendered text satisfies a condition,
read the text, take a screenshot. Chromium is Debian's (/usr/bin/chromium); nothing is downloaded.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM = os.environ.get("PALIER_CHROMIUM", "/usr/bin/chromium")


def available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None


class Browser:
    def __init__(self, width: int = 1400, height: int = 1000):
        self.profile = Path(tempfile.mkdtemp(prefix="palier-chromium-"))
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._ids = itertools.count(1)
        self.ws = self._connect(timeout_s=60)
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _connect(self, timeout_s: float):
        from urllib.request import urlopen

        from websockets.sync.client import connect

        port_file = self.profile / "DevToolsActivePort"
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.proc.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                port = int(port_file.read_text().split()[0])
                with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as resp:
                    pages = [t for t in json.loads(resp.read()) if t.get("type") == "page"]
                if pages:
                    return connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=20)
            time.sleep(0.2)
        raise RuntimeError(f"chromium did not open its DevTools port within {timeout_s:.0f}s")

    def call(self, method: str, timeout_s: float = 60, **params) -> dict:
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.time() + timeout_s
        while True:
            raw = self.ws.recv(timeout=max(0.1, deadline - time.time()))
            msg = json.loads(raw)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"javascript failed: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result.get("result", {}).get("value")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, *needles: str, timeout_s: float = 60, absent: tuple[str, ...] = ()) -> str:
        """Wait until every needle is in the page's visible text; return that text.

        Raises with the last text seen (and which needle was missing) on timeout, or as soon as
        one of ``absent`` shows up."""
        deadline = time.time() + timeout_s
        text = ""
        while time.time() < deadline:
            text = self.text()
            for bad in absent:
                if bad in text:
                    raise AssertionError(f"page shows {bad!r}:\n{text[:3000]}")
            if all(n in text for n in needles):
                return text
            time.sleep(0.5)
        missing = [n for n in needles if n not in text]
        raise AssertionError(f"page text lacks {missing} after {timeout_s:.0f}s:\n{text[:3000]}")

    def click_text(self, text: str, selector: str = "button, a, [role=tab], li") -> None:
        """Click, as a mouse does (press, release), the first element matching ``selector`` whose
        visible text is ``text``. Real mouse events: some widgets react to the press, not to click()."""
        box = self.evaluate(
            f"(() => {{ const el = Array.from(document.querySelectorAll({json.dumps(selector)}))"
            f".find(e => e.innerText && e.innerText.trim() === {json.dumps(text)});"
            f" if (!el) return null; el.scrollIntoView({{block: 'center'}}); const r = el.getBoundingClientRect();"
            f" return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        if not box:
            raise AssertionError(f"nothing to click with the text {text!r}:\n{self.text()[:2000]}")
        x, y = box
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def click_all(self, selector: str) -> int:
        return self.evaluate(f"(() => {{ const els = Array.from(document.querySelectorAll({json.dumps(selector)}));"
                             f" els.forEach(e => e.click()); return els.length; }})()")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=5)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
