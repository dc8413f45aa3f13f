"""The OpenAI Responses API (/v1/responses) through the official openai client: text,
streaming (raw events and the client's ``responses.stream()``, which rebuilds the
response from them), the tool-call round trip, structured output, and the requests
it refuses. The request conversion is llama-server's own (server-chat.cpp)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
INSTRUCTIONS = "You are a helpful assistant who answers in one short sentence."
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[str]:
    config = ServerConfig(model=model_path, parallel=2, n_ctx=4096, n_threads=2, alias=MODEL)
    with running_server(config) as (url, _api):
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)


def test_text_is_the_chat_completion_of_the_same_messages(client: openai.OpenAI) -> None:
    out = client.responses.create(model=MODEL, instructions=INSTRUCTIONS, input="Where is Paris?",
                                  temperature=0, max_output_tokens=24)
    chat = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=24,
        messages=[{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": "Where is Paris?"}])
    assert out.object == "response" and out.id.startswith("resp_") and out.model == MODEL
    assert out.output_text
    # Same prompt (the instructions are the system message): the same token count, and
    # the same greedy start (the second request reuses the cached prompt, whose last
    # token, decoded alone, rounds differently: only the confident start is compared).
    assert out.usage is not None and chat.usage is not None
    assert out.usage.input_tokens == chat.usage.prompt_tokens
    assert out.output_text.split()[:2] == (chat.choices[0].message.content or "").split()[:2]
    (message,) = out.output
    assert message.type == "message" and message.role == "assistant" and message.status == out.status
    if chat.choices[0].finish_reason == "length":
        assert out.status == "incomplete" and out.incomplete_details is not None
        assert out.incomplete_details.reason == "max_output_tokens"
        assert out.usage.output_tokens == 24
    else:
        assert out.status == "completed" and out.incomplete_details is None
    assert out.instructions == INSTRUCTIONS and out.temperature == 0
    # Counting the same input: its prompt tokens, nothing generated.
    counted = client.responses.input_tokens.count(model=MODEL, instructions=INSTRUCTIONS, input="Where is Paris?")
    assert counted.input_tokens == out.usage.input_tokens
    chat_count = httpx.post(f"{client.base_url}chat/completions/input_tokens", timeout=60, json={
        "model": MODEL, "messages": [{"role": "system", "content": INSTRUCTIONS},
                                     {"role": "user", "content": "Where is Paris?"}]}).json()
    assert chat_count == {"input_tokens": out.usage.input_tokens}


def test_stream_events_carry_the_response(client: openai.OpenAI) -> None:
    stream = client.responses.create(model=MODEL, input=[{"role": "user", "content": "Name a color."}],
                                     temperature=0, max_output_tokens=16, stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert deltas and all(e.output_index == 0 and e.content_index == 0 for e in deltas)
    text = "".join(e.delta for e in deltas)
    (done,) = [e for e in events if e.type == "response.output_text.done"]
    assert done.text == text
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == text
    assert final.usage is not None and final.usage.output_tokens >= len(deltas)
    assert (final.status == "incomplete") == (final.usage.output_tokens == 16)


def test_tool_call_round_trip(client: openai.OpenAI) -> None:
    ask: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    out = client.responses.create(model=MODEL, input=ask, tools=[WEATHER], tool_choice="required",  # type: ignore[list-item]
                                  temperature=0, max_output_tokens=120)
    calls = [item for item in out.output if item.type == "function_call"]
    assert len(calls) == 1 and out.status == "completed"
    call = calls[0]
    assert call.name == "get_weather" and isinstance(json.loads(call.arguments)["city"], str)
    # The client's stream helper rebuilds the same call from the events.
    with client.responses.stream(model=MODEL, input=ask, tools=[WEATHER],  # type: ignore[list-item]
                                 tool_choice={"type": "function", "name": "get_weather"},
                                 temperature=0, max_output_tokens=120) as stream:
        pieces = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    (streamed,) = final.output
    assert streamed.type == "function_call" and streamed.name == "get_weather"
    assert "".join(pieces) == streamed.arguments and json.loads(streamed.arguments)["city"]
    # The call and its output go back as input items; the answer is text.
    answer = client.responses.create(
        model=MODEL, tools=[WEATHER], tool_choice="none", temperature=0, max_output_tokens=40,  # type: ignore[list-item]
        input=[*ask, call.model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}])
    assert answer.output_text and not [item for item in answer.output if item.type == "function_call"]


class City(pydantic.BaseModel):
    city: str
    country: str


def test_structured_output(client: openai.OpenAI) -> None:
    out = client.responses.parse(model=MODEL, input="Name a city and its country, as JSON.", text_format=City,
                                 temperature=0, max_output_tokens=60)
    assert out.status == "completed"
    assert isinstance(out.output_parsed, City) and out.output_parsed.city


@pytest.mark.parametrize(("body", "message"), [
    ({"model": MODEL}, "'input' is required"),
    ({"model": MODEL, "input": 5}, "'input' must be a string or array"),
    ({"model": MODEL, "input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({"model": MODEL, "input": [{"type": "nonsense"}]}, "Cannot determine type"),
    ({"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "input_file"),
    ({"model": MODEL, "input": "hi", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"model": MODEL, "input": "hi", "tool_choice": {"type": "mcp"}}, "tool_choice"),
    ({"model": MODEL, "input": "hi", "top_logprobs": 2}, "top_logprobs"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "web_search"}]}, "web_search"),
    ({"model": MODEL, "input": "hi", "max_output_tokens": -1}, "max_tokens"),
    ({"model": "other", "input": "hi"}, "other"),
])
def test_bad_requests_are_400(server: str, body: dict[str, Any], message: str) -> None:
    r = httpx.post(f"{server}/v1/responses", json=body, timeout=60)
    assert r.status_code in (400, 404), r.text
    error = r.json()["error"]
    assert message in error["message"], error


# Responses-shaped requests with every field a wrong type now and then: llama-server's
# converter must give a chat request or a ValueError, whatever the input items hold.
_part = st.fixed_dictionaries(
    {"type": st.sampled_from(["input_text", "output_text", "input_image", "refusal", "input_file", "text", "x"])},
    optional={"text": json_values, "image_url": json_values, "refusal": json_values})
_item = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(["message", "function_call", "function_call_output", "reasoning", "x"]), json_values),
    "role": st.one_of(st.sampled_from(["user", "assistant", "system", "developer"]), json_values),
    "content": st.one_of(st.text(max_size=8), st.lists(_part, max_size=3), json_values),
    "call_id": json_values, "name": json_values, "arguments": json_values, "id": json_values,
    "output": st.one_of(st.text(max_size=8), st.lists(_part, max_size=2), json_values),
    "summary": st.one_of(st.just([]), json_values)})
_request = st.fixed_dictionaries({}, optional={
    "input": st.one_of(st.text(max_size=8), st.lists(_item, max_size=4), json_values),
    "instructions": json_values, "max_output_tokens": json_values, "reasoning": json_values, "previous_response_id": json_values,
    "tools": st.one_of(st.lists(st.fixed_dictionaries({"type": st.one_of(st.just("function"), json_values)},
                                                      optional={"name": json_values, "parameters": json_values}),
                                max_size=2), json_values)})


@fuzz_settings
@given(_request)
def test_converter_gives_a_chat_request_or_a_value_error(request: dict[str, Any]) -> None:
    out = converts_or_refuses(core.responses_to_chat_request, request)
    assert out is None or "input" not in out
