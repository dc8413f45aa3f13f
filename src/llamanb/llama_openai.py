"""``Llama``'s OpenAI-shaped methods (:class:`OpenAIMethods`, a base of :class:`llamanb.Llama`):
``create_completion``, ``create_chat_completion`` and ``create_embedding``, which run
``Llama``'s own calls and shape their results with :mod:`llamanb.openai_api`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Literal, overload

import numpy as np
import numpy.typing as npt

from . import core, openai_api
from .chat import ChatOptions, Message
from .chat_reply import ChatRun
from .embedding import Pooling
from .generation import CompletionKwargs, GenerateOptions, Prompt, Run, resolve_options
from .openai_api import ChatCompletionKwargs
from .openai_types import (
    CreateChatCompletionResponse,
    CreateChatCompletionStreamResponse,
    CreateCompletionResponse,
    CreateCompletionStreamResponse,
    CreateEmbeddingResponse,
)
from .sampling import SamplingParams

if TYPE_CHECKING:
    from typing_extensions import Unpack


class OpenAIMethods:
    """``Llama``'s methods that answer in OpenAI's shapes (a base of :class:`llamanb.Llama`)."""

    model: core.Model  # Llama's, as are the methods below
    seed: int | None
    if TYPE_CHECKING:

        def _run(self, prompt: Prompt, kwargs: CompletionKwargs, max_tokens: int | None) -> Run: ...
        def start_chat(
            self, messages: Sequence[Message], *, chat: ChatOptions, options: GenerateOptions, sampling: SamplingParams
        ) -> ChatRun: ...
        def embed(
            self, texts: Sequence[str], *, pooling: Pooling | None, normalize: bool, truncate: bool
        ) -> npt.NDArray[np.float32]: ...
        def tokenize(self, text: str) -> list[int]: ...

    @overload
    def create_completion(
        self, prompt: Prompt, *, stream: Literal[False] = False, **kwargs: Unpack[CompletionKwargs]
    ) -> CreateCompletionResponse: ...

    @overload
    def create_completion(
        self, prompt: Prompt, *, stream: Literal[True], **kwargs: Unpack[CompletionKwargs]
    ) -> Iterator[CreateCompletionStreamResponse]: ...

    def create_completion(
        self, prompt: Prompt, *, stream: bool = False, **kwargs: Unpack[CompletionKwargs]
    ) -> CreateCompletionResponse | Iterator[CreateCompletionStreamResponse]:
        """An OpenAI ``/v1/completions`` response (or its stream of chunks). Options as
        :meth:`generate`, but ``max_tokens`` defaults to 16 (OpenAI's default)."""
        run = self._run(prompt, kwargs, 16)
        if stream:
            return openai_api.completion_chunks(run.seq, run, self.model.path)
        run.finish()
        return openai_api.completion(run.seq, self.model.path)

    @overload
    def create_chat_completion(
        self, messages: Sequence[Message], *, stream: Literal[False] = False, **kwargs: Unpack[ChatCompletionKwargs]
    ) -> CreateChatCompletionResponse: ...

    @overload
    def create_chat_completion(
        self, messages: Sequence[Message], *, stream: Literal[True], **kwargs: Unpack[ChatCompletionKwargs]
    ) -> Iterator[CreateChatCompletionStreamResponse]: ...

    def create_chat_completion(
        self, messages: Sequence[Message], *, stream: bool = False, **kwargs: Unpack[ChatCompletionKwargs]
    ) -> CreateChatCompletionResponse | Iterator[CreateChatCompletionStreamResponse]:
        """An OpenAI ``/v1/chat/completions`` response (or its stream of chunks). Options
        as :meth:`chat`, in OpenAI's spelling: ``logprobs=True`` with ``top_logprobs=n``;
        ``tools``, ``tool_choice``, ``parallel_tool_calls``; ``response_format``
        (``{"type": "json_schema", "json_schema": {"schema": {...}}}``) constrains the
        reply; llama-server's ``reasoning_format`` and ``chat_template_kwargs``."""
        logprobs, top_logprobs = kwargs.pop("logprobs", False), kwargs.pop("top_logprobs", None)
        chat = openai_api.chat_options(kwargs)
        n_top = openai_api.logprobs_count(logprobs, top_logprobs)
        options, params = resolve_options(kwargs, None, self.seed, logprobs=n_top)
        run = self.start_chat(messages, chat=chat, options=options, sampling=params)
        if stream:
            return openai_api.chat_chunks(run.seq, run.reply, run.run, self.model.path)
        run.run.finish()
        return openai_api.chat_completion(run.seq, run.reply, self.model.path)

    def create_embedding(
        self,
        input: str | Sequence[str],
        *,
        pooling: Pooling | None = None,
        normalize: bool = True,
        truncate: bool = False,
    ) -> CreateEmbeddingResponse:
        """An OpenAI ``/v1/embeddings`` response."""
        texts = [input] if isinstance(input, str) else list(input)
        vectors = self.embed(texts, pooling=pooling, normalize=normalize, truncate=truncate)
        n_tokens = sum(len(self.tokenize(t)) for t in texts)
        return openai_api.embedding_response(vectors, n_tokens, self.model.path)
