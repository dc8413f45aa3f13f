"""``llamanb.compat.Llama``: the common surface of ``llama_cpp.Llama`` (llama-cpp-python).

Programs written for llama-cpp-python run by changing the import::

    from llamanb.compat import Llama          # was: from llama_cpp import Llama
    llm = Llama(model_path="model.gguf", n_ctx=2048, verbose=False)
    out = llm("Q: Name the planets. A:", max_tokens=32, stop=["Q:", "\\n"], echo=True)
    print(out["choices"][0]["text"])

Same defaults as llama-cpp-python (``n_ctx=512``, ``verbose=True``, ``max_tokens=16``
for completions, ``temperature=0.2`` for chat). Options that tune llama.cpp internals
(``use_mmap``, ``flash_attn``, ``n_ubatch``, ...) are accepted and left to llamanb's
defaults. ``logits_processor`` (a function ``(input_ids, scores) -> scores`` or a
:class:`LogitsProcessorList`) runs as the first sampler of llama.cpp's chain, in
Python per token. Options llamanb does not have (``stopping_criteria``, ``suffix``
infill) raise ``NotImplementedError`` rather than being ignored. ``draft_model`` takes
:class:`LlamaPromptLookupDecoding` (llama-cpp-python's prompt lookup), which runs as
llama.cpp's own n-gram speculation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import core, logs, openai_api
from .cache import SavedState
from .chat import ChatOptions, Message, ToolChoice
from .generation import GenerateOptions
from .json_schema import json_schema_to_grammar
from .llama import Llama as _Llama
from .logits_processor import LogitsProcessor
from .openai_types import (
    CreateChatCompletionResponse,
    CreateChatCompletionStreamResponse,
    CreateCompletionResponse,
    CreateCompletionStreamResponse,
    CreateEmbeddingResponse,
    ResponseFormat,
)
from .sampling import SamplingParams
from .speculative import SpeculativeOptions

LLAMA_DEFAULT_SEED = core.DEFAULT_SEED

# llama-cpp-python chat_format names → llama.cpp built-in template names.
_CHAT_FORMATS = {
    "chatml": "chatml", "llama-2": "llama2", "llama-3": "llama3", "mistral-instruct": "mistral-v1",
    "gemma": "gemma", "phi3": "phi3", "zephyr": "zephyr", "vicuna": "vicuna", "openchat": "openchat",
}
# Constructor options that only tune llama.cpp internals: accepted, llamanb decides.
_TUNING = frozenset({
    "split_mode", "main_gpu", "tensor_split", "vocab_only", "use_mmap", "use_mlock", "kv_overrides",
    "n_ubatch", "n_threads_batch", "rope_scaling_type", "rope_freq_base", "rope_freq_scale",
    "yarn_ext_factor", "yarn_attn_factor", "yarn_beta_fast", "yarn_beta_slow", "yarn_orig_ctx",
    "logits_all", "offload_kqv", "flash_attn", "op_offload", "swa_full", "no_perf", "last_n_tokens_size",
    "numa", "type_k", "type_v", "spm_infill", "tokenizer", "chat_handler",
})


class LlamaPromptLookupDecoding:
    """``llama_cpp.llama_speculative.LlamaPromptLookupDecoding``: drafts the tokens that
    followed the last ``max_ngram_size`` tokens where they occurred before in the context,
    up to ``num_pred_tokens`` of them. Runs as llama.cpp's ``ngram-simple`` speculation
    (which looks up that n-gram only, not shorter ones as llama-cpp-python's does); the
    output is what decoding without it gives."""

    def __init__(self, max_ngram_size: int = 2, num_pred_tokens: int = 10) -> None:
        if max_ngram_size < 1 or num_pred_tokens < 1:
            raise ValueError(f"max_ngram_size and num_pred_tokens must be >= 1, got {max_ngram_size} and "
                             f"{num_pred_tokens}")
        self.max_ngram_size = max_ngram_size
        self.num_pred_tokens = num_pred_tokens

    @property
    def options(self) -> SpeculativeOptions:
        return SpeculativeOptions(("ngram-simple",), draft_max=self.num_pred_tokens, ngram_size=self.max_ngram_size)


class LlamaGrammar:
    """A GBNF grammar, as ``llama_cpp.LlamaGrammar`` builds it."""

    def __init__(self, grammar: str) -> None:
        self.grammar = grammar

    @classmethod
    def from_string(cls, grammar: str, verbose: bool = True) -> LlamaGrammar:
        return cls(grammar)

    @classmethod
    def from_file(cls, file: str | os.PathLike[str], verbose: bool = True) -> LlamaGrammar:
        return cls(Path(file).read_text())

    @classmethod
    def from_json_schema(cls, json_schema: str, verbose: bool = True) -> LlamaGrammar:
        return cls(json_schema_to_grammar(json.loads(json_schema)))


@dataclass
class LlamaState:
    """A saved context state, as ``llama_cpp.LlamaState``."""

    input_ids: npt.NDArray[np.intc]
    n_tokens: int
    llama_state: bytes = field(repr=False)
    llama_state_size: int
    seed: int


class Llama:
    """A drop-in for ``llama_cpp.Llama`` over :class:`llamanb.Llama`."""

    def __init__(
        self,
        model_path: str,
        *,
        n_gpu_layers: int = 0,
        seed: int = LLAMA_DEFAULT_SEED,
        n_ctx: int = 512,
        n_batch: int = 512,
        n_threads: int | None = None,
        pooling_type: int = -1,
        embedding: bool = False,
        chat_format: str | None = None,
        verbose: bool = True,
        rpc_servers: str | None = None,
        draft_model: LlamaPromptLookupDecoding | None = None,
        lora_path: str | None = None,
        lora_scale: float = 1.0,
        lora_base: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``lora_path``/``lora_scale``: one LoRA adapter for every call, as
        llama-cpp-python applies it; ``lora_base`` is accepted and unused, as there
        (llama.cpp's adapters apply to the loaded model itself)."""
        if draft_model is not None and not isinstance(draft_model, LlamaPromptLookupDecoding):
            raise NotImplementedError("llamanb.compat.Llama takes draft_model=LlamaPromptLookupDecoding(...) only "
                                      "(a draft model of your own runs Python per token); for a smaller draft "
                                      "model use llamanb.Llama(draft_model='draft.gguf')")
        unknown = set(kwargs) - _TUNING
        if unknown:
            raise TypeError(f"Llama() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        if chat_format is not None and chat_format not in _CHAT_FORMATS:
            raise ValueError(f"chat_format must be one of {sorted(_CHAT_FORMATS)}, got {chat_format!r}")
        self.model_path = model_path
        self.verbose = verbose
        self.chat_format = chat_format
        self._embedding = embedding
        self._pooling = None if pooling_type < 0 else core.PoolingType(pooling_type)
        self._seed = None if seed == LLAMA_DEFAULT_SEED else seed
        self._llm = _Llama(
            model_path,
            n_ctx=n_ctx if n_ctx > 0 else _training_context(model_path),
            n_batch=n_batch,
            n_threads=n_threads,
            n_gpu_layers=n_gpu_layers,
            seed=self._seed,
            verbose=verbose,
            chat_template=_CHAT_FORMATS[chat_format] if chat_format else None,
            # llama-cpp-python's form: "host:port,host:port"; layers go there per n_gpu_layers
            rpc_servers=[s.strip() for s in rpc_servers.split(",")] if rpc_servers else None,
            speculative=None if draft_model is None else draft_model.options,
            lora=[(lora_path, lora_scale)] if lora_path else (),
        )

    # -- model facts ----------------------------------------------------------

    @property
    def metadata(self) -> dict[str, str]:
        return self._llm.model.meta

    def n_ctx(self) -> int:
        return self._llm.n_ctx

    def n_embd(self) -> int:
        return self._llm.model.n_embd

    def n_vocab(self) -> int:
        return self._llm.vocab.n_tokens

    def token_bos(self) -> int:
        return self._llm.vocab.bos

    def token_eos(self) -> int:
        return self._llm.vocab.eos

    def token_nl(self) -> int:
        return self._llm.vocab.nl

    @property
    def n_tokens(self) -> int:
        """Tokens evaluated into the context (kept for reuse by the next call)."""
        return len(self._llm.cached_tokens)

    @property
    def input_ids(self) -> npt.NDArray[np.intc]:
        return np.array(self._llm.cached_tokens, dtype=np.intc)

    # -- tokens ---------------------------------------------------------------

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        """Token ids of UTF-8 ``text``; ``add_bos`` adds the model's special tokens."""
        return self._llm.tokenize(text.decode("utf-8"), add_special=add_bos, parse_special=special)

    def detokenize(self, tokens: Sequence[int], prev_tokens: Sequence[int] | None = None,
                   special: bool = False) -> bytes:
        """UTF-8 bytes of ``tokens`` (``prev_tokens`` is accepted and unused)."""
        return self._llm.vocab.detokenize(list(tokens), False, special)

    # -- state ----------------------------------------------------------------

    def reset(self) -> None:
        self._llm.reset()

    def save_state(self) -> LlamaState:
        state = self._llm.save_state()
        return LlamaState(np.array(state.tokens, dtype=np.intc), len(state.tokens), state.data,
                          len(state.data), self._seed if self._seed is not None else LLAMA_DEFAULT_SEED)

    def load_state(self, state: LlamaState) -> None:
        tokens = tuple(int(t) for t in state.input_ids[: state.n_tokens])
        self._llm.load_state(SavedState(tokens, state.llama_state))

    def set_seed(self, seed: int) -> None:
        self._seed = None if seed == LLAMA_DEFAULT_SEED else seed
        self._llm.seed = self._seed

    def close(self) -> None:
        self._llm.close()

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
        stopping_criteria: object = None,
        logits_processor: LogitsProcessor | Sequence[LogitsProcessor] | None = None,
        grammar: LlamaGrammar | str | None = None,
        logit_bias: Mapping[int | str, float] | None = None,
    ) -> CreateCompletionResponse | Iterator[CreateCompletionStreamResponse]:
        """An OpenAI-shaped completion (``stream=True``: an iterator of chunks)."""
        if suffix is not None:
            raise NotImplementedError("suffix (fill-in-the-middle) is not supported")
        if stopping_criteria is not None:
            raise NotImplementedError("stopping_criteria is not supported (use stop=, max_tokens= or grammar=)")
        params = self._sampling(temperature, top_k, top_p, min_p, typical_p, frequency_penalty, presence_penalty,
                                repeat_penalty, seed, mirostat_mode, mirostat_tau, mirostat_eta, grammar, logit_bias,
                                logits_processor)
        options = GenerateOptions.of(_max_tokens(max_tokens), stop, logprobs, echo)
        run = self._llm.start(prompt, options=options, sampling=params)
        name = model or self.model_path
        if stream:
            return openai_api.completion_chunks(run.seq, run, name)
        run.finish()
        return openai_api.completion(run.seq, name)

    __call__ = create_completion

    def create_chat_completion(
        self,
        messages: Sequence[Message],
        functions: object = None,
        function_call: object = None,
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
        grammar: LlamaGrammar | str | None = None,
        logit_bias: Mapping[int | str, float] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
    ) -> CreateChatCompletionResponse | Iterator[CreateChatCompletionStreamResponse]:
        """An OpenAI-shaped chat completion (``stream=True``: an iterator of chunks).
        ``tools`` and ``tool_choice`` go through llama.cpp's chat engine: the reply's
        ``tool_calls`` are parsed in the model's format (``finish_reason`` "tool_calls")."""
        if functions is not None or function_call is not None:
            raise NotImplementedError("functions/function_call are not supported; pass tools to the template")
        params = self._sampling(temperature, top_k, top_p, min_p, typical_p, frequency_penalty, presence_penalty,
                                repeat_penalty, seed, mirostat_mode, mirostat_tau, mirostat_eta, grammar, logit_bias,
                                logits_processor)
        chat = ChatOptions(tools=tools, tool_choice=tool_choice, json_schema=openai_api.response_schema(response_format))
        options = GenerateOptions.of(_max_tokens(max_tokens), stop, (top_logprobs or 0) if logprobs else None, False)
        run = self._llm.start_chat(messages, chat=chat, options=options, sampling=params)
        name = model or self.model_path
        if stream:
            return openai_api.chat_chunks(run.seq, run.reply, run.run, name)
        run.run.finish()
        return openai_api.chat_completion(run.seq, run.reply, name)

    # -- embeddings -----------------------------------------------------------

    def embed(
        self, input: str | list[str], normalize: bool = False, truncate: bool = True, return_count: bool = False
    ) -> Any:
        """Pooled embeddings as lists: one list of floats for a string, a list of them
        for a list (``return_count``: also the number of tokens)."""
        self._require_embedding()
        texts = [input] if isinstance(input, str) else list(input)
        vectors = self._llm.embed(texts, pooling=self._pooling, normalize=normalize, truncate=truncate)
        rows: list[list[float]] = vectors.tolist()
        result: Any = rows[0] if isinstance(input, str) else rows
        if return_count:
            return result, sum(len(self._llm.tokenize(t)) for t in texts)
        return result

    def create_embedding(self, input: str | list[str], model: str | None = None) -> CreateEmbeddingResponse:
        """An OpenAI-shaped embedding response (vectors not normalized, as llama-cpp-python)."""
        self._require_embedding()
        response = self._llm.create_embedding(input, pooling=self._pooling, normalize=False, truncate=True)
        response["model"] = model or self.model_path
        return response

    # -- helpers --------------------------------------------------------------

    def _require_embedding(self) -> None:
        if not self._embedding:
            raise RuntimeError("Llama model must be created with embedding=True to call this method")

    def _sampling(
        self, temperature: float, top_k: int, top_p: float, min_p: float, typical_p: float, frequency_penalty: float,
        presence_penalty: float, repeat_penalty: float, seed: int | None, mirostat_mode: int, mirostat_tau: float,
        mirostat_eta: float, grammar: LlamaGrammar | str | None, logit_bias: Mapping[int | str, float] | None,
        logits_processor: LogitsProcessor | Sequence[LogitsProcessor] | None,
    ) -> SamplingParams:
        if seed is None or seed == LLAMA_DEFAULT_SEED:
            seed = self._seed
        return SamplingParams(
            temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, seed=seed, typical_p=typical_p,
            repeat_penalty=repeat_penalty, frequency_penalty=frequency_penalty, presence_penalty=presence_penalty,
            mirostat=mirostat_mode, mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta,
            grammar=grammar.grammar if isinstance(grammar, LlamaGrammar) else grammar,
            logit_bias={int(k): float(v) for k, v in logit_bias.items()} if logit_bias else None,
            logits_processors=_processors(logits_processor),
        )


def _max_tokens(max_tokens: int | None) -> int | None:
    # llama-cpp-python: None or <= 0 means "until the context is full".
    return None if max_tokens is None or max_tokens <= 0 else max_tokens


class LogitsProcessorList(list[LogitsProcessor]):
    """llama-cpp-python's: logits processors applied in order."""

    def __call__(self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> npt.NDArray[np.single]:
        for process in self:
            scores = process(input_ids, scores)
        return scores


def _processors(value: LogitsProcessor | Sequence[LogitsProcessor] | None) -> tuple[LogitsProcessor, ...]:
    """``logits_processor=``: one function, or a list of them (a LogitsProcessorList)."""
    if value is None:
        return ()
    if isinstance(value, Sequence):
        return tuple(value)
    if callable(value):
        return (value,)
    raise TypeError(f"logits_processor must be a function (input_ids, scores) -> scores or a list of them, "
                    f"got {type(value).__name__}")


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
