#!/usr/bin/env python3
"""Check llama.cpp's web UI in a real browser: the page loads, a message gets a streamed reply.

    python tools/ui_browser_check.py http://127.0.0.1:8080/ [--message TEXT] [--timeout 180]
        [--screenshot ui.png] [--chromium /usr/bin/chromium]

Drives headless Chromium (Debian's `chromium` package) over the Chrome DevTools Protocol
with a small WebSocket client of its own (standard library only, no Playwright):

1. opens the URL and waits for the UI's message box (the UI first reads /props, so this
   also waits for the model to load);
2. types the message into it as keystrokes would (Input.insertText) and presses Enter;
3. watches the network: the chat completion request must answer `text/event-stream`
   with several chunks arriving over time (Network.dataReceived);
4. watches the DOM: the assistant's message must appear, grow while the stream runs,
   and end non-empty.

Prints a JSON report (what it saw at each step, the reply, console errors) and exits 0
when every check passed, 1 otherwise. docs/web-ui.md shows a run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

# The UI's own markup (llama.cpp tools/ui): the chat input, and each assistant message.
INPUT = 'textarea, [role="textbox"][contenteditable="true"]'
ASSISTANT = '[aria-label="Assistant message with actions"]'
REPLY = ".markdown-content"  # inside ASSISTANT: the reply's text (beside it: model badge, stats)
STATS = ".info"


class WebSocket:
    """A minimal RFC 6455 client: text frames out (masked), frames in, ping answered."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "ws":
            raise ValueError(f"only ws:// URLs: {url}")
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        head, _, self.buffer = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"websocket handshake refused: {head.decode(errors='replace')}")

    def send(self, text: str) -> None:
        data = text.encode()
        header = bytearray([0x81])
        if len(data) < 126:
            header.append(0x80 | len(data))
        elif len(data) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(data))
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(bytes(header) + mask + masked)

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def recv(self, timeout: float) -> str | None:
        """The next text message, or None when none came within TIMEOUT seconds."""
        self.sock.settimeout(timeout)
        message = b""
        try:
            while True:
                b0, b1 = self._read(2)
                opcode, n = b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", self._read(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", self._read(8))[0]
                mask = self._read(4) if b1 & 0x80 else b""
                payload = self._read(n)
                if mask:
                    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                if opcode == 0x9:  # ping
                    self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
                    continue
                if opcode == 0x8:
                    raise ConnectionError("websocket closed by the browser")
                message += payload
                if b0 & 0x80:
                    return message.decode()
        except (socket.timeout, TimeoutError):
            return None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Page:
    """One browser tab over CDP: commands with replies, events kept in order."""

    def __init__(self, ws_url: str) -> None:
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events: deque[dict[str, Any]] = deque()

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = self.ws.recv(max(0.01, deadline - time.monotonic()))
            if raw is None:
                continue
            msg = json.loads(raw)
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(f"{method}: no reply in {timeout} s")

    def pump(self, seconds: float) -> None:
        """Collect the events that arrive within SECONDS."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            raw = self.ws.recv(left)
            if raw is not None:
                msg = json.loads(raw)
                if "method" in msg:
                    self.events.append(msg)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}...: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")


def launch(chromium: str, profile: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Headless Chromium with a DevTools port of its choosing; returns it and the port."""
    cmd = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
        "about:blank",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().count("\n") >= 1:
            return proc, int(port_file.read_text().splitlines()[0])
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"chromium exited with {proc.returncode}: {err[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError("chromium did not open its DevTools port in 60 s")


