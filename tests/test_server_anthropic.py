"""Anthropic's Messages API (/v1/messages, /v1/messages/count_tokens) through the
official anthropic client: text, stop sequences, streaming (the client's
``messages.stream()`` rebuilds the message from the events), the tool-use round trip,
token counting, the x-api-key header, and the requests it refuses, in Anthropic's
error shape. The request conversion is llama-server's own (server-chat.cpp)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llamanb import core
from llamanb.server import ServerConfig

from .converter_fuzz import converts_or_refuses, fuzz_settings, json_values
from .fuzz.serve import running_server

MODEL = "smollm2"
KEY = "sk-ant-test-0123456789"
SYSTEM = "You are a helpful assistant who answers in one short sentence."
WEATHER: Any = {"name": "get_weather", "description": "The weather in a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
# Anthropic's client has no temperature parameter (its API dropped it); llama-server and
# llamanb still read one from the body.
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[str]:
    config = ServerConfig(model=model_path, parallel=2, n_ctx=4096, n_threads=2, alias=MODEL, api_key=KEY)
    with running_server(config) as (url, _api):
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server, api_key=KEY, max_retries=0, timeout=120)


def chat(server: str, messages: list[Any], max_tokens: int) -> Any:
    c = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=120)
    return c.chat.completions.create(model=MODEL, messages=messages, extra_body=GREEDY, max_tokens=max_tokens)


def test_text_is_the_chat_completion_of_the_same_messages(server: str, client: anthropic.Anthropic) -> None:
    out = client.messages.create(model=MODEL, system=SYSTEM, messages=[{"role": "user", "content": "Where is Rome?"}],
                                 extra_body=GREEDY, max_tokens=24)
    reference = chat(server, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is Rome?"}],
                     24)
    assert out.type == "message" and out.role == "assistant" and out.model == MODEL and out.id.startswith("msg_")
    (block,) = out.content
    assert block.type == "text" and block.text
    # The same prompt: the same token count (the second request reads most of it from
    # the cache), and the same confident greedy start.
    assert out.usage.input_tokens + (out.usage.cache_read_input_tokens or 0) == reference.usage.prompt_tokens
    assert block.text.split()[:2] == (reference.choices[0].message.content or "").split()[:2]
    if reference.choices[0].finish_reason == "length":
        assert out.stop_reason == "max_tokens" and out.usage.output_tokens == 24
    else:
        assert out.stop_reason == "end_turn"
    # Counting: the same prompt's tokens, nothing generated.
    counted = client.messages.count_tokens(model=MODEL, system=SYSTEM,
                                           messages=[{"role": "user", "content": "Where is Rome?"}])
    assert counted.input_tokens == reference.usage.prompt_tokens


def test_stop_sequence(client: anthropic.Anthropic) -> None:
    ask: Any = [{"role": "user", "content": "Describe the sea."}]
    free = client.messages.create(model=MODEL, messages=ask, extra_body=GREEDY, max_tokens=32)
    words = [w for w in free.content[0].text.split() if w.isalpha()]  # type: ignore[union-attr]
    assert len(words) >= 4, free.content
    stop = words[len(words) // 2]
    out = client.messages.create(model=MODEL, messages=ask, extra_body=GREEDY, max_tokens=32, stop_sequences=[stop])
    assert out.stop_reason == "stop_sequence" and out.stop_sequence == stop
    text = out.content[0].text if out.content else ""  # type: ignore[union-attr]
    assert stop not in text


def test_stream_rebuilds_the_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, messages=[{"role": "user", "content": "Name a color."}],
                                extra_body=GREEDY, max_tokens=16) as stream:
        kinds = []
        pieces = []
        for event in stream:
            kinds.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                pieces.append(event.delta.text)
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "message_delta" in kinds
    (block,) = final.content
    assert block.type == "text" and block.text == "".join(pieces) and block.text
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert (final.stop_reason == "max_tokens") == (final.usage.output_tokens == 16)
    assert final.usage.input_tokens > 0


def test_tool_use_round_trip(client: anthropic.Anthropic) -> None:
    out = client.messages.create(model=MODEL, messages=ASK, tools=[WEATHER], max_tokens=120, extra_body=GREEDY,
                                 tool_choice={"type": "tool", "name": "get_weather"})
    assert out.stop_reason == "tool_use"
    (use,) = [b for b in out.content if b.type == "tool_use"]
    assert use.name == "get_weather" and isinstance(use.input, dict) and isinstance(use.input["city"], str)
    # Streamed, the client assembles the same kind of call from input_json_delta pieces.
    with client.messages.stream(model=MODEL, messages=ASK, tools=[WEATHER], max_tokens=120, extra_body=GREEDY,
                                tool_choice={"type": "any"}) as stream:
        final = stream.get_final_message()
    (streamed,) = [b for b in final.content if b.type == "tool_use"]
    assert streamed.name == "get_weather" and isinstance(streamed.input, dict) and streamed.input["city"]
    # The call and its result go back; with tool_choice none the answer is text.
    messages: Any = [*ASK, {"role": "assistant", "content": [use.model_dump()]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                   "content": "Sunny, 21 C"}]}]
    answer = client.messages.create(model=MODEL, messages=messages, tools=[WEATHER], max_tokens=40, extra_body=GREEDY,
                                    tool_choice={"type": "none"})
    assert answer.stop_reason in ("end_turn", "max_tokens")
    assert [b.type for b in answer.content] == ["text"]


class City(pydantic.BaseModel):
    city: str
    country: str


def test_structured_output(client: anthropic.Anthropic) -> None:
    out = client.messages.parse(model=MODEL, messages=[{"role": "user", "content": "Name a city and its country."}],
                                output_format=City, max_tokens=60, extra_body=GREEDY)
    assert out.stop_reason == "end_turn"
    assert isinstance(out.parsed_output, City) and out.parsed_output.city


def test_request_fields_the_converter_leaves_out() -> None:
    from llamanb.server.anthropic import parse_messages

    def parsed(**fields: Any) -> Any:
        return parse_messages(json.dumps({"model": MODEL, "messages": ASK, **fields}).encode())

    assert parsed().chat.enable_thinking is True
    assert parsed(thinking={"type": "disabled"}).chat.enable_thinking is False
    assert parsed(tool_choice={"type": "none"}, tools=[WEATHER]).chat.tool_choice == "none"
    named = parsed(tool_choice={"type": "tool", "name": "get_weather"}, tools=[WEATHER]).chat.tool_choice
    assert named == {"type": "function", "function": {"name": "get_weather"}}
    assert parsed(tool_choice={"type": "any", "disable_parallel_tool_use": True},
                  tools=[WEATHER]).chat.parallel_tool_calls is False
    assert parsed(output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}}).chat.json_schema


def test_api_key_headers(server: str) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        anthropic.Anthropic(base_url=server, api_key="wrong", max_retries=0).messages.create(
            model=MODEL, messages=ASK, max_tokens=4)
    assert caught.value.body == {"type": "error", "error": {"type": "authentication_error",
                                                            "message": caught.value.body["error"]["message"]}}  # type: ignore[index]
    # The OpenAI routes take the same key as x-api-key, and Bearer still works.
    assert httpx.get(f"{server}/v1/models", headers={"x-api-key": KEY}).status_code == 200
    assert httpx.get(f"{server}/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(f"{server}/v1/models", headers={"x-api-key": "wrong"}).status_code == 401


@pytest.mark.parametrize(("body", "message"), [
    ({"model": MODEL, "max_tokens": 4}, "'messages' is required"),
    ({"model": MODEL, "messages": ASK, "tool_choice": {"type": "sometimes"}}, "tool_choice"),
    ({"model": MODEL, "messages": ASK, "tool_choice": {"type": "tool"}}, "tool_choice"),
    ({"model": MODEL, "messages": ASK, "max_tokens": -1}, "max_tokens"),
    ({"model": MODEL, "messages": [{"role": "robot", "content": "hi"}]}, "role"),
    ({"model": MODEL, "messages": ASK, "output_config": {"format": {"type": "yaml"}}}, "output_config.format"),
    ({"model": MODEL, "messages": ASK, "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
     "web_search_20250305"),
    ({"model": "other", "messages": ASK}, "other"),
])
def test_bad_requests_get_anthropic_errors(server: str, body: dict[str, Any], message: str) -> None:
    r = httpx.post(f"{server}/v1/messages", json=body, headers={"x-api-key": KEY}, timeout=60)
    assert r.status_code in (400, 404), r.text
    error = r.json()
    assert error["type"] == "error" and error["error"]["type"] in ("invalid_request_error", "not_found_error")
    assert message in error["error"]["message"], error


# Messages-shaped requests with fields of every JSON type now and then: llama-server's
# converter must give a chat request or a ValueError.
_block = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "x"]), json_values)},
    optional={"text": json_values, "source": st.one_of(st.fixed_dictionaries(
        {"type": st.sampled_from(["base64", "url", "x"])}, optional={"data": json_values, "url": json_values,
                                                                     "media_type": json_values}), json_values),
        "id": json_values, "name": json_values, "input": json_values, "tool_use_id": json_values, "thinking": json_values,
        "content": st.one_of(st.text(max_size=8), st.lists(st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "image", "x"])}, optional={"text": json_values, "source": json_values}),
            max_size=2), json_values)})
_message = st.fixed_dictionaries({}, optional={
    "role": st.one_of(st.sampled_from(["user", "assistant"]), json_values),
    "content": st.one_of(st.text(max_size=8), st.lists(_block, max_size=3), json_values)})
_request = st.fixed_dictionaries({}, optional={
    "messages": st.one_of(st.lists(_message, max_size=3), json_values),
    "system": st.one_of(st.text(max_size=40).map(lambda t: "x-anthropic-billing-header: cch=" + t),
                        st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": json_values}), max_size=2), json_values),
    "tools": st.one_of(st.lists(st.fixed_dictionaries({}, optional={"name": json_values, "input_schema": json_values}),
                                max_size=2), json_values),
    "tool_choice": json_values, "stop_sequences": json_values, "max_tokens": json_values, "thinking": json_values, "metadata": json_values})


@fuzz_settings
@given(_request)
def test_converter_gives_a_chat_request_or_a_value_error(request: dict[str, Any]) -> None:
    out = converts_or_refuses(core.anthropic_to_chat_request, request)
    assert out is None or "max_tokens" in out
