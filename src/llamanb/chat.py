"""Chat templates through llama.cpp's own chat engine (common/chat): the model's Jinja
template rendered as ``llama-server`` renders it, with tools, ``tool_choice``, a JSON
schema for the reply and reasoning, into the prompt text and llama.cpp's grammar, stops
and parser of the reply. One of llama.cpp's built-in formats may be named instead of a
template (no tools then). The prompt as tokens is chat_prompt.py's."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from . import core

Message = Mapping[str, Any]
"""An OpenAI-style chat message: ``{"role": "user", "content": "Hi"}``, with
``tool_calls`` (assistant) or ``tool_call_id`` (tool) where they apply."""

ToolChoice = Literal["auto", "none", "required"] | Mapping[str, Any]
"""OpenAI's ``tool_choice``: "auto", "none", "required", or one function:
``{"type": "function", "function": {"name": "get_weather"}}``."""

Reasoning = Literal["auto", "none", "deepseek", "deepseek-legacy"]
"""Where a thinking model's reasoning goes: "auto" (``reasoning_content``, as
llama-server's default), "none" (left in the content), or llama.cpp's named formats."""

DEFAULT_TEMPLATE = "chatml"
"""llama.cpp's fallback for models that carry no template."""

_REASONING = {
    "auto": core.common.ReasoningFormat.AUTO,
    "none": core.common.ReasoningFormat.NONE,
    "deepseek": core.common.ReasoningFormat.DEEPSEEK,
    "deepseek-legacy": core.common.ReasoningFormat.DEEPSEEK_LEGACY,
}
_CHOICES = {
    "auto": core.common.ChatToolChoice.AUTO,
    "none": core.common.ChatToolChoice.NONE,
    "required": core.common.ChatToolChoice.REQUIRED,
}


@dataclass(frozen=True)
class ChatOptions:
    """What a chat call asks of the template besides the messages.

    ``tools`` are OpenAI function tools; ``tool_choice`` defaults to "auto";
    ``parallel_tool_calls`` to what the template supports. ``json_schema``: the reply
    is JSON matching it (OpenAI's ``response_format``). ``enable_thinking`` and
    ``template_kwargs`` reach the template (``chat_template_kwargs``); as in
    llama-server, a boolean ``enable_thinking`` among ``template_kwargs`` wins.
    """

    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    json_schema: Mapping[str, Any] | None = None
    reasoning: Reasoning = "auto"
    enable_thinking: bool = True
    template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    add_generation_prompt: bool = True

    def __post_init__(self) -> None:
        if self.reasoning not in _REASONING:
            raise ValueError(f"reasoning must be one of {sorted(_REASONING)}, got {self.reasoning!r}")
        if self.tools is not None and (
            isinstance(self.tools, (str, bytes, Mapping)) or not isinstance(self.tools, Sequence)
        ):
            raise TypeError("tools must be a list of {'type': 'function', 'function': {...}} dicts")
        for i, tool in enumerate(self.tools or ()):
            function = tool.get("function") if isinstance(tool, Mapping) else None
            if (
                not isinstance(tool, Mapping)
                or tool.get("type") != "function"
                or not isinstance(function, Mapping)
                or not isinstance(function.get("name"), str)
                or not function["name"]
            ):
                raise ValueError(
                    f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ..., "
                    f"'parameters': {{...}}}}}}, got {tool!r:.80}"
                )
        _tool_choice(self.tool_choice, self.tools)  # fails here on a bad choice
        thinking = self.template_kwargs.get("enable_thinking")
        if isinstance(thinking, str):  # llama-server's check: "false" would be a true string to the template
            raise ValueError('invalid type for "enable_thinking" (expected boolean, got string)')
        if isinstance(thinking, bool):  # as llama-server: the template variable switches thinking too
            object.__setattr__(self, "enable_thinking", thinking)
        if self.json_schema is not None:
            # Fails here on a schema llama.cpp's converter would not enforce (json_schema.py).
            from .json_schema import json_schema_to_grammar

            json_schema_to_grammar(self.json_schema)

    @property
    def uses_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"


