"""Reading a chat reply as it is generated: llama.cpp's parser for the prompt's format
(common/chat) splits the text into content, reasoning and tool calls, a piece at a
time for streaming (partial parses) and once more at the end."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from . import core
from .chat_prompt import ReplyFormat
from .generation import Completion, FinishReason, Run, SequenceText

log = logging.getLogger("llamanb")


@dataclass(frozen=True)
class ToolCall:
    """A function call of the reply; ``arguments`` is JSON text (OpenAI's shape)."""

    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> Any:
        """``arguments`` decoded."""
        return json.loads(self.arguments)


@dataclass(frozen=True)
class AssistantMessage:
    """The reply as a message: ``content`` (None when there is only tool calls),
    ``reasoning_content`` (a thinking model's reasoning, None without) and ``tool_calls``."""

    content: str | None
    reasoning_content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of tool call ``index``: the first has its ``id`` and ``name``, the
    rest carry argument text (OpenAI's streaming shape)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class ChatDelta:
    """What one step of a streamed chat reply added."""

    content: str = ""
    reasoning_content: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.content or self.reasoning_content or self.tool_calls)

    @classmethod
    def of_message(cls, message: AssistantMessage) -> ChatDelta:
        """A whole message as one delta (each tool call in one piece)."""
        calls = tuple(ToolCallDelta(i, c.id, c.name, c.arguments) for i, c in enumerate(message.tool_calls))
        return cls(message.content or "", message.reasoning_content or "", calls)


class ChatReply:
    """Parses one reply, text piece by text piece: :meth:`feed` returns what the new
    text added, :meth:`finish` what the final parse adds, and then :attr:`message`."""

    def __init__(self, fmt: ReplyFormat) -> None:
        self._fmt = fmt
        self._text = ""
        self._msg = core.common.ChatMessage()
        self._ids: list[str] = []  # tool-call ids, kept from one parse to the next
        self._headers_sent = 0  # tool calls whose id and name went out
        self._args_sent: list[int] = []  # argument characters sent, per call
        self.message: AssistantMessage | None = None

    @property
    def text(self) -> str:
        return self._text

    def feed(self, text: str) -> ChatDelta:
        """Take the next text piece of the reply."""
        self._text += text
        if not text:
            return ChatDelta()
        try:
            msg = core.common.chat_parse(self._text, True, self._fmt.parser)
        except ValueError:
            return ChatDelta()  # not readable yet
        return self._advance(msg, final=False)

    def message_of(self, text: str) -> AssistantMessage:
        """The message of the whole reply ``text`` (what was not fed yet is fed first)."""
        if self.message is None:
            self.feed(text[len(self._text) :])
            self.finish()
        assert self.message is not None
        return self.message

    def finish(self) -> ChatDelta:
        """The reply is complete: the last of it, and :attr:`message` set."""
        msg = self._final_parse()
        delta = self._advance(msg, final=True)
        calls = tuple(ToolCall(c.id, c.name, c.arguments) for c in self._msg.tool_calls)
        content = self._msg.content
        self.message = AssistantMessage(
            content=None if calls and not content else content,
            reasoning_content=self._msg.reasoning_content or None,
            tool_calls=calls,
        )
        return delta

    def _final_parse(self) -> core.common.ChatMessage:
        try:
            return core.common.chat_parse(self._text, False, self._fmt.parser)
        except ValueError as err:
            # A reply cut short (max_tokens) or off its format: it is all content.
            log.info("chat reply kept as plain content: %s", err)
            msg = core.common.ChatMessage()
            msg.role, msg.content = "assistant", self._text
            msg.reasoning_content = self._msg.reasoning_content if self._text.startswith(self._msg.content) else ""
            return msg

    def _advance(self, msg: core.common.ChatMessage, *, final: bool) -> ChatDelta:
        """The delta from the last parse to ``msg``, which becomes the last parse."""
        calls = msg.tool_calls
        if (
            len(calls) < len(self._msg.tool_calls)
            or not msg.content.startswith(self._msg.content)
            or not msg.reasoning_content.startswith(self._msg.reasoning_content)
        ):
            if not final:
                return ChatDelta()  # a partial parse that takes back text: wait for a steadier one
        for i, call in enumerate(calls):
            if i == len(self._ids):
                self._ids.append(call.id or f"call_{uuid.uuid4().hex[:24]}")
            call.id = self._ids[i]
        msg.tool_calls = calls
        prev, self._msg = self._msg, msg
        content = msg.content[len(prev.content) :] if msg.content.startswith(prev.content) else ""
        reasoning = (
            msg.reasoning_content[len(prev.reasoning_content) :]
            if msg.reasoning_content.startswith(prev.reasoning_content)
            else ""
        )
        return ChatDelta(content, reasoning, self._tool_call_deltas(calls, final))

    def _tool_call_deltas(self, calls: list[core.common.ChatToolCall], final: bool) -> tuple[ToolCallDelta, ...]:
        """Each call's id and name once, when the name is complete (its arguments have
        begun, a later call has, or the reply ended), then its new argument text."""
        out: list[ToolCallDelta] = []
        for i, call in enumerate(calls):
            if i >= self._headers_sent:
                if not (call.name and (call.arguments or i + 1 < len(calls) or final)):
                    break
                self._headers_sent += 1
                self._args_sent.append(len(call.arguments))
                out.append(ToolCallDelta(i, call.id, call.name, call.arguments))
            elif len(call.arguments) > self._args_sent[i]:
                out.append(ToolCallDelta(i, arguments=call.arguments[self._args_sent[i] :]))
                self._args_sent[i] = len(call.arguments)
        return tuple(out)


@dataclass(frozen=True)
class ChatCompletion(Completion):
    """A chat reply: the :class:`Completion` of its text, and ``message``, that text
    read as content, reasoning and tool calls (``finish_reason`` "tool_calls" then)."""

    message: AssistantMessage = field(default=AssistantMessage(None))


class ChatRun:
    """One chat reply in progress: :meth:`deltas` streams it, :meth:`finish` runs it
    to the end; both read it with its :class:`ChatReply`."""

    def __init__(self, run: Run, reply: ChatReply) -> None:
        self.run = run
        self.reply = reply

    @property
    def seq(self) -> SequenceText:
        return self.run.seq

    def deltas(self) -> Generator[ChatDelta, None, None]:
        """What each step adds to the reply (steps that add nothing are skipped)."""
        steps = iter(self.run)
        try:
            for step in steps:
                delta = self.reply.feed(step.text)
                if delta:
                    yield delta
        finally:
            steps.close()
        delta = self.reply.finish()
        if delta:
            yield delta

    def finish(self) -> ChatCompletion:
        """Run to the end; the reply."""
        self.run.seq.unwatched()
        for _ in self.run:
            pass
        return self.completion()

    def completion(self) -> ChatCompletion:
        """The reply (of what ran so far, if the run was abandoned)."""
        message = self.reply.message_of(self.run.seq.text)
        done = self.run.completion()
        reason = chat_finish_reason(done.finish_reason, message)
        return ChatCompletion(
            done.text,
            done.tokens,
            reason,
            done.prompt_tokens,
            done.logprobs,
            done.drafted_tokens,
            done.accepted_tokens,
            message=message,
        )


def chat_finish_reason(reason: FinishReason, message: AssistantMessage) -> FinishReason:
    """OpenAI's: "tool_calls" when a reply that ended on its own calls tools."""
    return "tool_calls" if message.tool_calls and reason == "stop" else reason
