"""What ``llama_cpp.Llama`` tells about its model and vocabulary: sizes, special tokens,
load and context parameters, metadata, and tokenizing. :class:`llamanb.compat.Llama` is
built on it; the constructor sets what it reads."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .. import core
from ..llama import Llama as _Llama
from ..sequence_cache import common_prefix
from .options import LoadOptions
from .tokenizer import LlamaTokenizer, detokenize


class ModelInfo:
    """The model's facts and its tokenizer, as ``llama_cpp.Llama``'s methods of those names."""

    _llm: _Llama | None  # None for a vocab_only load
    _model: core.Model
    _vocab: core.Vocab
    _load_options: LoadOptions
    _n_gpu_layers: int
    _vocab_only: bool
    _embedding: bool
    _pooling: core.PoolingType | None
    n_batch: int
    tokenizer_: LlamaTokenizer

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

    def detokenize(
        self, tokens: Sequence[int], prev_tokens: Sequence[int] | None = None, special: bool = False
    ) -> bytes:
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
