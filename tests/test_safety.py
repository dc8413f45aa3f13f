"""No crash is reachable from Python: corrupt files and bad input in subprocesses,
Ctrl-C during decode, concurrent contexts, repeated load/free cycles."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from llamanb import core

from .support.isolated import interrupt_after, run_isolated


def corrupt_variants(model_path: Path, tmp_path: Path) -> list[Path]:
    data = model_path.read_bytes()
    rng = np.random.default_rng(1234)
    out: list[Path] = []

    def emit(name: str, blob: bytes) -> None:
        p = tmp_path / name
        p.write_bytes(blob)
        out.append(p)

    emit("random.gguf", rng.bytes(1 << 16))
    emit("magic_only.gguf", b"GGUF")
    for cut in (8, 24, 100, 4096, 100_000, len(data) // 2, len(data) - 1000):
        emit(f"cut_{cut}.gguf", data[:cut])
    header = bytearray(data[: 1 << 20])
    # version, tensor count, kv count: absurd values
    for name, offset, value in (("version", 4, 0xFFFF), ("n_tensors", 8, 1 << 60), ("n_kv", 16, 1 << 60)):
        blob = bytearray(header)
        blob[offset : offset + (4 if name == "version" else 8)] = value.to_bytes(
            4 if name == "version" else 8, "little"
        )
        emit(f"absurd_{name}.gguf", bytes(blob) + data[1 << 20 :])
    flipped = bytearray(data)
    for pos in rng.integers(32, 1 << 20, size=64):
        flipped[int(pos)] ^= 0xFF
    emit("bitflips_header.gguf", bytes(flipped))
    return out


def test_corrupt_gguf_files_raise(model_path: Path, tmp_path: Path) -> None:
    files = corrupt_variants(model_path, tmp_path)
    code = f"""
        import sys
        from llamanb import core
        core.log_disable()
        for path in {[str(p) for p in files]!r}:
            try:
                m = core.Model(path)
            except core.ModelLoadError as e:
                print("raised", path, type(e).__name__)
            else:
                # Some corruptions leave a loadable file: it must then be usable or raise.
                try:
                    c = core.Context(m)
                    c.decode_tokens([1, 2, 3])
                    print("loaded", path)
                except (core.LlamaError, IndexError, ValueError) as e:
                    print("raised-late", path, type(e).__name__)
        print("done")
    """
    proc = run_isolated(code, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("done")
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("raised") for line in lines) >= len(files) - 2


BAD_CALLS = {
    "tokenize_closed_model": "m.close(); m.vocab",
    "detokenize_bad_ids": "m.vocab.detokenize([0, -1])",
    "piece_bad_id": "m.vocab.token_to_piece(10**9)",
    "decode_bad_token": "c.decode_tokens([49152])",
    "decode_wrong_dtype": "c.decode_tokens(np.zeros(3, dtype=np.float32))",
    "decode_2d": "c.decode_tokens(np.zeros((2, 2), dtype=np.int32))",
    "decode_too_many": "c.decode_tokens([1] * 100000)",
    "batch_bad_seq": "b = core.Batch(2); b.add(1, 0, [7], True); c.decode(b)",
    "batch_negative_pos": "b = core.Batch(2); b.add(1, -3)",
    "batch_too_small": "core.Batch(-1)",
    "logits_bad_index": "c.decode_tokens([1]); c.get_logits_ith(5)",
    "logits_before_decode": "c.get_logits_ith(0)",
    "embeddings_without_flag": "c.decode_tokens([1]); c.get_embeddings_seq(0)",
    "seq_rm_bad": "c.memory_seq_rm(99)",
    "seq_cp_bad": "c.memory_seq_cp(0, 42)",
    "seq_div_zero": "c.memory_seq_div(0, 0, 10, 0)",
    "state_garbage": "c.state_set_data(b'x' * 100)",
    "state_seq_garbage": "c.state_seq_set_data(b'x' * 100, 0)",
    "sample_closed_ctx": "s = core.Sampler.greedy(); c.close(); s.sample(c)",
    "sample_no_selector": "c.decode_tokens([1]); ch = core.Sampler.chain(); ch.sample(c)",
    "grammar_bad": "core.Sampler.grammar(m.vocab, 'root ::= [')",
    "grammar_lazy_bad_token": "core.Sampler.grammar_lazy_patterns(m.vocab, 'root ::= \"a\"', 'root', [], [10**9])",
    "logit_bias_bad": "core.Sampler.logit_bias(m.vocab, [(10**9, 1.0)])",
    "penalties_bad": "core.Sampler.penalties(64, 0.0)",
    "add_to_non_chain": "core.Sampler.greedy().add(core.Sampler.greedy())",
    "add_twice": "ch = core.Sampler.chain(); g = core.Sampler.greedy(); ch.add(g); ch.add(g)",
    "threads_zero": "c.set_n_threads(0, 0)",
    # each thread count is a pool of that many OS threads: past ggml's bound, ggml aborts
    "threads_huge": "c.set_n_threads(10**6, 2)",
    "threads_batch_huge": "c.set_n_threads(2, 513)",
    "context_threads_huge": "p = core.ContextParams(); p.n_threads = 10**6; core.Context(m, p)",
    "context_threads_negative": "p = core.ContextParams(); p.n_threads_batch = -1; core.Context(m, p)",
    "threadpool_huge": "core.Threadpool(10**6)",
    "projector_threads_huge": "p = core.mtmd.MtmdContextParams(); p.n_threads = 10**6; core.mtmd.MtmdContext('/nope', m, p)",
    "cvec_bad_layers": "c.set_adapter_cvec(np.zeros(576, np.float32), 576, 5, 2)",
    "n_ctx_huge": "p = core.ContextParams(); p.n_ctx = 2**31 - 1; core.Context(m, p)",
    "pooled_uneven_ubatch": "p = core.ContextParams(); p.embeddings = True; p.pooling_type = core.PoolingType.MEAN; "
    "p.n_seq_max = 3; core.Context(m, p)",
    "split_bad": "core.split_path('x', 5, 2)",
    "cls_label_bad": "m.cls_label(3)",
    "quantize_missing": "core.model_quantize('/nope.gguf', '/tmp/out.gguf')",
    "python_sampler_no_apply": "core.Sampler.from_python(42)",
    "chat_template_bad": "core.chat_apply_template('{{ x }}', [('user', 'hi')])",
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_input_raises_python_exception(name: str, model_path: Path) -> None:
    code = f"""
        import numpy as np
        from llamanb import core
        core.log_disable()
        m = core.Model({str(model_path)!r})
        p = core.ContextParams(); p.n_ctx = 256; p.n_batch = 256
        c = core.Context(m, p)
        try:
            {BAD_CALLS[name]}
        except Exception as e:
            print("EXC", type(e).__name__, str(e)[:200])
        else:
            print("NO EXCEPTION")
    """
    proc = run_isolated(code)
    assert proc.returncode == 0, f"crashed (rc={proc.returncode}): {proc.stderr[-1500:]}"
    assert proc.stdout.startswith("EXC"), proc.stdout + proc.stderr[-500:]
    assert "SystemError" not in proc.stdout


def test_ctrl_c_interrupts_long_decode(model_path: Path) -> None:
    code = f"""
        import signal, sys, time
        from llamanb import core
        # What an interactive program has; a test runner started in the background
        # (`cmd &` in a script) hands its children SIGINT ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        core.log_disable()
        m = core.Model({str(model_path)!r})
        p = core.ContextParams(); p.n_ctx = 8192; p.n_batch = 4096; p.n_ubatch = 512
        p.n_threads = 2; p.n_threads_batch = 2
        c = core.Context(m, p)
        print("ready", flush=True)
        start = time.monotonic()
        try:
            while True:
                c.memory_clear()
                c.decode_tokens([1] * 4096)
        except KeyboardInterrupt:
            print(f"interrupted {{time.monotonic() - start:.3f}}", flush=True)
        c.memory_clear()
        c.decode_tokens([1, 2, 3])  # the context is still usable
        print("usable", flush=True)
    """
    got = interrupt_after(code, 1.0)  # well inside a 4096-token decode
    assert got.line.startswith("interrupted"), got.line + got.out + got.err[-1000:]
    assert got.latency < 1.0, f"KeyboardInterrupt took {got.latency:.2f}s"
    assert "usable" in got.out and got.returncode == 0


def test_four_threads_four_contexts_one_model(model: core.Model) -> None:
    prompts = ["The capital of France is", "Water boils at", "The largest planet is", "Python is a"]

    def greedy(prompt: str, out: dict[str, list[int]]) -> None:
        params = core.ContextParams()
        params.n_ctx = 256
        params.n_threads = 1
        params.n_threads_batch = 1
        with core.Context(model, params) as c:
            chain = core.Sampler.chain()
            chain.add(core.Sampler.greedy())
            c.decode_tokens(model.vocab.tokenize(prompt, add_special=False))
            tokens: list[int] = []
            for _ in range(24):
                tok = chain.sample(c)
                tokens.append(tok)
                c.decode_tokens([tok])
            out[prompt] = tokens

    alone: dict[str, list[int]] = {}
    for prompt in prompts:
        greedy(prompt, alone)
    together: dict[str, list[int]] = {}
    threads = [threading.Thread(target=greedy, args=(p, together)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_load_decode_close_cycles_do_not_leak(model_path: Path) -> None:
    core.log_disable()

    def cycle() -> None:
        with core.Model(model_path) as m:
            params = core.ContextParams()
            params.n_ctx = 256
            params.n_batch = 32
            params.n_threads = 2
            with core.Context(m, params) as c:
                c.decode_tokens([1, 504, 3458])
                c.get_logits_ith(-1)

    for _ in range(20):  # warm-up: allocator pools, thread pools
        cycle()
    before = rss_bytes()
    for _ in range(500):
        cycle()
    growth = rss_bytes() - before
    assert growth < 24 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB over 500 cycles"
