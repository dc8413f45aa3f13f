"""llamanb.core objects: properties, batches, samplers, outputs, lifetimes, threads."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

from llamanb import core


def test_model_properties(model: core.Model) -> None:
    assert model.n_embd == 576
    assert model.n_layer == 30
    assert model.n_params > 100_000_000
    assert "llama" in model.desc
    assert model.meta["general.architecture"] == "llama"
    assert model.meta_val_str("general.architecture") == "llama"
    assert model.meta_val_str("no.such.key") is None
    template = model.chat_template()
    assert template is not None and "im_start" in template
    assert model.vocab.n_tokens == 49152
    assert model.vocab.type == core.VocabType.BPE
    assert model.vocab.is_eog(model.vocab.eos)


def test_vocab_keeps_model_alive(model_path: object) -> None:
    vocab = core.Model(str(model_path)).vocab  # the Model handle is dropped at once
    gc.collect()
    assert vocab.n_tokens == 49152
    assert vocab.model.n_embd == 576


def test_context_keeps_model_alive(model_path: object) -> None:
    params = core.ContextParams()
    params.n_ctx = 128
    ctx = core.Context(core.Model(str(model_path)), params)
    gc.collect()
    ctx.decode_tokens([1, 2, 3])
    assert ctx.model.n_embd == 576


def test_logits_view_is_zero_copy_and_read_only(ctx: core.Context) -> None:
    ctx.decode_tokens(np.array([1, 504, 3458], dtype=np.int32))
    view = ctx.get_logits_ith(-1)
    again = ctx.get_logits_ith(-1)
    assert view.dtype == np.float32 and view.shape == (49152,)
    assert not view.flags.writeable
    assert np.shares_memory(view, again)
    with pytest.raises(ValueError):
        view[0] = 1.0
    copy = ctx.get_logits_ith(-1, copy=True)
    assert copy.flags.writeable and not np.shares_memory(copy, view)
    np.testing.assert_array_equal(copy, view)


def test_view_survives_close_and_del(model: core.Model) -> None:
    params = core.ContextParams()
    params.n_ctx = 128
    c = core.Context(model, params)
    c.decode_tokens([1, 2])
    view = c.get_logits_ith(-1)
    expected = view.copy()
    c.close()  # deferred while the view lives
    assert c.closed
    del c
    gc.collect()
    np.testing.assert_array_equal(view, expected)


def test_views_block_output_buffer_growth(ctx: core.Context) -> None:
    ctx.decode_tokens([1, 2, 3])
    view = ctx.get_logits_ith(-1)
    batch = core.Batch(8)
    for i in range(8):
        batch.add(5 + i, 3 + i, [0], True)  # 8 outputs: more than ever before
    with pytest.raises(core.LlamaError, match="view"):
        ctx.decode(batch)
    del view
    ctx.decode(batch)
    assert ctx.get_logits_ith(7, copy=True).shape == (49152,)


def test_batch_multi_sequence_matches_single(model: core.Model) -> None:
    params = core.ContextParams()
    params.n_ctx = 256
    params.n_seq_max = 2
    prompt = model.vocab.tokenize("The sky is", add_special=False).tolist()
    with core.Context(model, params) as c:
        batch = core.Batch(32, 0, 2)
        batch.add_sequence(prompt, 0, 0, True)
        batch.add_sequence(prompt, 0, 1, True)
        c.decode(batch)
        a = c.get_logits_ith(len(prompt) - 1, copy=True)
        b = c.get_logits_ith(2 * len(prompt) - 1, copy=True)
        assert int(np.argmax(a)) == int(np.argmax(b))
        assert c.memory_seq_pos_max(1) == len(prompt) - 1
        c.memory_seq_rm(1)
        assert c.memory_seq_pos_max(1) == -1


def test_batch_validation() -> None:
    batch = core.Batch(2)
    batch.add(1, 0)
    batch.add(2, 1)
    with pytest.raises(IndexError, match="full"):
        batch.add(3, 2)
    assert batch.tokens == [1, 2] and batch.positions == [0, 1]
    batch.clear()
    assert len(batch) == 0
    with pytest.raises(ValueError):
        core.Batch(0)


def test_chain_takes_ownership(ctx: core.Context) -> None:
    chain = core.Sampler.chain()
    greedy = core.Sampler.greedy()
    chain.add(greedy)
    assert chain.n == 1
    with pytest.raises(core.ClosedError, match="added to a chain"):
        greedy.reset()
    ctx.decode_tokens([1, 504])
    token = chain.sample(ctx)
    assert 0 <= token < 49152
    chain.close()
    chain.close()


def test_grammar_constrains_output(model: core.Model, ctx: core.Context) -> None:
    chain = core.Sampler.chain()
    chain.add(core.Sampler.grammar(model.vocab, 'root ::= "yes" | "no"'))
    chain.add(core.Sampler.greedy())
    ids = model.vocab.tokenize("Is the sky blue? Answer:", add_special=False)
    ctx.decode_tokens(ids)
    out = []
    for _ in range(4):
        tok = chain.sample(ctx)
        if model.vocab.is_eog(tok):
            break
        out.append(tok)
        ctx.decode_tokens([tok])
    assert model.vocab.detokenize(out).decode() in ("yes", "no")


def test_state_round_trip(ctx: core.Context) -> None:
    ctx.decode_tokens([1, 504, 3458])
    state = ctx.state_get_data()
    ctx.decode_tokens([9])
    expected = ctx.get_logits_ith(-1, copy=True)
    ctx.memory_clear()
    ctx.decode_tokens([7, 8])
    assert ctx.state_set_data(state) == len(state)
    assert ctx.memory_seq_pos_max(0) == 2
    ctx.decode_tokens([9])
    np.testing.assert_allclose(ctx.get_logits_ith(-1, copy=True), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(core.LlamaError):
        ctx.state_set_data(b"garbage")


def test_cancel_aborts_decode(ctx: core.Context) -> None:
    ctx.cancel()
    with pytest.raises(core.AbortedError, match="cancel"):
        ctx.decode_tokens([1] * 64)
    ctx.memory_clear()
    ctx.decode_tokens([1, 2])  # the flag is spent


def test_abort_callback_exception_propagates(ctx: core.Context) -> None:
    def boom() -> bool:
        raise KeyError("from callback")

    ctx.set_abort_callback(boom)
    with pytest.raises(KeyError, match="from callback"):
        for _ in range(20):  # polled every ~20 ms
            ctx.memory_clear()
            ctx.decode_tokens([1] * 256)
    ctx.set_abort_callback(None)


def test_progress_callback(model_path: object) -> None:
    seen: list[float] = []
    params = core.ModelParams()
    params.progress_callback = seen.append
    core.Model(str(model_path), params).close()
    assert seen and seen[-1] == pytest.approx(1.0)

    params.progress_callback = lambda p: False
    with pytest.raises(core.ModelLoadError):
        core.Model(str(model_path), params)

    def raiser(p: float) -> bool:
        raise ZeroDivisionError("stop loading")

    params.progress_callback = raiser
    with pytest.raises(ZeroDivisionError, match="stop loading"):
        core.Model(str(model_path), params)


def test_log_callback_receives_messages(model_path: object) -> None:
    lines: list[tuple[int, str]] = []
    core.log_to_callback(lambda level, text: lines.append((level, text)))
    try:
        core.Model(str(model_path)).close()
    finally:
        core.log_disable()
    assert any("llama" in text for _, text in lines)


def test_threads_share_a_context_safely(ctx: core.Context) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                ctx.memory_clear()
                ctx.decode_tokens([1, 504, 3458])
                assert ctx.get_logits_ith(-1, copy=True).shape == (49152,)
        except BaseException as e:  # collected and re-raised below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_close_from_another_thread_during_use(model: core.Model) -> None:
    params = core.ContextParams()
    params.n_ctx = 512
    c = core.Context(model, params)
    outcome: list[str] = []

    def work() -> None:
        try:
            for _ in range(50):
                c.memory_clear()
                c.decode_tokens([1] * 64)
            outcome.append("finished")
        except core.ClosedError:
            outcome.append("closed")

    t = threading.Thread(target=work)
    t.start()
    c.close()
    t.join()
    assert outcome in (["closed"], ["finished"])


def test_views_export_through_dlpack(ctx: core.Context) -> None:
    ctx.decode_tokens([1, 504, 3458])
    view = ctx.get_logits_ith(-1)
    via_dlpack = np.from_dlpack(view)
    assert np.shares_memory(via_dlpack, view)
    assert via_dlpack.__array_interface__["data"][0] == view.__array_interface__["data"][0]
    assert not via_dlpack.flags.writeable
    capsule = view.__dlpack__(max_version=(1, 0))  # DLPack 1.0 carries the read-only flag
    assert type(capsule).__name__ == "PyCapsule"
    with pytest.raises(BufferError):
        view.__dlpack__()  # legacy DLPack cannot say read-only: refused rather than made writable
