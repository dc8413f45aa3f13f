"""uvicorn's HTTP/1.1 protocol (h11) with a deadline on the request line and headers.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but a
connection that sends part of a request line, or trickles its headers, is held forever:
a thousand of them exhausted the process's file descriptors and locked every client out,
while each failed accept was logged (issue 30, finding 8). Here every connection must
complete its request line and headers within ``header_timeout`` seconds of opening (or of
the previous response, on keep-alive), or it is closed without a word; the body has the
app's own deadline (``FrontOptions.body_timeout_s``, asgi.py).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def guarded_h11(header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol class, with the header deadline (``uvicorn.Config(http=...)``)."""

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm()  # the next request on this connection gets its own deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._header_timeout)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol
