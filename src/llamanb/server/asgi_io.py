"""Raw ASGI I/O for the front (asgi.py): ASGI's types, request headers in and response
headers out, a bounded request body, a whole response, and llama-server's error shape."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .. import core

Scope = MutableMapping[str, Any]  # ASGI's types, as Starlette and uvicorn spell them
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RETRY_AFTER_S = 1  # what a 503 for a full server asks clients to wait


def error_body(status: int, message: str, kind: str) -> bytes:
    """llama-server's error shape."""
    return json.dumps({"error": {"code": status, "message": message, "type": kind}}).encode()


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers, their names lowercased (a repeated name: the last one)."""
    out: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        out[name.decode("latin-1").lower()] = value.decode("latin-1")
    return out


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    # llama-server's casing kept: clients (its own test suite among them) read headers into plain dicts
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes | None:
    """The whole body, or None when it is larger than ``limit`` (checked before reading
    when Content-Length says so)."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def send_whole(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    content_type: bytes = b"application/json; charset=utf-8",
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"Content-Type", content_type), (b"Content-Length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_busy(send: Send, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    """A 503 that asks the client to retry (``Retry-After``): the server is full, not failing."""
    await send_whole(
        send,
        503,
        error_body(503, message, "unavailable_error"),
        [*headers, (b"Retry-After", str(RETRY_AFTER_S).encode())],
    )


async def cancel_on_disconnect(receive: Receive, responses: list[core.server.ServerResponse]) -> None:
    """The client went away: the engine drops the request's tasks (llama-server's should_stop)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    for response in responses:
        response.cancel()
