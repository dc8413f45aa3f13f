"""The HTTP layer: Starlette routes for the OpenAI API, errors as OpenAI bodies.

    GET  /health                 status and slot usage (open without the API key)
    GET  /v1/models[/{id}]       the one model served
    POST /v1/completions         text completion (SSE with "stream": true)
    POST /v1/chat/completions    chat completion (SSE with "stream": true)
    POST /v1/responses           OpenAI's Responses API, run as a chat completion (responses.py)
    POST /v1/messages[/count_tokens]  Anthropic's Messages API, the same way (anthropic.py)
    POST /v1/responses/input_tokens, /v1/chat/completions/input_tokens   a request's prompt tokens
    POST /v1/embeddings          unit-length mean-pooled embeddings
    POST /v1/rerank              relevance scores (reranker models)
    POST /tokenize, /detokenize  the model's tokenizer (llama-server's shapes)
    GET  /props, /slots          settings; what each slot holds
    POST /slots/{id}?action=     save, restore (--slot-save-path) or erase a slot's KV cache
    GET  /lora-adapters          the LoRA adapters loaded (ids, paths, default scales)
    POST /lora-adapters          set those default scales (llama-server's array of {id, scale})
    GET  /metrics                Prometheus text
    POST /apply-template         the rendered chat prompt of a chat request
    (and llama-server's aliases: /models, /chat/completions, /responses, /rerank, /reranking)

The model loads when the app starts (the ASGI lifespan) and is freed when it stops.
With ``api_key`` set, every route but /health needs ``Authorization: Bearer <key>``
(or ``x-api-key: <key>``, as Anthropic's clients send it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import numpy.typing as npt
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import core, openai_api
from ..chat import ChatPrompt
from ..chat_reply import ChatReply
from . import anthropic, metrics
from .anthropic import MessageEvents, parse_messages
from .backend import Backend
from .config import ServerConfig
from .engine import Job, RequestTimeout, ShuttingDown, SlotAction
from .responses import ResponseEvents, parse_responses
from .schema import (
    ApiError,
    Body,
    ChatRequest,
    invalid,
    parse_chat,
    parse_completion,
    parse_detokenize,
    parse_embeddings,
    parse_lora_adapters,
    parse_rerank,
    parse_slot_file,
    parse_tokenize,
    request_timeout,
    shutting_down,
)
from .streaming import EventStreamResponse, event_stream, reply_event_stream

OPEN_PATHS = frozenset({"/health", "/v1/health"})


def create_app(config: ServerConfig) -> Starlette:
    """The ASGI app serving ``config.model`` (run it with uvicorn)."""
    return Api(config).app


class Api:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._backend: Backend | None = None
        self.app = Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/v1/health", self.health, methods=["GET"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/models/{model:path}", self.model, methods=["GET"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/responses", self.responses, methods=["POST"]),
                Route("/v1/responses/input_tokens", self.responses_input_tokens, methods=["POST"]),
                Route("/v1/chat/completions/input_tokens", self.chat_input_tokens, methods=["POST"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self.count_message_tokens, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/rerank", self.rerank, methods=["POST"]),
                Route("/tokenize", self.tokenize, methods=["POST"]),
                Route("/detokenize", self.detokenize, methods=["POST"]),
                Route("/props", self.props, methods=["GET"]),
                Route("/slots", self.slots, methods=["GET"]),
                Route("/slots/{id_slot}", self.slot_action, methods=["POST"]),
                Route("/lora-adapters", self.lora_adapters, methods=["GET"]),
                Route("/lora-adapters", self.set_lora_adapters, methods=["POST"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/apply-template", self.apply_template, methods=["POST"]),
                # llama-server's other names for the same handlers (not /completions and
                # /embeddings: those are its own, non-OpenAI formats there).
                Route("/models", self.models, methods=["GET"]),
                Route("/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/responses", self.responses, methods=["POST"]),
                *(Route(path, self.rerank, methods=["POST"])
                  for path in ("/rerank", "/reranking", "/v1/reranking")),
            ],
            middleware=[Middleware(RequireApiKey, api_key=config.api_key)] if config.api_key else [],
            exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
            lifespan=self._lifespan,
        )
        self.app.state.api = self  # lets tests and embedders reach the backend

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._backend = await asyncio.to_thread(Backend.open, self.config)
        try:
            yield
        finally:
            backend, self._backend = self._backend, None
            await asyncio.to_thread(backend.close)

    def drain(self, grace: float) -> None:
        """Begin a graceful stop (see Engine.drain); safe in a signal handler."""
        if self._backend is not None:
            self._backend.engine.drain(grace)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise ApiError(503, "the model is not loaded", type="server_error")
        return self._backend

    async def _body(self, request: Request) -> bytes:
        """The request body, refused with 413 beyond ``max_request_bytes``, and with 415
        when it is declared as text or a form: those are the types a web page may POST to
        another origin without a preflight, so a keyless server would run its requests."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in _CROSS_ORIGIN_SIMPLE_TYPES:
            raise ApiError(415, f"the request body must be JSON (Content-Type: application/json), not {kind}",
                           code="unsupported_media_type")
        limit = self.config.max_request_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        parts: list[bytes] = []
        size = 0
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise _too_large(limit)
            parts.append(part)
        return b"".join(parts)

    # -- routes ---------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        engine = self.backend.engine
        if not engine.alive:
            raise ApiError(503, "the generation engine has stopped", type="server_error")
        stats = engine.stats()
        return JSONResponse({"status": "ok", "slots": stats.slots, "slots_busy": stats.busy,
                             "waiting": stats.waiting})

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self._model_card()]})

    async def model(self, request: Request) -> Response:
        self.backend.check_model(request.path_params["model"])
        return JSONResponse(self._model_card())

    async def completions(self, request: Request) -> Response:
        backend = self.backend
        req = parse_completion(await self._body(request))
        backend.check_model(req.model)
        ids, text = await asyncio.to_thread(backend.completion_prompt, req)  # tokenizing may be slow
        job, echo = backend.start(ids, req.options, req.sampling, text, cache_prompt=req.cache_prompt,
                                  lora=req.lora)
        if req.stream:
            chunks = openai_api.CompletionChunks(job.seq, backend.model_id)
            return EventStreamResponse(event_stream(job, chunks, req.include_usage, echo), job)
        await _finish(request, job)
        return JSONResponse(openai_api.completion(job.seq, backend.model_id))

    async def _start_chat(self, req: ChatRequest) -> tuple[Job, ChatReply]:
        """The job of a chat request, and the parser of its reply."""
        backend = self.backend
        backend.check_model(req.model)
        # Rendering, tokenizing and decoding images (fetching them, when allowed) run off
        # the event loop: special-token text tokenizes in quadratic time.
        prompt, options, sampling = await asyncio.to_thread(backend.chat_prompt, req)
        job, _ = backend.start(prompt.tokens, options, sampling, cache_prompt=req.cache_prompt, lora=req.lora,
                               media=prompt.media)
        return job, ChatReply(prompt.reply)

    async def chat_completions(self, request: Request) -> Response:
        backend = self.backend
        req = parse_chat(await self._body(request))
        job, reply = await self._start_chat(req)
        if req.stream:
            chunks = openai_api.ChatChunks(job.seq, reply, backend.model_id)
            return EventStreamResponse(event_stream(job, chunks, req.include_usage), job)
        await _finish(request, job)
        return JSONResponse(openai_api.chat_completion(job.seq, reply, backend.model_id))

    async def responses(self, request: Request) -> Response:
        req, echo = parse_responses(await self._body(request))
        job, reply = await self._start_chat(req)
        events = ResponseEvents(self.backend.model_id, echo)
        if req.stream:
            return EventStreamResponse(reply_event_stream(job, reply, events), job)
        await _finish(request, job)
        return JSONResponse(events.finished(job.seq, reply.message_of(job.seq.text)))

    async def messages(self, request: Request) -> Response:
        req = parse_messages(await self._body(request))
        job, reply = await self._start_chat(req)
        events = MessageEvents(self.backend.model_id)
        if req.stream:
            return EventStreamResponse(reply_event_stream(job, reply, events), job)
        await _finish(request, job)
        return JSONResponse(events.finished(job.seq, reply.message_of(job.seq.text)))

    async def _render(self, req: ChatRequest) -> ChatPrompt:
        """The prompt a chat request renders to (nothing is generated)."""
        backend = self.backend
        backend.check_model(req.model)
        prompt, _, _ = await asyncio.to_thread(backend.chat_prompt, req)
        return prompt

    async def count_message_tokens(self, request: Request) -> Response:
        prompt = await self._render(parse_messages(await self._body(request)))
        return JSONResponse({"input_tokens": prompt.n_tokens})

    async def chat_input_tokens(self, request: Request) -> Response:
        prompt = await self._render(parse_chat(await self._body(request)))
        return JSONResponse({"input_tokens": prompt.n_tokens})

    async def responses_input_tokens(self, request: Request) -> Response:
        req, _ = parse_responses(await self._body(request))
        prompt = await self._render(req)
        return JSONResponse({"object": "response.input_tokens", "input_tokens": prompt.n_tokens})

    async def apply_template(self, request: Request) -> Response:
        """llama-server's /apply-template: the chat prompt as text ("model" may be left out)."""
        body = Body(await self._body(request)).data
        body.setdefault("model", self.backend.model_id)
        prompt = await self._render(parse_chat(json.dumps(body).encode()))
        return JSONResponse({"prompt": prompt.text})

    async def embeddings(self, request: Request) -> Response:
        backend = self.backend
        req = parse_embeddings(await self._body(request))
        backend.check_model(req.model)
        dim = backend.model.n_embd_out
        if req.dimensions is not None and req.dimensions != dim:
            raise ApiError(400, f"this model's embeddings have {dim} dimensions, not {req.dimensions}",
                           param="dimensions", code="unsupported_parameter")
        vectors, n_tokens = await backend.embed(req.texts)
        if req.encoding_format == "float":
            return JSONResponse(openai_api.embedding_response(vectors, n_tokens, backend.model_id))
        return JSONResponse(_base64_embeddings(vectors, n_tokens, backend.model_id))

    async def rerank(self, request: Request) -> Response:
        backend = self.backend
        req = parse_rerank(await self._body(request))
        if req.model is not None:
            backend.check_model(req.model)
        scores, n_tokens = await backend.rerank(req.query, req.documents)
        order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))[:req.top_n]
        results = [{"index": i, "relevance_score": float(scores[i])} for i in order]
        return JSONResponse({"model": backend.model_id, "object": "list", "results": results,
                             "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}})

    async def tokenize(self, request: Request) -> Response:
        req = parse_tokenize(await self._body(request))
        vocab = self.backend.model.vocab

        def tokens() -> list[int] | list[dict[str, object]]:  # off the event loop: may be slow
            ids: list[int] = vocab.tokenize(req.content, req.add_special, req.parse_special).tolist()
            if not req.with_pieces:
                return ids
            return [{"id": t, "piece": vocab.token_to_piece(t, 0, True).decode("utf-8", errors="replace")}
                    for t in ids]

        return JSONResponse({"tokens": await asyncio.to_thread(tokens)})

    async def detokenize(self, request: Request) -> Response:
        tokens = parse_detokenize(await self._body(request))
        vocab = self.backend.model.vocab
        bad = [t for t in tokens if not 0 <= t < vocab.n_tokens]
        if bad:
            raise invalid(f"token ids must be in [0, {vocab.n_tokens}), got {bad[0]}", "tokens", "invalid_value")
        text = await asyncio.to_thread(vocab.detokenize, tokens, False, True)
        return JSONResponse({"content": text.decode("utf-8", errors="replace")})

    async def props(self, request: Request) -> Response:
        backend = self.backend
        return JSONResponse({
            "model_alias": backend.model_id, "model_path": backend.model.path,
            "total_slots": backend.engine.stats().slots,
            "default_generation_settings": {"n_ctx": backend.n_ctx_slot},
            "chat_template": backend.template.source, "chat_template_caps": backend.template.caps,
            "modalities": {"vision": backend.projector is not None and backend.projector.supports_vision,
                           "audio": backend.projector is not None and backend.projector.supports_audio},
            "build_info": f"llama.cpp {core.LLAMA_CPP_COMMIT}",
        })

    async def slots(self, request: Request) -> Response:
        return JSONResponse(self.backend.engine.slot_states())

    async def slot_action(self, request: Request) -> Response:
        """llama-server's POST /slots/{id}?action=save|restore|erase ({"filename": ...}
        for save and restore, in --slot-save-path). It waits for a busy slot to be free."""
        backend = self.backend
        action = request.query_params.get("action", "")
        if action not in ("save", "restore", "erase"):
            raise invalid(f"'action' must be 'save', 'restore' or 'erase', got {action!r}", "action")
        try:
            slot = int(request.path_params["id_slot"])
        except ValueError:
            raise invalid(f"the slot id must be an integer, got {request.path_params['id_slot']!r}",
                          "id_slot") from None
        body = await self._body(request)
        path = None
        if action != "erase":
            if self.config.slot_save_path is None:
                raise invalid(f"this server does not {action} slots: start it with --slot-save-path DIR", "action",
                              "not_supported")
            name = parse_slot_file(body)
            path = os.path.join(self.config.slot_save_path, name)
            if action == "restore" and not os.path.isfile(path):
                raise ApiError(404, f"no saved slot file {name!r} in --slot-save-path", param="filename",
                               code="not_found")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[dict[str, object]] = loop.create_future()
        try:
            backend.engine.submit_action(SlotAction(action, slot, path, loop, done))
        except ValueError as err:
            raise invalid(str(err), "id_slot") from None
        except ShuttingDown as err:
            raise shutting_down(str(err)) from None
        try:
            return JSONResponse(await done)
        except ShuttingDown as err:
            raise shutting_down(str(err)) from None
        except (core.LlamaError, OSError, ValueError) as err:
            raise invalid(f"cannot {action} slot {slot}: {err}") from None

    async def lora_adapters(self, request: Request) -> Response:
        # llama-server's shape; "scale" is what requests that name no adapters get.
        return JSONResponse([{"id": i, "path": lora.path, "scale": lora.scale}
                             for i, lora in enumerate(self.backend.loras)])

    async def set_lora_adapters(self, request: Request) -> Response:
        # llama-server's: the default scales by id (ids left out: 0), for later requests.
        self.backend.set_lora_scales(parse_lora_adapters(await self._body(request)))
        return JSONResponse({"success": True})

    async def metrics(self, request: Request) -> Response:
        engine = self.backend.engine
        stats = engine.stats()
        text = metrics.render(engine.metrics, finished=stats.finished, cancelled=stats.cancelled,
                              tokens=stats.tokens, prompt_tokens=stats.prompt_tokens,
                              cached_tokens=stats.cached_tokens, decodes=stats.decodes, busy=stats.busy,
                              slots=stats.slots, waiting=stats.waiting)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    def _model_card(self) -> dict[str, Any]:
        backend = self.backend
        return {"id": backend.model_id, "object": "model", "created": backend.created, "owned_by": "llamanb",
                "meta": {"n_ctx_per_request": backend.n_ctx_slot, "parallel": backend.engine.stats().slots,
                         "n_params": backend.model.n_params, "n_embd": backend.model.n_embd_out}}


# The Content-Types of a "simple" cross-origin request (no CORS preflight).
_CROSS_ORIGIN_SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is over this server's limit of {limit} bytes (--max-request-bytes)",
                    code="request_too_large")


async def _finish(request: Request, job: Job) -> None:
    """Wait for a job to end (its sequence then holds the result); a client that
    disconnects meanwhile cancels the job."""
    watcher = asyncio.create_task(_cancel_on_disconnect(request, job))
    try:
        async for _ in job.steps():
            pass
    except RequestTimeout as error:
        raise request_timeout(str(error)) from None
    except ShuttingDown as error:
        raise shutting_down(str(error)) from None
    finally:
        watcher.cancel()
        job.cancel()  # no-op when finished; frees the slot if this task itself is cancelled


async def _cancel_on_disconnect(request: Request, job: Job) -> None:
    # The body is read, so the next ASGI message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
    job.cancel()


def _base64_embeddings(vectors: npt.NDArray[np.float32], n_tokens: int, model: str) -> dict[str, Any]:
    # The openai client asks for base64 by default: little-endian float32 bytes.
    data = [{"object": "embedding", "index": i,
             "embedding": base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")}
            for i, row in enumerate(vectors)]
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}


class RequireApiKey:
    """Refuses requests without ``Authorization: Bearer <api_key>`` (401, OpenAI's
    error shape); /health stays open for load balancers."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._bearer = f"Bearer {api_key}".encode()
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            headers = dict(scope["headers"])
            bearer_ok = hmac.compare_digest(headers.get(b"authorization", b""), self._bearer)
            key_ok = hmac.compare_digest(headers.get(b"x-api-key", b""), self._key)
            if not (bearer_ok or key_ok):
                error = ApiError(401, "Incorrect or missing API key: send 'Authorization: Bearer <key>' "
                                      "or 'x-api-key: <key>'", code="invalid_api_key")
                response = JSONResponse(_error_body(scope["path"], error), status_code=401,
                                        headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _error_body(path: str, error: ApiError) -> dict[str, Any]:
    """OpenAI's error shape, or Anthropic's on its routes."""
    return anthropic.error_body(error) if path.startswith(anthropic.PATH) else error.body()


def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(_error_body(request.url.path, exc), status_code=exc.status, headers=exc.headers)


def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown routes (404) and methods (405), in OpenAI's shape.
    assert isinstance(exc, HTTPException)
    error = ApiError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")
    return JSONResponse(_error_body(request.url.path, error), status_code=exc.status_code, headers=exc.headers)


def _server_error(request: Request, exc: Exception) -> Response:
    error = ApiError(500, f"internal error: {exc!r}", type="server_error")
    return JSONResponse(_error_body(request.url.path, error), status_code=500)
