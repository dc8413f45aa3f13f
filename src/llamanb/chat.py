"""Chat templates: the model's own Jinja template rendered in a sandbox, with
Hugging Face's conventions, or one of llama.cpp's built-in formats by name."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from . import core

if TYPE_CHECKING:  # jinja2 is imported on first use: `import llamanb` stays fast
    import jinja2.sandbox

Message = Mapping[str, Any]
"""An OpenAI-style chat message: ``{"role": "user", "content": "Hi"}`` (templates may
read more keys, such as ``tool_calls``)."""

DEFAULT_TEMPLATE = "chatml"
"""llama.cpp's fallback for models that carry no template."""


class ChatTemplate:
    """Turns messages into the prompt text a model was trained on.

    ``source`` is a Jinja template (Hugging Face ``chat_template``) or the name of one
    of llama.cpp's built-in formats (``core.chat_builtin_templates()``, e.g. "llama3").
    Jinja templates run in ``ImmutableSandboxedEnvironment``: a template from a model
    file cannot reach Python internals or mutate the messages.
    """

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.builtin = source in builtin_templates()
        self._template = None if self.builtin else _environment().from_string(source)
        self._typed_content: bool | None = None  # renders lists of content parts (probed on first need)

    @classmethod
    def for_model(cls, model: core.Model, override: str | None = None) -> ChatTemplate:
        """The template ``override`` names, else the model's, else ChatML."""
        vocab = model.vocab
        source = override or model.chat_template() or DEFAULT_TEMPLATE
        return cls(source, bos_token=_token_text(vocab, vocab.bos), eos_token=_token_text(vocab, vocab.eos))

    def render(
        self,
        messages: Sequence[Message],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **extra: Any,
    ) -> str:
        """The prompt text for ``messages``; ``add_generation_prompt`` opens the
        assistant's turn. ``tools`` and ``extra`` are passed to Jinja templates."""
        _check_messages(messages)
        if self._template is None:
            if tools:
                raise ValueError(f"the built-in template {self.source!r} cannot render tools; use a Jinja template")
            pairs = [(str(m["role"]), _text_content(m)) for m in messages]
            return core.chat_apply_template(self.source, pairs, add_generation_prompt)
        if not self._renders_typed_content():  # join text parts, as llama.cpp's server does
            messages = [{**m, "content": _text_content(m)} if isinstance(m.get("content"), list) else m
                        for m in messages]
        return self._template.render(
            messages=list(messages),
            tools=list(tools) if tools is not None else None,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            **extra,
        )


    def _renders_typed_content(self) -> bool:
        """Whether the template renders OpenAI content parts itself (multimodal templates
        iterate them); others print a list as its repr, so they get the joined text."""
        if self._typed_content is None:
            assert self._template is not None
            probe = "\ue002probe\ue003"
            try:
                out = self._template.render(messages=[{"role": "user", "content": [{"type": "text", "text": probe}]}],
                                            add_generation_prompt=True, bos_token=self.bos_token,
                                            eos_token=self.eos_token)
            except Exception:  # noqa: BLE001 - a template that cannot render parts at all
                out = ""
            self._typed_content = probe in out and "'type'" not in out
        return self._typed_content


def builtin_templates() -> list[str]:
    """Names of llama.cpp's built-in chat formats."""
    return core.chat_builtin_templates()


def _environment() -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    import jinja2.ext
    import jinja2.sandbox

    # The same settings as transformers' apply_chat_template, so templates render alike.
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # HF's tojson: plain json.dumps, not Jinja's HTML-escaping one.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> NoReturn:
    import jinja2

    raise jinja2.TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _token_text(vocab: core.Vocab, token: int) -> str:
    return "" if token < 0 else vocab.get_text(token).decode("utf-8", errors="replace")


def _check_messages(messages: Sequence[Message]) -> None:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m:
            raise ValueError(f"message {i} must be a dict with a 'role' key, got {m!r}")


def _text_content(message: Message) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    raise ValueError(f"message content must be a string or a list of parts, got {type(content).__name__}")


def encode_chat(
    vocab: core.Vocab,
    template: ChatTemplate,
    messages: Sequence[Message],
    *,
    add_generation_prompt: bool = True,
    tools: Sequence[Mapping[str, Any]] | None = None,
    **extra: Any,
) -> list[int]:
    """Token ids of the rendered chat. Template markup becomes special tokens; message
    text never does: content that spells a special token (``"<|im_end|>"``), as a string
    or in text parts, is tokenized as plain text, so a user cannot forge turns."""
    text = template.render(messages, add_generation_prompt=add_generation_prompt, tools=tools, **extra)
    masked, texts = _mask_texts(messages)
    if all(_tokens(vocab, t, True) == _tokens(vocab, t, False) for t in texts):
        # The common case: tokenize the whole text at once, exactly as llama.cpp would.
        return _with_bos(vocab, _tokens(vocab, text, True))
    # Render again with placeholders for the texts, then tokenize the markup between
    # them with special tokens and each text without.
    skeleton = template.render(masked, add_generation_prompt=add_generation_prompt, tools=tools, **extra)
    parts = re.split("\ue000(\\d+)\ue001", skeleton)  # markup, index, markup, ...
    rebuilt = "".join(p if j % 2 == 0 else texts[int(p)] for j, p in enumerate(parts))
    if rebuilt != text:
        raise ValueError("a message spells special-token text and this chat template rewrites message content, "
                         "so it cannot be kept as plain text; remove the special-token text")
    ids: list[int] = []
    for j, part in enumerate(parts):
        ids += _tokens(vocab, part, True) if j % 2 == 0 else _tokens(vocab, texts[int(part)], False)
    return _with_bos(vocab, ids)


def _mask_texts(messages: Sequence[Message]) -> tuple[list[Message], list[str]]:
    """The messages with every user-supplied text (a string ``content``, the ``text`` of
    each text part) replaced by a placeholder, and those texts in placeholder order."""
    texts: list[str] = []

    def mark(value: str) -> str:
        texts.append(value)
        return f"\ue000{len(texts) - 1}\ue001"

    masked: list[Message] = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            masked.append({**m, "content": mark(content)})
        elif isinstance(content, list):
            parts = [{**p, "text": mark(p["text"])} if isinstance(p, Mapping) and isinstance(p.get("text"), str)
                     else p for p in content]
            masked.append({**m, "content": parts})
        else:
            masked.append(m)
    return masked, texts


def _tokens(vocab: core.Vocab, text: str, special: bool) -> list[int]:
    ids: list[int] = vocab.tokenize(text, False, special).tolist()
    return ids


def _with_bos(vocab: core.Vocab, ids: list[int]) -> list[int]:
    # Templates usually write bos_token themselves; add it only when they did not.
    if vocab.add_bos and vocab.bos >= 0 and (not ids or ids[0] != vocab.bos):
        return [vocab.bos, *ids]
    return ids
