"""A llamanb server on a loopback port, in this process: the suite's server fixture, the
HTTP fuzzer and the soak test all start it this way."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from llamanb.server import ServerConfig
from llamanb.server.app import Api, create_app


@contextmanager
def running_server(config: ServerConfig) -> Iterator[tuple[str, Api]]:
    """Yields the base URL and the app's Api; stops the server on exit."""
    app = create_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app.state.api
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("the server did not stop")