class ChatTemplate:
    """Turns messages into the prompt text a model was trained on, with llama.cpp's
    chat engine (its own sandboxed Jinja implementation).

    ``source`` is a Jinja template (Hugging Face ``chat_template``) or the name of one
    of llama.cpp's built-in formats (``core.chat_builtin_templates()``, e.g. "llama3").
    """

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        self.source = source
        self.builtin = source in builtin_templates() and source != DEFAULT_TEMPLATE
        self._templates = core.common.ChatTemplates.from_source(source, bos_token, eos_token)

    @classmethod
    def for_model(cls, model: core.Model, override: str | None = None) -> ChatTemplate:
        """The template ``override`` names, else the model's, else ChatML."""
        self = cls.__new__(cls)
        self._templates = core.common.ChatTemplates.from_model(model, override or "")
        self.source = self._templates.source()
        self.builtin = self.source in builtin_templates() and self.source != DEFAULT_TEMPLATE
        return self

    @property
    def caps(self) -> dict[str, bool]:
        """What the template supports (``supports_tools``, ``supports_parallel_tool_calls``, …)."""
        return self._templates.caps

    @property
    def supports_tools(self) -> bool:
        """The template describes tools in the prompt itself."""
        return not self.builtin and self._templates.caps["supports_tools"]

    def render(
        self,
        messages: Sequence[Message],
        options: ChatOptions | None = None,
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """The prompt text for ``messages``; ``add_generation_prompt`` opens the
        assistant's turn (``options`` carries the rest, or give ``tools`` alone)."""
        if options is None:
            options = ChatOptions(tools=tools, add_generation_prompt=add_generation_prompt)
        return self.apply(messages, options).prompt

    def apply(self, messages: Sequence[Message], options: ChatOptions) -> core.common.ChatParams:
        """llama.cpp's rendering of ``messages``: the prompt, and the grammar and parser of
        the reply (for a template that knows no tools, the generic JSON format)."""
        check_messages(messages)
        if self.builtin and options.uses_tools:
            raise ValueError(f"the built-in template {self.source!r} cannot render tools; use a Jinja template")
        return self._templates.apply(self._inputs(messages, options))

    def _inputs(self, messages: Sequence[Message], options: ChatOptions) -> core.common.ChatInputs:
        inputs = core.common.ChatInputs()
        inputs.use_jinja = not self.builtin
        inputs.add_generation_prompt = options.add_generation_prompt
        inputs.reasoning_format = _REASONING[options.reasoning]
        inputs.enable_thinking = options.enable_thinking
        kwargs = {k: json.dumps(v) for k, v in options.template_kwargs.items()}
        inputs.chat_template_kwargs = kwargs
        inputs.messages = _parse_messages(messages)
        if options.json_schema is not None:
            inputs.json_schema = json.dumps(options.json_schema)
        if options.tools:
            choice = _tool_choice(options.tool_choice, options.tools)
            tools = [choice_tool(options.tools, choice)] if isinstance(choice, _Named) else options.tools
            inputs.tools = _parse_tools(tools)
            inputs.tool_choice = _CHOICES["required" if isinstance(choice, _Named) else choice]
            inputs.parallel_tool_calls = (
                options.parallel_tool_calls
                if options.parallel_tool_calls is not None
                else self._templates.caps["supports_parallel_tool_calls"]
            )
        return inputs


def choice_tool(tools: Sequence[Mapping[str, Any]], choice: str | _Named) -> Mapping[str, Any]:
    """The tool a named ``tool_choice`` picks."""
    if isinstance(choice, str):
        raise TypeError("not a named tool choice")
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and function.get("name") == choice.name:
            return tool
    raise ValueError(f"tool_choice names the function {choice.name!r}, which is not among the tools")


@dataclass(frozen=True)
class _Named:
    name: str


def _tool_choice(choice: ToolChoice | None, tools: Sequence[Mapping[str, Any]] | None) -> str | _Named:
    """``choice`` checked: "auto", "none", "required" (a str) or the named function
    (a ``_Named``; the tools must hold it)."""
    if choice is None:
        return "auto"
    if isinstance(choice, str):
        if choice not in _CHOICES:
            raise ValueError(f"tool_choice must be 'auto', 'none', 'required' or a function, got {choice!r}")
        if choice == "required" and not tools:
            raise ValueError("tool_choice 'required' needs tools")
        return choice
    function = choice.get("function") if isinstance(choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(choice, Mapping) or choice.get("type") != "function" or not isinstance(name, str):
        raise ValueError(
            "tool_choice must be 'auto', 'none', 'required' or {'type': 'function', 'function': {'name': ...}}"
        )
    named = _Named(name)
    choice_tool(tools or (), named)
    return named


def builtin_templates() -> list[str]:
    """Names of llama.cpp's built-in chat formats."""
    return core.chat_builtin_templates()


def _parse_messages(messages: Sequence[Message]) -> list[core.common.ChatMessage]:
    try:
        text = json.dumps(list(messages), ensure_ascii=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"messages must be JSON-like (dicts, lists, strings, numbers): {err}") from None
    return core.common.chat_messages_from_openai(text)


def _parse_tools(tools: Sequence[Mapping[str, Any]]) -> list[core.common.ChatTool]:
    try:
        text = json.dumps(list(tools), ensure_ascii=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"tools must be JSON-like: {err}") from None
    return core.common.chat_tools_from_openai(text)


def check_messages(messages: Sequence[Message]) -> None:
    """Fails (TypeError, ValueError) unless ``messages`` is a list of dicts with a role
    and a string or list ``content``."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m:
            raise ValueError(f"message {i} must be a dict with a 'role' key, got {m!r}")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise ValueError(f"message {i}: content must be a string or a list of parts, got {type(content).__name__}")
