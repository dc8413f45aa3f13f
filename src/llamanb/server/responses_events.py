"""Responses API stream events as OpenAI defines them: llama-server's events lack
``sequence_number`` (every event), ``output_index`` (every item event) and
``content_index`` (every content event). Clients that read them (the OpenAI Agents SDK,
the ``openai`` library's stream accumulator) need them, so the front numbers the events
as they pass, in the worker thread that pulls the stream.
"""

from __future__ import annotations

import json
from typing import Any

CONTENT_EVENTS = (
    "response.content_part.",
    "response.output_text.",
    "response.refusal.",
    "response.reasoning_text.",
    "response.reasoning_summary_text.",
)


class ResponsesEventNumbering:
    """Adds the missing indices to one Responses stream's SSE chunks."""

    def __init__(self) -> None:
        self._sequence = 0
        self._items: dict[str, int] = {}  # item id -> output_index
        self._pending = b""

    def __call__(self, chunk: bytes) -> bytes:
        """The complete events of ``self._pending + chunk``, numbered; a partial event waits."""
        data = self._pending + chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self._pending = data
            return b""
        self._pending = data[end + 2 :]
        return b"".join(self._event(block) + b"\n\n" for block in data[:end].split(b"\n\n") if block)

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest

    def _event(self, block: bytes) -> bytes:
        lines = block.split(b"\n")
        for i, line in enumerate(lines):
            if line.startswith(b"data: ") and line[6:7] == b"{":
                try:
                    event = json.loads(line[6:])
                except ValueError:
                    return block
                if isinstance(event, dict):
                    lines[i] = b"data: " + json.dumps(self._number(event), ensure_ascii=False).encode()
        return b"\n".join(lines)

    def _number(self, event: dict[str, Any]) -> dict[str, Any]:
        kind = str(event.get("type", ""))
        event["sequence_number"] = self._sequence
        self._sequence += 1
        item = event.get("item")
        if kind == "response.output_item.added" and isinstance(item, dict):
            event.setdefault("output_index", self._items.setdefault(str(item.get("id", "")), len(self._items)))
        elif kind == "response.output_item.done" and isinstance(item, dict):
            event.setdefault("output_index", self._items.get(str(item.get("id", "")), len(self._items)))
        elif "item_id" in event:
            event.setdefault("output_index", self._items.get(str(event["item_id"]), 0))
            if kind.startswith(CONTENT_EVENTS):
                event.setdefault("content_index", 0)
        if kind == "response.output_text.delta" or kind == "response.output_text.done":
            event.setdefault("logprobs", [])
        return event
