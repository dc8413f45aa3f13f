"""A chat as prompt tokens: the template's rendering tokenized so that template markup
becomes special tokens and message text never does (a user cannot forge turns), media
chats cut into text and media chunks, and what generating and reading the reply needs
(llama.cpp's grammar, triggers, stops and parser for the prompt's format)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import core
from .chat import ChatOptions, ChatTemplate, Message, check_messages
from .generation import GenerateOptions
from .media import MediaPolicy, MediaPrompt, Projector, build_prompt, has_media, replace_media
from .sampling import SamplingParams


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
    check_messages(messages)
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
