"""``llama_cpp.Llama``'s embeddings (:class:`Embeddings`, a base of
:class:`llamanb.compat.Llama`), and those of a model without pooling: one vector per
token, as llama-cpp-python returns them (llamanb.Llama.embed always pools)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import core
from ..embedding import model_pooling
from ..loading import context_params
from ..openai_types import CreateEmbeddingResponse
from .model_info import ModelInfo

__all__ = ["Embeddings", "TokenEmbedder", "model_pooling"]


class TokenEmbedder:
    """Owns a context with pooling NONE; each text is decoded alone from position 0."""

    def __init__(self, model: core.Model, n_batch: int, n_threads: int) -> None:
        params = context_params(n_batch, n_batch, n_threads, n_ubatch=n_batch, pooling=core.PoolingType.NONE)
        self._ctx = core.Context(model, params)
        self._n_batch = n_batch

    def close(self) -> None:
        self._ctx.close()

    def embed(self, vocab: core.Vocab, text: str, normalize: bool, truncate: bool) -> list[list[float]]:
        tokens: list[int] = vocab.tokenize(text, True, False).tolist()
        if len(tokens) > self._n_batch:
            if not truncate:
                raise ValueError(
                    f"text is {len(tokens)} tokens; the embedding context takes {self._n_batch} "
                    "(n_batch): pass truncate=True or use a larger n_batch"
                )
            tokens = tokens[: self._n_batch]
        batch = core.Batch(len(tokens))
        batch.add_sequence(tokens, 0, 0, False)
        for i in range(len(tokens)):
            batch.set_logits(i, True)
        try:
            self._ctx.decode(batch)
            rows = self._ctx.get_embeddings(copy=True).astype(np.float64)
        finally:
            self._ctx.memory_clear(False)
        if normalize:
            rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        out: list[list[float]] = rows.tolist()
        return out


class Embeddings(ModelInfo):
    """``embed`` and ``create_embedding``, as ``llama_cpp.Llama``'s; the constructor sets
    what they read."""

    _embedder: TokenEmbedder | None  # made on the first unpooled embed()
    model_path: str

    def embed(
        self, input: str | list[str], normalize: bool = False, truncate: bool = True, return_count: bool = False
    ) -> Any:
        """Embeddings as lists: pooled (one vector per text), or one vector per token
        when the model (or ``pooling_type``) has no pooling, as llama-cpp-python. A
        string gives one result, a list a list of them (``return_count``: also the
        number of tokens)."""
        self._require_embedding()
        texts = [input] if isinstance(input, str) else list(input)
        if self._unpooled:
            if self._embedder is None:
                self._embedder = TokenEmbedder(self._model, self.n_batch, self._llm_threads)
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
        return {
            "object": "list",
            "model": model or self.model_path,
            "data": [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        }

    @property
    def _unpooled(self) -> bool:
        if self._pooling is not None:
            return self._pooling == core.PoolingType.NONE
        return model_pooling(self._model) is None

    @property
    def _llm_threads(self) -> int:
        return self._llm.n_threads if self._llm is not None else 1

    def _require_embedding(self) -> None:
        if not self._embedding:
            raise RuntimeError("Llama model must be created with embedding=True to call this method")
