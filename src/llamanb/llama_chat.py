"""``Llama``'s chat methods (:class:`ChatMethods`, a base of :class:`llamanb.Llama`): the
chat template in use, rendering, and the assistant's reply to messages, whole or streamed,
through llama.cpp's chat engine (:mod:`llamanb.chat`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import core
from .chat import ChatOptions, ChatTemplate, Message, Reasoning, ToolChoice
from .chat_prompt import constrain, encode_chat
from .chat_reply import ChatCompletion, ChatDelta, ChatReply, ChatRun
from .generation import GenerateKwargs, GenerateOptions, Prompt, Run, resolve_options
from .loading import Runtime
from .media import MediaPolicy, MediaPrompt, has_media, replace_media
from .sampling import SamplingParams, resolve_sampling

if TYPE_CHECKING:
    from typing_extensions import Unpack


class ChatMethods:
    """``Llama``'s chat methods; :meth:`start_chat` is the low-level entry the others use."""

    model: core.Model  # Llama's, as are the attributes and the method below
    vocab: core.Vocab
    seed: int | None
    media_policy: MediaPolicy
    _runtime: Runtime
    _chat_override: str | None
    _chat_template: ChatTemplate | None
    if TYPE_CHECKING:

        def start(
            self,
            prompt: Prompt | MediaPrompt,
            *,
            options: GenerateOptions | None = None,
            sampling: SamplingParams | None = None,
        ) -> Run: ...

    @property
    def chat_template(self) -> ChatTemplate:
        """The chat template in use (the model's, an override, or ChatML)."""
        if self._chat_template is None:
            self._chat_template = ChatTemplate.for_model(self.model, self._chat_override)
        return self._chat_template

    def render_chat(
        self,
        messages: Sequence[Message],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
        chat: ChatOptions | None = None,
    ) -> str:
        """The prompt text :meth:`chat` feeds the model for ``messages`` (llama.cpp's
        rendering: the prompt llama-server builds). Media parts show as libmtmd's
        default marker, ``<__media__>``."""
        if has_media(messages):
            messages = replace_media(messages, core.mtmd.default_marker())[0]
        return self.chat_template.render(messages, chat, add_generation_prompt=add_generation_prompt, tools=tools)

    def start_chat(
        self,
        messages: Sequence[Message],
        *,
        chat: ChatOptions | None = None,
        options: GenerateOptions | None = None,
        sampling: SamplingParams | None = None,
    ) -> ChatRun:
        """The low-level chat entry: a :class:`ChatRun` of the assistant's reply."""
        prompt = encode_chat(
            self.vocab,
            self.chat_template,
            messages,
            chat or ChatOptions(),
            projector=self._runtime.projector,
            media_policy=self.media_policy,
        )
        options, sampling = constrain(
            prompt, options or GenerateOptions(max_tokens=None), sampling or resolve_sampling(None, {}, self.seed)
        )
        source: Prompt | MediaPrompt = prompt.tokens if prompt.media is None else prompt.media
        return ChatRun(self.start(source, options=options, sampling=sampling), ChatReply(prompt.reply))

    def chat(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: ToolChoice | None = None,
        parallel_tool_calls: bool | None = None,
        response_schema: Mapping[str, Any] | None = None,
        reasoning: Reasoning = "auto",
        enable_thinking: bool = True,
        template_kwargs: Mapping[str, Any] | None = None,
        logprobs: int | None = None,
        **kwargs: Unpack[GenerateKwargs],
    ) -> ChatCompletion:
        """The assistant's reply to ``messages`` (OpenAI-style dicts), rendered with the
        model's chat template by llama.cpp's chat engine. Message text is never parsed
        as special tokens.

        ``tools`` (OpenAI function tools) with ``tool_choice`` ("auto", "none",
        "required" or ``{"type": "function", "function": {"name": ...}}``) and
        ``parallel_tool_calls``: the reply's ``message.tool_calls`` are parsed in the
        model's own format (``finish_reason`` "tool_calls"). ``response_schema``: the
        reply is JSON matching it. ``reasoning`` "auto" moves a thinking model's
        reasoning to ``message.reasoning_content`` ("none" leaves it in the content);
        ``enable_thinking`` and ``template_kwargs`` go to the template. ``max_tokens``
        defaults to None (until the end of the reply or a full context); the other
        options are :meth:`generate`'s, without ``echo``."""
        chat = ChatOptions(
            tools=tools,
            tool_choice=tool_choice,
            parallel_tool_calls=parallel_tool_calls,
            json_schema=response_schema,
            reasoning=reasoning,
            enable_thinking=enable_thinking,
            template_kwargs=template_kwargs or {},
        )
        options, params = resolve_options(kwargs, None, self.seed, logprobs=logprobs)
        return self.start_chat(messages, chat=chat, options=options, sampling=params).finish()

    def chat_stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: ToolChoice | None = None,
        parallel_tool_calls: bool | None = None,
        response_schema: Mapping[str, Any] | None = None,
        reasoning: Reasoning = "auto",
        enable_thinking: bool = True,
        template_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Unpack[GenerateKwargs],
    ) -> Iterator[ChatDelta]:
        """Like :meth:`chat`, yielding what each step adds to the reply: ``content``,
        ``reasoning_content`` and ``tool_calls`` pieces (a call's index, id and name
        first, then argument text), as OpenAI streams them."""
        chat = ChatOptions(
            tools=tools,
            tool_choice=tool_choice,
            parallel_tool_calls=parallel_tool_calls,
            json_schema=response_schema,
            reasoning=reasoning,
            enable_thinking=enable_thinking,
            template_kwargs=template_kwargs or {},
        )
        options, params = resolve_options(kwargs, None, self.seed)
        return self.start_chat(messages, chat=chat, options=options, sampling=params).deltas()
