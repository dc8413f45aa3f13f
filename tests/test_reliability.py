"""The second safety round: calls racing close(), failed constructors, callbacks that
call back, the KV-cache size check, deep JSON, bad parameters, and a quiet core."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import llamanb
from llamanb import core

from .support.isolated import run_isolated


def vocab_only(path: Path) -> core.Model:
    params = core.ModelParams()
    params.vocab_only = True
    return core.Model(path, params)


# -- vocabulary calls racing Model.close() -------------------------------------------


def test_tokenize_racing_close_gets_the_right_tokens_or_closed_error(model_path: Path) -> None:
    core.log_disable()
    text = "The quick brown fox jumps over the lazy dog, again and again. " * 40_000  # 2.5 MB
    with vocab_only(model_path) as reference:
        expected = reference.vocab.tokenize(text, True, False)
    for _ in range(5):
        model = vocab_only(model_path)
        vocab = model.vocab
        got: list[object] = []
        started = threading.Event()

        def tokenize() -> None:
            started.set()
            try:
                got.append(vocab.tokenize(text, True, False))
            except core.ClosedError as err:  # closed before the call began: a clean error
                got.append(err)

        worker = threading.Thread(target=tokenize)
        worker.start()
        started.wait()
        model.close()  # while the worker tokenizes with the GIL released
        worker.join(120)
        assert not worker.is_alive()
        result = got[0]
        if not isinstance(result, core.ClosedError):
            assert isinstance(result, np.ndarray)
            np.testing.assert_array_equal(result, expected)
        del vocab
        assert model.closed


def test_detokenize_racing_close(model_path: Path) -> None:
    core.log_disable()
    with vocab_only(model_path) as reference:
        ids = reference.vocab.tokenize("hello world " * 100_000, False, False)
        expected = reference.vocab.detokenize(ids)
    model = vocab_only(model_path)
    vocab = model.vocab
    out: list[object] = []
    worker = threading.Thread(target=lambda: out.append(vocab.detokenize(ids)))
    worker.start()
    model.close()
    worker.join(120)
    assert out == [expected] or isinstance(out[0], core.ClosedError)


# -- a failed Context(...) ------------------------------------------------------------


def test_a_failed_context_does_not_keep_its_model(model: core.Model) -> None:
    params = core.ContextParams()
    params.n_seq_max = 100_000  # llama.cpp refuses more than 256 sequences
    before = sys.getrefcount(model)
    for _ in range(3):
        with pytest.raises(core.LlamaError, match="n_seq_max"):
            core.Context(model, params)
    assert sys.getrefcount(model) == before


def test_bad_parameters_raise_instead_of_aborting(model_path: Path) -> None:
    params = core.ContextParams()
    with pytest.raises(ValueError, match="not a KV-cache type"):
        params.type_k = 1000
    with pytest.raises(ValueError, match="not a KV-cache type"):
        params.type_v = int(core.ggml.GGMLType.Q4_K)
    # no_alloc loads metadata only; llama.cpp asserted when such a model was mmapped.
    result = run_isolated(f"""
        from llamanb import core
        core.log_disable()
        params = core.ModelParams()
        params.no_alloc = True
        model = core.Model({str(model_path)!r}, params)
        assert model.n_params > 0
        for call in (lambda: core.Context(model), lambda: model.tensors()["output_norm.weight"].numpy(),
                     lambda: model.save("/tmp/never.gguf")):
            try:
                call()
            except ValueError as err:
                assert "no_alloc" in str(err)
            else:
                raise SystemExit("no error")
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


# -- callbacks that call back -----------------------------------------------------------


