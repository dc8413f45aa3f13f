"""Shaping sequences and vectors into OpenAI API results (completions, chat, embeddings).

A result is made from a finished :class:`SequenceText`; a stream of chunks from a
sequence and the steps that produce it (a ``Run``, or the server engine's events).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .generation import GenerateKwargs, SequenceText, Step
from .logprobs import TokenLogprob
from .openai_types import (
    ChatCompletionLogprobs,
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
from .sampling import SamplingParams


class ChatCompletionKwargs(GenerateKwargs, total=False):
    """:class:`GenerateKwargs` of ``create_chat_completion``, plus OpenAI's spelling of
    its own: ``logprobs=True`` with ``top_logprobs=n``, ``tools`` (for the chat
    template) and ``response_format``."""

    logprobs: bool
    top_logprobs: int | None
    tools: Sequence[Mapping[str, Any]] | None
    response_format: ResponseFormat | None


def completion(seq: SequenceText, model: str) -> CreateCompletionResponse:
    """The response for a finished sequence."""
    result = seq.completion()
    start = len(seq.echoed)  # logprob text offsets count from the start of the text
    return {
        "id": _id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "text": result.text,
            "index": 0,
            "logprobs": None if result.logprobs is None else _completion_logprobs(result.logprobs, start),
            "finish_reason": result.finish_reason,
        }],
        "usage": _usage(result.prompt_tokens, result.completion_tokens),
    }


def completion_chunks(seq: SequenceText, steps: Iterable[Step], model: str) -> Iterator[CreateCompletionStreamResponse]:
    """One chunk per released text piece of ``seq`` (with the logprobs of the tokens
    behind it), then an empty chunk carrying ``finish_reason``."""
    cid, created = _id("cmpl"), int(time.time())
    want_logprobs = seq.options.logprobs is not None
    pending: list[TokenLogprob] = []
    offset = 0
    for step in steps:
        if step.logprob is not None:
            pending.append(step.logprob)
        if not step.text:
            continue
        logprobs = _completion_logprobs(pending, offset) if want_logprobs else None
        offset += len(step.text)
        pending = []
        yield {"id": cid, "object": "text_completion", "created": created, "model": model,
               "choices": [{"text": step.text, "index": 0, "logprobs": logprobs, "finish_reason": None}]}
    yield {"id": cid, "object": "text_completion", "created": created, "model": model,
           "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": seq.finish_reason}]}


def chat_completion(seq: SequenceText, model: str) -> CreateChatCompletionResponse:
    """The response for a finished sequence."""
    result = seq.completion()
    return {
        "id": _id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": result.text},
            "logprobs": None if result.logprobs is None else _chat_logprobs(result.logprobs),
            "finish_reason": result.finish_reason,
        }],
        "usage": _usage(result.prompt_tokens, result.completion_tokens),
    }


def chat_chunks(seq: SequenceText, steps: Iterable[Step], model: str) -> Iterator[CreateChatCompletionStreamResponse]:
    """A role chunk, one chunk per text piece, then an empty delta with ``finish_reason``."""
    cid, created = _id("chatcmpl"), int(time.time())
    want_logprobs = seq.options.logprobs is not None
    yield {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
           "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": None, "finish_reason": None}]}
    pending: list[TokenLogprob] = []
    for step in steps:
        if step.logprob is not None:
            pending.append(step.logprob)
        if not step.text:
            continue
        logprobs = _chat_logprobs(pending) if want_logprobs else None
        pending = []
        yield {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": {"content": step.text}, "logprobs": logprobs, "finish_reason": None}]}
    yield {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
           "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": seq.finish_reason}]}


def embedding_response(vectors: npt.NDArray[np.float32], n_tokens: int, model: str) -> CreateEmbeddingResponse:
    return {
        "object": "list",
        "data": [{"object": "embedding", "embedding": [float(x) for x in row], "index": i}
                 for i, row in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }


def apply_response_format(params: SamplingParams, response_format: ResponseFormat | None) -> SamplingParams:
    """``params`` constrained by an OpenAI ``response_format``."""
    if response_format is None or response_format.get("type", "text") == "text":
        return params
    kind = response_format.get("type")
    if kind == "json_object":
        return params.replace(json_schema=response_format.get("schema") or {"type": "object"})
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not spec or "schema" not in spec:
            raise ValueError("response_format json_schema needs {'json_schema': {'schema': {...}}}")
        return params.replace(json_schema=spec["schema"])
    raise ValueError(f"response_format type must be 'text', 'json_object' or 'json_schema', got {kind!r}")


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


def _usage(prompt_tokens: int, completion_tokens: int) -> CompletionUsage:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"
