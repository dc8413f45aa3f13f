"""Chat prompts through llama.cpp's own chat engine (common/chat): the model's Jinja
template rendered as ``llama-server`` renders it, with tools, ``tool_choice``, a JSON
schema for the reply and reasoning; the grammar, stops and parser of the reply. One of
llama.cpp's built-in formats may be named instead of a template (no tools then)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from . import core
from .generation import GenerateOptions
from .media import MediaPolicy, MediaPrompt, Projector, build_prompt, has_media, replace_media
from .sampling import SamplingParams

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


@dataclass(frozen=True)
class ReplyFormat:
    """How to read the reply: llama.cpp's parser for the prompt's format (for a template
    without tool support, llama.cpp's generic JSON format: patch 0021)."""

    parser: core.common.ChatParserParams


@dataclass(frozen=True)
class ChatPrompt:
    """A rendered chat: its tokens and text, and what generating the reply needs.

    ``grammar`` (GBNF) constrains the reply; it is lazy (it applies from a trigger on)
    when there are ``trigger_patterns`` or ``trigger_tokens``, and otherwise starts
    after the ``grammar_prefill`` tokens. ``preserved_tokens`` are special tokens the
    reply writes as text (tool-call markup); ``stops`` end it.
    """

    tokens: list[int]
    text: str
    reply: ReplyFormat
    grammar: str | None = None
    trigger_patterns: tuple[str, ...] = ()
    trigger_tokens: tuple[int, ...] = ()
    grammar_prefill: tuple[int, ...] = ()
    preserved_tokens: frozenset[int] = frozenset()
    stops: tuple[str, ...] = ()
    media: MediaPrompt | None = None  # the prompt as text and media chunks, when it holds media

    @property
    def grammar_lazy(self) -> bool:
        return bool(self.trigger_patterns or self.trigger_tokens)

    @property
    def n_tokens(self) -> int:
        """The context cells the prompt takes (with media: its chunks' tokens)."""
        return len(self.tokens) if self.media is None else self.media.chunks.n_tokens


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
        _check_messages(messages)
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


def _check_messages(messages: Sequence[Message]) -> None:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m:
            raise ValueError(f"message {i} must be a dict with a 'role' key, got {m!r}")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise ValueError(f"message {i}: content must be a string or a list of parts, got {type(content).__name__}")


# -- tokens: message text is never special-token markup ----------------------


def encode_chat(
    vocab: core.Vocab,
    template: ChatTemplate,
    messages: Sequence[Message],
    options: ChatOptions | None = None,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    projector: Projector | None = None,
    media_policy: MediaPolicy | None = None,
) -> ChatPrompt:
    """The rendered chat as tokens, with what generating its reply needs. Template
    markup becomes special tokens; message text never does: content that spells a
    special token (``"<|im_end|>"``), as a string, in text parts or in reasoning, is
    tokenized as plain text, so a user cannot forge turns.

    Media parts (``image_url``, ``input_audio``) need a ``projector``: each is loaded
    (as ``media_policy`` allows) and the template places it; the prompt is then text
    and media chunks (``ChatPrompt.media``)."""
    if options is None:
        options = ChatOptions(tools=tools)
    _check_messages(messages)
    if has_media(messages):
        if projector is None:
            raise ValueError(
                "a message holds an image or audio part: load the model with its projector, "
                "Llama(model, mmproj='mmproj.gguf')"
            )
        return _encode_media_chat(vocab, template, messages, options, projector, media_policy or MediaPolicy())
    params = template.apply(messages, options)
    ids = _tokens(vocab, params.prompt, True)
    masked, texts = _mask_texts(messages)
    if any(_tokens(vocab, t, True) != _tokens(vocab, t, False) for t in texts):
        ids = _tokens_with_plain_texts(vocab, template, params.prompt, masked, texts, options)
    elif any(_tokens(vocab, t, True) != _tokens(vocab, t, False) for t in _unmasked_texts(messages)):
        raise ValueError("a tool call in the messages spells special-token text; remove it")
    return _prompt(vocab, _with_bos(vocab, ids), params, options)


def _tokens_with_plain_texts(
    vocab: core.Vocab, template: ChatTemplate, text: str, masked: list[Message], texts: list[str], options: ChatOptions
) -> list[int]:
    # Render again with placeholders for the texts, then tokenize the markup between
    # them with special tokens and each text without.
    skeleton = template.apply(masked, options).prompt
    parts = re.split("\ue000(\\d+)\ue001", skeleton)  # markup, index, markup, ...
    rebuilt = "".join(p if j % 2 == 0 else texts[int(p)] for j, p in enumerate(parts))
    if rebuilt != text:
        raise ValueError(
            "a message spells special-token text and this chat template rewrites message content, "
            "so it cannot be kept as plain text; remove the special-token text"
        )
    ids: list[int] = []
    for j, part in enumerate(parts):
        ids += _tokens(vocab, part, True) if j % 2 == 0 else _tokens(vocab, texts[int(part)], False)
    return ids


def _mask_texts(messages: Sequence[Message]) -> tuple[list[Message], list[str]]:
    """The messages with every user-supplied text (a string ``content``, the ``text`` of
    each text part, ``reasoning_content``) replaced by a placeholder, and those texts in
    placeholder order."""
    texts: list[str] = []

    def mark(value: str) -> str:
        texts.append(value)
        return f"\ue000{len(texts) - 1}\ue001"

    masked: list[Message] = []
    for m in messages:
        out = dict(m)
        content = m.get("content")
        if isinstance(content, str):
            out["content"] = mark(content)
        elif isinstance(content, list):
            out["content"] = [
                {**p, "text": mark(p["text"])}
                if isinstance(p, Mapping) and isinstance(p.get("text"), str) and p.get("type") != "media_marker"
                else p
                for p in content
            ]
        if isinstance(m.get("reasoning_content"), str):
            out["reasoning_content"] = mark(m["reasoning_content"])
        masked.append(out)
    return masked, texts


def _encode_media_chat(
    vocab: core.Vocab,
    template: ChatTemplate,
    messages: Sequence[Message],
    options: ChatOptions,
    projector: Projector,
    policy: MediaPolicy,
) -> ChatPrompt:
    """encode_chat for messages with media: the template renders a marker where each
    media part goes; the prompt is cut there into text pieces (tokenized as
    encode_chat tokenizes text: markup with special tokens, message text without)
    and the media's bitmaps, which libmtmd turns into chunks."""
    marker = projector.marker
    marked, parts = replace_media(messages, marker)
    bitmaps = [projector.load(p, policy) for p in parts]
    params = template.apply(marked, options)
    if params.prompt.count(marker) != len(bitmaps):
        raise ValueError(
            f"the chat template rendered {params.prompt.count(marker)} of the {len(bitmaps)} media "
            "parts; it drops or repeats message content"
        )
    masked, texts = _mask_texts(marked)
    pieces: list[tuple[str, bool] | core.mtmd.Bitmap] = []
    media = iter(bitmaps)

    def markup(text: str) -> None:
        for j, segment in enumerate(text.split(marker)):
            if j:
                pieces.append(next(media))
            pieces.append((segment, True))

    if any(_tokens(vocab, t, True) != _tokens(vocab, t, False) for t in texts):
        skeleton = template.apply(masked, options).prompt
        split = re.split("\ue000(\\d+)\ue001", skeleton)
        rebuilt = "".join(p if j % 2 == 0 else texts[int(p)] for j, p in enumerate(split))
        if rebuilt != params.prompt:
            raise ValueError(
                "a message spells special-token text and this chat template rewrites message content, "
                "so it cannot be kept as plain text; remove the special-token text"
            )
        for j, part in enumerate(split):
            if j % 2 == 0:
                markup(part)
            else:
                pieces.append((texts[int(part)], False))
    else:
        if any(_tokens(vocab, t, True) != _tokens(vocab, t, False) for t in _unmasked_texts(messages)):
            raise ValueError("a tool call in the messages spells special-token text; remove it")
        markup(params.prompt)
    bos = vocab.bos if vocab.add_bos and vocab.bos >= 0 else None
    media_prompt = build_prompt(projector, pieces, params.prompt, bos)
    prompt = _prompt(vocab, media_prompt.text_tokens, params, options)
    return dataclasses.replace(prompt, media=media_prompt)


def _unmasked_texts(messages: Sequence[Message]) -> list[str]:
    """Strings the template renders that stay unmasked: tool-call names and arguments
    (templates parse the arguments as JSON, so a placeholder cannot stand in)."""
    out: list[str] = []
    for m in messages:
        for call in m.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                out += [v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str)]
    return out


