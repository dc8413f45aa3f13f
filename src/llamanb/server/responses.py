"""The OpenAI Responses API (``POST /v1/responses``), served as a chat completion.

The request is converted by llama-server's own code (``core.responses_to_chat_request``,
tools/server/server-chat.cpp: input items to messages, instructions, function tools,
max_output_tokens, reasoning effort); here the two fields it leaves as they are,
``text.format`` (structured output) and an object ``tool_choice``, get their chat
names too. The reply comes back as a Response object, or as its event stream: every
event has its ``sequence_number``, and every item event its ``output_index`` (and
``content_index``), which the openai client's ``responses.stream()`` needs to rebuild
the response. Nothing is stored, so ``previous_response_id`` is refused (400), as
llama-server does.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from .. import core
from ..chat_reply import AssistantMessage, ChatDelta
from ..generation import SequenceText
from .schema import ApiError, Body, ChatRequest, invalid, parse_chat

Event = dict[str, Any]


def parse_responses(raw: bytes) -> tuple[ChatRequest, dict[str, Any]]:
    """The chat request a Responses request means, and the request's fields a Response
    echoes (instructions, tools, tool_choice, text, temperature, ...)."""
    body = Body(raw).data
    if body.get("top_logprobs") is not None:
        raise invalid("'top_logprobs' is not served on /v1/responses; use /v1/chat/completions with 'logprobs'",
                      "top_logprobs")
    request = dict(body)
    tools = body.get("tools")
    if isinstance(tools, list):
        hosted = [t.get("type") for t in tools if isinstance(t, dict) and t.get("type") != "function"]
        if hosted:  # llama-server drops them with a log line; the caller would never know
            raise invalid(f"only 'function' tools run here (the model calls them, the client runs them); "
                          f"this server has no {hosted[0]!r} tool", "tools")
    text = request.pop("text", None)
    if text is not None:
        if not isinstance(text, dict):
            raise invalid("'text' must be an object", "text")
        request["response_format"] = _response_format(text.get("format"))
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
            raise invalid("'tool_choice' must be 'none', 'auto', 'required' or {'type': 'function', 'name': ...}",
                          "tool_choice")
        request["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    try:
        converted = core.responses_to_chat_request(json.dumps(request))
    except ValueError as err:
        raise invalid(str(err)) from None
    echo = {name: body.get(name) for name in ("instructions", "temperature", "top_p", "tool_choice",
                                              "max_output_tokens", "metadata")}
    echo["tool_choice"] = body.get("tool_choice") or "auto"
    echo["metadata"] = body.get("metadata") or {}
    echo["tools"] = body.get("tools") or []
    echo["text"] = text or {"format": {"type": "text"}}
    echo["parallel_tool_calls"] = body.get("parallel_tool_calls", True)
    return parse_chat(converted.encode()), echo


def _response_format(fmt: object) -> dict[str, Any] | None:
    """``text.format`` as chat's ``response_format``."""
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise invalid("'text.format' must be an object", "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise invalid(f"'text.format.type' must be 'text', 'json_object' or 'json_schema', got {kind!r}",
                  "text.format.type")


