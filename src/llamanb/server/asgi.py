"""The ASGI app in front of llama-server's engine (``core.server.Server``): lifespan,
routing, the bounded queue, and streaming.

Every route is llama-server's own handler, called in process with the GIL released
(cpp/server.cpp); streams are its chunk producers, pulled by C++ threads into the loop
in batches (stream_feed.py). This
layer only adds what an HTTP front must decide, documented in docs/server.md where it
differs from llama-server:

- API keys (llama-server's rule: every route but /health needs one when set) (access.py);
- CORS: llama-server's, except that a server without an API key answers cross-origin
  calls from localhost pages only unless ``--cors-origins`` says otherwise (access.py);
- request bodies: JSON only (a ``text/plain`` or form POST, which a web page may send
  without a CORS preflight, is a 415; access.py), but for the audio uploads' multipart
  forms (multipart_form.py), at most ``max_request_bytes`` (413;
  asgi_io.py), read within ``body_timeout_s`` (408; here);
- stop strings: at most ``max_stop_strings`` of at most ``max_stop_bytes`` in all (400):
  llama-server checks each against the text of every token, for every client's cost
  (stop_limits.py, body_vetting.py);
- remote media (``allow_remote_media``): fetched by the front, under rules (remote_media.py),
  and inlined (body_vetting.py), never fetched by llama-server;
- a bounded queue: beyond ``n_parallel + max_queue`` requests at work, a 503 with
  ``Retry-After`` instead of an unbounded wait, and as many open streams plus the GET
  threads, each stream having a thread that pulls it (here);
- a ``Host`` check on a loopback bind (DNS rebinding) (access.py);
- a prompt cache scope per API key (``CACHE_SCOPE_HEADER``, patch 0040): requests with
  different keys reuse none of each other's cached prompts unless
  ``cache_share_across_keys`` (access.py);
- light routes (GET) on their own threads, so /health answers however busy the engine is (here);
- Vertex AI's prediction route with ``AIP_MODE=PREDICTION`` (vertex.py), which llama-server
  serves from its HTTP layer;
- Anthropic's ``thread`` (message threads beta) is a 400 with the error code its clients
  take as "send the whole conversation instead" (llama-server would ignore it and answer
  from the truncated conversation) (body_vetting.py).

Responses stream events get the ``sequence_number``/``output_index``/``content_index``
llama-server's lack in the engine itself (patch 0052), not here.

The front's settings are ``FrontOptions`` (front_options.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl

from .. import core
from .access import CACHE_SCOPE_HEADER, AccessPolicy
from .asgi_io import (
    Receive,
    Scope,
    Send,
    cancel_on_disconnect,
    encode_headers,
    error_body,
    read_body,
    request_headers,
    send_busy,
    send_whole,
)
from .body_vetting import ANTHROPIC_PATHS, needs_vetting, thread_refusal, vet_body
from .front_options import FrontOptions
from .multipart_form import FORM_PATHS, UploadedFiles, is_form, parse_form
from .stream_feed import StreamFeed
from .ui import Assets, ui_for
from .vertex import PredictRequest, parse_instances, predict_one, predictions_body, request_formats

STREAM_END_WAIT_S = 10.0  # at stop: for the threads pulling cancelled streams to leave the engine
# llama-server's routes of features it serves only when enabled (the MCP CORS proxy, built-in
# tools and MCP); llamanb serve does not serve them (docs/server.md), so they answer as
# llama-server's do with the feature off: 403
DISABLED_PATHS = frozenset({"/cors-proxy", "/tools"})


def create_app(args: Sequence[str], options: FrontOptions | None = None) -> LlamaServerApp:
    """llama-server's engine for llama-server's command line ``args`` (without the program
    name; ``--model PATH`` at least) behind llamanb's front: an ASGI app for uvicorn, or to
    mount in Starlette or FastAPI (``app.mount("/llm", create_app([...]))``). The model
    loads on the engine's thread when the app starts; until then routes answer 503."""
    return LlamaServerApp(core.server.Server(list(args)), options)


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
        self.vertex = self.options.vertex  # Vertex AI's routes (vertex.py), or None
        if self.vertex is not None and any(path == self.vertex.predict for _, path in server.routes):
            raise ValueError(f"AIP_PREDICT_ROUTE={self.vertex.predict} conflicts with an existing llama-server route")
        self._formats = request_formats(server.routes) if self.vertex is not None else {}  # @requestFormat names
        self.access = AccessPolicy.of(server, self.options, self.ui)  # keys, Host, CORS, cache scope
        work = max(1, server.n_parallel) + (self.options.max_queue if self.options.max_queue >= 0 else 1024)
        self._max_work = None if self.options.max_queue < 0 else work
        # each stream has a thread pulling it (stream_feed.py): GET streams (/v1/stream) count too
        self._max_streams = None if self._max_work is None else self._max_work + self.options.light_threads
        self._work = 0
        self._work_pool = ThreadPoolExecutor(max_workers=work + 4, thread_name_prefix="llamanb-work")
        self._light_pool = ThreadPoolExecutor(max_workers=self.options.light_threads, thread_name_prefix="llamanb-get")
        self._started = False
        self._draining = False  # new requests get 503
        self._stopping = False  # requests under way are cut off
        self._active: set[core.server.ServerResponse] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._feed: StreamFeed | None = None  # the streams of the loop serving the app
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
        if self._feed is not None:
            self._feed.close(STREAM_END_WAIT_S)
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
        headers = request_headers(scope)
        cors = self.access.cors(headers)
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):  # mounted in another app (Starlette's Mount)
            path = path[len(root) :] or "/"
        if self.prefix:
            if not path.startswith(self.prefix):
                await send_whole(send, 404, error_body(404, "File Not Found", "not_found_error"), cors)
                return
            path = path[len(self.prefix) :] or "/"
        if self.vertex is not None and path == self.vertex.health and method in ("GET", "HEAD"):
            path = "/health"  # Vertex AI's health route (AIP_HEALTH_ROUTE)

        if method == "OPTIONS":  # llama-server answers every preflight, key or not
            await send_whole(send, 200, b"", self.access.preflight(cors), content_type=b"text/html")
            return
        refusal = self.access.refusal(method, path, headers)
        if refusal is not None:
            await send_whole(send, refusal[0], refusal[1], cors)
            return
        if path in DISABLED_PATHS and method in ("GET", "POST"):
            await send_whole(send, 403, error_body(403, "this feature is disabled", "feature_disabled"), cors)
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
            await send_busy(send, "the server is busy: too many requests waiting", cors)
            return
        if self._draining:
            await send_whole(send, 503, error_body(503, "the server is shutting down", "unavailable_error"), cors)
            return

        try:
            body = await asyncio.wait_for(
                read_body(receive, headers, self.options.max_request_bytes), self.options.body_timeout_s
            )
        except asyncio.TimeoutError:  # the connection closes: its body would go on arriving
            await send_whole(
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
            await send_whole(
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

        files: UploadedFiles = {}
        if method == "POST" and path in FORM_PATHS and is_form(headers.get("content-type", "")):
            form = await asyncio.get_running_loop().run_in_executor(
                self._work_pool, parse_form, headers["content-type"], body
            )
            if isinstance(form, str):
                await send_whole(send, 400, error_body(400, form, "invalid_request_error"), cors)
                return
            body, files = form.body, form.files

        if method == "POST" and path in ANTHROPIC_PATHS and b'"thread"' in body:
            refused = await asyncio.get_running_loop().run_in_executor(self._work_pool, thread_refusal, body)
            if refused is not None:
                await send_whole(send, 400, refused, cors)
                return

        headers[CACHE_SCOPE_HEADER] = self.access.cache_scope(headers)
        query_string = scope.get("query_string", b"").decode("latin-1")
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        if self.vertex is not None and method == "POST" and path == self.vertex.predict:
            await self._predict(headers, query, query_string, body, receive, send, cors)
            return
        pool = self._work_pool if heavy else self._light_pool
        loop = asyncio.get_running_loop()
        response = core.server.ServerResponse()
        watcher = asyncio.create_task(cancel_on_disconnect(receive, [response]))
        self._active.add(response)
        if heavy:
            self._work += 1
        try:
            if method == "POST" and needs_vetting(path, self.options):
                vetted = await loop.run_in_executor(pool, vet_body, path, body, self.options)
                if isinstance(vetted, tuple):
                    await send_whole(send, vetted[0], error_body(vetted[0], vetted[1], "invalid_request_error"), cors)
                    return
                body = vetted
            await loop.run_in_executor(
                pool, self.server.handle, response, method, path, query, headers, query_string, body, files
            )
            if self._stopping and response.cancelled:
                await send_whole(send, 503, error_body(503, "the server is shutting down", "server_error"), cors)
            elif response.is_stream:
                await self._stream(response, send, cors)
            else:
                await send_whole(
                    send,
                    response.status,
                    response.body,
                    [*cors, *encode_headers(response.headers)],
                    content_type=response.content_type.encode(),
                )
        finally:
            watcher.cancel()
            self._active.discard(response)
            if heavy:
                self._work -= 1
            await loop.run_in_executor(pool, response.close)

    async def _predict(
        self,
        headers: dict[str, str],
        query: dict[str, str],
        query_string: str,
        body: bytes,
        receive: Receive,
        send: Send,
        cors: list[tuple[bytes, bytes]],
    ) -> None:
        """Vertex AI's prediction route (vertex.py): each instance is a request to the route
        it names, at most as many at once as the engine has slots; the whole counts as one
        request against the queue bound."""
        loop = asyncio.get_running_loop()
        self._work += 1
        responses: list[core.server.ServerResponse] = []
        watcher = asyncio.create_task(cancel_on_disconnect(receive, responses))
        try:
            instances = await loop.run_in_executor(self._work_pool, parse_instances, body)
            if isinstance(instances, str):
                await send_whole(send, 400, error_body(400, instances, "invalid_request_error"), cors)
                return
            if self.server.state != "ready":  # as llama-server's middleware: the whole request
                await send_whole(send, 503, error_body(503, "Loading model", "unavailable_error"), cors)
                return
            request = PredictRequest(self.server, self._formats, headers, query, query_string, self.options)
            responses.extend(core.server.ServerResponse() for _ in instances)
            self._active.update(responses)
            slots = asyncio.Semaphore(max(1, self.server.n_parallel))

            async def one(response: core.server.ServerResponse, instance: object) -> object:
                async with slots:
                    return await loop.run_in_executor(self._work_pool, predict_one, request, response, instance)

            predictions = await asyncio.gather(*(one(r, i) for r, i in zip(responses, instances)))
            if self._stopping and any(r.cancelled for r in responses):
                await send_whole(send, 503, error_body(503, "the server is shutting down", "server_error"), cors)
                return
            reply = await loop.run_in_executor(self._work_pool, predictions_body, list(predictions))
            await send_whole(send, 200, reply, cors)
        finally:
            watcher.cancel()
            self._active.difference_update(responses)
            self._work -= 1

    def _feed_for(self, loop: asyncio.AbstractEventLoop) -> StreamFeed:
        if self._feed is None or self._feed.loop is not loop or self._feed.closed:
            self._feed = StreamFeed(loop)  # the first stream, or the app served by a new loop
        return self._feed

    async def _stream(self, response: core.server.ServerResponse, send: Send, cors: list[tuple[bytes, bytes]]) -> None:
        feed = self._feed_for(asyncio.get_running_loop())
        if self._max_streams is not None and feed.running >= self._max_streams:
            await send_busy(send, "the server is busy: too many open streams", cors)
            return
        try:
            chunks = feed.follow(response)
        except RuntimeError as err:  # no thread for it, or stopping
            await send_whole(send, 503, error_body(503, str(err), "unavailable_error"), cors)
            return
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"Content-Type", response.content_type.encode()),
                    (b"X-Accel-Buffering", b"no"),
                    *cors,
                    *encode_headers(response.headers),
                ],
            }
        )
        try:
            while (chunk := await chunks.get()) is not None:
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
