"""Graceful shutdown: on SIGTERM or SIGINT, replies under way get a grace period to
finish, then end with an error event (streams) or a 503, so every response ends as
HTTP allows instead of being cut off mid-body; then the process exits.

uvicorn alone waits ``timeout_graceful_shutdown`` for open responses and then cancels
them, which truncates a long stream (the client sees an incomplete chunked body). Here
the app is told first (:meth:`LlamaServerApp.drain`), so it ends the replies itself before
uvicorn's own limit, which is ``grace`` plus a margin to send those last events.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn

from .protocol import guarded_h11

FLUSH_MARGIN_S = 5.0  # after the grace period: time for the last events to go out
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after it (uvicorn's default)
MAX_HEADER_BYTES = 64 << 10  # the request line and headers (h11's incomplete-event bound); beyond it 400


class DrainingServer(uvicorn.Server):
    """A uvicorn server that calls ``drain(grace)`` when asked to exit."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[float], None], grace: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._grace = grace

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._drain(self._grace)
        super().handle_exit(sig, frame)


def serve_until_signalled(
    app: Callable[..., Awaitable[None]],
    drain: Callable[[float], None],
    *,
    sockets: list[socket.socket],
    grace: float,
    ssl_keyfile: str | None = None,
    ssl_certfile: str | None = None,
    verbose: bool = False,
    stop_when: Callable[[Callable[[], None]], None] | None = None,
    header_timeout: float = 10.0,
) -> bool:
    """Run the app on the listening sockets until SIGTERM/SIGINT, then stop gracefully (a
    second SIGINT forces it). False if it never started. ``stop_when(stop)`` is handed a
    function that stops the server from any thread, before it starts. A connection must
    send its request line and headers within ``header_timeout`` seconds (protocol.py)."""
    config = uvicorn.Config(
        app,
        timeout_graceful_shutdown=int(grace + FLUSH_MARGIN_S),
        http=guarded_h11(header_timeout),
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        log_level="info" if verbose else "warning",
        access_log=verbose,
        ssl_keyfile=ssl_keyfile,
        ssl_certfile=ssl_certfile,
        lifespan="on",
    )
    server = DrainingServer(config, drain, grace)
    if stop_when is not None:
        stop_when(lambda: setattr(server, "should_exit", True))
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:  # uvicorn raises the SIGINT it caught again once it has stopped
        pass
    return server.started
