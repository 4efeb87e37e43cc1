"""Headless Debian Chromium driven over the DevTools protocol: load a page, collect its errors, screenshot it.

The browser is started with a fresh profile and every background feature off
(no network of its own, no first-run, no updates), on a port the OS picks; its
DevToolsActivePort file says which. Every console error, uncaught exception,
log entry of level error and network request is recorded, so a test can say
that a page logged no script error and fetched nothing.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    raise RuntimeError("chromium is not installed: run tests/browser/install-chromium.sh (make test does)")


@dataclass
class Page:
    """One tab over its DevTools websocket; events are kept as they arrive."""

    socket: websocket.WebSocket
    events: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 0

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._receive(deadline)
            if message is None:
                continue
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
        raise TimeoutError(f"{method}: no answer in {timeout}s")

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = len(self.events)
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event
            seen = len(self.events)
            self._receive(deadline)
        raise TimeoutError(f"no {method} in {timeout}s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and error-level log entries, in words."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif event["method"] == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def screenshot(self, path: Path, width: int = 1280) -> Path:
        """The whole page, not only the viewport."""
        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, timeout=180)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def _receive(self, deadline: float) -> dict[str, Any] | None:
        self.socket.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
        try:
            message: dict[str, Any] = json.loads(self.socket.recv())
        except websocket.WebSocketTimeoutException:
            return None
        if "method" in message:
            self.events.append(message)
        return message


class Chromium:
    """A headless Chromium process with a profile of its own, ended (and waited for) on exit."""

    def __init__(self, profile: Path, window: tuple[int, int] = (1280, 900)) -> None:
        self.profile = profile
        self.window = window
        self.process: subprocess.Popen[bytes] | None = None
        self.log = profile.parent / "chromium.log"

    def __enter__(self) -> Chromium:
        self.profile.mkdir(parents=True, exist_ok=True)
        argv = [
            chromium_binary(),
            *FLAGS,
            f"--user-data-dir={self.profile}",
            f"--window-size={self.window[0]},{self.window[1]}",
            "about:blank",
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log.open("wb"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def port(self, timeout: float = 60.0) -> int:
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            if active.exists() and (lines := active.read_text().split()):
                return int(lines[0])
            time.sleep(0.1)
        raise TimeoutError(f"chromium wrote no {active} in {timeout}s: {self.log.read_text()[-2000:]}")

    def open(self, url: str, timeout: float = 60.0) -> Page:
        """A new tab with every domain the checks need enabled, then navigated to `url` and loaded."""
        port = self.port()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            target = json.loads(response.read())
        page = Page(websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30, suppress_origin=True))
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(f"{domain}.enable")
        page.call("Page.navigate", url=url)
        page.wait_event("Page.loadEventFired", timeout)
        return page
