"""Bad input gets a clear Python exception, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

import llamanb
from llamanb import core


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        llamanb.Llama("/no/such/model.gguf")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        core.Model(tmp_path)


def test_not_a_gguf(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_text("this is not a gguf file\n" * 100)
    with pytest.raises(core.ModelLoadError, match="failed to load model"):
        core.Model(bogus)


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.touch()
    with pytest.raises(core.ModelLoadError):
        core.Model(empty)


def test_truncated_gguf(tmp_path: Path, model_path: Path) -> None:
    truncated = tmp_path / "truncated.gguf"
    with model_path.open("rb") as src:
        truncated.write_bytes(src.read(3_000_000))
    with pytest.raises(core.ModelLoadError):
        core.Model(truncated)


def test_error_message_carries_llama_reason(tmp_path: Path) -> None:
    bogus = tmp_path / "x.gguf"
    bogus.write_bytes(b"GGUF" + b"\xff" * 64)
    with pytest.raises(core.ModelLoadError, match=r"llama\.cpp:"):
        core.Model(bogus)


def test_use_after_close(model_path: Path) -> None:
    llm = llamanb.Llama(model_path, n_ctx=128, n_threads=2)
    llm.close()
    llm.close()  # idempotent
    assert llm.closed
    with pytest.raises(core.ClosedError):
        llm.generate("hi", max_tokens=2)
    with pytest.raises(core.ClosedError):
        llm.context.decode_tokens([1])
    with pytest.raises(core.ClosedError):
        _ = llm.model.n_embd


def test_model_outlives_closed_handle_while_context_lives(model_path: Path) -> None:
    model = core.Model(model_path)
    params = core.ContextParams()
    params.n_ctx = 128
    ctx = core.Context(model, params)
    model.close()  # deferred: the context still needs the weights
    with pytest.raises(core.ClosedError):
        _ = model.vocab
    ctx.decode_tokens([1, 2, 3])  # still safe
    assert ctx.get_logits_ith(-1, copy=True).shape == (49152,)
    ctx.close()


def test_bad_token_in_decode(ctx: core.Context) -> None:
    with pytest.raises(IndexError, match="out of range"):
        ctx.decode_tokens([1, 10**9])
    with pytest.raises(IndexError):
        ctx.decode_tokens([-5])


def test_empty_and_oversized_batches(ctx: core.Context) -> None:
    with pytest.raises(ValueError, match="empty"):
        ctx.decode_tokens([])
    with pytest.raises(ValueError, match="n_batch"):
        ctx.decode_tokens([1] * (ctx.n_batch + 1))


def test_context_full_raises(model: core.Model) -> None:
    params = core.ContextParams()
    params.n_ctx = 256
    params.n_batch = 256
    with core.Context(model, params) as c:
        c.decode_tokens([1] * 200)
        with pytest.raises(core.ContextFullError, match="context is full"):
            c.decode_tokens([1] * 100)


def test_sampling_without_logits(ctx: core.Context) -> None:
    sampler = core.Sampler.greedy()
    with pytest.raises(IndexError, match="no logits"):
        sampler.sample(ctx, 0)


def test_bad_sequence_ids(ctx: core.Context) -> None:
    with pytest.raises(IndexError, match="sequence id"):
        ctx.memory_seq_keep(5)
    batch = core.Batch(4)
    batch.add(1, 0, [3], True)
    with pytest.raises(IndexError, match="sequence id"):
        ctx.decode(batch)


def test_bad_sampler_arguments(model: core.Model) -> None:
    with pytest.raises(ValueError):
        core.Sampler.top_p(1.5)
    with pytest.raises(ValueError):
        core.Sampler.grammar(model.vocab, "root ::= (((")
    with pytest.raises(ValueError):
        llamanb.SamplingParams(top_p=2.0)


def test_bad_llama_arguments(model_path: Path) -> None:
    with pytest.raises(ValueError):
        llamanb.Llama(model_path, n_ctx=0)
    with pytest.raises(ValueError):
        llamanb.Llama(model_path, n_threads=0)
