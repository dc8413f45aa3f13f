"""Anthropic's Messages API (``POST /v1/messages``, ``/v1/messages/count_tokens``),
served as a chat completion, as llama-server serves it to Claude Code and the
``anthropic`` client.

The request is converted by llama-server's own code (``core.anthropic_to_chat_request``,
tools/server/server-chat.cpp: system blocks, text, image, tool_use and tool_result
blocks, thinking, tools, stop_sequences, max_tokens). Its ``tool_choice`` mapping loses
the tool's name and ignores ``none``, and it leaves ``output_config`` (structured output,
effort) out: those get their chat form here. (Anthropic's current API and client have
no temperature; a request may still send it, and llama.cpp's sampling fields, in the
body.) The reply comes
back as a Message, or as its event stream (message_start, content blocks, message_delta
with the stop reason, message_stop). Errors on these routes have Anthropic's shape.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .. import core
from ..chat_reply import AssistantMessage, ChatDelta
from ..generation import SequenceText
from .schema import ApiError, Body, ChatRequest, invalid, parse_chat

Event = dict[str, Any]
PATH = "/v1/messages"

# Anthropic's error types, by HTTP status (the rest are api_error).
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                503: "overloaded_error"}


def error_body(error: ApiError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _ERROR_TYPES.get(error.status, "api_error"), "message": error.message}}


def parse_messages(raw: bytes) -> ChatRequest:
    """The chat request a Messages request means."""
    body = Body(raw).data
    choice = body.get("tool_choice")
    if choice is not None and (not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none")
                               or (choice.get("type") == "tool" and not isinstance(choice.get("name"), str))):
        raise invalid("'tool_choice' must be {'type': 'auto' | 'any' | 'none'} or {'type': 'tool', 'name': ...}",
                      "tool_choice")
    tools = body.get("tools")
    if isinstance(tools, list):
        hosted = [t.get("type") for t in tools if isinstance(t, dict) and t.get("type") not in (None, "custom")]
        if hosted:  # the converter would pass them off as client tools
            raise invalid(f"only client tools (no 'type', or 'custom') run here; this server has no "
                          f"{hosted[0]!r} tool", "tools")
    try:
        request = json.loads(core.anthropic_to_chat_request(json.dumps(body)))
    except ValueError as err:
        raise invalid(str(err)) from None
    if choice is not None and choice["type"] == "tool":
        request["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice is not None and choice["type"] == "none":
        request["tool_choice"] = "none"
    if choice is not None and choice.get("disable_parallel_tool_use") is True:
        request["parallel_tool_calls"] = False
    request.update(_output_config(body.get("output_config")))
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "disabled":
        # The converter reads only "enabled" (its budget, which llamanb does not bound).
        kwargs = request.get("chat_template_kwargs")
        request["chat_template_kwargs"] = {**(kwargs if isinstance(kwargs, dict) else {}), "enable_thinking": False}
    request["model"] = body.get("model")
    return parse_chat(json.dumps(request).encode())


def _output_config(config: object) -> dict[str, Any]:
    """``output_config`` (structured output and effort), which the converter leaves out,
    as chat's ``response_format`` and ``reasoning_effort``."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise invalid("'output_config' must be an object", "output_config")
    out: dict[str, Any] = {}
    fmt = config.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            raise invalid("'output_config.format' must be {'type': 'json_schema', 'schema': {...}}",
                          "output_config.format")
        out["response_format"] = {"type": "json_schema", "json_schema": {"schema": fmt["schema"]}}
    if config.get("effort") is not None:
        out["reasoning_effort"] = config["effort"]
    return out


