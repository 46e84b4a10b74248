"""Render a page in headless Debian Chromium over the DevTools protocol.

Why not `chromium --dump-dom http://user:pass@host/…`: the MLflow UI then fails every API call
("Request cannot be constructed from a URL that includes credentials": fetch() refuses relative
URLs of a document whose URL holds credentials). Over DevTools the page gets a plain URL and every
request an ``Authorization`` header (Network.setExtraHTTPHeaders), and a virtual-time budget lets
the single-page app finish rendering, as ``--virtual-time-budget`` does on the command line.
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
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # running as root (CI, these machines)
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1440,900",
)


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """A minimal synchronous DevTools client for one page target."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._ws = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=10)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout_s: float = 30, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == msg_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def wait_event(self, method: str, timeout_s: float) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout_s
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(message)
            if message.get("method") == method:
                return message

    def close(self) -> None:
        self._ws.close()


def render_page(
    url: str,
    headers: dict[str, str],
    screenshot: Path,
    budget_ms: int = 15_000,
    timeout_s: float = 90,
) -> tuple[str, list[str]]:
    """Load ``url`` with ``headers`` on every request; return (DOM, console errors); save a PNG."""
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("chromium is not installed (Debian package `chromium`)")
    profile = Path(tempfile.mkdtemp(prefix="hearteye-chromium-"))
    (profile / "tmp").mkdir()
    env = {**os.environ, "TMPDIR": str(profile / "tmp")}  # its scratch files go with the profile
    proc = subprocess.Popen(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        port = _devtools_port(profile, proc, timeout_s=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.load(response)
        page = next(t for t in targets if t.get("type") == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        try:
            tools.call("Network.enable")
            tools.call("Network.setExtraHTTPHeaders", headers=headers)
            tools.call("Runtime.enable")
            tools.call("Log.enable")  # CSP violations and failed loads are reported here
            tools.call("Page.enable")
            tools.call("Emulation.setVirtualTimePolicy", policy="pause")
            tools.call("Page.navigate", url=url)
            tools.call(
                "Emulation.setVirtualTimePolicy",
                policy="pauseIfNetworkFetchesPending",
                budget=budget_ms,
            )
            tools.wait_event("Emulation.virtualTimeBudgetExpired", timeout_s)
            dom = tools.call(
                "Runtime.evaluate",
                expression="document.documentElement.outerHTML",
                returnByValue=True,
            )["result"]["value"]
            # Close a first-visit announcement dialog, if any, so the screenshot shows the page.
            tools.call("Emulation.setVirtualTimePolicy", policy="advance")
            for kind in ("keyDown", "keyUp"):
                tools.call("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape",
                           windowsVirtualKeyCode=27)  # fmt: skip
            time.sleep(1.0)
            shot = tools.call("Page.captureScreenshot", format="png")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            errors = (
                [
                    f"{e['params']['entry'].get('source')}: {e['params']['entry'].get('text')}"
                    for e in tools.events
                    if e.get("method") == "Log.entryAdded"
                    and e["params"]["entry"].get("level") == "error"
                ]
                + [
                    str(e["params"]["exceptionDetails"].get("text"))
                    for e in tools.events
                    if e.get("method") == "Runtime.exceptionThrown"
                ]
                + [
                    " ".join(str(a.get("value", "")) for a in e["params"].get("args", []))
                    for e in tools.events
                    if e.get("method") == "Runtime.consoleAPICalled"
                    and e["params"].get("type") == "error"
                ]
            )
            return str(dom), errors
        finally:
            tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(profile: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    """Chromium writes the DevTools port it picked to <profile>/DevToolsActivePort."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with status {proc.returncode}")
        if marker.is_file():
            first = marker.read_text().split("\n", 1)[0].strip()
            if first.isdigit():
                return int(first)
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port")
