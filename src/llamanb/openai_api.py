"""Shaping sequences and vectors into OpenAI API results (completions, chat, embeddings).

A result is made from a finished :class:`SequenceText`; a stream of chunks from a
sequence and the steps that produce it (a ``Run``, or the server engine's events).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from .chat import ChatOptions, Reasoning, ToolChoice
from .chat_reply import AssistantMessage, ChatDelta, ChatReply, chat_finish_reason
from .generation import FinishReason, GenerateKwargs, SequenceText, Step
from .logprobs import TokenLogprob
from .openai_types import (
    ChatCompletionLogprobs,
    ChatCompletionMessageToolCallChunk,
    ChatCompletionMessageToolCallChunkFunction,
    ChatCompletionResponseMessage,
    ChatCompletionStreamResponseDelta,
    ChatCompletionTokenLogprob,
    CompletionLogprobs,
    CompletionUsage,
    CreateChatCompletionResponse,
    CreateChatCompletionStreamResponse,
    CreateCompletionResponse,
    CreateCompletionStreamResponse,
    CreateEmbeddingResponse,
    ResponseFormat,
)


class ChatCompletionKwargs(GenerateKwargs, total=False):
    """:class:`GenerateKwargs` of ``create_chat_completion``, plus OpenAI's spelling of
    its own: ``logprobs=True`` with ``top_logprobs=n``, ``tools``, ``tool_choice``,
    ``parallel_tool_calls``, ``response_format``, and llama-server's ``reasoning_format``
    and ``chat_template_kwargs``."""

    logprobs: bool
    top_logprobs: int | None
    tools: Sequence[Mapping[str, Any]] | None
    tool_choice: ToolChoice | None
    parallel_tool_calls: bool | None
    response_format: ResponseFormat | None
    reasoning_format: Reasoning
    reasoning_effort: str | None
    chat_template_kwargs: Mapping[str, Any] | None


class ChatRequestFields(TypedDict, total=False):
    """The fields of an OpenAI chat request that become :class:`ChatOptions` (what
    :func:`chat_options` reads; both ``Llama.create_chat_completion`` and
    ``llamanb.compat`` pass theirs)."""

    tools: Sequence[Mapping[str, Any]] | None
    tool_choice: ToolChoice | None
    parallel_tool_calls: bool | None
    response_format: ResponseFormat | None
    reasoning_format: Reasoning
    reasoning_effort: str | None
    chat_template_kwargs: Mapping[str, Any] | None


def completion(seq: SequenceText, model: str) -> CreateCompletionResponse:
    """The response for a finished sequence."""
    result = seq.completion()
    start = len(seq.echoed)  # logprob text offsets count from the start of the text
    return {
        "id": _id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "text": result.text,
                "index": 0,
                "logprobs": None if result.logprobs is None else _completion_logprobs(result.logprobs, start),
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": usage(seq),
    }


class CompletionChunks:
    """A completion stream's chunks, built one step at a time: one chunk per released
    text piece (with the logprobs of the tokens behind it), then an empty chunk
    carrying ``finish_reason``. The facade runs a ``Run`` through it, the server the
    engine's steps."""

    object_type = "text_completion"

    def __init__(self, seq: SequenceText, model: str) -> None:
        self.seq, self.model = seq, model
        self.id, self.created = _id("cmpl"), int(time.time())
        self._pending: list[TokenLogprob] = []
        self._offset = 0

    def start(self) -> list[CreateCompletionStreamResponse]:
        return []

    def step(self, step: Step) -> list[CreateCompletionStreamResponse]:
        if step.logprob is not None:
            self._pending.append(step.logprob)
        if not step.text:
            return []
        logprobs = _completion_logprobs(self._pending, self._offset) if self.seq.options.logprobs is not None else None
        self._offset += len(step.text)
        self._pending = []
        return [self._chunk(step.text, logprobs, None)]

    def end(self) -> list[CreateCompletionStreamResponse]:
        return [self._chunk("", None, self.seq.finish_reason)]

    def _chunk(
        self, text: str, logprobs: CompletionLogprobs | None, finish_reason: FinishReason | None
    ) -> CreateCompletionStreamResponse:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish_reason}],
        }


