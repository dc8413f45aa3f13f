"""Embeddings and reranking on a separate embedding context.

Many texts are packed into each decode as separate sequences; llama.cpp pools each
sequence (mean, CLS, last token, or a reranker's score). A text must fit in one
batch, since pooling happens within one; longer ones raise or are truncated, as asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from . import core
from .loading import Runtime, context_params

PoolingName = Literal["mean", "cls", "last", "rank", "none"]
Pooling = core.PoolingType | PoolingName

_BY_NAME = {
    "mean": core.PoolingType.MEAN,
    "cls": core.PoolingType.CLS,
    "last": core.PoolingType.LAST,
    "rank": core.PoolingType.RANK,
    "none": core.PoolingType.NONE,
}


def model_pooling(model: core.Model) -> core.PoolingType | None:
    """The pooling a model declares in its GGUF metadata, or None (a plain LM)."""
    arch = model.meta_val_str("general.architecture")
    value = model.meta_val_str(f"{arch}.pooling_type") if arch else None
    if value is None or not value.lstrip("-").isdigit():
        return None
    pooling = core.PoolingType(int(value))
    return None if pooling in (core.PoolingType.NONE, core.PoolingType.UNSPECIFIED) else pooling


class Embedder:
    """Owns the embedding context (created on first use, kept while it fits the call)."""

    def __init__(self, runtime: Runtime, max_tokens: int) -> None:
        self._runtime = runtime
        self._model = runtime.model
        self.max_tokens = max_tokens  # tokens per text, and per decode
        self._ctx: core.Context | None = None

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None

    def embed(
        self,
        texts: Sequence[str],
        *,
        pooling: Pooling | None = None,
        normalize: bool = True,
        batch_size: int = 64,
        truncate: bool = False,
    ) -> npt.NDArray[np.float32]:
        """One pooled vector per text, shape ``(len(texts), dim)``; rows L2-normalized
        when ``normalize``. ``pooling=None``: the model's own, else mean."""
        kind = self._pooling(pooling)
        if kind == core.PoolingType.RANK:
            raise ValueError("rank pooling scores (query, document) pairs: use rerank()")
        if kind == core.PoolingType.NONE:
            raise ValueError("pooling 'none' gives one vector per token; embed() pools one vector per text")
        vocab = self._model.vocab
        seqs = [self._fit(vocab.tokenize(t, True, False).tolist(), i, truncate) for i, t in enumerate(_texts(texts))]
        out = self._run(seqs, kind, batch_size)
        if normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
        return out

    def rerank(
        self, query: str, documents: Sequence[str], *, batch_size: int = 64, truncate: bool = False
    ) -> npt.NDArray[np.float32]:
        """Relevance scores of ``documents`` for ``query`` (higher is more relevant)."""
        if model_pooling(self._model) != core.PoolingType.RANK:
            raise ValueError(
                f"{self._model.desc!r} is not a reranker: rerank() needs a model with rank pooling "
                "(a GGUF whose pooling_type is rank, e.g. bge-reranker)"
            )
        vocab = self._model.vocab
        template = self._model.chat_template("rerank")
        seqs = []
        for i, doc in enumerate(_texts(documents)):
            if template:
                prompt = template.replace("{query}", query).replace("{document}", doc)
                ids: list[int] = vocab.tokenize(prompt, True, True).tolist()
            else:
                ids = _rerank_tokens(vocab, query, doc)
            seqs.append(self._fit(ids, i, truncate))
        return self._run(seqs, core.PoolingType.RANK, batch_size)[:, 0].copy()

    def _pooling(self, pooling: Pooling | None) -> core.PoolingType:
        if pooling is None:
            return model_pooling(self._model) or core.PoolingType.MEAN
        if isinstance(pooling, str):
            if pooling not in _BY_NAME:
                raise ValueError(f"pooling must be one of {sorted(_BY_NAME)}, got {pooling!r}")
            return _BY_NAME[pooling]
        return core.PoolingType(pooling)

    def _fit(self, ids: list[int], index: int, truncate: bool) -> list[int]:
        if not ids:
            raise ValueError(f"text {index} is empty (and the model adds no BOS token): nothing to embed")
        if len(ids) > self.max_tokens:
            if not truncate:
                raise ValueError(
                    f"text {index} is {len(ids)} tokens; the embedding context takes {self.max_tokens} per text "
                    "(n_batch): pass truncate=True to cut it, or use a larger n_batch"
                )
            ids = ids[: self.max_tokens]
        return ids

    def _run(self, seqs: list[list[int]], pooling: core.PoolingType, batch_size: int) -> npt.NDArray[np.float32]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        ctx = self._context(pooling, _seq_slots(min(batch_size, max(len(seqs), 1)), self.max_tokens))
        n_seq = min(batch_size, ctx.n_seq_max)
        encoder_only = self._model.has_encoder and not self._model.has_decoder
        batch = core.Batch(self.max_tokens, 0, 1)
        rows: list[npt.NDArray[np.float32]] = []
        start = 0
        while start < len(seqs):
            batch.clear()
            group = 0
            # Pack whole texts while they fit: one sequence id each.
            while (
                start + group < len(seqs) and group < n_seq and len(batch) + len(seqs[start + group]) <= self.max_tokens
            ):
                batch.add_sequence(seqs[start + group], 0, group, True)
                group += 1
            try:
                if encoder_only:
                    ctx.encode(batch)
                else:
                    ctx.decode(batch)
                rows += [ctx.get_embeddings_seq(s, copy=True) for s in range(group)]
            finally:
                ctx.memory_clear(False)  # every text starts at position 0
            start += group
        if not rows:
            return np.zeros((0, self._model.n_embd_out), dtype=np.float32)
        return np.stack(rows).astype(np.float32, copy=False)

    def _context(self, pooling: core.PoolingType, n_seq: int) -> core.Context:
        ctx = self._ctx
        if ctx is not None and ctx.pooling_type == pooling and ctx.n_seq_max >= n_seq:
            return ctx
        self.close()
        # pooling needs a text in one ubatch; any one text may use the whole context
        params = context_params(
            self.max_tokens,
            self.max_tokens,
            self._runtime.n_threads,
            n_seq=n_seq,
            n_ubatch=self.max_tokens,
            pooling=pooling,
        )
        params.kv_unified = True
        self._ctx = self._runtime.context(params)
        return self._ctx


def _seq_slots(wanted: int, n_ubatch: int) -> int:
    """A sequence count for the context: llama.cpp aborts (GGML_ASSERT in its pooling
    graph) unless n_ubatch is a multiple of n_seq_max, so take the nearest divisor."""
    limit = min(core.max_parallel_sequences(), n_ubatch)
    divisors = [d for d in range(1, limit + 1) if n_ubatch % d == 0]
    return next((d for d in divisors if d >= wanted), divisors[-1])


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"texts must be strings; item {i} is {type(t).__name__}")
    return out


def _rerank_tokens(vocab: core.Vocab, query: str, doc: str) -> list[int]:
    # llama.cpp's server layout: [BOS] query [EOS] [SEP] document [EOS].
    eos = vocab.eos if vocab.eos >= 0 else vocab.sep
    ids: list[int] = [vocab.bos] if vocab.add_bos and vocab.bos >= 0 else []
    ids += vocab.tokenize(query, False, False).tolist()
    if vocab.add_eos and eos >= 0:
        ids.append(eos)
    if vocab.add_sep and vocab.sep >= 0:
        ids.append(vocab.sep)
    ids += vocab.tokenize(doc, False, False).tolist()
    if vocab.add_eos and eos >= 0:
        ids.append(eos)
    return ids
