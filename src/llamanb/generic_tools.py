"""Tool calls for templates that know no tools: the generic JSON format.

At this pin llama.cpp's chat engine renders tools only for templates that support
them, and ignores them otherwise (its older "generic" format is gone), so a model such
as SmolLM2 would answer ``tool_choice="required"`` in prose. Here, as llama.cpp's
generic format did: a system message lists the tools, the reply is JSON constrained by
a schema that llama.cpp's engine turns into a grammar — ``{"tool_calls": [{"name": ...,
"arguments": {...}}]}`` or, when a call is optional, ``{"response": "..."}`` — and
past calls and results are written into the messages as that JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import core

Message = Mapping[str, Any]


@dataclass(frozen=True)
class GenericTools:
    """The generic format for one request: the tools' description and reply schema."""

    description: str
    schema: Mapping[str, Any] | None  # None: tool_choice "none" (past calls are still rendered)

    @staticmethod
    def of(tools: Sequence[Mapping[str, Any]], choice: object, parallel: bool) -> GenericTools:
        """``choice`` is "auto", "required", "none" or a named function (chat._Named)."""
        named = getattr(choice, "name", None)
        functions = [t["function"] for t in tools if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)]
        if named is not None:
            functions = [f for f in functions if f.get("name") == named]
        calls: dict[str, Any] = {
            "type": "array", "minItems": 1,
            "items": {"anyOf": [_call_schema(f) for f in functions]},
        }
        if not parallel:
            calls["maxItems"] = 1
        schema: dict[str, Any] = {"type": "object", "properties": {"tool_calls": calls}, "required": ["tool_calls"]}
        if choice == "auto":
            response = {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]}
            schema = {"anyOf": [schema, response]}
        if choice == "none":
            return GenericTools("", None)
        listing = json.dumps([{"name": f.get("name"), "description": f.get("description", ""),
                               "parameters": f.get("parameters", {})} for f in functions], ensure_ascii=False)
        options = ("with `tool_calls` (a request to call tools)" if choice != "auto" else
                   "either with `tool_calls` (a request to call tools) or with `response` (your reply to the user)")
        description = (f"You can call the following tools to satisfy the user's requests: {listing}\n\n"
                       f'Example tool call: {{"tool_calls": [{{"name": "tool_name", "arguments": {{"arg1": "value"}}}}]}}'
                       f"\n\nRespond in JSON format, {options}.")
        return GenericTools(description, schema)

    def messages(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        """``messages`` for a template without tools: the tools' description in the
        system message, past tool calls and tool results as the format's JSON."""
        out: list[dict[str, Any]] = []
        for m in messages:
            m = dict(m)
            if m.get("role") == "assistant" and m.get("tool_calls"):
                m = {"role": "assistant", "content": json.dumps({"tool_calls": [_past_call(c) for c in m["tool_calls"]]},
                                                                ensure_ascii=False)}
            elif m.get("role") == "tool":
                result = {"tool_call_id": m.get("tool_call_id", ""), "content": _text(m.get("content"))}
                m = {"role": "user", "content": json.dumps({"tool_response": result}, ensure_ascii=False)}
            out.append(m)
        if not self.description:
            return out
        if out and out[0].get("role") == "system":
            first = out[0]
            out[0] = {**first, "content": _text(first.get("content")) + "\n\n" + self.description}
        else:
            out.insert(0, {"role": "system", "content": self.description})
        return out

    def parse(self, text: str) -> core.ChatMessage:
        """The reply as a message: its tool calls, or its response as content. Raises
        ValueError when it is not the format's JSON (a reply cut short)."""
        body = text.strip()
        if body.startswith("```json") and body.endswith("```"):  # the grammar allows a fenced reply
            body = body[len("```json"):-len("```")]
        try:
            reply = json.loads(body)
        except json.JSONDecodeError as err:
            raise ValueError(f"the reply is not the generic tool format's JSON: {err}") from None
        msg = core.ChatMessage()
        msg.role = "assistant"
        if isinstance(reply, dict) and isinstance(reply.get("tool_calls"), list):
            msg.tool_calls = [core.ChatToolCall(str(c.get("name", "")), json.dumps(c.get("arguments", {}), ensure_ascii=False),
                                                str(c.get("id", ""))) for c in reply["tool_calls"] if isinstance(c, dict)]
        elif isinstance(reply, dict) and isinstance(reply.get("response"), str):
            msg.content = reply["response"]
        else:
            raise ValueError("the reply is neither tool_calls nor a response")
        return msg


def _call_schema(function: Mapping[str, Any]) -> dict[str, Any]:
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "object", "properties": {"name": {"const": function.get("name")}, "arguments": parameters},
            "required": ["name", "arguments"]}


def _past_call(call: Any) -> dict[str, Any]:
    function = call.get("function", {}) if isinstance(call, Mapping) else {}
    arguments = function.get("arguments", "{}")
    try:
        arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
    except json.JSONDecodeError:
        pass
    return {"name": function.get("name", ""), "arguments": arguments, "id": call.get("id", "")}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    return ""
