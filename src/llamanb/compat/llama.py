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
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from .. import core, hub, logs
from ..sequence_cache import SavedState, SequenceCache, common_prefix
from ..chat import ChatOptions, Message, ToolChoice
from ..generation import GenerateOptions
from ..llama import Llama as _Llama
from ..logits_processor import LogitsProcessor
from ..openai_types import (
    CreateChatCompletionResponse,
    CreateChatCompletionStreamResponse,
    CreateCompletionResponse,
    CreateCompletionStreamResponse,
    CreateEmbeddingResponse,
    ResponseFormat,
)
from ..sampling import SamplingParams
from . import chat_format, completion, embeddings
from .cache import BaseLlamaCache
from .grammar import LlamaGrammar
from .options import LoadOptions, refuse_unsupported
from .processors import StoppingCriteria, as_processors, stopping_processor
from .speculative import LlamaDraftModel, LlamaPromptLookupDecoding
from .state import LlamaState
from .tokenizer import LlamaTokenizer, detokenize

LLAMA_DEFAULT_SEED = core.DEFAULT_SEED
Grammar = LlamaGrammar | str | None


class Llama:
    """A drop-in for ``llama_cpp.Llama`` over :class:`llamanb.Llama`."""

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
            raise NotImplementedError("n_parts is not supported: llama.cpp finds a split GGUF's parts itself; "
                                      "pass the first part's path")
        if not f16_kv:  # an F32 KV cache, unless type_k/type_v say otherwise
            type_k = int(core.ggml.GGMLType.F32) if type_k is None else type_k
            type_v = int(core.ggml.GGMLType.F32) if type_v is None else type_v
        if seed == -1:
            seed = LLAMA_DEFAULT_SEED
        if draft_model is not None and not isinstance(draft_model, LlamaPromptLookupDecoding):
            raise NotImplementedError("llamanb.compat.Llama takes draft_model=LlamaPromptLookupDecoding(...) only "
                                      "(a draft model of your own runs Python per token); for a smaller draft "
                                      "model use llamanb.Llama(draft_model='draft.gguf')")
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
        self._requires_eval = True  # the context's last logits are not from a live decode
        self._rows: dict[int, npt.NDArray[np.single]] = {}  # logits rows kept for ``scores``
        load = LoadOptions(split_mode, main_gpu, use_mmap, use_mlock, n_ubatch, n_threads_batch, rope_scaling_type,
                           rope_freq_base, rope_freq_scale, yarn_ext_factor, yarn_attn_factor, yarn_beta_fast,
                           yarn_beta_slow, yarn_orig_ctx, offload_kqv, flash_attn, attention_type, op_offload, type_k,
                           type_v)
        self._load_options = load
        self._n_gpu_layers, self._vocab_only = n_gpu_layers, vocab_only
        self._llm: _Llama | None = None
        if vocab_only:
            logs.route_to_logging()
            params = load.model_options().params()
            params.vocab_only = True
            self._model = core.Model(model_path, params)
        else:
            self._llm = _Llama(
                model_path,
                n_ctx=n_ctx if n_ctx > 0 else _training_context(model_path),
                n_batch=n_batch, n_threads=n_threads, n_gpu_layers=n_gpu_layers,
                seed=None if seed == LLAMA_DEFAULT_SEED else seed, verbose=verbose, chat_template=template,
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
        self._embedder: embeddings.TokenEmbedder | None = None

    @classmethod
    def from_pretrained(cls, repo_id: str, filename: str, additional_files: Sequence[str] | None = None,
                        local_dir: str | os.PathLike[str] | None = None, local_dir_use_symlinks: bool | str = "auto",
                        cache_dir: str | os.PathLike[str] | None = None, **kwargs: Any) -> Llama:
        """A GGUF from the Hugging Face Hub (``pip install 'llamanb[hub]'``): ``filename`` may
        be a glob matching one file; files stay in huggingface_hub's cache (``cache_dir``)."""
        if additional_files or local_dir is not None:
            raise NotImplementedError("additional_files and local_dir are not supported: split GGUFs are fetched "
                                      "whole from filename (its first part); use cache_dir= for the location")
        path = hub.download(repo_id, filename, cache_dir=cache_dir)
        return cls(model_path=str(path), **kwargs)

    # -- pickling: the constructor's arguments, as llama-cpp-python --------------

    def __getstate__(self) -> dict[str, Any]:
        return dict(self._init_args)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    # -- model facts ----------------------------------------------------------

    @property
    def _context(self) -> core.Context:
        if self._llm is None:
            raise RuntimeError("this Llama was loaded with vocab_only=True: it has no context to evaluate with")
        return self._llm.context

    @property
    def _cache(self) -> SequenceCache:
        if self._llm is None:
            raise RuntimeError("this Llama was loaded with vocab_only=True: it has no context to evaluate with")
        return self._llm._cache

    @property
    def _ctx(self) -> Any:
        from .internals import LlamaContext

        return LlamaContext.of(self._llm.context if self._llm is not None else None, self._model)

    @property
    def ctx(self) -> core.Context:
        return self._context

    @property
    def model(self) -> core.Model:
        return self._model

    @property
    def model_params(self) -> core.ModelParams:
        """The model's load parameters (``llama_cpp.Llama.model_params``), a copy."""
        params = self._load_options.model_options().params()
        params.n_gpu_layers = self._n_gpu_layers
        params.vocab_only = self._vocab_only
        return params

    @property
    def context_params(self) -> core.ContextParams:
        """The context's parameters (``llama_cpp.Llama.context_params``), a copy: the
        sizes and threads as llama.cpp applied them (``n_ctx`` after its rounding)."""
        params = core.ContextParams()
        self._load_options.context_options(self.n_batch).apply(params)
        params.embeddings = self._embedding
        if self._pooling is not None:
            params.pooling_type = self._pooling
        if self._llm is None:
            params.n_ctx = self.n_ctx()
            return params
        ctx = self._llm.context
        params.n_ctx, params.n_batch, params.n_ubatch = ctx.n_ctx, ctx.n_batch, ctx.n_ubatch
        params.n_seq_max, params.n_threads, params.n_threads_batch = ctx.n_seq_max, ctx.n_threads, ctx.n_threads_batch
        return params

    @property
    def metadata(self) -> dict[str, str]:
        return self._model.meta

    @property
    def _is_recurrent(self) -> bool:
        return self._model.is_recurrent

    @property
    def _is_hybrid(self) -> bool:
        return self._model.is_hybrid

    def n_ctx(self) -> int:
        return self._llm.n_ctx if self._llm is not None else self._model.n_ctx_train

    def n_embd(self) -> int:
        return self._model.n_embd

    def n_vocab(self) -> int:
        return self._vocab.n_tokens

    def tokenizer(self) -> LlamaTokenizer:
        return self.tokenizer_

    def token_bos(self) -> int:
        return self._vocab.bos

    def token_eos(self) -> int:
        return self._vocab.eos

    def token_nl(self) -> int:
        return self._vocab.nl

    def pooling_type(self) -> str:
        return str(self._pooling)

    # -- tokens ---------------------------------------------------------------

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        """Token ids of UTF-8 ``text``; ``add_bos`` adds the model's special tokens."""
        ids: list[int] = self._vocab.tokenize(text.decode("utf-8", errors="ignore"), add_bos, special).tolist()
        return ids

    def detokenize(self, tokens: Sequence[int], prev_tokens: Sequence[int] | None = None,
                   special: bool = False) -> bytes:
        """UTF-8 bytes of ``tokens``; a leading BOS drops the space SentencePiece puts in
        front of the first word (llama-cpp-python's rule). ``prev_tokens``: the tokens
        before these, so a word's leading space comes out as it would in context."""
        return detokenize(self._vocab, tokens, prev_tokens, special)

    @staticmethod
    def longest_token_prefix(a: Sequence[int], b: Sequence[int]) -> int:
        return common_prefix(a, b)

    @staticmethod
    def logits_to_logprobs(logits: npt.ArrayLike, axis: int = -1) -> npt.NDArray[np.single]:
        values = np.asarray(logits, dtype=np.single)
        shifted = values - values.max(axis=axis, keepdims=True)
        out: npt.NDArray[np.single] = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return out

    # -- the evaluated tokens and their logits ----------------------------------

    @property
    def n_tokens(self) -> int:
        """Tokens evaluated into the context (kept for reuse by the next call)."""
        return 0 if self._llm is None else len(self._cache.tokens)

    @n_tokens.setter
    def n_tokens(self, value: int) -> None:
        if not self._cache.truncate(value):
            self._rows.clear()
        self._requires_eval = True

    @property
    def input_ids(self) -> npt.NDArray[np.intc]:
        return np.array(self._cache.tokens if self._llm is not None else [], dtype=np.intc)

    @property
    def _input_ids(self) -> npt.NDArray[np.intc]:
        return self.input_ids

    @property
    def scores(self) -> npt.NDArray[np.single]:
        """Logits rows of the evaluated tokens, shape (n_tokens, n_vocab): every row with
        ``logits_all=True``, else the last one only (the others are zero)."""
        out = np.zeros((self.n_tokens, self.n_vocab()), dtype=np.single)
        for i, row in self._rows.items():
            if i < len(out):
                out[i] = row
        if len(out) and not self._requires_eval and not self._rows.get(len(out) - 1) is not None:
            out[-1] = self._context.get_logits_ith(-1)
        return out

    _scores = scores

    def eval(self, tokens: Sequence[int]) -> None:
        """Decode ``tokens`` after the first :attr:`n_tokens` held tokens."""
        cache = self._cache
        cache.truncate(len(cache.tokens))
        tokens = list(tokens)
        if not self._logits_all:
            cache.extend(tokens)
        else:
            for start in range(0, len(tokens), self.n_batch):
                chunk = tokens[start:start + self.n_batch]
                n_past = len(cache.tokens)
                batch = core.Batch(len(chunk))
                batch.add_sequence(chunk, n_past, 0, False)
                for i in range(len(chunk)):
                    batch.set_logits(i, True)
                try:
                    self._context.decode(batch)
                except BaseException:
                    cache.clear()
                    raise
                cache.tokens.extend(chunk)
                rows = self._context.get_logits(copy=True)
                self._rows.update({n_past + i: rows[i] for i in range(len(chunk))})
        self._requires_eval = False

    def sample(self, top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05, typical_p: float = 1.0,
               temp: float = 0.80, repeat_penalty: float = 1.0, frequency_penalty: float = 0.0,
               presence_penalty: float = 0.0, tfs_z: float = 1.0, mirostat_mode: int = 0, mirostat_eta: float = 0.1,
               mirostat_tau: float = 5.0, penalize_nl: bool = True,
               logits_processor: LogitsProcessor | Sequence[LogitsProcessor] | None = None,
               grammar: Grammar = None, idx: int | None = None) -> int:
        """One token sampled from the logits of position ``idx`` (the last by default)."""
        if self.n_tokens == 0:
            raise RuntimeError("sample() needs evaluated tokens: call eval() first")
        params = self._sampling(temp, top_k, top_p, min_p, typical_p, frequency_penalty, presence_penalty,
                                repeat_penalty, self._seed, mirostat_mode, mirostat_tau, mirostat_eta, grammar, None,
                                logits_processor, None)
        sampler = params.build(self._vocab, self._cache.tokens)
        try:
            return sampler.sample(self._context, -1 if idx is None else idx - self.n_tokens)
        finally:
            sampler.close()

    def generate(self, tokens: Sequence[int], top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05,
                 typical_p: float = 1.0, temp: float = 0.80, repeat_penalty: float = 1.0, reset: bool = True,
                 frequency_penalty: float = 0.0, presence_penalty: float = 0.0, tfs_z: float = 1.0,
                 mirostat_mode: int = 0, mirostat_tau: float = 5.0, mirostat_eta: float = 0.1,
                 penalize_nl: bool = True, logits_processor: LogitsProcessor | Sequence[LogitsProcessor] | None = None,
                 stopping_criteria: StoppingCriteria | Sequence[StoppingCriteria] | None = None,
                 grammar: Grammar = None) -> Iterator[int]:
        """Tokens sampled one by one after ``tokens`` (which reuse the held prefix). Send
        a list of tokens into the generator to evaluate them after the one yielded."""
        params = self._sampling(temp, top_k, top_p, min_p, typical_p, frequency_penalty, presence_penalty,
                                repeat_penalty, self._seed, mirostat_mode, mirostat_tau, mirostat_eta, grammar, None,
                                logits_processor, stopping_criteria)
        return self._generate(list(tokens), params, reset, stopping_criteria is not None)

    def _generate(self, tokens: list[int], params: SamplingParams, reset: bool, criteria: bool) -> Iterator[int]:
        cache = self._cache
        history = list(tokens)
        if reset and cache.tokens:
            prefix = common_prefix(cache.tokens, tokens)
            if prefix == len(tokens) == len(cache.tokens) and not self._requires_eval:
                tokens, reset = [], False  # the prompt is held and its logits are live
            else:
                keep = prefix - 1 if prefix == len(tokens) else prefix  # re-evaluate one for fresh logits
                if keep > 0 and cache.truncate(keep):
                    tokens, reset = tokens[keep:], False
        if reset:
            self.reset()
        sampler = params.build(self._vocab, history)
        try:
            while True:
                if tokens:
                    self.eval(tokens)
                token = sampler.sample(self._context, -1)
                if criteria and self._vocab.is_eog(token):
                    return  # the stopping criteria said so (their processor leaves only EOS)
                more = yield token
                tokens = [token, *(more or ())]
        finally:
            sampler.close()

    def reset(self) -> None:
        """Forget the evaluated tokens."""
        if self._llm is not None:
            self._llm.reset()
        self._rows.clear()
        self._requires_eval = True

    def set_cache(self, cache: BaseLlamaCache | None) -> None:
        """States of earlier completions to start from (:class:`LlamaRAMCache`, ...)."""
        self.cache = cache

    # -- state ----------------------------------------------------------------

    def save_state(self) -> LlamaState:
        state = self._llm.save_state() if self._llm is not None else SavedState((), b"")
        return LlamaState(np.array(state.tokens, dtype=np.intc), self.scores, len(state.tokens), state.data,
                          len(state.data), self._seed)

    def load_state(self, state: LlamaState) -> None:
        tokens = tuple(int(t) for t in state.input_ids[: state.n_tokens])
        if self._llm is not None:
            self._llm.load_state(SavedState(tokens, state.llama_state))
        self._rows = {i: row for i, row in enumerate(state.scores[: state.n_tokens]) if row.any()}
        self._seed = state.seed
        self._requires_eval = True  # as llama-cpp-python: restored logits are not sampled from directly

    def set_seed(self, seed: int) -> None:
        self._seed = seed

    def _next_seed(self, seed: int | None) -> int:
        """llama-cpp-python's rule: a call's ``seed``, else one drawn from the last seed."""
        self.set_seed(seed if seed is not None else random.Random(self._seed).randint(0, 2**32))
        return self._seed

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
        params = self._sampling(temperature, top_k, top_p, min_p, typical_p, frequency_penalty, presence_penalty,
                                repeat_penalty, self._next_seed(seed), mirostat_mode, mirostat_tau, mirostat_eta,
                                grammar, logit_bias, logits_processor, stopping_criteria)
        request = completion.Request(prompt, suffix, max_tokens, logprobs, echo, stop, model or self.model_path,
                                     self.spm_infill)
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
    ) -> CreateChatCompletionResponse | Iterator[CreateChatCompletionStreamResponse]:
        """An OpenAI-shaped chat completion (``stream=True``: an iterator of chunks).
        ``tools``/``tool_choice`` (and the older ``functions``/``function_call``) go
        through llama.cpp's chat engine: the reply's ``tool_calls`` are parsed in the
        model's format, or llama.cpp's generic JSON one for templates without tools."""
        if self.chat_handler is not None or chat_format.is_python_format(self.chat_format):
            handler = self.chat_handler or chat_format.get_chat_completion_handler(self.chat_format or "")
            return cast(CreateChatCompletionResponse | Iterator[CreateChatCompletionStreamResponse], handler(
                llama=self, messages=messages, functions=functions, function_call=function_call, tools=tools,
                tool_choice=tool_choice, temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                typical_p=typical_p, stream=stream, stop=stop, seed=seed, response_format=response_format,
                max_tokens=max_tokens, presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
                repeat_penalty=repeat_penalty, tfs_z=tfs_z, mirostat_mode=mirostat_mode, mirostat_tau=mirostat_tau,
                mirostat_eta=mirostat_eta, model=model, logits_processor=logits_processor, grammar=grammar,
                logit_bias=logit_bias))
        legacy = functions is not None or function_call is not None
        if legacy:
            tools, tool_choice = chat_format.functions_as_tools(functions, function_call, tools, tool_choice)
        params = self._sampling(temperature, top_k, top_p, min_p, typical_p, frequency_penalty, presence_penalty,
                                repeat_penalty, self._next_seed(seed), mirostat_mode, mirostat_tau, mirostat_eta,
                                grammar, logit_bias, logits_processor, None)
        chat = ChatOptions(tools=tools, tool_choice=tool_choice,
                           json_schema=completion.response_schema(response_format))
        options = GenerateOptions.of(completion.max_tokens_of(max_tokens), stop,
                                     (top_logprobs or 0) if logprobs else None, False)
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

    # -- embeddings -----------------------------------------------------------

    def embed(self, input: str | list[str], normalize: bool = False, truncate: bool = True,
              return_count: bool = False) -> Any:
        """Embeddings as lists: pooled (one vector per text), or one vector per token
        when the model (or ``pooling_type``) has no pooling, as llama-cpp-python. A
        string gives one result, a list a list of them (``return_count``: also the
        number of tokens)."""
        self._require_embedding()
        texts = [input] if isinstance(input, str) else list(input)
        if self._unpooled:
            if self._embedder is None:
                self._embedder = embeddings.TokenEmbedder(self._model, self.n_batch, self._llm_threads)
            results: list[Any] = [self._embedder.embed(self._vocab, t, normalize, truncate) for t in texts]
        else:
            assert self._llm is not None
            vectors = self._llm.embed(texts, pooling=self._pooling, normalize=normalize, truncate=truncate)
            results = vectors.tolist()
        result: Any = results[0] if isinstance(input, str) else results
        if return_count:
            return result, sum(len(self.tokenize(t.encode())) for t in texts)
        return result

    def create_embedding(self, input: str | list[str], model: str | None = None) -> CreateEmbeddingResponse:
        """An OpenAI-shaped embedding response (vectors not normalized, as llama-cpp-python)."""
        texts = [input] if isinstance(input, str) else list(input)
        vectors, n_tokens = self.embed(texts, return_count=True)
        return {"object": "list", "model": model or self.model_path,
                "data": [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}

    @property
    def _unpooled(self) -> bool:
        if self._pooling is not None:
            return self._pooling == core.PoolingType.NONE
        return embeddings.model_pooling(self._model) is None

    @property
    def _llm_threads(self) -> int:
        return self._llm.n_threads if self._llm is not None else 1

    # -- helpers --------------------------------------------------------------

    def _require_embedding(self) -> None:
        if not self._embedding:
            raise RuntimeError("Llama model must be created with embedding=True to call this method")

    def _sampling(
        self, temperature: float, top_k: int, top_p: float, min_p: float, typical_p: float, frequency_penalty: float,
        presence_penalty: float, repeat_penalty: float, seed: int, mirostat_mode: int, mirostat_tau: float,
        mirostat_eta: float, grammar: Grammar, logit_bias: Mapping[int | str, float] | None,
        logits_processor: LogitsProcessor | Sequence[LogitsProcessor] | None,
        stopping_criteria: StoppingCriteria | Sequence[StoppingCriteria] | None,
    ) -> SamplingParams:
        processors = as_processors(logits_processor)
        if stopping_criteria is not None:
            processors += (stopping_processor(stopping_criteria, self._vocab),)
        seed %= 2**32  # llama-cpp-python hands it to a uint32_t
        return SamplingParams(
            temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
            seed=None if seed == LLAMA_DEFAULT_SEED else seed, typical_p=typical_p,
            repeat_penalty=repeat_penalty, frequency_penalty=frequency_penalty, presence_penalty=presence_penalty,
            penalty_last_n=self.last_n_tokens_size,
            mirostat=mirostat_mode, mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta,
            grammar=grammar.grammar if isinstance(grammar, LlamaGrammar) else grammar,
            logit_bias={int(k): float(v) for k, v in logit_bias.items()} if logit_bias else None,
            logits_processors=processors,
        )


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
