"""The OpenAI API's result shapes as ``TypedDict``\\ s (named as in llama-cpp-python)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict

FinishReason = Literal["stop", "length", "tool_calls"]


class PromptTokensDetails(TypedDict):
    cached_tokens: int


class _CompletionUsageBase(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionUsage(_CompletionUsageBase, total=False):
    prompt_tokens_details: PromptTokensDetails


class CompletionLogprobs(TypedDict):
    text_offset: list[int]
    token_logprobs: list[float | None]
    tokens: list[str]
    top_logprobs: list[dict[str, float] | None]


class CompletionChoice(TypedDict):
    text: str
    index: int
    logprobs: CompletionLogprobs | None
    finish_reason: FinishReason | None


class CreateCompletionResponse(TypedDict):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage


class CreateCompletionStreamResponse(TypedDict):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]


class ChatCompletionTopLogprob(TypedDict):
    token: str
    logprob: float
    bytes: list[int] | None


class ChatCompletionTokenLogprob(TypedDict):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[ChatCompletionTopLogprob]


class ChatCompletionLogprobs(TypedDict):
    content: list[ChatCompletionTokenLogprob] | None


class ChatCompletionMessageFunctionCall(TypedDict):
    name: str
    arguments: str


class ChatCompletionMessageToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: ChatCompletionMessageFunctionCall


class _ChatCompletionResponseMessageBase(TypedDict):
    role: Literal["assistant"]
    content: str | None


class ChatCompletionResponseMessage(_ChatCompletionResponseMessageBase, total=False):
    reasoning_content: str
    tool_calls: list[ChatCompletionMessageToolCall]


class ChatCompletionResponseChoice(TypedDict):
    index: int
    message: ChatCompletionResponseMessage
    logprobs: ChatCompletionLogprobs | None
    finish_reason: FinishReason | None


class CreateChatCompletionResponse(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatCompletionResponseChoice]
    usage: CompletionUsage


class ChatCompletionMessageToolCallChunkFunction(TypedDict, total=False):
    name: str
    arguments: str


class _ChatCompletionMessageToolCallChunkBase(TypedDict):
    index: int


class ChatCompletionMessageToolCallChunk(_ChatCompletionMessageToolCallChunkBase, total=False):
    id: str
    type: Literal["function"]
    function: ChatCompletionMessageToolCallChunkFunction


class ChatCompletionStreamResponseDelta(TypedDict, total=False):
    role: Literal["assistant"]
    content: str
    reasoning_content: str
    tool_calls: list[ChatCompletionMessageToolCallChunk]


class ChatCompletionStreamResponseChoice(TypedDict):
    index: int
    delta: ChatCompletionStreamResponseDelta
    logprobs: ChatCompletionLogprobs | None
    finish_reason: FinishReason | None


class CreateChatCompletionStreamResponse(TypedDict):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatCompletionStreamResponseChoice]


class Embedding(TypedDict):
    object: Literal["embedding"]
    embedding: list[float]
    index: int


class EmbeddingUsage(TypedDict):
    prompt_tokens: int
    total_tokens: int


class CreateEmbeddingResponse(TypedDict):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class JsonSchemaFormat(TypedDict, total=False):
    name: str
    schema: Mapping[str, Any]
    strict: bool


class ResponseFormat(TypedDict, total=False):
    """``{"type": "json_object", "schema": {...}}`` (llama-cpp-python) or
    ``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}`` (OpenAI)."""

    type: Literal["text", "json_object", "json_schema"]
    schema: Mapping[str, Any]
    json_schema: JsonSchemaFormat
