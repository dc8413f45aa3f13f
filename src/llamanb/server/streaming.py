"""Server-sent events from engine jobs, shaped by the facade's OpenAI chunk makers.

``openai_api.chat_chunks``/``completion_chunks`` are synchronous generators over a
sequence's steps. Here the steps come from a :class:`StepFeed` that the event loop
fills as the engine produces them, and a chunk is asked for only when a step that
releases text is buffered: the chunk maker then consumes steps up to that one and
yields, so it never waits on a step that has not arrived.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping, Sequence

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..generation import SequenceText, Step
from .engine import Job
from .schema import ApiError

ChunkMaker = Callable[[SequenceText, Iterable[Step], str], Iterator[Mapping[str, object]]]


class StepFeed:
    """Steps handed over one at a time, as a generator a chunk maker can iterate."""

    def __init__(self) -> None:
        self._steps: deque[Step] = deque()
        self._with_text = 0  # buffered steps that release text
        self._ended = False

    def put(self, step: Step) -> None:
        self._steps.append(step)
        self._with_text += bool(step.text)

    def end(self) -> None:
        self._ended = True

    @property
    def ready(self) -> bool:
        """A chunk can be made from what is buffered."""
        return self._with_text > 0

    def steps(self) -> Generator[Step, None, None]:
        while self._steps or not self._ended:
            if not self._steps:
                raise RuntimeError("a chunk was asked for before its step arrived")
            step = self._steps.popleft()
            self._with_text -= bool(step.text)
            yield step


def sse(data: Mapping[str, object] | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n"


async def event_stream(job: Job, make_chunks: ChunkMaker, model_id: str, include_usage: bool,
                       lead: Sequence[Step] = ()) -> AsyncIterator[str]:
    """The SSE body of a streaming request: its chunks, an optional usage chunk,
    ``[DONE]``. ``lead`` steps (an echoed prompt) come before the job's."""
    feed = StepFeed()
    chunks = make_chunks(job.seq, feed.steps(), model_id)
    last: Mapping[str, object] = {}
    try:
        for step in lead:
            feed.put(step)
        while feed.ready:
            last = next(chunks)
            yield sse(last)
        async for step in job.steps():
            feed.put(step)
            while feed.ready:
                last = next(chunks)
                yield sse(last)
        feed.end()
        for last in chunks:
            yield sse(last)
        if include_usage:
            prompt, completion = job.seq.prompt_tokens, len(job.seq.tokens)
            yield sse({"id": last.get("id"), "object": last.get("object"), "created": last.get("created"),
                       "model": model_id, "choices": [],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}})
    except Exception as error:  # the status line is sent: report in the stream, as OpenAI does
        yield sse(ApiError(500, str(error), type="server_error").body())
    finally:
        job.cancel()  # no-op when finished; frees the slot when the client left early
        if isinstance(chunks, Generator):
            chunks.close()
    yield sse("[DONE]")


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