def _prompt(vocab: core.Vocab, ids: list[int], params: core.common.ChatParams, options: ChatOptions) -> ChatPrompt:
    """The ChatPrompt of llama.cpp's ChatParams: triggers as llama.cpp's sampler takes
    them (common/sampling.cpp), preserved tokens as ids (tools/server)."""
    preserved = frozenset(t[0] for t in (_tokens(vocab, s, True) for s in params.preserved_tokens) if len(t) == 1)
    patterns: list[str] = []
    tokens: list[int] = []
    for trigger in params.grammar_triggers:
        kind, value = trigger.type, trigger.value
        if kind == core.common.GrammarTriggerType.WORD:
            word = _tokens(vocab, value, True)
            if len(word) == 1 and word[0] in preserved:
                tokens.append(word[0])
            else:
                patterns.append(re.escape(value))
        elif kind == core.common.GrammarTriggerType.PATTERN:
            patterns.append(value)
        elif kind == core.common.GrammarTriggerType.PATTERN_FULL:
            patterns.append(("" if value.startswith("^") else "^") + value + ("" if value.endswith("$") else "$"))
        else:
            tokens.append(trigger.token)
    if params.grammar_lazy and not (patterns or tokens):
        raise ValueError("llama.cpp's chat engine returned a lazy grammar without triggers")
    prefill: tuple[int, ...] = ()
    if params.grammar and not params.grammar_lazy and params.generation_prompt:
        prefill = tuple(_generation_prompt_tokens(vocab, params.generation_prompt))
    parser = core.common.ChatParserParams(params)  # reads reasoning as inputs.reasoning_format asked
    return ChatPrompt(
        tokens=ids,
        text=params.prompt,
        reply=ReplyFormat(parser),
        grammar=params.grammar or None,
        trigger_patterns=tuple(patterns),
        trigger_tokens=tuple(tokens),
        grammar_prefill=prefill,
        preserved_tokens=preserved,
        stops=tuple(params.additional_stops),
    )


