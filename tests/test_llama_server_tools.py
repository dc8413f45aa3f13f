"""Tool calls and structured output through ``llamanb serve``, as real clients use them
(the official ``openai`` and ``anthropic`` libraries), on the default model, whose
template knows no tools: llama.cpp's chat engine then uses the generic format of patch
0021, and the Responses and Anthropic routes keep their response formats (patch 0022).

These were issue 29's real-client defects: tools silently dropped when a response
format came with them (OpenAI Agents SDK, instructor, pydantic-ai), Anthropic's
``thread`` ignored, and Responses stream events without ``sequence_number``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from .support.server_process import SHARED_CHAT

WEATHER: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "The weather in a city", "parameters": WEATHER},
    }
]
ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 40}},
    "required": ["answer"],
    "additionalProperties": False,
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def server(model_path: Path, server_for: Callable[[Sequence[str]], str]) -> str:
    return server_for(["-m", str(model_path), *SHARED_CHAT])


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", timeout=120)


def test_required_tool_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=QUESTION, tools=TOOLS, tool_choice="required", max_tokens=64
    )  # type: ignore[arg-type]
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function" and calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments)["city"], str)
    assert calls[0].id


def test_tools_are_in_the_prompt(client: openai.OpenAI) -> None:
    """The template knows no tools, yet the model is told about them (before patch 0021 the
    prompt was the same with and without tools)."""
    plain = client.chat.completions.create(model="m", messages=QUESTION, max_tokens=1)  # type: ignore[arg-type]
    tooled = client.chat.completions.create(model="m", messages=QUESTION, tools=TOOLS, max_tokens=1)  # type: ignore[arg-type]
    assert plain.usage is not None and tooled.usage is not None
    assert tooled.usage.prompt_tokens > plain.usage.prompt_tokens + 40


def test_tools_with_a_response_format(client: openai.OpenAI) -> None:
    """Defect 1: tools and a response format together (pydantic-ai NativeOutput, the Agents
    SDK's output_type). The reply is a call or an answer of the schema, never free text, and
    the tools reach the prompt."""
    response_format = {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER, "strict": True}}
    only_format = client.chat.completions.create(
        model="m", messages=QUESTION, max_tokens=64, response_format=response_format
    )  # type: ignore[arg-type]
    reply = client.chat.completions.create(
        model="m", messages=QUESTION, tools=TOOLS, max_tokens=96, response_format=response_format
    )  # type: ignore[arg-type]
    assert reply.usage is not None and only_format.usage is not None
    assert reply.usage.prompt_tokens > only_format.usage.prompt_tokens + 40
    message = reply.choices[0].message
    if message.tool_calls:
        assert message.tool_calls[0].function.name == "get_weather"
    else:
        assert reply.choices[0].finish_reason == "stop"
        assert isinstance(json.loads(message.content or "")["answer"], str)
    forced = client.chat.completions.create(
        model="m",
        messages=QUESTION,
        tools=TOOLS,
        max_tokens=64,
        tool_choice="required",
        response_format=response_format,
    )  # type: ignore[arg-type]
    assert (forced.choices[0].message.tool_calls or [])[0].function.name == "get_weather"


def test_streamed_tool_call_and_streamed_response(client: openai.OpenAI) -> None:
    """A call streams as tool_call deltas; a plain answer streams token by token (the
    generic format's "response" string is decoded while it grows)."""
    name, arguments = "", ""
    for chunk in client.chat.completions.create(
        model="m", messages=QUESTION, tools=TOOLS, tool_choice="required", max_tokens=64, stream=True
    ):  # type: ignore[arg-type]
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name += (call.function.name or "") if call.function else ""
            arguments += (call.function.arguments or "") if call.function else ""
    assert name == "get_weather" and isinstance(json.loads(arguments)["city"], str)

    greeting = [{"role": "user", "content": "Say hello to me, please."}]
    whole = client.chat.completions.create(model="m", messages=greeting, tools=TOOLS, max_tokens=24)  # type: ignore[arg-type]
    pieces = [
        c.choices[0].delta.content
        for c in client.chat.completions.create(model="m", messages=greeting, tools=TOOLS, max_tokens=24, stream=True)  # type: ignore[arg-type]
        if c.choices and c.choices[0].delta.content
    ]
    if whole.choices[0].message.tool_calls:
        pytest.fail(f"the model called a tool to say hello: {whole.choices[0].message}")
    assert "".join(pieces) == whole.choices[0].message.content
    assert len(pieces) > 3  # streamed, not one piece at the end
    assert not any("\\" in p or '"response"' in p for p in pieces)  # decoded text, not the JSON around it


def test_past_calls_and_results_reach_the_prompt(client: openai.OpenAI) -> None:
    history: list[Any] = [
        *QUESTION,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 24 degrees"},
    ]
    reply = client.chat.completions.create(model="m", messages=history, tools=TOOLS, max_tokens=48)  # type: ignore[arg-type]
    short = client.chat.completions.create(model="m", messages=history[:1], tools=TOOLS, max_tokens=1)  # type: ignore[arg-type]
    assert reply.usage is not None and short.usage is not None
    assert reply.usage.prompt_tokens > short.usage.prompt_tokens + 15  # the call and its result are rendered
    assert reply.choices[0].finish_reason in ("stop", "tool_calls", "length")


def test_responses_tools_and_text_format(client: openai.OpenAI) -> None:
    """The Responses API: a required call is a function_call item; text.format (instructor's
    RESPONSES_TOOLS, the Agents SDK's output_type) holds the reply to its schema."""
    tools: list[Any] = [
        {"type": "function", "name": "get_weather", "description": "The weather in a city", "parameters": WEATHER}
    ]
    called = client.responses.create(
        model="m", input="What is the weather in Paris?", tools=tools, tool_choice="required", max_output_tokens=64
    )
    calls = [item for item in called.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and json.loads(calls[0].arguments)["city"]
    text_format: Any = {"format": {"type": "json_schema", "name": "answer", "schema": ANSWER, "strict": True}}
    answered = client.responses.create(model="m", input="Name a color.", text=text_format, max_output_tokens=48)
    assert isinstance(json.loads(answered.output_text)["answer"], str)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(
            model="m",
            input="x",
            text={"format": {"type": "yaml"}},  # type: ignore[typeddict-item]
            max_output_tokens=4,
        )


def test_responses_stream_events_are_numbered(client: openai.OpenAI) -> None:
    """Every event has its sequence_number, counting from 0; item events their output_index,
    content events their content_index; the SDK's stream accumulator builds the response."""
    events: list[Any] = []
    with client.responses.stream(model="m", input="Say hello", max_output_tokens=8) as stream:
        events.extend(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert all(isinstance(e.output_index, int) for e in events if e.type.startswith("response.output_"))
    assert all(
        e.content_index == 0 for e in events if e.type.startswith(("response.output_text.", "response.content_part."))
    )
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas and final.output_text == deltas


def test_anthropic_tools_and_output_format(server: str) -> None:
    client = anthropic.Anthropic(base_url=server, api_key="unused", timeout=120)
    tools: list[Any] = [{"name": "get_weather", "description": "The weather in a city", "input_schema": WEATHER}]
    called = client.messages.create(
        model="m",
        max_tokens=64,
        messages=QUESTION,
        tools=tools,  # type: ignore[arg-type]
        tool_choice={"type": "any"},
    )
    uses = [block for block in called.content if block.type == "tool_use"]
    assert called.stop_reason == "tool_use" and uses and uses[0].name == "get_weather"
    assert isinstance(uses[0].input, dict) and isinstance(uses[0].input["city"], str)
    formatted = httpx.post(
        f"{server}/v1/messages",
        timeout=120,
        json={
            "model": "m",
            "max_tokens": 48,
            "messages": [{"role": "user", "content": "Name a color."}],
            "output_config": {"format": {"type": "json_schema", "schema": ANSWER}},
        },
    ).json()
    assert isinstance(json.loads(formatted["content"][0]["text"])["answer"], str)


def test_anthropic_thread_gets_the_error_its_clients_expect(server: str) -> None:
    """Defect 2: `thread` is a 400 with error_code thread_unsupported_request. The anthropic
    library's threads then send the whole conversation (continue_unthreaded) or raise
    ThreadUnsupportedRequestError: never a reply to a truncated conversation."""
    raw = httpx.post(
        f"{server}/v1/messages",
        timeout=60,
        json={"model": "m", "max_tokens": 4, "messages": QUESTION, "thread": {"type": "new"}},
    )
    assert raw.status_code == 400
    error = raw.json()["error"]
    assert raw.json()["type"] == "error" and error["type"] == "invalid_request_error"
    assert error["details"]["error_code"] == "thread_unsupported_request"

    client = anthropic.Anthropic(base_url=server, api_key="unused", timeout=120)
    strict = client.beta.messages.thread(model="m", max_tokens=8)
    with pytest.raises(anthropic.BadRequestError) as refused:
        strict.send({"role": "user", "content": "Hello"})
    assert "thread" in str(refused.value)

    seen: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> None:
        seen.append(json.loads(request.content))

    recording = anthropic.Anthropic(
        base_url=server,
        api_key="unused",
        timeout=120,
        http_client=anthropic.DefaultHttpxClient(event_hooks={"request": [record]}),
    )
    thread = recording.beta.messages.thread(model="m", max_tokens=8, unsupported_request_behavior="continue_unthreaded")
    first = thread.send({"role": "user", "content": "My name is Ada."})
    second = thread.send({"role": "user", "content": "What is my name?"})
    assert first.content and second.content
    last = seen[-1]
    assert "thread" not in last
    assert [m["role"] for m in last["messages"]] == ["user", "assistant", "user"]  # the whole conversation