def test_callbacks_that_call_back_into_their_context_raise_instead_of_deadlocking(model_path: Path) -> None:
    result = run_isolated(
        f"""
        import numpy as np
        from llamanb import core
        core.log_disable()
        model = core.Model({str(model_path)!r})
        params = core.ContextParams()
        params.n_ctx = 256
        ctx = core.Context(model, params)
        ctx.decode_tokens(model.vocab.tokenize("Hello there", True, False).tolist())

        class Nosy:
            def apply(self, cand):
                ctx.n_threads  # a locking Context call from inside sample()
                cand.selected = int(np.argmax(cand.logits))

        chain = core.Sampler.chain()
        chain.add(core.Sampler.from_python(Nosy()))
        try:
            chain.sample(ctx, -1)
        except RuntimeError as err:
            assert "callback" in str(err), err
            print("sampler: RuntimeError")

        def nosy_abort():
            ctx.get_logits_ith(-1)
            return False

        ctx.set_abort_callback(nosy_abort)
        try:
            ctx.decode_tokens(model.vocab.tokenize(" and a long prompt " * 20, False, False).tolist())
        except RuntimeError as err:
            assert "callback" in str(err), err
            print("abort: RuntimeError")
        ctx.set_abort_callback(None)
        ctx.memory_clear(False)
        ctx.decode_tokens(model.vocab.tokenize("Still usable", True, False).tolist())
        print("usable")
    """,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split()
    assert "sampler:" in lines and "abort:" in lines and "usable" in lines, result.stdout


# -- the KV-cache size check ------------------------------------------------------------


def test_kv_cache_size_is_what_llama_cpp_allocates(model: core.Model, caplog: pytest.LogCaptureFixture) -> None:
    T = core.ggml.GGMLType
    for cache_type in (T.F16, T.Q8_0, T.Q4_0):
        params = core.ContextParams()
        params.n_ctx = 2048
        params.type_k = params.type_v = int(cache_type)
        params.flash_attn_type = 1  # a quantized V cache needs flash attention
        estimate = core.kv_cache_host_bytes(model, params)
        core.log_to_logging()
        with caplog.at_level(logging.INFO, logger="llamanb"):
            caplog.clear()
            core.Context(model, params).close()
        core.log_disable()
        reported = [
            float(m.group(1))
            for r in caplog.records
            if (m := re.search(r"llama_kv_cache: size = +([\d.]+) MiB", r.getMessage()))
        ]
        assert reported, "llama.cpp did not report its KV cache size"
        assert abs(estimate / 2**20 - reported[0]) < 0.01, (cache_type, estimate, reported)


def test_the_ram_check_uses_the_real_cache_types(model: core.Model) -> None:
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    f16 = core.ContextParams()
    f16.n_ctx = 1024
    per_token_f16 = core.kv_cache_host_bytes(model, f16) / 1024
    n_ctx = int(ram / per_token_f16 * 1.2)  # f16 does not fit in this machine's memory ...
    f16.n_ctx = n_ctx
    with pytest.raises(core.LlamaError, match="KV cache"):
        core.Context(model, f16)
    q4 = core.ContextParams()
    q4.n_ctx = n_ctx
    q4.type_k = q4.type_v = int(core.ggml.GGMLType.Q4_0)
    q4.flash_attn_type = 1
    # ... a Q4_0 cache of the same length does (3.6x smaller): not refused. (Not created
    # here: that would allocate a third of the machine's memory.)
    assert core.kv_cache_host_bytes(model, q4) < 0.4 * ram


# -- deep JSON --------------------------------------------------------------------------


def test_deeply_nested_requests_are_400(model_path: Path) -> None:
    """JSON nested 100,000 levels deep (a few hundred KB) in fields llama-server reads: no
    crash and no 5xx (nlohmann's parser and destructor do not recurse; a malformed
    logit_bias value is ignored, as llama-server does), and the server goes on serving."""
    from .support.server_process import start_server, stop_server
    from .test_llama_server import http

    proc, url = start_server(["-m", str(model_path), "-c", "512", "-np", "1", "-t", "1"])
    try:
        for depth in (5_000, 100_000):
            nested = "[" * depth + "]" * depth
            for route, body in (
                ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "hi"}], "stop": ' + nested + "}"),
                ("/completion", '{"prompt": "x", "n_predict": 1, "logit_bias": {"1": ' + nested + "}}"),
                ("/v1/messages", '{"max_tokens": 1, "thread": 1, "messages": ' + nested + "}"),
                ("/tokenize", '{"content": ' + nested + "}"),
            ):
                reply = http.post(url + route, content=body, headers={"content-type": "application/json"})
                assert reply.status_code < 500, (route, depth, reply.status_code, reply.text[:200])
        assert http.get(url + "/health").status_code == 200
    finally:
        stop_server(proc)
    assert proc.returncode in (0, -15), proc.returncode


# -- a quiet core -----------------------------------------------------------------------


def test_the_core_is_silent_by_default_and_logs_through_logging(model_path: Path) -> None:
    quiet = run_isolated(f"""
        from llamanb import core
        model = core.Model({str(model_path)!r})
        core.Context(model).close()
        print("loaded", model.n_layer)
    """)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "loaded 30", quiet.stderr[-2000:]
    assert quiet.stderr == ""
    logged = run_isolated(f"""
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
        from llamanb import core
        core.Model({str(model_path)!r})
    """)
    assert logged.returncode == 0 and logged.stderr == "", logged.stderr[-2000:]
    assert "llamanb llama_model_loader" in logged.stdout


# -- found by fuzzing -----------------------------------------------------------------------


def test_a_vocabulary_with_duplicate_tokens_is_a_load_error() -> None:
    # tests/fuzz/regressions: llama.cpp aborted on it (GGML_ASSERT); patch 0003 makes it an error.
    path = Path(__file__).resolve().parent / "fuzz" / "regressions" / "vocab" / "duplicate-token-strings"
    result = run_isolated(f"""
        from llamanb import core
        core.log_disable()
        try:
            core.Model({str(path)!r})
        except core.ModelLoadError as err:
            print(err)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "distinct token strings" in result.stdout
