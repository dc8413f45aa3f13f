"""The ASGI app in front of llama-server's engine (``core.server.Server``).

Every route is llama-server's own handler, called in process with the GIL released
(cpp/server.cpp); streams are its chunk producers, pulled from a worker thread. This
layer only adds what an HTTP front must decide, documented in docs/server.md where it
differs from llama-server:

- API keys (llama-server's rule: every route but /health needs one when set);
- CORS: llama-server's, except that a server without an API key answers cross-origin
  calls from localhost pages only unless ``--cors-origins`` says otherwise;
- request bodies: JSON only (a ``text/plain`` or form POST, which a web page may send
  without a CORS preflight, is a 415), at most ``max_request_bytes`` (413), read within
  ``body_timeout_s`` (408);
- stop strings: at most ``max_stop_strings`` of at most ``max_stop_bytes`` in all (400):
  llama-server checks each against the text of every token, for every client's cost;
- remote media (``allow_remote_media``): fetched here, under rules (remote_media.py), never by
  llama-server;
- a bounded queue: beyond ``n_parallel + max_queue`` requests at work, a 503 with
  ``Retry-After`` instead of an unbounded wait;
- a ``Host`` check on a loopback bind (DNS rebinding);
- a prompt cache scope per API key (``CACHE_SCOPE_HEADER``, patch 0040): requests with
  different keys reuse none of each other's cached prompts unless
  ``cache_share_across_keys``;
- light routes (GET) on their own threads, so /health answers however busy the engine is;
- Anthropic's ``thread`` (message threads beta) is a 400 with the error code its clients
  take as "send the whole conversation instead" (llama-server would ignore it and answer
  from the truncated conversation);
- Responses stream events get the ``sequence_number``/``output_index`` llama-server's lack.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .. import core
from .remote_media import MAX_URLS, MediaFetchError, fetch_as_data_url, media_urls
from .responses_events import ResponsesEventNumbering
from .stop_limits import STOP_ROUTES, stop_refusal
from .ui import Assets, ui_for

Scope = MutableMapping[str, Any]  # ASGI's types, as Starlette and uvicorn spell them
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/health", "/v1/health"})  # llama-server's: open without the API key
JSON_TYPES = ("application/json", "application/vnd.api+json")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ANTHROPIC_PATHS = frozenset({"/v1/messages", "/v1/messages/count_tokens"})
RESPONSES_PATHS = frozenset({"/v1/responses", "/responses"})
RETRY_AFTER_S = 1
# the routes whose bodies llama-server reads media URLs from (chat, Anthropic, Responses)
MEDIA_ROUTES = frozenset(
    {
        "/chat/completions",
        "/v1/chat/completions",
        "/responses",
        "/v1/responses",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/apply-template",
        "/chat/completions/input_tokens",
        "/v1/chat/completions/input_tokens",
        "/responses/input_tokens",
        "/v1/responses/input_tokens",
    }
)
# read by llama-server's handlers (patch 0040): whose cached prompts a request may reuse;
# always set here, whatever a client sends
CACHE_SCOPE_HEADER = "x-llamanb-cache-scope"
# llama-server's routes of features it serves only when enabled (the MCP CORS proxy, built-in
# tools and MCP); llamanb serve does not serve them (docs/server.md), so they answer as
# llama-server's do with the feature off: 403
DISABLED_PATHS = frozenset({"/cors-proxy", "/tools"})


@dataclass(frozen=True)
class FrontOptions:
    """What the HTTP front adds to llama-server's own arguments."""

    max_queue: int = 256  # requests that may wait for a slot; beyond it 503 (-1: no bound)
    max_request_bytes: int = 32 << 20  # a request body; beyond it 413
    light_threads: int = 4  # threads for GET routes (/health, /props, /metrics, ...)
    allow_remote_media: bool = False  # fetch http(s) media URLs (remote_media.py rules; else 400)
    remote_media_allow_private: bool = False  # with it: private and loopback addresses too (a LAN, tests)
    body_timeout_s: float = 60.0  # the whole body must arrive within it; else 408
    header_timeout_s: float = 10.0  # the request line and headers (uvicorn's protocol, command.py)
    max_stop_strings: int = 256  # `stop` / `stop_sequences` entries; beyond it 400
    max_stop_bytes: int = 32 << 10  # their total UTF-8 size; beyond it 400
    cache_share_across_keys: bool = False  # requests with different API keys reuse each other's cached prompts

    def __post_init__(self) -> None:
        if self.max_queue < -1:
            raise ValueError(f"max_queue must be >= -1, got {self.max_queue}")
        if self.max_request_bytes < 1 or self.light_threads < 1:
            raise ValueError("max_request_bytes and light_threads must be >= 1")
        if self.body_timeout_s <= 0 or self.header_timeout_s <= 0:
            raise ValueError("body_timeout_s and header_timeout_s must be > 0")
        if self.max_stop_strings < 0 or self.max_stop_bytes < 0:
            raise ValueError("max_stop_strings and max_stop_bytes must be >= 0")