class ResponseEvents:
    """One response, as a Response object or as its stream events, built from the chat
    reply's deltas. Each run of reasoning, text or one tool call is an output item,
    closed (its ``done`` events) when the next one starts, as OpenAI orders them."""

    def __init__(self, model: str, echo: Mapping[str, Any]) -> None:
        self.id = f"resp_{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.echo = dict(echo)
        self._sequence = 0
        self._items: list[dict[str, Any]] = []  # output items, by output_index
        self._open: str | None = None  # "reasoning", "message", "call:<index>"
        self._pieces: list[str] = []  # the open item's text so far, joined when it closes

    # -- stream events -------------------------------------------------------------

    def start(self, seq: SequenceText) -> list[Event]:
        shell = self.response("in_progress", [], None)
        return [self._event("response.created", response=shell),
                self._event("response.in_progress", response=shell)]

    def delta(self, delta: ChatDelta) -> list[Event]:
        events: list[Event] = []
        if delta.reasoning_content:
            events += self._ensure("reasoning")
            item = self._items[-1]
            self._pieces.append(delta.reasoning_content)
            events.append(self._event("response.reasoning_text.delta", item_id=item["id"],
                                      output_index=len(self._items) - 1, content_index=0,
                                      delta=delta.reasoning_content))
        if delta.content:
            events += self._ensure("message")
            item = self._items[-1]
            self._pieces.append(delta.content)
            events.append(self._event("response.output_text.delta", item_id=item["id"],
                                      output_index=len(self._items) - 1, content_index=0, delta=delta.content,
                                      logprobs=[]))
        for call in delta.tool_calls:
            events += self._ensure(f"call:{call.index}", call.id, call.name)
            item = self._items[-1]
            if call.arguments:
                self._pieces.append(call.arguments)
                events.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                          output_index=len(self._items) - 1, delta=call.arguments))
        return events

    def end(self, seq: SequenceText) -> list[Event]:
        status = _status(seq)
        events = self._close(status)
        events.append(self._event(f"response.{status}", response=self.response(status, self._items, seq)))
        return events

    def error(self, error: ApiError) -> Event:
        return self._event("error", code=error.code, message=error.message, param=error.param)

    # -- the Response object -------------------------------------------------------

    def finished(self, seq: SequenceText, message: AssistantMessage) -> dict[str, Any]:
        """The whole response of a finished sequence (not streamed)."""
        self.delta(ChatDelta.of_message(message))
        status = _status(seq)
        self._close(status)
        return self.response(status, self._items, seq)

    def response(self, status: str, output: list[dict[str, Any]], seq: SequenceText | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "object": "response", "created_at": self.created, "status": status, "model": self.model,
            "output": list(output), "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            **self.echo, "usage": None,
        }
        if seq is not None:
            prompt, completion = seq.prompt_tokens, len(seq.tokens)
            out["usage"] = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": seq.cached_tokens},
                            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
                            "total_tokens": prompt + completion}
            out["completed_at"] = int(time.time())
        return out

    # -- items ---------------------------------------------------------------------

    def _ensure(self, kind: str, call_id: str | None = None, name: str | None = None) -> list[Event]:
        """Open an item of ``kind`` unless it is the open one."""
        if self._open == kind:
            return []
        events = self._close()
        index = len(self._items)
        item: dict[str, Any]
        if kind == "reasoning":
            item = {"id": f"rs_{uuid.uuid4().hex}", "type": "reasoning", "summary": [],
                    "content": [{"type": "reasoning_text", "text": ""}], "status": "in_progress"}
        elif kind == "message":
            item = {"id": f"msg_{uuid.uuid4().hex}", "type": "message", "role": "assistant",
                    "content": [{"type": "output_text", "text": "", "annotations": [], "logprobs": []}],
                    "status": "in_progress"}
        else:
            call_id = call_id or f"call_{uuid.uuid4().hex}"
            item = {"id": f"fc_{call_id}", "type": "function_call", "call_id": call_id, "name": name or "",
                    "arguments": "", "status": "in_progress"}
        self._items.append(item)
        self._open = kind
        self._pieces = []
        shown = {**item, "content": []} if "content" in item else item
        events.append(self._event("response.output_item.added", output_index=index, item=dict(shown)))
        if kind == "message":
            events.append(self._event("response.content_part.added", item_id=item["id"], output_index=index,
                                      content_index=0, part={"type": "output_text", "text": "", "annotations": []}))
        return events

    def _close(self, status: str = "completed") -> list[Event]:
        """Close the open item; ``status`` "incomplete" when the reply was cut short."""
        if self._open is None:
            return []
        item, index = self._items[-1], len(self._items) - 1
        self._open = None
        item["status"] = status
        text = "".join(self._pieces)
        if item["type"] == "function_call":
            item["arguments"] = text
        else:
            item["content"][0]["text"] = text
        events: list[Event] = []
        if item["type"] == "reasoning":
            events.append(self._event("response.reasoning_text.done", item_id=item["id"], output_index=index,
                                      content_index=0, text=item["content"][0]["text"]))
        elif item["type"] == "message":
            part = item["content"][0]
            events.append(self._event("response.output_text.done", item_id=item["id"], output_index=index,
                                      content_index=0, text=part["text"], logprobs=[]))
            events.append(self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                      content_index=0, part=dict(part)))
        else:
            events.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                      output_index=index, name=item["name"], arguments=item["arguments"]))
        events.append(self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item)))
        return events

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event


def _status(seq: SequenceText) -> str:
    """A reply cut by max_output_tokens is "incomplete", as OpenAI reports it."""
    return "incomplete" if seq.finish_reason == "length" else "completed"
