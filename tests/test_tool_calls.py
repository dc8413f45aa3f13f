"""Tool calls and reasoning through llama.cpp's chat engine (common/chat).

- Parsing: recorded replies in eight formats, each with the real template llama.cpp
  ships (models/templates of the pinned sdist), read whole and streamed piece by piece.
- Rendering: tools, and the tool-result round trip, with every template that renders tools.
- End to end on the default model (SmolLM2, whose template knows no tools: the generic
  JSON format): "required" and a named tool give a call whose arguments validate
  against the tool's schema, plain and streamed, through the facade, the server (the
  official openai client) and compat; the round trip answers in text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

import llamanb
from llamanb import core
from llamanb.chat import ChatOptions, ChatTemplate
from llamanb.chat_prompt import encode_chat
from llamanb.chat_reply import ChatDelta, ChatReply
from llamanb.compat import Llama as CompatLlama

from .support.server_process import SHARED_CHAT

MODEL = "smollm2"  # the server's alias
TEMPLATES = Path(__file__).resolve().parents[1] / "vendor" / "llama.cpp" / "models" / "templates"
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The weather in a city", "parameters": PARAMETERS},
}
TOOLS = [WEATHER]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
PARIS = {"city": "Paris"}

# A recorded reply per format: template file, reply text, expected (content, reasoning, calls).
RECORDED: dict[str, tuple[str, str, str, list[tuple[str, dict[str, Any]]]]] = {
    "Hermes/Qwen2.5 <tool_call>": (
        "Qwen-Qwen2.5-7B-Instruct.jinja",
        'Let me look.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        "Let me look.",
        "",
        [("get_weather", PARIS)],
    ),
    "Llama 3.1 JSON": (
        "meta-llama-Llama-3.1-8B-Instruct.jinja",
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        "",
        "",
        [("get_weather", PARIS)],
    ),
    "Mistral Nemo [TOOL_CALLS]": (
        "mistralai-Mistral-Nemo-Instruct-2407.jinja",
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcdefghi"}]',
        "",
        "",
        [("get_weather", PARIS)],
    ),
    "Qwen3 thinking + <tool_call>": (
        "Qwen-Qwen3-0.6B.jinja",
        '<think>\nThe user wants the weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", '
        '"arguments": {"city": "Paris"}}\n</tool_call>',
        "",
        "The user wants the weather.\n",
        [("get_weather", PARIS)],
    ),
    "GPT-OSS harmony": (
        "openai-gpt-oss-120b.jinja",
        "<|channel|>analysis<|message|>Need the weather tool.<|end|><|start|>assistant<|channel|>commentary "
        'to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}',
        "",
        "Need the weather tool.",
        [("get_weather", PARIS)],
    ),
    "Command R7B actions": (
        "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja",
        '<|START_THINKING|>I will call the tool.<|END_THINKING|><|START_ACTION|>[{"tool_call_id": "0", '
        '"tool_name": "get_weather", "parameters": {"city": "Paris"}}]<|END_ACTION|>',
        "",
        "I will call the tool.",
        [("get_weather", PARIS)],
    ),
    "Qwen3-Coder XML": (
        "Qwen3-Coder.jinja",
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>",
        "",
        "",
        [("get_weather", PARIS)],
    ),
    "DeepSeek R1 reasoning": (
        "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
        "Paris is usually mild.</think>It is sunny in Paris.",
        "It is sunny in Paris.",
        "Paris is usually mild.",
        [],
    ),
}


def template(name: str) -> ChatTemplate:
    return ChatTemplate((TEMPLATES / name).read_text(encoding="utf-8"), bos_token="<s>", eos_token="</s>")


def reply_format(vocab: core.Vocab, name: str) -> Any:
    prompt = encode_chat(vocab, template(name), ASK, ChatOptions(tools=TOOLS))
    return prompt.reply


def calls_of(message: llamanb.AssistantMessage) -> list[tuple[str, Any]]:
    return [(c.name, c.parsed_arguments()) for c in message.tool_calls]


@pytest.mark.parametrize("fmt", sorted(RECORDED))
def test_recorded_replies_parse(model: core.Model, fmt: str) -> None:
    name, text, content, reasoning, calls = RECORDED[fmt]
    reply = ChatReply(reply_format(model.vocab, name))
    reply.feed(text)
    reply.finish()
    assert reply.message is not None
    assert (reply.message.content or "").strip() == content.strip()
    assert (reply.message.reasoning_content or "").strip() == reasoning.strip()
    assert calls_of(reply.message) == calls


@pytest.mark.parametrize("fmt", sorted(RECORDED))
def test_recorded_replies_stream_like_openai(model: core.Model, fmt: str) -> None:
    """Fed a few characters at a time, the deltas add up to the final message: a call's
    index, id and name come once, then only argument fragments."""
    name, text, *_ = RECORDED[fmt]
    reply = ChatReply(reply_format(model.vocab, name))
    deltas: list[ChatDelta] = [reply.feed(text[i : i + 3]) for i in range(0, len(text), 3)]
    deltas.append(reply.finish())
    assert reply.message is not None
    assert "".join(d.content for d in deltas).strip() == (reply.message.content or "").strip()
    assert "".join(d.reasoning_content for d in deltas).strip() == (reply.message.reasoning_content or "").strip()
    pieces = [c for d in deltas for c in d.tool_calls]
    for i, call in enumerate(reply.message.tool_calls):
        mine = [p for p in pieces if p.index == i]
        assert mine[0].id == call.id and mine[0].name == call.name
        assert all(p.id is None and p.name is None for p in mine[1:])
        assert json.loads("".join(p.arguments for p in mine)) == call.parsed_arguments()


def tool_templates() -> list[str]:
    names = []
    for path in sorted(TEMPLATES.glob("*.jinja")):
        try:
            if template(path.name).supports_tools:
                names.append(path.name)
        except ValueError:
            continue
    return names


def test_templates_render_tools_and_the_round_trip(model: core.Model) -> None:
    """Every template that renders tools shows the tool, and renders a tool result
    after an assistant turn that has only tool calls (content null)."""
    round_trip = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "abc123XYZ",
                    "type": "function",  # Mistral's: 9 alphanumerics
                    "function": {"name": "get_weather", "arguments": json.dumps(PARIS)},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "abc123XYZ", "content": "Sunny, 21 C"},
    ]
    names = tool_templates()
    assert len(names) >= 40, names
    for name in names:
        tmpl = template(name)
        prompt = tmpl.render(ASK, ChatOptions(tools=TOOLS))
        assert "get_weather" in prompt, name
        after = tmpl.render(round_trip, ChatOptions(tools=TOOLS))
        assert "Sunny, 21 C" in after, name


def test_a_template_without_tools_gets_the_generic_format(llm: llamanb.Llama) -> None:
    assert not llm.chat_template.supports_tools and not llm.chat_template.caps["supports_tool_calls"]
    prompt = llm.render_chat(ASK, tools=TOOLS)
    assert "get_weather" in prompt and "tool_calls" in prompt
    assert llm.render_chat(ASK) == llm.render_chat(ASK, chat=ChatOptions(tools=TOOLS, tool_choice="none"))


def check_call(name: str, arguments: str) -> None:
    assert name == "get_weather"
    jsonschema.validate(json.loads(arguments), PARAMETERS)


NAMED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize("choice", ["required", "named"])
def test_facade_calls_the_tool(llm: llamanb.Llama, choice: str) -> None:
    tool_choice: Any = NAMED if choice == "named" else "required"
    reply = llm.chat(ASK, tools=TOOLS, tool_choice=tool_choice, temperature=0, max_tokens=120)
    assert reply.finish_reason == "tool_calls" and reply.message.content is None
    (call,) = reply.message.tool_calls
    check_call(call.name, call.arguments)
    assert call.id.startswith("call_")
    deltas = list(llm.chat_stream(ASK, tools=TOOLS, tool_choice=tool_choice, temperature=0, max_tokens=120))
    pieces = [c for d in deltas for c in d.tool_calls]
    assert pieces[0].name == "get_weather" and pieces[0].id
    check_call("get_weather", "".join(p.arguments for p in pieces))


def test_facade_round_trip_answers_in_text(llm: llamanb.Llama) -> None:
    first = llm.chat(ASK, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=120)
    (call,) = first.message.tool_calls
    messages = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 degrees Celsius."},
    ]
    answer = llm.chat(messages, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=40)
    assert answer.message.tool_calls == () and answer.message.content
    assert answer.finish_reason in ("stop", "length")


def test_create_chat_completion_shapes_tool_calls(llm: llamanb.Llama) -> None:
    out = llm.create_chat_completion(ASK, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=120)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"]
    check_call(call["function"]["name"], call["function"]["arguments"])
    chunks = list(
        llm.create_chat_completion(ASK, tools=TOOLS, tool_choice=NAMED, temperature=0, max_tokens=120, stream=True)
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    parts = [c for chunk in chunks for c in chunk["choices"][0]["delta"].get("tool_calls", [])]
    assert parts[0]["id"] and parts[0]["function"]["name"] == "get_weather"
    check_call("get_weather", "".join(p["function"]["arguments"] for p in parts))


def test_response_format_through_the_engine(llm: llamanb.Llama) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    out = llm.create_chat_completion(
        ASK, temperature=0, max_tokens=60, response_format={"type": "json_schema", "json_schema": {"schema": schema}}
    )
    content = out["choices"][0]["message"]["content"]
    assert content is not None
    jsonschema.validate(json.loads(content), schema)


def test_compat_returns_tool_calls(model_path: Path) -> None:
    with CompatLlama(model_path=str(model_path), n_ctx=1024, n_threads=2, verbose=False) as compat:
        out = compat.create_chat_completion(ASK, tools=TOOLS, tool_choice=NAMED, temperature=0, max_tokens=120)
        assert isinstance(out, dict)
        choice = out["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        (call,) = choice["message"]["tool_calls"]
        check_call(call["function"]["name"], call["function"]["arguments"])


@pytest.fixture(scope="module")
def client(model_path: Path, server_for: Callable[[Sequence[str]], str]) -> openai.OpenAI:
    url = server_for(["-m", str(model_path), *SHARED_CHAT])
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.mark.parametrize("choice", ["required", "named"])
def test_server_tool_calls_with_the_openai_client(client: openai.OpenAI, choice: str) -> None:
    tool_choice: Any = NAMED if choice == "named" else "required"
    out = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice=tool_choice, temperature=0, max_tokens=120
    )
    assert out.choices[0].finish_reason == "tool_calls"
    (call,) = out.choices[0].message.tool_calls or []
    check_call(call.function.name, call.function.arguments)
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice=tool_choice, temperature=0, max_tokens=120, stream=True
    )
    parts = []
    reasons = []
    for chunk in stream:
        parts += chunk.choices[0].delta.tool_calls or []
        reasons.append(chunk.choices[0].finish_reason)
    assert reasons[-1] == "tool_calls"
    assert parts[0].id and parts[0].function and parts[0].function.name == "get_weather"
    assert all(p.id is None for p in parts[1:])
    check_call("get_weather", "".join(p.function.arguments or "" for p in parts if p.function))
    # The round trip: the call and its result go back; the answer is text.
    messages: list[Any] = [
        *ASK,
        out.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    ]
    answer = client.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=40
    )
    assert answer.choices[0].message.content and not answer.choices[0].message.tool_calls


def test_server_refuses_bad_tool_requests(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="not among the tools"):
        client.chat.completions.create(
            model=MODEL, messages=ASK, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}
        )
    with pytest.raises(openai.BadRequestError, match="Failed to parse tools"):
        client.chat.completions.create(model=MODEL, messages=ASK, tools=[{"type": "function"}])  # type: ignore[list-item]
    with pytest.raises(openai.BadRequestError, match="tool_choice"):
        client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="sometimes")  # type: ignore[arg-type]
