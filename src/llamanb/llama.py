"""``Llama``: one model and its contexts, coordinating the modules that do the work
(generation, chat, batching, embeddings, OpenAI shapes, prompt caching). Its chat methods
are its base :class:`~llamanb.llama_chat.ChatMethods`, its OpenAI-shaped ones
:class:`~llamanb.llama_openai.OpenAIMethods`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import core, generation, hub, logs, scheduler
from .chat import ChatTemplate
from .embedding import Embedder, Pooling
from .generation import Completion, CompletionKwargs, GenerateOptions, Prompt, Run, SequenceText, resolve_options
from .llama_chat import ChatMethods
from .llama_openai import OpenAIMethods
from .loading import ContextOptions, ModelOptions, Runtime, context_params
from .lora import LoraSpec
from .media import MediaPolicy, MediaPrompt, ProjectorParams
from .sampling import SamplingParams, resolve_sampling
from .scheduler import Scheduler
from .sequence_cache import SavedState, SequenceCache
from .speculative import Speculation, SpeculativeOptions
from .turns import Turns

if TYPE_CHECKING:
    from typing_extensions import Unpack


class Llama(ChatMethods, OpenAIMethods):
    """A GGUF model with an inference context.

    >>> with Llama() as llm:                       # the default SmolLM2-135M model
    ...     print(llm.generate("Paris is", max_tokens=8, temperature=0).text)

    llama.cpp's log goes to the ``logging`` logger "llamanb" (silent by default);
    ``verbose=True`` shows it on stderr while this ``Llama`` is open. ``progress=True``
    draws a tqdm bar while loading. ``chat_template`` overrides the model's template
    (Jinja source, or a llama.cpp built-in name such as "llama3").

    ``rpc_servers=["10.0.0.2:50052", ...]`` puts the model's layers on ggml RPC
    workers (started with ``llamanb rpc-server``), split by their free memory;
    ``n_gpu_layers`` then defaults to all layers. A worker that cannot be reached,
    or dies mid-generation, raises :class:`llamanb.core.RpcConnectionError`.

    ``repack=False`` keeps every weight in the file's layout: no AMX or CPU_REPACK
    buffers (those are faster, and differ from the plain CPU path by rounding only).

    ``model_options`` / ``context_options`` set the rest of llama.cpp's load and context
    parameters (load mode, flash attention, KV cache types, RoPE...); the arguments above
    win over ``model_options``'s fields.

    ``lora=[(path, scale), ...]`` loads LoRA adapters (GGUF) and applies them, at those
    scales, to every context of this ``Llama``: generation, :meth:`generate_batch` and
    embeddings (``adapters`` holds them).

    ``mmproj`` loads the model's multimodal projector (an mmproj GGUF, as published
    next to SmolVLM, Gemma 3, Qwen2.5-VL... GGUFs) with llama.cpp's libmtmd: then
    :meth:`chat` takes OpenAI ``image_url`` and ``input_audio`` content parts
    (``supports_vision`` / ``supports_audio`` say which). ``mmproj_params`` tunes its
    loading; ``media_policy`` says where media may come from (local files: yes;
    remote URLs: no, by default).

    Speculative decoding (llama.cpp's): ``draft_model`` (a GGUF path or a ``Llama``
    whose model shares this one's vocabulary) drafts tokens that the model verifies
    in one batch; ``speculative`` picks self-speculation from the context's n-grams
    ("ngram-mod", "ngram-map-k", ...) or a :class:`SpeculativeOptions` with draft
    lengths. :meth:`generate`, :meth:`stream` and :meth:`chat` then use it; the output
    is the model's own (same tokens, stop strings, logprobs, grammars), reported with
    ``drafted_tokens``/``accepted_tokens``; :meth:`generate_batch` drafts for each of its
    sequences the same way.

    One ``Llama`` serves one call at a time: calls from other threads wait their
    turn. Sampling options are :class:`SamplingParams` fields, given as keyword
    arguments or as ``sampling=`` (keywords win). Embeddings and batched generation
    use their own contexts, created on first use.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 4096,
        n_batch: int = 512,
        n_threads: int | None = None,
        n_gpu_layers: int | None = None,
        seed: int | None = None,
        verbose: bool = False,
        chat_template: str | None = None,
        progress: bool = False,
        rpc_servers: Sequence[str] | None = None,
        repack: bool = True,
        mmproj: str | os.PathLike[str] | None = None,
        mmproj_params: ProjectorParams | None = None,
        media_policy: MediaPolicy | None = None,
        draft_model: str | os.PathLike[str] | Llama | None = None,
        speculative: str | Sequence[str] | SpeculativeOptions | None = None,
        lora: Sequence[LoraSpec] = (),
        model_options: ModelOptions | None = None,
        context_options: ContextOptions | None = None,
    ) -> None:
        spec_options = SpeculativeOptions.of(speculative, draft_model is not None)
        if n_ctx < 1:
            raise ValueError(f"n_ctx must be >= 1, got {n_ctx}")
        if n_batch < 1:
            raise ValueError(f"n_batch must be >= 1, got {n_batch}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads}")
        logs.route_to_logging()
        self._verbose = verbose
        if verbose:
            logs.stderr_view.acquire()
        try:
            options = dataclasses.replace(
                model_options or ModelOptions(),
                n_gpu_layers=n_gpu_layers,
                rpc_servers=rpc_servers or (),
                repack=repack,
                progress=progress,
            )
            self._runtime = Runtime(
                model_path,
                options,
                n_threads=n_threads,
                lora=lora,
                draft=draft_model.model if isinstance(draft_model, Llama) else draft_model,
                mmproj=mmproj,
                mmproj_params=mmproj_params,
            )
        except BaseException:
            self._release_verbose()
            raise
        self.model: core.Model = self._runtime.model
        self.adapters, self.n_threads = self._runtime.adapters, self._runtime.n_threads
        self._speculation: Speculation | None = None
        try:
            self.context = self._runtime.context(
                context_params(n_ctx, n_batch, self.n_threads, perf=True, options=context_options)
            )
            self._cache = SequenceCache(self.context, 0)
            self._embedder = Embedder(self._runtime, min(n_batch, self.model.n_ctx_train or n_batch))
            if spec_options is not None:
                self._speculation = Speculation(spec_options, self.context, self._runtime.draft_model)
            # generate_batch's contexts (made on first use); with speculation its sequences draft too
            self._batcher = Scheduler(self._runtime, n_batch, spec_options)
        except BaseException:
            self.close()
            raise
        self.media_policy = media_policy or MediaPolicy()
        self.vocab = self.model.vocab
        self.seed = seed
        self._chat_override = chat_template
        self._chat_template: ChatTemplate | None = None
        self._turns = Turns()

    @classmethod
    def from_pretrained(
        cls,
        repo_id: str,
        filename: str,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        **llama_kwargs: Any,
    ) -> Llama:
        """A GGUF model from the Hugging Face Hub (``pip install 'llamanb[hub]'``).

        ``filename`` may be a glob (``"*Q4_1.gguf"``) that must match exactly one model;
        a split model's parts are all downloaded. Files land in huggingface_hub's cache
        (or ``cache_dir``) and are reused from there, also offline. ``llama_kwargs`` go
        to :class:`Llama`.
        """
        path = hub.download(repo_id, filename, revision=revision, cache_dir=cache_dir)
        return cls(path, **llama_kwargs)

    @property
    def speculative(self) -> SpeculativeOptions | None:
        """The speculative decoding in use, or None."""
        return None if self._speculation is None else self._speculation.options

    # -- lifetime -------------------------------------------------------------

    def close(self) -> None:
        """Free the contexts, the projector, the draft model and the model. Idempotent."""
        for owner in ("_batcher", "_speculation", "_embedder", "context"):  # what exists of them
            part = getattr(self, owner, None)
            if part is not None:
                part.close()
        self._runtime.close()
        self._release_verbose()

    def _release_verbose(self) -> None:
        if self._verbose:
            self._verbose = False
            logs.stderr_view.release()

    @property
    def closed(self) -> bool:
        return self.context.closed

    def __enter__(self) -> Llama:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"n_ctx={self.n_ctx}"
        return f"<llamanb.Llama {self.model.path!r} {state}>"

    @property
    def n_ctx(self) -> int:
        return self.context.n_ctx

    @property
    def supports_vision(self) -> bool:
        """Whether chat takes images (a projector with a vision encoder is loaded)."""
        return self._runtime.projector is not None and self._runtime.projector.supports_vision

    @property
    def supports_audio(self) -> bool:
        """Whether chat takes audio (a projector with an audio encoder is loaded)."""
        return self._runtime.projector is not None and self._runtime.projector.supports_audio

    @property
    def projector(self) -> core.mtmd.MtmdContext | None:
        """The projector's libmtmd context (None without ``mmproj``)."""
        return None if self._runtime.projector is None else self._runtime.projector.context

    @property
    def cached_tokens(self) -> tuple[int, ...]:
        """The tokens whose KV state the main context holds (the next prompt's
        longest common prefix with them is not evaluated again)."""
        return tuple(self._cache.tokens)

    # -- tokens ---------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Token ids of ``text``. ``add_special`` adds BOS/EOS as the model wants;
        ``parse_special`` turns special-token text (``<|im_start|>``) into tokens."""
        ids: list[int] = self.vocab.tokenize(text, add_special, parse_special).tolist()
        return ids

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> str:
        """Text of ``tokens``; ``special`` renders special tokens as text."""
        data = self.vocab.detokenize(list(tokens), False, special)
        return data.decode("utf-8", errors="replace")

    # -- generation -----------------------------------------------------------

    def start(
        self,
        prompt: Prompt | MediaPrompt,
        *,
        options: GenerateOptions | None = None,
        sampling: SamplingParams | None = None,
    ) -> Run:
        """The low-level entry: a :class:`Run` of ``prompt``, not started until iterated."""
        params = sampling or resolve_sampling(None, {}, self.seed)
        seq = SequenceText(self.vocab, options or GenerateOptions())
        spec = self._speculation
        # A prompt with media decodes without speculation (its chunks go through libmtmd's
        # helpers); the completion's drafted_tokens is then None.
        if spec is not None and not isinstance(prompt, MediaPrompt):
            text_prompt = prompt
            return Run(
                seq, self._turns.guarded(lambda: scheduler.speculate(self._cache, spec, text_prompt, params, seq))
            )
        return Run(seq, self._turns.guarded(lambda: generation.run(self._cache, self.vocab, prompt, params, seq)))

    def generate(self, prompt: Prompt, **kwargs: Unpack[CompletionKwargs]) -> Completion:
        """Complete ``prompt`` (text or token ids). Text prompts may spell special tokens
        (``<|im_start|>``), as in llama.cpp's tools; use :meth:`chat` for untrusted
        text. ``temperature=0`` is greedy; otherwise ``seed`` (or the ``Llama``'s)
        makes sampling reproducible. ``max_tokens`` defaults to 256 (None runs until
        the end of generation or a full context); ``stop`` strings end the text;
        ``logprobs=n`` records each token's top ``n``; ``echo`` puts the prompt in front
        of the text; ``sampling=`` and the :class:`SamplingParams` fields choose tokens."""
        return self._run(prompt, kwargs, 256).finish()

    def stream(self, prompt: Prompt, **kwargs: Unpack[CompletionKwargs]) -> Iterator[str]:
        """Like :meth:`generate` (same options), yielding text pieces as they are produced.

        Pieces never split a UTF-8 character and never contain (part of) a stop
        string; joined, they equal ``generate(...).text`` for the same arguments."""
        return self._run(prompt, kwargs, 256).texts()

    def generate_batch(
        self, prompts: Sequence[Prompt], *, max_parallel: int = 8, **kwargs: Unpack[CompletionKwargs]
    ) -> list[Completion]:
        """Complete many prompts as parallel sequences of one context: each decode
        advances every live sequence by a token. Results are in prompt order. Options
        as :meth:`generate`; with a ``seed``, prompt ``i`` samples with ``seed + i``.
        With speculative decoding, every sequence drafts too (together, in one call), and
        its draft rides in the shared decode; the results report ``drafted_tokens``."""
        if isinstance(prompts, str):
            raise TypeError("generate_batch takes a list of prompts; use generate() for one")
        options, base = self._completion_options(kwargs, 256)
        params = [
            base if base.seed is None else base.replace(seed=(base.seed + i) % core.DEFAULT_SEED)
            for i in range(len(prompts))
        ]
        with self._turns.take():
            return self._batcher.run(self.vocab, prompts, params, options, self.n_ctx, max_parallel)

    async def agenerate(self, prompt: Prompt, **kwargs: Unpack[CompletionKwargs]) -> Completion:
        """:meth:`generate` without blocking the event loop (decoding runs on a thread)."""
        run = self._run(prompt, kwargs, 256)
        from . import aio  # asyncio is imported on first use: `import llamanb` stays fast

        async for _ in aio.iterate_in_thread(run.__iter__):
            pass
        return run.completion()

    async def astream(self, prompt: Prompt, **kwargs: Unpack[CompletionKwargs]) -> AsyncIterator[str]:
        """:meth:`stream` for ``async for``, without blocking the event loop."""
        run = self._run(prompt, kwargs, 256)
        from . import aio

        async for piece in aio.iterate_in_thread(run.texts):
            yield piece

    def _run(self, prompt: Prompt, kwargs: CompletionKwargs, max_tokens: int | None) -> Run:
        options, sampling = self._completion_options(kwargs, max_tokens)
        return self.start(prompt, options=options, sampling=sampling)

    def _completion_options(
        self, kwargs: CompletionKwargs, max_tokens: int | None
    ) -> tuple[GenerateOptions, SamplingParams]:
        """Options and sampling of a text-completion call (``max_tokens``: its default)."""
        logprobs, echo = kwargs.pop("logprobs", None), kwargs.pop("echo", False)
        return resolve_options(kwargs, max_tokens, self.seed, logprobs=logprobs, echo=echo)

    # -- embeddings -----------------------------------------------------------

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        pooling: Pooling | None = None,
        normalize: bool = True,
        batch_size: int = 64,
        truncate: bool = False,
    ) -> npt.NDArray[np.float32]:
        """Pooled embeddings, shape ``(len(texts), dim)`` (a single string counts as one
        text). ``pooling``: the model's own when None, else mean; or "mean", "cls",
        "last". Up to ``batch_size`` texts share each decode. A text longer than
        ``n_batch`` tokens raises, or is cut when ``truncate``."""
        with self._turns.take():
            return self._embedder.embed(
                [texts] if isinstance(texts, str) else texts,
                pooling=pooling,
                normalize=normalize,
                batch_size=batch_size,
                truncate=truncate,
            )

    def rerank(self, query: str, documents: Sequence[str], *, truncate: bool = False) -> npt.NDArray[np.float32]:
        """Relevance scores of ``documents`` for ``query``, one per document, for
        reranker models (rank pooling); others raise ValueError."""
        with self._turns.take():
            return self._embedder.rerank(query, documents, truncate=truncate)

    # -- state ----------------------------------------------------------------

    def reset(self) -> None:
        """Forget the cached prompt state (the next call evaluates its whole prompt)."""
        with self._turns.take():
            self._cache.clear()

    def save_state(self) -> SavedState:
        """A snapshot of the main context and the tokens it holds."""
        with self._turns.take():
            return self._cache.save()

    def load_state(self, state: SavedState) -> None:
        """Restore a :meth:`save_state` snapshot (from this model)."""
        with self._turns.take():
            self._cache.load(state)
