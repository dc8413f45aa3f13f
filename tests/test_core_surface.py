"""The rest of llama.h: adapters, control vectors, quantize/save/splits, custom and
borrowed samplers, the ext batch API, thread pools, devices, backend samplers."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from llamanb import core

from .support.lora_file import write_lora


def greedy_next(ctx: core.Context, tokens: list[int]) -> int:
    ctx.memory_clear()
    ctx.decode_tokens(tokens)
    return int(np.argmax(ctx.get_logits_ith(-1, copy=True)))


def test_lora_adapter_changes_and_restores_output(model: core.Model, ctx: core.Context, tmp_path: Path) -> None:
    prompt = model.vocab.tokenize("The capital of France is", add_special=False).tolist()
    ctx.memory_clear()
    ctx.decode_tokens(prompt)
    base = ctx.get_logits_ith(-1, copy=True)
    lora_path = tmp_path / "lora.gguf"
    write_lora(lora_path, model, scale_b=0.5)
    with core.LoraAdapter(model, lora_path) as adapter:
        assert adapter.meta["adapter.type"] == "lora"
        assert adapter.meta_val_str("general.type") == "adapter"
        assert adapter.meta_count >= 3
        assert adapter.alora_invocation_tokens == []
        ctx.set_adapters_lora([(adapter, 1.0)])
        ctx.memory_clear()
        ctx.decode_tokens(prompt)
        adapted = ctx.get_logits_ith(-1, copy=True)
        assert not np.allclose(adapted, base, atol=1e-3)
        adapter.close()  # deferred while the context uses it
        ctx.memory_clear()
        ctx.decode_tokens(prompt)  # still safe
        ctx.set_adapters_lora([])
    ctx.memory_clear()
    ctx.decode_tokens(prompt)
    np.testing.assert_allclose(ctx.get_logits_ith(-1, copy=True), base, rtol=1e-4, atol=1e-4)
    with pytest.raises(core.ClosedError):
        _ = adapter.meta


def test_lora_errors(model: core.Model, tmp_path: Path, model_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        core.LoraAdapter(model, tmp_path / "none.gguf")
    with pytest.raises(core.ModelLoadError, match="adapter"):
        core.LoraAdapter(model, model_path)  # a model, not an adapter


def test_control_vector(model: core.Model, ctx: core.Context) -> None:
    prompt = [1, 504, 3458]
    base = greedy_next(ctx, prompt)
    before = ctx.get_logits_ith(-1, copy=True)
    cvec = np.full(model.n_embd * model.n_layer, 0.5, dtype=np.float32)
    ctx.set_adapter_cvec(cvec, model.n_embd, 1, model.n_layer)
    greedy_next(ctx, prompt)
    assert not np.allclose(ctx.get_logits_ith(-1, copy=True), before, atol=1e-3)
    ctx.set_adapter_cvec(None, model.n_embd, 0, 0)
    assert greedy_next(ctx, prompt) == base
    with pytest.raises(ValueError):
        ctx.set_adapter_cvec(cvec[:-1], model.n_embd, 1, model.n_layer)


def test_quantize_save_and_splits(model_path: Path, tmp_path: Path) -> None:
    params = core.QuantizeParams()
    params.ftype = 7  # Q8_0
    params.allow_requantize = True
    params.nthread = 2
    out = tmp_path / "q8.gguf"
    core.model_quantize(model_path, out, params)
    assert core.ftype_name(7) == "Q8_0"
    with core.Model(out) as q8:
        assert q8.ftype == 7 and q8.n_embd == 576
        saved = tmp_path / "saved.gguf"
        q8.save(saved)
    with core.Model.from_splits([str(saved)]) as again:
        assert again.n_params > 0
    with pytest.raises(FileNotFoundError):
        core.model_quantize(tmp_path / "missing.gguf", out)
    with pytest.raises(FileNotFoundError):
        core.Model.from_splits([str(tmp_path / "nope.gguf")])


class TopOnly:
    """A Python sampler: keeps the best candidate and selects it."""

    def __init__(self) -> None:
        self.accepted: list[int] = []

    def apply(self, cand: core.TokenDataArray) -> None:
        best = int(np.argmax(cand.logits))
        cand.ids = cand.ids[best : best + 1].copy()
        cand.logits = cand.logits[best : best + 1].copy()
        cand.p = np.ones(1, dtype=np.float32)
        cand.selected = 0

    def accept(self, token: int) -> None:
        self.accepted.append(token)


def test_python_sampler_matches_greedy(ctx: core.Context) -> None:
    py = TopOnly()
    sampler = core.Sampler.from_python(py)
    assert sampler.name == "TopOnly"
    expected = greedy_next(ctx, [1, 504, 3458])
    assert sampler.sample(ctx) == expected
    assert py.accepted == [expected]


def test_python_sampler_errors_propagate(ctx: core.Context) -> None:
    class Boom:
        def apply(self, cand: core.TokenDataArray) -> None:
            raise RuntimeError("boom in apply")

    class Grows:
        def apply(self, cand: core.TokenDataArray) -> None:
            cand.ids = np.zeros(len(cand) + 1, dtype=np.int32)

    ctx.decode_tokens([1, 2])
    with pytest.raises(RuntimeError, match="boom in apply"):
        core.Sampler.from_python(Boom()).sample(ctx)
    with pytest.raises(ValueError):
        core.Sampler.from_python(Grows()).sample(ctx)
    with pytest.raises(TypeError):
        core.Sampler.from_python(object())


def test_chain_without_selector_raises(ctx: core.Context) -> None:
    chain = core.Sampler.chain()
    chain.add(core.Sampler.top_k(5))
    ctx.decode_tokens([1, 2])
    with pytest.raises(ValueError, match="selected no token"):
        chain.sample(ctx)


def test_apply_on_candidates() -> None:
    cand = core.TokenDataArray(np.arange(5, dtype=np.int32), np.array([0, 3, 1, 2, 0.5], dtype=np.float32))
    core.Sampler.top_k(2).apply(cand)
    assert sorted(cand.ids.tolist()) == [1, 3]
    core.Sampler.greedy().apply(cand)
    assert int(cand.ids[cand.selected]) == 1


def test_chain_get_remove_copy_clone(ctx: core.Context) -> None:
    chain = core.Sampler.chain()
    chain.add(core.Sampler.top_k(10))
    chain.add(core.Sampler.dist(42))
    first = chain.get(0)
    assert first.name == "top-k" and chain.get(1).name == "dist"
    with pytest.raises(IndexError):
        chain.get(2)
    removed = chain.remove(0)
    assert removed.name == "top-k" and chain.n == 1
    with pytest.raises(core.ClosedError, match="chain has changed"):
        _ = first.name
    twin = chain.clone()
    ctx.decode_tokens([1, 2, 3])
    assert chain.sample(ctx) == twin.sample(ctx)
    other = core.Sampler.chain()
    other.add(core.Sampler.dist(1))
    chain.copy(other)
    with pytest.raises(TypeError):
        chain.copy(core.Sampler.greedy())
    assert chain.perf()[1] >= 1
    chain.perf_reset()
    chain.close()
    with pytest.raises(core.ClosedError):
        chain.sample(ctx)


def test_batch_ext_process(model: core.Model) -> None:
    params = core.ContextParams()
    params.n_ctx = 256
    tokens = model.vocab.tokenize("The sky is", add_special=False).tolist()
    with core.Context(model, params) as c:
        expected = greedy_next(c, tokens)
        c.memory_clear()
        batch = core.BatchExt(c)
        for pos, tok in enumerate(tokens):
            idx = batch.add_token(0, tok)
            batch.set_pos(idx, [pos])
        batch.set_output_logits(len(tokens) - 1, True)
        c.process(core.ProcessType.DECODE, batch)
        assert int(np.argmax(c.get_logits_ith(-1, copy=True))) == expected
        batch.clear()
        batch.add_token(0, tokens[0])
        with pytest.raises(ValueError, match="no position"):
            c.process(core.ProcessType.DECODE, batch)
        with pytest.raises(ValueError):
            batch.add_token(0, 10**8)
        batch.close()
        batch.close()


def test_each_context_decodes_on_its_own_pool_from_any_thread(model: core.Model) -> None:
    """The build has no OpenMP (libgomp kept a thread team per calling thread, issue 27):
    a context runs on a ggml pool of its own, grown with its thread counts, and gives the
    same logits from any thread and any thread count."""
    assert "OPENMP" not in core.system_info()
    params = core.ContextParams()
    params.n_ctx = 256
    params.n_threads = params.n_threads_batch = 2
    ctx = core.Context(model, params)
    prompt = [1, 504, 3458, 314]
    ctx.decode_tokens(prompt)
    expected = ctx.get_logits_ith(-1, copy=True)

    def logits() -> np.ndarray:
        ctx.memory_clear()
        ctx.decode_tokens(prompt)
        return ctx.get_logits_ith(-1, copy=True)

    out: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: out.append(logits()))
    worker.start()
    worker.join()
    np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-4)
    for n, n_batch in [(1, 1), (4, 3), (2, 2)]:  # (4, 3) grows the pool to 4 threads
        ctx.set_n_threads(n, n_batch)
        assert (ctx.n_threads, ctx.n_threads_batch) == (n, n_batch)
        np.testing.assert_allclose(logits(), expected, rtol=1e-3, atol=1e-3)
    pool = core.Threadpool(1)
    ctx.attach_threadpool(pool)  # a pool smaller than n_threads: ggml runs with what it has
    np.testing.assert_allclose(logits(), expected, rtol=1e-3, atol=1e-3)
    ctx.detach_threadpool()  # back to the context's own pool
    np.testing.assert_allclose(logits(), expected, rtol=1e-3, atol=1e-3)
    other = core.Context(model, params)
    with pytest.raises(ValueError, match="another context"):  # a pool runs one graph at a time
        other.attach_threadpool(pool)
    ctx.close()
    other.attach_threadpool(pool)  # free again once its context has closed
    other.close()


def test_threadpool_and_devices(ctx: core.Context) -> None:
    expected = greedy_next(ctx, [1, 504, 3458])
    pool = core.Threadpool(2)
    ctx.attach_threadpool(pool)
    assert greedy_next(ctx, [1, 504, 3458]) == expected
    ctx.detach_threadpool()
    assert "CPU" in core.ggml.backends()
    devices = core.ggml.devices()
    assert any(d["type"] == "cpu" for d in devices)
    with pytest.raises(ValueError):
        core.Threadpool(0)


def test_small_free_functions() -> None:
    assert core.split_path("/m/x", 1, 4) == "/m/x-00002-of-00004.gguf"
    assert core.split_prefix("/m/x-00002-of-00004.gguf", 1, 4) == "/m/x"
    assert core.split_prefix("/m/x-00002-of-00004.gguf", 0, 4) is None
    assert core.load_mode_from_str(core.load_mode_name(core.LoadMode.MMAP)) == core.LoadMode.MMAP
    assert core.flash_attn_type_name(core.FlashAttnType.AUTO)
    assert core.model_meta_key_str(core.ModelMetaKey.SAMPLING_TOP_K).endswith("top_k")
    assert core.max_tensor_buft_overrides() > 0
    assert "chatml" in core.chat_builtin_templates()


def test_state_per_sequence_and_files(ctx: core.Context, tmp_path: Path) -> None:
    ctx.memory_clear()
    ctx.decode_tokens([1, 504, 3458])
    assert ctx.state_get_size() > 0
    data = ctx.state_seq_get_data(0)
    assert len(data) == ctx.state_seq_get_size(0)
    path = tmp_path / "seq.bin"
    assert ctx.state_seq_save_file(path, 0, [1, 504, 3458]) > 0
    ctx.memory_clear()
    assert ctx.state_seq_load_file(path, 0) == [1, 504, 3458]
    assert ctx.memory_seq_pos_max(0) == 2
    whole = tmp_path / "state.bin"
    ctx.state_save_file(whole, [1, 504, 3458])
    assert ctx.state_load_file(whole) == [1, 504, 3458]
    with pytest.raises(FileNotFoundError):
        ctx.state_load_file(tmp_path / "missing.bin")


def test_full_output_arrays(model: core.Model) -> None:
    params = core.ContextParams()
    params.n_ctx = 128
    with core.Context(model, params) as c:
        batch = core.Batch(4)
        for i, tok in enumerate([1, 504, 3458]):
            batch.add(tok, i, [0], True)
        c.decode(batch)
        logits = c.get_logits()
        assert logits.shape == (3, 49152) and not logits.flags.writeable
        np.testing.assert_array_equal(logits[2], c.get_logits_ith(2))
        del logits
    params.embeddings = True
    params.pooling_type = core.PoolingType.NONE
    with core.Context(model, params) as c:
        c.decode_tokens([1, 504, 3458])
        emb = c.get_embeddings(copy=True)
        assert emb.shape == (3, 576)
        np.testing.assert_allclose(emb[1], c.get_embeddings_ith(1, copy=True))