def create_app(args: Sequence[str], options: FrontOptions | None = None) -> LlamaServerApp:
    """llama-server's engine for llama-server's command line ``args`` (without the program
    name; ``--model PATH`` at least) behind llamanb's front: an ASGI app for uvicorn, or to
    mount in Starlette or FastAPI (``app.mount("/llm", create_app([...]))``). The model
    loads on the engine's thread when the app starts; until then routes answer 503."""
    return LlamaServerApp(core.server.Server(list(args)), options)


def error_body(status: int, message: str, kind: str) -> bytes:
    """llama-server's error shape."""
    return json.dumps({"error": {"code": status, "message": message, "type": kind}}).encode()


class LlamaServerApp:
    """An ASGI app serving one ``core.server.Server``; it starts the engine with the ASGI
    lifespan (or on the first request) and stops it at shutdown."""

    def __init__(
        self, server: core.server.Server, options: FrontOptions | None = None, ui: Assets | None = None
    ) -> None:
        self.server = server
        # llama-server's `/`: the packaged web UI, --path DIR, or --no-ui (docs/web-ui.md);
        # a --path that is not a directory raises FileNotFoundError, as llama-server fails
        self.ui = ui if ui is not None else ui_for(enabled=server.ui, public_path=server.public_path)
        self.options = options or FrontOptions()
        self.prefix = server.api_prefix.rstrip("/")
        self.api_keys = tuple(server.api_keys)
        self.loopback_bind = all(_is_loopback(h) for h in server.hostnames)
        work = max(1, server.n_parallel) + (self.options.max_queue if self.options.max_queue >= 0 else 1024)
        self._max_work = None if self.options.max_queue < 0 else work
        self._work = 0
        self._work_pool = ThreadPoolExecutor(max_workers=work + 4, thread_name_prefix="llamanb-work")
        self._light_pool = ThreadPoolExecutor(max_workers=self.options.light_threads, thread_name_prefix="llamanb-get")
        self._started = False
        self._draining = False  # new requests get 503
        self._stopping = False  # requests under way are cut off
        self._active: set[core.server.ServerResponse] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        core.server.set_remote_media(False)  # the front fetches remote media itself (remote_media.py)

    @property
    def in_flight(self) -> int:
        """Requests (other than GETs) the front holds now: at work or waiting for a slot."""
        return self._work

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Starts loading the model on the engine's thread (returns at once)."""
        if not self._started:
            self._started = True
            self.server.start()

    def stop(self) -> None:
        """Cancels what is under way (the handlers return), then ends the engine."""
        self._draining = True
        self._cut_off()
        self.server.stop()
        self._work_pool.shutdown(wait=False, cancel_futures=True)
        self._light_pool.shutdown(wait=False, cancel_futures=True)

    def drain(self, grace: float) -> None:
        """Graceful shutdown (called from the signal handler): new requests get 503 at once;
        replies under way get ``grace`` seconds, then end with a "shutting down" error."""
        self._draining = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.call_later, grace, self._cut_off)

    def _cut_off(self) -> None:
        self._stopping = True
        for response in list(self._active):
            response.cancel()

    # --- ASGI ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                try:
                    self.start()
                except Exception as err:  # noqa: BLE001 - reported to the ASGI server
                    await send({"type": "lifespan.startup.failed", "message": str(err)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.start()
        self._loop = asyncio.get_running_loop()
        method: str = scope["method"]
        headers = _headers(scope)
        cors = self._cors_headers(headers)
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):  # mounted in another app (Starlette's Mount)
            path = path[len(root) :] or "/"
        if self.prefix:
            if not path.startswith(self.prefix):
                await _send_whole(send, 404, error_body(404, "File Not Found", "not_found_error"), cors)
                return
            path = path[len(self.prefix) :] or "/"

        if method == "OPTIONS":  # llama-server answers every preflight, key or not
            preflight = [
                *cors,
                (b"Access-Control-Allow-Credentials", b"true" if self.server.cors_credentials else b"false"),
                (b"Access-Control-Allow-Methods", self.server.cors_methods.encode()),
                (b"Access-Control-Allow-Headers", self.server.cors_headers.encode()),
            ]
            await _send_whole(send, 200, b"", preflight, content_type=b"text/html")
            return
        refusal = self._refusal(method, path, headers)
        if refusal is not None:
            await _send_whole(send, refusal[0], refusal[1], cors)
            return
        if path in DISABLED_PATHS and method in ("GET", "POST"):
            await _send_whole(send, 403, error_body(403, "this feature is disabled", "feature_disabled"), cors)
            return
        if method in ("GET", "HEAD"):
            asset = await asyncio.get_running_loop().run_in_executor(self._light_pool, self.ui.lookup, path, headers)
            if asset is not None:
                status, asset_headers, asset_body = asset
                await send({"type": "http.response.start", "status": status, "headers": [*cors, *asset_headers]})
                await send({"type": "http.response.body", "body": asset_body if method == "GET" else b""})
                return

        heavy = method != "GET"
        if heavy and self._max_work is not None and self._work >= self._max_work:
            await _send_whole(
                send,
                503,
                error_body(503, "the server is busy: too many requests waiting", "unavailable_error"),
                [*cors, (b"Retry-After", str(RETRY_AFTER_S).encode())],
            )
            return
        if self._draining:
            await _send_whole(send, 503, error_body(503, "the server is shutting down", "unavailable_error"), cors)
            return

        try:
            body = await asyncio.wait_for(
                _read_body(receive, headers, self.options.max_request_bytes), self.options.body_timeout_s
            )
        except asyncio.TimeoutError:  # the connection closes: its body would go on arriving
            await _send_whole(
                send,
                408,
                error_body(
                    408,
                    f"the request body did not arrive within {self.options.body_timeout_s:g} s",
                    "invalid_request_error",
                ),
                [*cors, (b"Connection", b"close")],
            )
            return
        if body is None:
            await _send_whole(
                send,
                413,
                error_body(
                    413,
                    f"the request body is larger than {self.options.max_request_bytes} bytes",
                    "invalid_request_error",
                ),
                cors,
            )
            return

        if method == "POST" and path in ANTHROPIC_PATHS and b'"thread"' in body:
            refused = await asyncio.get_running_loop().run_in_executor(self._work_pool, thread_refusal, body)
            if refused is not None:
                await _send_whole(send, 400, refused, cors)
                return

        headers[CACHE_SCOPE_HEADER] = self._cache_scope(headers)
        query_string = scope.get("query_string", b"").decode("latin-1")
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        pool = self._work_pool if heavy else self._light_pool
        loop = asyncio.get_running_loop()
        response = core.server.ServerResponse()
        watcher = asyncio.create_task(_cancel_on_disconnect(receive, response))
        self._active.add(response)
        if heavy:
            self._work += 1
        try:
            if method == "POST" and (path in STOP_ROUTES or (self.options.allow_remote_media and path in MEDIA_ROUTES)):
                vetted = await loop.run_in_executor(pool, self._vet_body, path, body)
                if isinstance(vetted, tuple):
                    await _send_whole(send, vetted[0], error_body(vetted[0], vetted[1], "invalid_request_error"), cors)
                    return
                body = vetted
            await loop.run_in_executor(
                pool, self.server.handle, response, method, path, query, headers, query_string, body
            )
            if self._stopping and response.cancelled:
                await _send_whole(send, 503, error_body(503, "the server is shutting down", "server_error"), cors)
            elif response.is_stream:
                numbering = ResponsesEventNumbering() if path in RESPONSES_PATHS else None
                await self._stream(response, send, cors, pool, numbering)
            else:
                await _send_whole(
                    send,
                    response.status,
                    response.body,
                    [*cors, *_encode(response.headers)],
                    content_type=response.content_type.encode(),
                )
        finally:
            watcher.cancel()
            self._active.discard(response)
            if heavy:
                self._work -= 1
            await loop.run_in_executor(pool, response.close)

    async def _stream(
        self,
        response: core.server.ServerResponse,
        send: Send,
        cors: list[tuple[bytes, bytes]],
        pool: ThreadPoolExecutor,
        numbering: ResponsesEventNumbering | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        pull = response.next_chunk
        if numbering is not None:

            def pull() -> bytes | None:  # numbered in the worker thread, off the event loop
                chunk = response.next_chunk()
                if chunk is None:
                    return numbering.flush() or None
                return numbering(chunk)

        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"Content-Type", response.content_type.encode()),
                    (b"X-Accel-Buffering", b"no"),
                    *cors,
                    *_encode(response.headers),
                ],
            }
        )
        try:
            while (chunk := await loop.run_in_executor(pool, pull)) is not None:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if self._stopping and response.cancelled:  # cut off by shutdown: say so, end as SSE allows
                error = error_body(503, "the server is shutting down", "server_error")
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"data: " + error + b"\n\ndata: [DONE]\n\n",
                        "more_body": True,
                    }
                )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            response.cancel()  # the connection broke while sending

    # --- the front's own checks ----------------------------------------------------------

    def _refusal(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes] | None:
        if self.loopback_bind and not _loopback_host(headers.get("host", "")):
            return 403, error_body(
                403, "the Host header does not name this server (a loopback address)", "permission_error"
            )
        if (
            self.api_keys
            and path not in PUBLIC_PATHS
            and not self._key_ok(headers)
            and not (method in ("GET", "HEAD") and self.ui.is_public(path))
        ):
            return 401, error_body(401, "Invalid API Key", "authentication_error")
        if method == "POST":
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type and content_type not in JSON_TYPES:
                return 415, error_body(
                    415,
                    f"the request body must be JSON (Content-Type: application/json), got {content_type}",
                    "invalid_request_error",
                )
        return None

    def _vet_body(self, path: str, body: bytes) -> bytes | tuple[int, str]:
        """The body to hand llama-server (its remote media fetched and inlined), or the
        status and message of a refusal. Runs on a worker thread. Only a body that may hold
        stop strings or, with remote media allowed, media URLs is parsed (a byte search
        first: most bodies are not parsed twice). One that is not a JSON object goes on
        unchanged: llama-server's parser answers it."""
        if path in STOP_ROUTES:
            refusal = stop_refusal(body, self.options.max_stop_strings, self.options.max_stop_bytes)
            if refusal is not None:
                return 400, refusal
        if not (self.options.allow_remote_media and path in MEDIA_ROUTES and b"http" in body):
            return body
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return body
        if not isinstance(data, dict):
            return body
        found = list(media_urls(data))
        if not found:
            return body
        if len(found) > MAX_URLS:
            return 400, f"at most {MAX_URLS} remote media URLs per request"
        budget = self.options.max_request_bytes
        for url, kind, replace in found:
            try:
                data_url = fetch_as_data_url(url, kind, allow_private=self.options.remote_media_allow_private)
            except MediaFetchError as err:
                return 400, str(err)
            budget -= len(data_url)
            if budget < 0:
                return 413, (
                    f"the request with its remote media inlined is larger than {self.options.max_request_bytes} bytes"
                )
            replace(data_url)
        return json.dumps(data).encode()

    def _key_ok(self, headers: dict[str, str]) -> bool:
        key = _request_key(headers)
        return any(_same(key, k) for k in self.api_keys)

    def _cache_scope(self, headers: dict[str, str]) -> str:
        """Whose cached prompts this request may reuse: one scope per API key (a digest
        of it), one for all on a keyless server or with ``cache_share_across_keys``."""
        if not self.api_keys or self.options.cache_share_across_keys:
            return ""
        key = _request_key(headers)
        if not any(_same(key, k) for k in self.api_keys):
            return "public"  # a public path (/health): it caches nothing
        return "key:" + hashlib.sha256(key.encode()).hexdigest()

    def _cors_headers(self, headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
        origins = self.server.cors_origins
        if not self.api_keys and not self.server.cors_origins_explicit:
            origins = "localhost"  # a keyless server: web pages elsewhere cannot drive it
        origin = headers.get("origin", "")
        if self.server.cors_credentials and origins == "*":
            value = origin
        elif origins == "localhost":
            value = origin if origin and _origin_is_localhost(origin) else ""
        else:
            value = origins
        return [(b"Access-Control-Allow-Origin", value.encode())] if value else []


# --- helpers ------------------------------------------------------------------------------


def thread_refusal(body: bytes) -> bytes | None:
    """Anthropic's error for a ``thread`` this server cannot keep (it stores no conversations):
    the ``anthropic`` library's thread helpers then send the whole conversation unthreaded."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        return None  # llama-server answers malformed (or too deeply nested) JSON itself
    if not isinstance(request, dict) or "thread" not in request:
        return None
    return json.dumps(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "message threads are not supported by this server: send the whole conversation without `thread`",
                "details": {"error_code": "thread_unsupported_request", "unsupported": []},
            },
        }
    ).encode()


async def _cancel_on_disconnect(receive: Receive, response: core.server.ServerResponse) -> None:
    """The client went away: the engine drops the request's task (llama-server's should_stop)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    response.cancel()


def _request_key(headers: dict[str, str]) -> str:
    key = headers.get("authorization", "") or headers.get("x-api-key", "")
    return key.removeprefix("Bearer ")


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        out[name.decode("latin-1").lower()] = value.decode("latin-1")
    return out


def _encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    # llama-server's casing kept: clients (its own test suite among them) read headers into plain dicts
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes | None:
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


async def _send_whole(
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


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _loopback_host(host_header: str) -> bool:
    """Whether a Host header names a loopback address (with or without a port)."""
    if not host_header:
        return True  # HTTP/1.0 clients send none; a browser always does
    host = urlsplit("//" + host_header).hostname or ""
    return _is_loopback(host)


def _origin_is_localhost(origin: str) -> bool:
    return _is_loopback(urlsplit(origin).hostname or "")