def page_target(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
        targets = json.load(r)
    for t in targets:
        if t.get("type") == "page":
            return str(t["webSocketDebuggerUrl"])
    raise RuntimeError(f"no page target among {targets}")


def last_reply(before: int) -> str:
    """JS: the text of the newest assistant message past the first BEFORE, else null."""
    return f"""(() => {{
        const all = document.querySelectorAll({json.dumps(ASSISTANT)});
        if (all.length <= {before}) return null;
        const last = all[all.length - 1], text = last.querySelector({json.dumps(REPLY)});
        return (text || last).innerText; }})()"""


def wait_for(page: Page, expression: str, timeout: float, step: float = 0.25) -> Any:
    """The first truthy value of EXPRESSION, polled (events collected meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        page.pump(step)


def check(url: str, message: str, timeout: float, chromium: str, screenshot: Path | None) -> dict[str, Any]:
    report: dict[str, Any] = {"url": url, "message": message, "checks": {}}
    checks: dict[str, bool] = report["checks"]
    profile = Path(tempfile.mkdtemp(prefix="llamanb-ui-check-"))
    proc, port = launch(chromium, profile)
    try:
        page = Page(page_target(port))
        report["browser"] = page.call("Browser.getVersion").get("product")
        for domain in ("Page", "Runtime", "Network", "Log"):
            page.call(f"{domain}.enable")
        t0 = time.monotonic()
        page.call("Page.navigate", url=url)

        # 1. the page loads and shows its message box (enabled: the server answered /props)
        ready = wait_for(
            page,
            f"""(() => {{
            const box = document.querySelector({json.dumps(INPUT)});
            return !!box && !box.disabled && box.getAttribute('aria-disabled') !== 'true'
                   && box.offsetParent !== null;
        }})()""",
            timeout,
        )
        report["title"] = page.evaluate("document.title")
        report["load_s"] = round(time.monotonic() - t0, 2)
        statuses = {
            e["params"]["response"]["url"]: e["params"]["response"]["status"]
            for e in page.events
            if e["method"] == "Network.responseReceived"
        }
        report["page_status"] = statuses.get(url)
        checks["page loads"] = report["page_status"] == 200 and bool(report["title"])
        checks["message box ready"] = bool(ready)
        if not ready:
            report["body_text"] = page.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
            return report

        # 2. type the message and send it with Enter
        before = page.evaluate(f"document.querySelectorAll({json.dumps(ASSISTANT)}).length")
        page.evaluate(f"document.querySelector({json.dumps(INPUT)}).focus()")
        page.call("Input.insertText", text=message)
        typed = page.evaluate(f"""(() => {{ const b = document.querySelector({json.dumps(INPUT)});
            return b.value !== undefined ? b.value : b.innerText; }})()""")
        checks["message typed"] = (typed or "").strip() == message.strip()
        enter: dict[str, Any] = {
            "key": "Enter",
            "code": "Enter",
            "windowsVirtualKeyCode": 13,
            "nativeVirtualKeyCode": 13,
        }
        page.call("Input.dispatchKeyEvent", type="keyDown", text="\r", **enter)
        page.call("Input.dispatchKeyEvent", type="keyUp", **enter)
        sent_at = time.monotonic()

        # 3 and 4. the completion streams: network chunks, and a reply that grows in the DOM
        growth: list[tuple[float, int]] = []
        request_id = None
        chunks: list[float] = []
        finished = False
        response_info: dict[str, Any] = {}
        seen = 0
        text = ""
        deadline = sent_at + timeout
        while time.monotonic() < deadline:
            page.pump(0.1)
            events = list(page.events)
            for e in events[seen:]:
                p = e["params"]
                if e["method"] == "Network.requestWillBeSent" and "chat/completions" in p["request"]["url"]:
                    request_id = p["requestId"]
                    report["request"] = {
                        "url": p["request"]["url"],
                        "method": p["request"]["method"],
                        "body": json.loads(p["request"].get("postData") or "null"),
                    }
                elif request_id and p.get("requestId") == request_id:
                    if e["method"] == "Network.responseReceived":
                        r = p["response"]
                        response_info = {"status": r["status"], "mimeType": r["mimeType"]}
                    elif e["method"] == "Network.dataReceived":
                        chunks.append(time.monotonic() - sent_at)
                    elif e["method"] in ("Network.loadingFinished", "Network.loadingFailed"):
                        finished = True
                        response_info["end"] = e["method"].split(".")[1]
            seen = len(events)
            current = page.evaluate(last_reply(int(before)))
            if current is not None:
                text = current
                if not growth or growth[-1][1] != len(current):
                    growth.append((round(time.monotonic() - sent_at, 2), len(current)))
            if finished and text.strip():
                page.pump(1.0)  # let the last chunk render
                text = page.evaluate(last_reply(int(before))) or text
                report["stats"] = page.evaluate(f"""(() => {{
                    const all = document.querySelectorAll({json.dumps(ASSISTANT)});
                    const info = all[all.length - 1].querySelector({json.dumps(STATS)});
                    return info ? info.innerText.replace(/\\s+/g, ' ').trim() : null; }})()""")
                break
        report["response"] = response_info
        report["chunks"] = {
            "count": len(chunks),
            "first_s": round(chunks[0], 2) if chunks else None,
            "last_s": round(chunks[-1], 2) if chunks else None,
        }
        report["dom_growth"] = growth
        report["reply"] = text
        checks["request sent"] = request_id is not None
        checks["reply is an event stream"] = (
            response_info.get("status") == 200
            and response_info.get("mimeType") == "text/event-stream"
            and response_info.get("end") == "loadingFinished"
        )
        checks["reply streamed in chunks"] = len(chunks) >= 3 and chunks[-1] > chunks[0]
        checks["reply grew in the page"] = len({n for _, n in growth if n > 0}) >= 2
        checks["reply shown"] = bool(text.strip())
        return report
    finally:
        report["failed_requests"] = sorted(
            {
                f"{e['params']['response']['status']} {e['params']['response']['url']}"
                for e in (page.events if "page" in locals() else [])
                if e["method"] == "Network.responseReceived" and e["params"]["response"]["status"] >= 400
            }
        )
        report["console_errors"] = [
            e["params"].get("entry", {}).get("text") or e["params"].get("exceptionDetails", {}).get("text")
            for e in (page.events if "page" in locals() else [])
            if (e["method"] == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")
            or e["method"] == "Runtime.exceptionThrown"
        ][:20]
        if screenshot is not None and "page" in locals():
            try:
                shot = page.call("Page.captureScreenshot", format="png")
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                report["screenshot"] = str(screenshot)
            except (RuntimeError, TimeoutError, ConnectionError, OSError) as err:
                report["screenshot_error"] = str(err)
        if "page" in locals():
            page.ws.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the server's UI, e.g. http://127.0.0.1:8080/")
    parser.add_argument("--message", default="Write one sentence about the sea.")
    parser.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds for the page (model loading included) and again for the reply",
    )
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the page at the end")
    parser.add_argument(
        "--chromium",
        default=shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
        or "chromium",
    )
    args = parser.parse_args(argv)
    report = check(args.url, args.message, args.timeout, args.chromium, args.screenshot)
    report["ok"] = bool(report["checks"]) and all(report["checks"].values()) and len(report["checks"]) == 8
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
