"""``llamanb serve`` on a loopback port, in this process: the HTTP fuzzer, the soak test
and the hostile-input tests start it this way (llama-server's arguments, the front's
options)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from llamanb.server import FrontOptions, LlamaServerApp, create_app


@dataclass(frozen=True)
class Load:
    busy: int  # slots generating
    waiting: int  # requests the front holds (at work or waiting for a slot)


def load(url: str, app: LlamaServerApp) -> Load:
    slots = httpx.get(f"{url}/slots", timeout=30).json()
    return Load(sum(1 for s in slots if s.get("is_processing")), app.in_flight)


@contextmanager
def running_server(args: Sequence[str], options: FrontOptions | None = None) -> Iterator[tuple[str, LlamaServerApp]]:
    """Yields the base URL and the app once the model has loaded; stops the server on exit."""
    app = create_app(list(args), options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    url = f"http://127.0.0.1:{port}"
    while not (server.started and app.server.wait_ready(0.05)):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield url, app
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("the server did not stop")
