"""OpenAI-shaped results: completions, chat completions (and their stream chunks), embeddings."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema

import llamanb
from llamanb.openai_types import ResponseFormat

PROMPT = "The capital of France is"
MESSAGES = [{"role": "user", "content": "Say hi."}]


def test_completion_shape(llm: llamanb.Llama) -> None:
    out = llm.create_completion(PROMPT, max_tokens=8, temperature=0)
    assert set(out) == {"id", "object", "created", "model", "choices", "usage"}
    assert out["object"] == "text_completion" and out["id"].startswith("cmpl-")
    assert isinstance(out["created"], int) and out["model"].endswith(".gguf")
    (choice,) = out["choices"]
    assert set(choice) == {"text", "index", "logprobs", "finish_reason"}
    expected = llm.generate(PROMPT, max_tokens=8, temperature=0)
    assert choice["text"] == expected.text and choice["index"] == 0 and choice["logprobs"] is None
    assert choice["finish_reason"] == expected.finish_reason
    usage = out["usage"]
    assert usage["prompt_tokens"] == len(llm.tokenize(PROMPT)) and usage["completion_tokens"] == 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert llm.create_completion(PROMPT, temperature=0)["usage"]["completion_tokens"] == 16  # OpenAI's default


def test_completion_logprobs_and_echo(llm: llamanb.Llama) -> None:
    out = llm.create_completion(PROMPT, max_tokens=4, temperature=0, logprobs=2, echo=True)
    choice = out["choices"][0]
    assert choice["text"].startswith(PROMPT)
    lp = choice["logprobs"]
    assert lp is not None and len(lp["tokens"]) == 4
    assert "".join(lp["tokens"]) == choice["text"][len(PROMPT) :]
    assert lp["text_offset"][0] == len(PROMPT)
    assert all(isinstance(x, float) and x <= 0 for x in lp["token_logprobs"] if x is not None)
    tops = lp["top_logprobs"]
    assert all(t is not None and len(t) == 2 for t in tops)
    assert lp["tokens"][0] == " Paris" and max(tops[0] or {}, key=(tops[0] or {}).__getitem__) == " Paris"


def test_completion_stream_chunks(llm: llamanb.Llama) -> None:
    chunks = list(llm.create_completion(PROMPT, max_tokens=12, temperature=0, stream=True, logprobs=1))
    assert len(chunks) > 2
    assert all(c["object"] == "text_completion" and c["id"] == chunks[0]["id"] for c in chunks)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert text == llm.create_completion(PROMPT, max_tokens=12, temperature=0)["choices"][0]["text"]
    n_tokens = sum(len(lp["tokens"]) for c in chunks if (lp := c["choices"][0]["logprobs"]) is not None)
    assert n_tokens <= 12 and n_tokens > 0


def test_chat_completion_shape(llm: llamanb.Llama) -> None:
    out = llm.create_chat_completion(MESSAGES, max_tokens=40, temperature=0)
    assert set(out) == {"id", "object", "created", "model", "choices", "usage"}
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    (choice,) = out["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == llm.chat(MESSAGES, max_tokens=40, temperature=0).text
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    assert out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]


def test_chat_completion_logprobs(llm: llamanb.Llama) -> None:
    out = llm.create_chat_completion(MESSAGES, max_tokens=5, temperature=0, logprobs=True, top_logprobs=2)
    logprobs = out["choices"][0]["logprobs"]
    assert logprobs is not None and logprobs["content"] is not None and len(logprobs["content"]) == 5
    for entry in logprobs["content"]:
        assert entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 2
        assert entry["bytes"] == list(entry["token"].encode())
        assert math.isclose(entry["logprob"], entry["top_logprobs"][0]["logprob"])


def test_chat_completion_stream_chunks(llm: llamanb.Llama) -> None:
    chunks = list(llm.create_chat_completion(MESSAGES, max_tokens=40, temperature=0, stream=True))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert content == llm.chat(MESSAGES, max_tokens=40, temperature=0).text


def test_response_format_json(llm: llamanb.Llama) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}, "population": {"type": "integer", "minimum": 0}},
        "required": ["city", "population"],
    }
    messages = [{"role": "user", "content": "Give a city and its population as JSON."}]
    formats: list[ResponseFormat] = [
        {"type": "json_object", "schema": schema},
        {"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    ]
    for fmt in formats:
        out = llm.create_chat_completion(messages, max_tokens=60, temperature=0, response_format=fmt)
        content = out["choices"][0]["message"]["content"]
        assert content is not None
        jsonschema.validate(json.loads(content), schema)
    # Without a schema: any JSON object.
    ask = [{"role": "user", "content": 'Reply with a JSON object like {"answer": "yes"}. Is the sky blue?'}]
    anything = llm.create_chat_completion(ask, max_tokens=60, temperature=0, response_format={"type": "json_object"})
    assert isinstance(json.loads(anything["choices"][0]["message"]["content"] or ""), dict)


def test_embedding_shape(llm: llamanb.Llama) -> None:
    out = llm.create_embedding(["Hello, world!", "Bonjour"])
    assert out["object"] == "list" and len(out["data"]) == 2
    for i, item in enumerate(out["data"]):
        assert item["object"] == "embedding" and item["index"] == i and len(item["embedding"]) == 576
        assert all(isinstance(x, float) for x in item["embedding"][:5])
    assert out["usage"]["prompt_tokens"] == len(llm.tokenize("Hello, world!")) + len(llm.tokenize("Bonjour"))
    assert len(llm.create_embedding("single")["data"]) == 1
