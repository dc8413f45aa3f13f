"""Server-sent events from engine jobs.

``openai_api.ChatChunks``/``CompletionChunks`` build OpenAI chunks one step at a time
(:func:`event_stream`); the Responses and Messages APIs build named events from the
chat reply's deltas (:func:`reply_event_stream`). Each step the engine produces goes
through the builder as it arrives.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..chat_reply import ChatDelta, ChatReply
from ..generation import SequenceText, Step
from ..openai_api import usage
from .engine import Job, RequestTimeout, ShuttingDown
from .schema import ApiError, request_timeout, shutting_down


class ChunkBuilder(Protocol):
    """What ``openai_api.ChatChunks`` and ``CompletionChunks`` share."""

    id: str
    object_type: str
    created: int
    model: str

    def start(self) -> Sequence[Mapping[str, object]]: ...
    def step(self, step: Step) -> Sequence[Mapping[str, object]]: ...
    def end(self) -> Sequence[Mapping[str, object]]: ...


def sse(data: Mapping[str, object] | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n"


async def event_stream(job: Job, chunks: ChunkBuilder, include_usage: bool,
                       lead: Sequence[Step] = ()) -> AsyncIterator[str]:
    """The SSE body of a streaming request: its chunks, an optional usage chunk,
    ``[DONE]``. ``lead`` steps (an echoed prompt) come before the job's."""
    try:
        for chunk in chunks.start():
            yield sse(chunk)
        for step in lead:
            for chunk in chunks.step(step):
                yield sse(chunk)
        async for step in job.steps():
            for chunk in chunks.step(step):
                yield sse(chunk)
        for chunk in chunks.end():
            yield sse(chunk)
        if include_usage:
            yield sse({"id": chunks.id, "object": chunks.object_type, "created": chunks.created,
                       "model": chunks.model, "choices": [], "usage": usage(job.seq)})
    except Exception as error:  # the status line is sent: report in the stream, as OpenAI does
        yield sse(stream_error(error).body())
    finally:
        job.cancel()  # no-op when finished; frees the slot when the client left early
    yield sse("[DONE]")


def stream_error(error: Exception) -> ApiError:
    """The error a stream reports after its status line was sent."""
    if isinstance(error, RequestTimeout):
        return request_timeout(str(error))
    if isinstance(error, ShuttingDown):
        return shutting_down(str(error))
    return ApiError(500, str(error), type="server_error")


class ReplyEvents(Protocol):
    """What ``responses.ResponseEvents`` and ``anthropic.MessageEvents`` share: named
    events (each a dict with its "type") for one chat reply."""

    def start(self, seq: SequenceText) -> list[dict[str, Any]]: ...
    def delta(self, delta: ChatDelta) -> list[dict[str, Any]]: ...
    def end(self, seq: SequenceText) -> list[dict[str, Any]]: ...
    def error(self, error: ApiError) -> dict[str, Any]: ...


def named_sse(event: Mapping[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


async def reply_event_stream(job: Job, reply: ChatReply, events: ReplyEvents) -> AsyncIterator[str]:
    """The SSE body of a streaming Responses or Messages request. The start events wait
    for the first step, so that they carry the prompt's token counts. An error after
    the status line is an ``error`` event, as both APIs send it."""
    started = False
    try:
        async for step in job.steps():
            if not started:
                started = True
                for event in events.start(job.seq):
                    yield named_sse(event)
            for event in events.delta(reply.feed(step.text)):
                yield named_sse(event)
        if not started:
            for event in events.start(job.seq):
                yield named_sse(event)
        for event in [*events.delta(reply.finish()), *events.end(job.seq)]:
            yield named_sse(event)
    except Exception as error:
        yield named_sse(events.error(stream_error(error)))
    finally:
        job.cancel()  # no-op when finished; frees the slot when the client left early


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response that cancels its job however it ends
    (a disconnect may end the response without closing the body iterator)."""

    def __init__(self, content: AsyncIterator[str], job: Job) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._job = job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._job.cancel()