def _generation_prompt_tokens(vocab: core.Vocab, text: str) -> list[int]:
    """The tokens llama.cpp feeds a tool-call or output-format grammar before the
    reply (common/sampling.cpp): the generation prompt, without a leading space token
    some tokenizers add."""
    ids = _tokens(vocab, text, True)
    if ids and not text[:1].isspace() and vocab.token_to_piece(ids[0], 0, True)[:1].isspace():
        ids = ids[1:]
    return ids


def _tokens(vocab: core.Vocab, text: str, special: bool) -> list[int]:
    ids: list[int] = vocab.tokenize(text, False, special).tolist()
    return ids


def _with_bos(vocab: core.Vocab, ids: list[int]) -> list[int]:
    # Templates usually write bos_token themselves; add it only when they did not.
    if vocab.add_bos and vocab.bos >= 0 and (not ids or ids[0] != vocab.bos):
        return [vocab.bos, *ids]
    return ids


def constrain(
    prompt: ChatPrompt, options: GenerateOptions, sampling: SamplingParams
) -> tuple[GenerateOptions, SamplingParams]:
    """A chat call's options and sampling with what its prompt asks: the format's
    stops and preserved tokens, and its grammar (tool calls, a reply schema)."""
    options = dataclasses.replace(
        options,
        stop=(*options.stop, *prompt.stops),
        preserved_tokens=options.preserved_tokens | prompt.preserved_tokens,
    )
    if prompt.grammar is None:
        return options, sampling
    if sampling.grammar_text() is not None:
        raise ValueError("give tools or a reply schema, or a grammar/json_schema, not both")
    return options, sampling.replace(
        grammar=prompt.grammar,
        grammar_trigger_patterns=prompt.trigger_patterns,
        grammar_trigger_tokens=prompt.trigger_tokens,
        grammar_prefill=prompt.grammar_prefill,
    )
