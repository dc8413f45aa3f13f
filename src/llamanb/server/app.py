"""The HTTP layer: Starlette routes for the OpenAI API, errors as OpenAI bodies.

    GET  /health                 status and slot usage
    GET  /v1/models[/{id}]       the one model served
    POST /v1/completions         text completion (SSE with "stream": true)
    POST /v1/chat/completions    chat completion (SSE with "stream": true)
    POST /v1/embeddings          unit-length mean-pooled embeddings

The model loads when the app starts (the ASGI lifespan) and is freed when it stops.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import numpy.typing as npt
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import openai_api
from ..chat_reply import ChatReply
from .backend import Backend
from .config import ServerConfig
from .engine import Job
from .schema import ApiError, parse_chat, parse_completion, parse_embeddings
from .streaming import EventStreamResponse, event_stream


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
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/models/{model:path}", self.model, methods=["GET"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            ],
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

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise ApiError(503, "the model is not loaded", type="server_error")
        return self._backend

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
        req = parse_completion(await request.body())
        backend.check_model(req.model)
        ids, text = backend.completion_prompt(req)
        job, echo = backend.start(ids, req.options, req.sampling, text)
        if req.stream:
            chunks = openai_api.CompletionChunks(job.seq, backend.model_id)
            return EventStreamResponse(event_stream(job, chunks, req.include_usage, echo), job)
        await _finish(request, job)
        return JSONResponse(openai_api.completion(job.seq, backend.model_id))

    async def chat_completions(self, request: Request) -> Response:
        backend = self.backend
        req = parse_chat(await request.body())
        backend.check_model(req.model)
        prompt, options, sampling = backend.chat_prompt(req)
        job, _ = backend.start(prompt.tokens, options, sampling)
        reply = ChatReply(prompt.reply)
        if req.stream:
            chunks = openai_api.ChatChunks(job.seq, reply, backend.model_id)
            return EventStreamResponse(event_stream(job, chunks, req.include_usage), job)
        await _finish(request, job)
        return JSONResponse(openai_api.chat_completion(job.seq, reply, backend.model_id))

    async def embeddings(self, request: Request) -> Response:
        backend = self.backend
        req = parse_embeddings(await request.body())
        backend.check_model(req.model)
        dim = backend.model.n_embd_out
        if req.dimensions is not None and req.dimensions != dim:
            raise ApiError(400, f"this model's embeddings have {dim} dimensions, not {req.dimensions}",
                           param="dimensions", code="unsupported_parameter")
        vectors, n_tokens = await backend.embed(req.texts)
        if req.encoding_format == "float":
            return JSONResponse(openai_api.embedding_response(vectors, n_tokens, backend.model_id))
        return JSONResponse(_base64_embeddings(vectors, n_tokens, backend.model_id))

    def _model_card(self) -> dict[str, Any]:
        backend = self.backend
        return {"id": backend.model_id, "object": "model", "created": backend.created, "owned_by": "llamanb",
                "meta": {"n_ctx_per_request": backend.n_ctx_slot, "parallel": backend.engine.stats().slots,
                         "n_params": backend.model.n_params, "n_embd": backend.model.n_embd_out}}


async def _finish(request: Request, job: Job) -> None:
    """Wait for a job to end (its sequence then holds the result); a client that
    disconnects meanwhile cancels the job."""
    watcher = asyncio.create_task(_cancel_on_disconnect(request, job))
    try:
        async for _ in job.steps():
            pass
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


def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status)


def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown routes (404) and methods (405), in OpenAI's shape.
    assert isinstance(exc, HTTPException)
    error = ApiError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")
    return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)


def _server_error(request: Request, exc: Exception) -> Response:
    return JSONResponse(ApiError(500, f"internal error: {exc!r}", type="server_error").body(), status_code=500)
