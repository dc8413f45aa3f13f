"""embed()/rerank(): pooled embeddings from a separate embedding context."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import llamanb

TEXTS = [
    "The cat sat on the mat.",
    "A cat was sitting on a mat.",
    "Stock markets fell sharply today.",
    "Paris is the capital of France.",
    "x",
    "Embeddings map text to vectors; similar texts get similar vectors, which makes search work.",
]


def test_shape_dtype_and_norm(llm: llamanb.Llama) -> None:
    vectors = llm.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), llm.model.n_embd) == (6, 576)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert llm.embed("one text").shape == (1, 576)


def test_batched_equals_one_by_one(llm: llamanb.Llama) -> None:
    batched = llm.embed(TEXTS)
    single = np.concatenate([llm.embed([t]) for t in TEXTS])
    assert np.allclose(batched, single, atol=1e-4)
    for batch_size in (1, 2, 5):
        assert np.allclose(llm.embed(TEXTS, batch_size=batch_size), batched, atol=1e-4)


def test_normalize_flag(llm: llamanb.Llama) -> None:
    raw = llm.embed(TEXTS[:3], normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    assert np.allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), llm.embed(TEXTS[:3]), atol=1e-5)


def test_similar_texts_are_closer(llm: llamanb.Llama) -> None:
    cat, cat2, stocks = llm.embed(TEXTS[:3])
    assert float(cat @ cat2) > float(cat @ stocks)


def test_pooling_choices(llm: llamanb.Llama) -> None:
    mean = llm.embed(TEXTS[:2])
    assert np.allclose(llm.embed(TEXTS[:2], pooling="mean"), mean, atol=1e-5)  # the default for a plain LM
    last = llm.embed(TEXTS[:2], pooling="last")
    cls = llm.embed(TEXTS[:2], pooling=llamanb.core.PoolingType.CLS)
    assert not np.allclose(last, mean) and not np.allclose(cls, mean)
    assert np.allclose(llm.embed(TEXTS[:2], pooling="last", batch_size=1), last, atol=1e-4)
    with pytest.raises(ValueError, match="one vector per token"):
        llm.embed(TEXTS, pooling="none")
    with pytest.raises(ValueError, match="rerank"):
        llm.embed(TEXTS, pooling="rank")
    with pytest.raises(ValueError, match="pooling must be one of"):
        llm.embed(TEXTS, pooling="max")  # type: ignore[arg-type]


def test_long_texts_raise_or_truncate(llm: llamanb.Llama) -> None:
    long = "word " * 2000
    with pytest.raises(ValueError, match="truncate=True"):
        llm.embed(["short", long])
    cut = llm.embed([long], truncate=True)
    limit = 512  # n_batch
    prefix = llm.detokenize(llm.tokenize(long)[:limit])
    assert len(llm.tokenize(prefix)) == limit
    assert np.allclose(cut, llm.embed([prefix]), atol=1e-4)


def test_bad_texts(llm: llamanb.Llama) -> None:
    with pytest.raises(ValueError, match="empty"):
        llm.embed(["fine", ""])
    with pytest.raises(TypeError, match="strings"):
        llm.embed(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size"):
        llm.embed(TEXTS, batch_size=0)
    assert llm.embed([]).shape == (0, 576)


def test_rerank_needs_a_reranker(llm: llamanb.Llama) -> None:
    with pytest.raises(ValueError, match="not a reranker"):
        llm.rerank("What is the capital of France?", ["Paris is the capital.", "Bananas are yellow."])


def test_module_level_helpers(llm: llamanb.Llama, model_path: Path) -> None:
    from_llm = llamanb.embed(llm, TEXTS[:2])
    from_path = llamanb.embed(model_path, TEXTS[:2], n_threads=2)
    assert np.allclose(from_llm, from_path, atol=1e-4)
    gen = llamanb.generate(llm, "The capital of France is", max_tokens=6, temperature=0)
    gen_path = llamanb.generate(
        str(model_path), "The capital of France is", max_tokens=6, temperature=0, n_ctx=256, n_threads=2
    )
    assert gen.tokens == gen_path.tokens and "Paris" in gen.text
    assert not llm.closed  # a given Llama stays open


def test_generation_still_works_between_embeddings(llm: llamanb.Llama) -> None:
    before = llm.generate("Water boils at", max_tokens=6, temperature=0)
    llm.embed(TEXTS)
    assert llm.generate("Water boils at", max_tokens=6, temperature=0).tokens == before.tokens