class MessageEvents:
    """One reply, as a Message or as its stream events, built from the chat reply's
    deltas: a thinking block, a text block, a tool_use block per call, each stopped when
    the next one starts."""

    def __init__(self, model: str) -> None:
        self.id = f"msg_{uuid.uuid4().hex}"
        self.model = model
        self._blocks: list[dict[str, Any]] = []
        self._open: str | None = None  # "thinking", "text", "call:<index>"
        self._pieces: list[str] = []  # the open block's text so far, joined when it stops

    def start(self, seq: SequenceText) -> list[Event]:
        message: dict[str, Any] = {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {**_usage(seq), "output_tokens": 0}}
        return [{"type": "message_start", "message": message}]

    def delta(self, delta: ChatDelta) -> list[Event]:
        events: list[Event] = []
        if delta.reasoning_content:
            events += self._ensure("thinking")
            self._pieces.append(delta.reasoning_content)
            events.append(self._delta({"type": "thinking_delta", "thinking": delta.reasoning_content}))
        if delta.content:
            events += self._ensure("text")
            self._pieces.append(delta.content)
            events.append(self._delta({"type": "text_delta", "text": delta.content}))
        for call in delta.tool_calls:
            events += self._ensure(f"call:{call.index}", call.id, call.name)
            if call.arguments:
                self._pieces.append(call.arguments)
                events.append(self._delta({"type": "input_json_delta", "partial_json": call.arguments}))
        return events

    def end(self, seq: SequenceText) -> list[Event]:
        events = self._close()
        reason, sequence = self._stop(seq)
        return [*events, {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence},
                          "usage": {**_usage(seq), "output_tokens": len(seq.tokens)}},
                {"type": "message_stop"}]

    def finished(self, seq: SequenceText, message: AssistantMessage) -> dict[str, Any]:
        """The whole Message of a finished sequence (not streamed)."""
        self.delta(ChatDelta.of_message(message))
        self._close()
        reason, sequence = self._stop(seq)
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": self._blocks, "stop_reason": reason, "stop_sequence": sequence,
                "usage": {**_usage(seq), "output_tokens": len(seq.tokens)}}

    def error(self, error: ApiError) -> Event:
        return error_body(error)

    def _stop(self, seq: SequenceText) -> tuple[str, str | None]:
        if seq.finish_reason == "length":
            return "max_tokens", None
        if seq.stop_string is not None:
            return "stop_sequence", seq.stop_string
        return ("tool_use" if any(b["type"] == "tool_use" for b in self._blocks) else "end_turn"), None

    def _ensure(self, kind: str, call_id: str | None = None, name: str | None = None) -> list[Event]:
        if self._open == kind:
            return []
        events = self._close()
        block: dict[str, Any]
        if kind == "thinking":
            block = {"type": "thinking", "thinking": "", "signature": ""}
        elif kind == "text":
            block = {"type": "text", "text": ""}
        else:
            block = {"type": "tool_use", "id": call_id or f"toolu_{uuid.uuid4().hex}", "name": name or "", "input": {}}
        self._blocks.append(block)
        self._open = kind
        self._pieces = []
        events.append({"type": "content_block_start", "index": len(self._blocks) - 1, "content_block": dict(block)})
        return events

    def _close(self) -> list[Event]:
        """Stop the open block; its text (a tool call's input, parsed) is filled in now."""
        if self._open is None:
            return []
        self._open = None
        block, text = self._blocks[-1], "".join(self._pieces)
        if block["type"] == "tool_use":
            try:
                block["input"] = json.loads(text or "{}")
            except ValueError:
                block["input"] = {}  # as llama-server: a call whose arguments do not parse
        else:
            block[block["type"]] = text  # "thinking" or "text"
        return [{"type": "content_block_stop", "index": len(self._blocks) - 1}]

    def _delta(self, delta: dict[str, Any]) -> Event:
        return {"type": "content_block_delta", "index": len(self._blocks) - 1, "delta": delta}


def _usage(seq: SequenceText) -> dict[str, int]:
    # Anthropic counts the prompt tokens read from the cache apart from input_tokens.
    return {"input_tokens": seq.prompt_tokens - seq.cached_tokens, "cache_read_input_tokens": seq.cached_tokens,
            "cache_creation_input_tokens": 0}
