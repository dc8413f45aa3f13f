"""Embeddings of a model without pooling: one vector per token, as llama-cpp-python
returns them (llamanb.Llama.embed always pools)."""

from __future__ import annotations

import numpy as np

from .. import core
from ..embedding import model_pooling
from ..loading import context_params

__all__ = ["TokenEmbedder", "model_pooling"]


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
                raise ValueError(f"text is {len(tokens)} tokens; the embedding context takes {self._n_batch} "
                                 "(n_batch): pass truncate=True or use a larger n_batch")
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