def completion_chunks(seq: SequenceText, steps: Iterable[Step], model: str) -> Iterator[CreateCompletionStreamResponse]:
    """The chunks of ``steps`` (:class:`CompletionChunks`)."""
    chunks = CompletionChunks(seq, model)
    yield from chunks.start()
    for step in steps:
        yield from chunks.step(step)
    yield from chunks.end()


def chat_completion(seq: SequenceText, reply: ChatReply, model: str) -> CreateChatCompletionResponse:
    """The response for a finished sequence whose text ``reply`` has read."""
    message = reply.message_of(seq.text)
    result = seq.completion()
    return {
        "id": _id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": _message(message),
                "logprobs": None if result.logprobs is None else _chat_logprobs(result.logprobs),
                "finish_reason": chat_finish_reason(seq.finish_reason, message),
            }
        ],
        "usage": usage(seq),
    }


class ChatChunks:
    """A chat stream's chunks, built one step at a time: a role chunk, a chunk per
    step that adds content, reasoning or tool-call pieces (OpenAI's ``delta``: a
    call's index, id and name once, then argument fragments), then an empty delta
    with ``finish_reason``. The facade runs a ``Run`` through it, the server the
    engine's steps."""

    object_type = "chat.completion.chunk"

    def __init__(self, seq: SequenceText, reply: ChatReply, model: str) -> None:
        self.seq, self.reply, self.model = seq, reply, model
        self.id, self.created = _id("chatcmpl"), int(time.time())
        self._pending: list[TokenLogprob] = []

    def start(self) -> list[CreateChatCompletionStreamResponse]:
        return [self._chunk({"role": "assistant"}, None, None)]

    def step(self, step: Step) -> list[CreateChatCompletionStreamResponse]:
        if step.logprob is not None:
            self._pending.append(step.logprob)
        delta = self.reply.feed(step.text)
        if not delta:
            return []
        return [self._chunk(_delta(delta), self._take_logprobs(), None)]

    def end(self) -> list[CreateChatCompletionStreamResponse]:
        delta = self.reply.finish()
        assert self.reply.message is not None
        out = [self._chunk(_delta(delta), self._take_logprobs(), None)] if delta else []
        reason = chat_finish_reason(self.seq.finish_reason, self.reply.message)
        return [*out, self._chunk({}, None, reason)]

    def _take_logprobs(self) -> ChatCompletionLogprobs | None:
        if self.seq.options.logprobs is None:
            return None
        logprobs, self._pending = _chat_logprobs(self._pending), []
        return logprobs

    def _chunk(
        self,
        delta: ChatCompletionStreamResponseDelta,
        logprobs: ChatCompletionLogprobs | None,
        finish_reason: FinishReason | None,
    ) -> CreateChatCompletionStreamResponse:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}],
        }


def chat_chunks(
    seq: SequenceText, reply: ChatReply, steps: Iterable[Step], model: str
) -> Iterator[CreateChatCompletionStreamResponse]:
    """The chunks of ``steps`` (:class:`ChatChunks`)."""
    chunks = ChatChunks(seq, reply, model)
    yield from chunks.start()
    for step in steps:
        yield from chunks.step(step)
    yield from chunks.end()


def _message(message: AssistantMessage) -> ChatCompletionResponseMessage:
    out: ChatCompletionResponseMessage = {"role": "assistant", "content": message.content}
    if message.reasoning_content is not None:
        out["reasoning_content"] = message.reasoning_content
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return out


def _delta(delta: ChatDelta) -> ChatCompletionStreamResponseDelta:
    out: ChatCompletionStreamResponseDelta = {}
    if delta.reasoning_content:
        out["reasoning_content"] = delta.reasoning_content
    if delta.content:
        out["content"] = delta.content
    if delta.tool_calls:
        calls: list[ChatCompletionMessageToolCallChunk] = []
        for c in delta.tool_calls:
            call: ChatCompletionMessageToolCallChunk = {"index": c.index}
            if c.id is not None:
                call["id"], call["type"] = c.id, "function"
            function: ChatCompletionMessageToolCallChunkFunction = {}
            if c.name is not None:
                function["name"] = c.name
            function["arguments"] = c.arguments
            call["function"] = function
            calls.append(call)
        out["tool_calls"] = calls
    return out


