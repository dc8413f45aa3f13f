"""``llamanb.compat.Llama``: ``llama_cpp.Llama`` (llama-cpp-python 0.3.36) over
:class:`llamanb.Llama`.

Same defaults as llama-cpp-python (``n_ctx=512``, ``verbose=True``, ``max_tokens=16`` for
completions, ``temperature=0.2`` for chat), and its seed rule: every call without
``seed=`` draws the next seed from the last one (``random.Random(seed).randint``), so a
seeded ``Llama`` gives different, reproducible text on each call. Every constructor
and call option is carried out or raises NotImplementedError naming the alternative.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from .. import core, hub, logs, openai_api
from ..chat import Message, Reasoning, ToolChoice
from ..generation import GenerateOptions
from ..llama import Llama as _Llama
from ..logits_processor import LogitsProcessor
from ..openai_types import (
    CreateChatCompletionResponse,
    CreateChatCompletionStreamResponse,
    CreateCompletionResponse,
    CreateCompletionStreamResponse,
    ResponseFormat,
)
from . import chat_format, completion
from .cache import BaseLlamaCache
from .embeddings import Embeddings
from .evaluation import Evaluation, Grammar

# `X as X`: names of llama_cpp.llama that code imports from there (re-exported)
from .grammar import LlamaGrammar as LlamaGrammar
from .options import LoadOptions, refuse_unsupported
from .processors import StoppingCriteria
from .speculative import LlamaDraftModel, LlamaPromptLookupDecoding
from .state import LlamaState as LlamaState
from .tokenizer import LlamaTokenizer

LLAMA_DEFAULT_SEED = core.DEFAULT_SEED


class Llama(Embeddings, Evaluation):
    """A drop-in for ``llama_cpp.Llama`` over :class:`llamanb.Llama`. This class opens the
    model and makes completions and chat completions; its bases do the rest, each in its
    own module: :class:`.model_info.ModelInfo` (model facts, tokenizing),
    :class:`.embeddings.Embeddings`, :class:`.evaluation.Evaluation` (evaluating,
    sampling, saved state)."""

    def __init__(
        self,
        model_path: str,
        *,
        n_gpu_layers: int = 0,
        split_mode: int = 1,
        main_gpu: int = 0,
        tensor_split: Sequence[float] | None = None,
        vocab_only: bool = False,
        use_mmap: bool = True,
        use_mlock: bool = False,
        kv_overrides: Mapping[str, bool | int | float | str] | None = None,
        seed: int = LLAMA_DEFAULT_SEED,
        n_ctx: int = 512,
        n_batch: int = 512,
        n_ubatch: int = 512,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        rope_scaling_type: int | None = -1,
        pooling_type: int = -1,
        attention_type: int = -1,
        rope_freq_base: float = 0.0,
        rope_freq_scale: float = 0.0,
        yarn_ext_factor: float = -1.0,
        yarn_attn_factor: float = 1.0,
        yarn_beta_fast: float = 32.0,
        yarn_beta_slow: float = 1.0,
        yarn_orig_ctx: int = 0,
        logits_all: bool = False,
        embedding: bool = False,
        offload_kqv: bool = True,
        flash_attn: bool | None = None,
        op_offload: bool | None = None,
        swa_full: bool | None = None,
        no_perf: bool = False,
        last_n_tokens_size: int = 64,
        lora_base: str | None = None,
        lora_scale: float = 1.0,
        lora_path: str | None = None,
        numa: bool | int = False,
        chat_format: str | None = None,
        chat_handler: chat_format.LlamaChatCompletionHandler | None = None,
        draft_model: LlamaDraftModel | None = None,
        tokenizer: object = None,
        type_k: int | None = None,
        type_v: int | None = None,
        spm_infill: bool = False,
        verbose: bool = True,
        rpc_servers: str | None = None,
        n_parts: int = -1,
        f16_kv: bool = True,
    ) -> None:
        """``lora_path``/``lora_scale``: one LoRA adapter for every call. ``flash_attn``:
        None lets llama.cpp decide (llama-cpp-python's False turns it off, as here).
        ``logits_all=True`` keeps every evaluated token's logits in :attr:`scores`.
        ``n_parts`` and ``f16_kv`` are options of older llama-cpp-python releases that
        LangChain still passes (0.3.36 takes any keyword and drops it): ``n_parts=-1``
        (the model's own parts) and ``f16_kv=True`` (an F16 KV cache, llama.cpp's
        default) are what llama.cpp does; ``f16_kv=False`` makes the KV cache F32.
        ``seed=-1`` is :data:`LLAMA_DEFAULT_SEED`, as in llama.cpp's uint32 seed."""
        self._init_args = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        refuse_unsupported(tensor_split, kv_overrides, swa_full, numa, tokenizer, lora_base)
        if n_parts != -1:
            raise NotImplementedError(
                "n_parts is not supported: llama.cpp finds a split GGUF's parts itself; pass the first part's path"
            )
        if not f16_kv:  # an F32 KV cache, unless type_k/type_v say otherwise
            type_k = int(core.ggml.GGMLType.F32) if type_k is None else type_k
            type_v = int(core.ggml.GGMLType.F32) if type_v is None else type_v
        if seed == -1:
            seed = LLAMA_DEFAULT_SEED
        if draft_model is not None and not isinstance(draft_model, LlamaPromptLookupDecoding):
            raise NotImplementedError(
                "llamanb.compat.Llama takes draft_model=LlamaPromptLookupDecoding(...) only "
                "(a draft model of your own runs Python per token); for a smaller draft "
                "model use llamanb.Llama(draft_model='draft.gguf')"
            )
        template = chat_format_template(chat_format, chat_handler)
        self.model_path = model_path
        self.verbose = verbose
        self.chat_format = chat_format
        self.chat_handler = chat_handler
        self.cache: BaseLlamaCache | None = None
        self.draft_model = draft_model
        self.last_n_tokens_size = last_n_tokens_size
        self.spm_infill = spm_infill
        self.lora_path, self.lora_scale = lora_path, lora_scale
        self._logits_all = logits_all
        self._embedding = embedding
        self._pooling = None if pooling_type < 0 else core.PoolingType(pooling_type)
        self._seed = seed
        self._requires_eval = True
        self._rows = {}
        load = LoadOptions(
            split_mode,
            main_gpu,
            use_mmap,
            use_mlock,
            n_ubatch,
            n_threads_batch,
            rope_scaling_type,
            rope_freq_base,
            rope_freq_scale,
            yarn_ext_factor,
            yarn_attn_factor,
            yarn_beta_fast,
            yarn_beta_slow,
            yarn_orig_ctx,
            offload_kqv,
            flash_attn,
            attention_type,
            op_offload,
            type_k,
            type_v,
        )
        self._load_options = load
        self._n_gpu_layers, self._vocab_only = n_gpu_layers, vocab_only
        self._llm = None
        if vocab_only:
            logs.route_to_logging()
            params = load.model_options().params()
            params.vocab_only = True
            self._model = core.Model(model_path, params)
        else:
            self._llm = _Llama(
                model_path,
                n_ctx=n_ctx if n_ctx > 0 else _training_context(model_path),
                n_batch=n_batch,
                n_threads=n_threads,
                n_gpu_layers=n_gpu_layers,
                seed=None if seed == LLAMA_DEFAULT_SEED else seed,
                verbose=verbose,
                chat_template=template,
                # llama-cpp-python's form: "host:port,host:port"; layers go there per n_gpu_layers
                rpc_servers=[s.strip() for s in rpc_servers.split(",")] if rpc_servers else None,
                speculative=None if draft_model is None else draft_model.options,
                lora=[(lora_path, lora_scale)] if lora_path else (),
                model_options=load.model_options(),
                context_options=dataclasses.replace(load.context_options(n_batch), no_perf=no_perf),
            )
            self._model = self._llm.model
        self._vocab = self._model.vocab
        self.n_batch = n_batch
        self.tokenizer_ = LlamaTokenizer(self)
        self._embedder = None

    @classmethod
    def from_pretrained(
        cls,
        repo_id: str,
        filename: str,
        additional_files: Sequence[str] | None = None,
        local_dir: str | os.PathLike[str] | None = None,
        local_dir_use_symlinks: bool | str = "auto",
        cache_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Llama:
        """A GGUF from the Hugging Face Hub (``pip install 'llamanb[hub]'``): ``filename`` may
        be a glob matching one file; files stay in huggingface_hub's cache (``cache_dir``)."""
        if additional_files or local_dir is not None:
            raise NotImplementedError(
                "additional_files and local_dir are not supported: split GGUFs are fetched "
                "whole from filename (its first part); use cache_dir= for the location"
            )
        path = hub.download(repo_id, filename, cache_dir=cache_dir)
        return cls(model_path=str(path), **kwargs)

    # -- pickling: the constructor's arguments, as llama-cpp-python --------------

    def __getstate__(self) -> dict[str, Any]:
        return dict(self._init_args)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    # -- lifetime ---------------------------------------------------------------

    def set_cache(self, cache: BaseLlamaCache | None) -> None:
        """States of earlier completions to start from (:class:`LlamaRAMCache`, ...)."""
        self.cache = cache

    def close(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
        if self._llm is not None:
            self._llm.close()
        else:
            self._model.close()

    def __enter__(self) -> Llama:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- completions ----------------------------------------------------------

    def create_completion(
        self,
        prompt: str | list[int],
        suffix: str | None = None,
        max_tokens: int | None = 16,
        temperature: float = 0.8,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        logprobs: int | None = None,
        echo: bool = False,
        stop: str | list[str] | None = None,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        repeat_penalty: float = 1.0,
        top_k: int = 40,
        stream: bool = False,
        seed: int | None = None,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        model: str | None = None,
        stopping_criteria: StoppingCriteria | Sequence[StoppingCriteria] | None = None,
        logits_processor: LogitsProcessor | Sequence[LogitsProcessor] | None = None,
        grammar: Grammar = None,
        logit_bias: Mapping[int | str, float] | None = None,
    ) -> CreateCompletionResponse | Iterator[CreateCompletionStreamResponse]:
        """An OpenAI-shaped completion (``stream=True``: an iterator of chunks)."""
        params = self._sampling(
            temperature,
            top_k,
            top_p,
            min_p,
            typical_p,
            frequency_penalty,
            presence_penalty,
            repeat_penalty,
            self._next_seed(seed),
            mirostat_mode,
            mirostat_tau,
            mirostat_eta,
            grammar,
            logit_bias,
            logits_processor,
            stopping_criteria,
        )
        request = completion.Request(
            prompt, suffix, max_tokens, logprobs, echo, stop, model or self.model_path, self.spm_infill
        )
        return completion.run(self, request, params, stream)

    def __call__(self, prompt: str | list[int], *args: Any, **kwargs: Any) -> Any:
        return self.create_completion(prompt, *args, **kwargs)

    def create_chat_completion(
        self,
        messages: Sequence[Message],
        functions: Sequence[Mapping[str, Any]] | None = None,
        function_call: str | Mapping[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: ToolChoice | None = None,
        temperature: float = 0.2,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        stream: bool = False,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        response_format: ResponseFormat | None = None,
        max_tokens: int | None = None,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        repeat_penalty: float = 1.0,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        model: str | None = None,
        logits_processor: LogitsProcessor | Sequence[LogitsProcessor] | None = None,
        grammar: Grammar = None,
        logit_bias: Mapping[int | str, float] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        reasoning_effort: str | None = None,
        reasoning_format: Reasoning = "auto",
        chat_template_kwargs: Mapping[str, Any] | None = None,
    ) -> CreateChatCompletionResponse | Iterator[CreateChatCompletionStreamResponse]:
        """An OpenAI-shaped chat completion (``stream=True``: an iterator of chunks).
        ``tools``/``tool_choice`` (and the older ``functions``/``function_call``) go
        through llama.cpp's chat engine: the reply's ``tool_calls`` are parsed in the
        model's format, or llama.cpp's generic JSON one for templates without tools.
        Beyond llama-cpp-python, llama-server's ``reasoning_effort``,
        ``reasoning_format`` and ``chat_template_kwargs`` (read as
        ``llamanb.Llama.create_chat_completion`` reads them)."""
        if self.chat_handler is not None or chat_format.is_python_format(self.chat_format):
            handler = self.chat_handler or chat_format.get_chat_completion_handler(self.chat_format or "")
            return cast(
                CreateChatCompletionResponse | Iterator[CreateChatCompletionStreamResponse],
                handler(
                    llama=self,
                    messages=messages,
                    functions=functions,
                    function_call=function_call,
                    tools=tools,
                    tool_choice=tool_choice,
                    temperature=temperature,
                    top_p=top_p,
                    top_k=top_k,
                    min_p=min_p,
                    typical_p=typical_p,
                    stream=stream,
                    stop=stop,
                    seed=seed,
                    response_format=response_format,
                    max_tokens=max_tokens,
                    presence_penalty=presence_penalty,
                    frequency_penalty=frequency_penalty,
                    repeat_penalty=repeat_penalty,
                    tfs_z=tfs_z,
                    mirostat_mode=mirostat_mode,
                    mirostat_tau=mirostat_tau,
                    mirostat_eta=mirostat_eta,
                    model=model,
                    logits_processor=logits_processor,
                    grammar=grammar,
                    logit_bias=logit_bias,
                ),
            )
        legacy = functions is not None or function_call is not None
        if legacy:
            tools, tool_choice = chat_format.functions_as_tools(functions, function_call, tools, tool_choice)
        params = self._sampling(
            temperature,
            top_k,
            top_p,
            min_p,
            typical_p,
            frequency_penalty,
            presence_penalty,
            repeat_penalty,
            self._next_seed(seed),
            mirostat_mode,
            mirostat_tau,
            mirostat_eta,
            grammar,
            logit_bias,
            logits_processor,
            None,
        )
        chat = openai_api.chat_options(
            {
                "tools": tools,
                "tool_choice": tool_choice,
                "response_format": response_format,
                "reasoning_effort": reasoning_effort,
                "reasoning_format": reasoning_format,
                "chat_template_kwargs": chat_template_kwargs,
            }
        )
        options = GenerateOptions.of(
            completion.max_tokens_of(max_tokens), stop, openai_api.logprobs_count(logprobs, top_logprobs), False
        )
        return completion.chat(self, messages, chat, options, params, model or self.model_path, stream, legacy)

    def create_chat_completion_openai_v1(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`create_chat_completion` as the ``openai`` package's types (``pip install openai``)."""
        try:
            from openai.types.chat import ChatCompletion, ChatCompletionChunk
        except ImportError as e:
            raise ImportError("create_chat_completion_openai_v1 needs the openai package: pip install openai") from e
        result = self.create_chat_completion(*args, **kwargs)
        if kwargs.get("stream"):
            return (ChatCompletionChunk(**chunk) for chunk in cast(Iterator[Any], result))
        return ChatCompletion(**cast(Any, result))


def chat_format_template(name: str | None, handler: Callable[..., Any] | None) -> str | None:
    """The llama.cpp template a ``chat_format`` names (None: the model's own)."""
    if name is None or handler is not None or chat_format.is_python_format(name):
        return None
    template = chat_format.TEMPLATES.get(name)
    if template is None:
        raise ValueError(f"chat_format must be one of {sorted(chat_format.known_formats())}, got {name!r}")
    return template


def _training_context(model_path: str) -> int:
    """n_ctx=0 means the model's training length: read it from a vocab-only load."""
    logs.route_to_logging()
    params = core.ModelParams()
    params.vocab_only = True  # metadata without the weights (hyperparameters are not filled in)
    with core.Model(model_path, params) as model:
        arch = model.meta_val_str("general.architecture")
        value = model.meta_val_str(f"{arch}.context_length") if arch else None
    if value is None or not value.isdigit():
        raise ValueError(f"n_ctx=0 asks for the training context, but {model_path} does not record it")
    return int(value)