def embedding_response(vectors: npt.NDArray[np.float32], n_tokens: int, model: str) -> CreateEmbeddingResponse:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [float(x) for x in row], "index": i} for i, row in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }


def response_schema(response_format: ResponseFormat | None) -> Mapping[str, Any] | None:
    """The JSON schema an OpenAI ``response_format`` asks the reply to match (None: any text)."""
    if response_format is None or response_format.get("type", "text") == "text":
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return response_format.get("schema") or {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not spec or "schema" not in spec:
            raise ValueError("response_format json_schema needs {'json_schema': {'schema': {...}}}")
        return spec["schema"]
    raise ValueError(f"response_format type must be 'text', 'json_object' or 'json_schema', got {kind!r}")


def chat_options(fields: ChatRequestFields | ChatCompletionKwargs) -> ChatOptions:
    """The :class:`ChatOptions` of an OpenAI chat request's fields, taken out of
    ``fields``: the one place they are read, after llama-server
    (server-common.cpp, oaicompat_chat_params_parse).

    ``chat_template_kwargs`` reach the template as its variables; a boolean
    ``enable_thinking`` among them switches thinking (:class:`ChatOptions` reads it).
    ``reasoning_effort`` "none" switches thinking off; any other value reaches the
    template as its ``reasoning_effort`` variable (gpt-oss's, for one).
    """
    template_kwargs = dict(fields.pop("chat_template_kwargs", None) or {})
    effort = fields.pop("reasoning_effort", None)
    if effort is not None and not isinstance(effort, str):
        raise TypeError(f"reasoning_effort must be a string, got {type(effort).__name__}")
    enable_thinking = True
    if effort == "none":
        template_kwargs.pop("reasoning_effort", None)
        template_kwargs["enable_thinking"] = enable_thinking = False  # wins over the kwargs' value
    elif effort:
        template_kwargs["reasoning_effort"] = effort
    return ChatOptions(
        tools=fields.pop("tools", None),
        tool_choice=fields.pop("tool_choice", None),
        parallel_tool_calls=fields.pop("parallel_tool_calls", None),
        json_schema=response_schema(fields.pop("response_format", None)),
        reasoning=fields.pop("reasoning_format", "auto"),
        enable_thinking=enable_thinking,
        template_kwargs=template_kwargs,
    )


def logprobs_count(logprobs: bool | None, top_logprobs: int | None) -> int | None:
    """GenerateOptions.logprobs for OpenAI's chat ``logprobs`` and ``top_logprobs``: how
    many alternatives per token, or None for no logprobs."""
    return (top_logprobs or 0) if logprobs else None


def _completion_logprobs(logprobs: list[TokenLogprob], start: int) -> CompletionLogprobs:
    offsets, offset = [], start
    for lp in logprobs:
        offsets.append(offset)
        offset += len(lp.text)
    return {
        "text_offset": offsets,
        "token_logprobs": [lp.logprob for lp in logprobs],
        "tokens": [lp.text for lp in logprobs],
        "top_logprobs": [{t.text: t.logprob for t in lp.top} for lp in logprobs],
    }


def _chat_logprobs(logprobs: list[TokenLogprob]) -> ChatCompletionLogprobs:
    content: list[ChatCompletionTokenLogprob] = [
        {
            "token": lp.text,
            "logprob": lp.logprob,
            "bytes": list(lp.piece),
            "top_logprobs": [{"token": t.text, "logprob": t.logprob, "bytes": list(t.piece)} for t in lp.top],
        }
        for lp in logprobs
    ]
    return {"content": content}


def usage(seq: SequenceText) -> CompletionUsage:
    """Token counts, with the prompt tokens whose KV state was reused (cached_tokens)."""
    prompt, completion = seq.prompt_tokens, len(seq.tokens)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": seq.cached_tokens},
    }


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"
