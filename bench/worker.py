"""One benchmark worker process: loads a model once through one Python binding and
answers timing commands, one JSON line per command line read from stdin.

    python bench/worker.py --backend llamanb   --workdir DIR --model M --n-ctx C --n-batch B --threads T
    LCP_PYTHON bench/worker.py --backend llama_cpp ...   (llama-cpp-python, in its own venv)

bench/run.py starts one worker per binding (and the native C++ driver, which speaks
the same protocol) and interleaves their commands, so background noise hits all of
them alike. The workload files in DIR are written by run.py, so every binding sees the
very same prompt, token ids, corpus and texts.

Commands (a reply is a JSON object; {"skipped": why} when the binding lacks the feature):
    gen N      greedy generation of N tokens from prompt.txt -> tokens, seconds, ids
               (llamanb also: llama.cpp's decode timings t_eval_ms, t_p_eval_ms, n_eval)
    pp         decode the 512 ids of pp_tokens.txt as one batch -> tokens, seconds
    load       load the model and create a context, then free them -> seconds
    call       ns per trivial call (and per-token call) from Python
    logits     ns to get the last row of logits as a numpy array
    tok        tokenize corpus.txt -> bytes, tokens, seconds
    detok      detokenize the corpus' token ids -> bytes, tokens, seconds
    embed      embed the texts of texts.json in one call -> n, seconds
    batch N    generate_batch over batch_prompts.json, N tokens each -> tokens, seconds
    seq N      the same prompts, one generate after another -> tokens, seconds
    outside N B  us per generated token spent outside llama.cpp's decode (wall minus the
               context's perf eval times), one figure per case: generate/stream with greedy
               and with the default chain, chat_stream, a Python sampler (N tokens each),
               generate_batch and the server engine (B tokens per batch prompt; per
               sequence-step) -> {case: us}
    quit
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

Reply = dict[str, Any]

# Enough calls that timer resolution and loop start-up vanish, few enough to stay short.
CALLS_PER_SAMPLE = 200_000
LOGITS_PER_SAMPLE = 20_000


@dataclass(frozen=True)
class Settings:
    model: str
    n_ctx: int
    n_batch: int
    threads: int
    repack: bool = True
    n_gpu_layers: int | None = None  # llamanb only; None: Llama's default (CPU)


@dataclass(frozen=True)
class Workload:
    """The inputs every binding gets, read from the files run.py wrote."""

    prompt: str
    pp_tokens: list[int]
    corpus: str
    texts: list[str]
    batch_prompts: list[str]

    @staticmethod
    def read(workdir: Path) -> Workload:
        return Workload(
            prompt=(workdir / "prompt.txt").read_text(encoding="utf-8"),
            pp_tokens=[int(t) for t in (workdir / "pp_tokens.txt").read_text().split()],
            corpus=(workdir / "corpus.txt").read_text(encoding="utf-8"),
            texts=json.loads((workdir / "texts.json").read_text(encoding="utf-8")),
            batch_prompts=json.loads((workdir / "batch_prompts.json").read_text(encoding="utf-8")),
        )


def per_call_ns(stmt: str, namespace: dict[str, Any], number: int) -> float:
    """ns per execution of ``stmt``, as users write it (attribute lookups included;
    timeit's own loop, ~8 ns here, is not subtracted)."""
    return timeit.Timer(stmt, globals=namespace).timeit(number) / number * 1e9


def detok_reply(corpus: str, text: str, n_tokens: int, seconds: float) -> Reply:
    """MB/s are counted on the corpus size for every binding, so a detokenizer that
    drops bytes gains nothing; whether the text came back intact is reported too."""
    return {"bytes": len(corpus.encode("utf-8")), "tokens": n_tokens, "seconds": seconds, "roundtrip": text == corpus}


class Backend(Protocol):
    def gen(self, n: int) -> Reply: ...
    def pp(self) -> Reply: ...
    def load(self) -> Reply: ...
    def call(self) -> Reply: ...
    def logits(self) -> Reply: ...
    def tok(self) -> Reply: ...
    def detok(self) -> Reply: ...
    def embed(self) -> Reply: ...
    def batch(self, n: int) -> Reply: ...
    def seq(self, n: int) -> Reply: ...
    def outside(self, n: int, b: int) -> Reply: ...
    def close(self) -> None: ...
    def info(self) -> Reply: ...


def time_load(new_llama: Callable[[], Any]) -> Reply:
    """Seconds to load a model with its context (closed again right after)."""
    t0 = time.perf_counter()
    llm = new_llama()
    seconds = time.perf_counter() - t0
    llm.close()
    return {"seconds": seconds}


class LlamanbBackend:
    """llamanb through its public facade (Llama) and, where the facade has no entry
    point (a bare prompt decode, a single C call), through llamanb.core."""

    def __init__(self, settings: Settings, work: Workload) -> None:
        import llamanb

        self.llamanb = llamanb
        self.settings = settings
        self.work = work
        self.llm = self._new_llama()
        self.corpus_ids: list[int] = self.llm.tokenize(work.corpus)
        self._outside = OutsideDecode(llamanb, self.llm, work, settings)

    def _new_llama(self, **extra: Any) -> Any:
        s = self.settings
        return self.llamanb.Llama(
            s.model,
            n_ctx=s.n_ctx,
            n_batch=s.n_batch,
            n_threads=s.threads,
            repack=s.repack,
            n_gpu_layers=s.n_gpu_layers,
            **extra,
        )

    def info(self) -> Reply:
        return {"version": self.llamanb.__version__, "core": self.llamanb.core.__file__}

    def gen(self, n: int) -> Reply:
        self.llm.context.perf_reset()  # before the clock starts, as in the native driver
        t0 = time.perf_counter()
        # The whole prompt is decoded every time, as the native driver does: with the
        # prompt cache only its last token would be (on AMX a one-token decode rounds
        # unlike a batch, so the tokens could differ).
        self.llm.reset()
        c = self.llm.generate(self.work.prompt, max_tokens=n, temperature=0)
        seconds = time.perf_counter() - t0
        # llama.cpp's decode timings, as the native driver reports them (time outside decode)
        perf = self.llm.context.perf()
        return {
            "tokens": len(c.tokens),
            "seconds": seconds,
            "prompt_tokens": c.prompt_tokens,
            "ids": c.tokens,
            "t_eval_ms": perf["t_eval_ms"],
            "t_p_eval_ms": perf["t_p_eval_ms"],
            "n_eval": perf["n_eval"],
        }

    def pp(self) -> Reply:
        ctx = self.llm.context
        self.llm.reset()  # through the Llama, so that its prompt cache knows
        tokens = self.work.pp_tokens  # a list, as Llama's own prefill passes it
        t0 = time.perf_counter()
        ctx.decode_tokens(tokens)
        ctx.synchronize()
        seconds = time.perf_counter() - t0
        self.llm.reset()  # the cache does not hold these tokens: the next gen must not see them
        return {"tokens": len(tokens), "seconds": seconds}

    def load(self) -> Reply:
        return time_load(self._new_llama)

    def call(self) -> Reply:
        ns = {"model": self.llm.model, "vocab": self.llm.vocab, "ctx": self.llm.context, "t": 5}
        return {
            "ns": per_call_ns("model.n_embd", ns, CALLS_PER_SAMPLE),
            "per_token_ns": per_call_ns("vocab.is_eog(t)", ns, CALLS_PER_SAMPLE),
            "empty_loop_ns": per_call_ns("pass", ns, CALLS_PER_SAMPLE),
        }

    def logits(self) -> Reply:
        ctx = self.llm.context
        ctx.memory_clear(True)
        ctx.decode_tokens(self.work.pp_tokens[:8])
        return {"ns": per_call_ns("ctx.get_logits_ith(-1)", {"ctx": ctx}, LOGITS_PER_SAMPLE)}

    def tok(self) -> Reply:
        text = self.work.corpus
        t0 = time.perf_counter()
        ids = self.llm.tokenize(text)
        seconds = time.perf_counter() - t0
        return {"bytes": len(text.encode("utf-8")), "tokens": len(ids), "seconds": seconds}

    def detok(self) -> Reply:
        ids = self.corpus_ids
        t0 = time.perf_counter()
        text = self.llm.detokenize(ids)
        seconds = time.perf_counter() - t0
        return detok_reply(self.work.corpus, text, len(ids), seconds)

    def embed(self) -> Reply:
        if not hasattr(self.llm, "embed"):
            return {"skipped": "not implemented"}
        # Llama.embed keeps its own embedding context (pooling: the model's, else mean;
        # L2-normalized); it is created on the first call, which the warm-up makes.
        t0 = time.perf_counter()
        out = self.llm.embed(self.work.texts)
        seconds = time.perf_counter() - t0
        return {"n": len(out), "seconds": seconds}

    def batch(self, n: int) -> Reply:
        if not hasattr(self.llm, "generate_batch"):
            return {"skipped": "not implemented"}
        t0 = time.perf_counter()
        results = self.llm.generate_batch(self.work.batch_prompts, max_tokens=n, temperature=0)
        seconds = time.perf_counter() - t0
        return {"tokens": sum(len(c.tokens) for c in results), "seconds": seconds}

    def seq(self, n: int) -> Reply:
        t0 = time.perf_counter()
        tokens = 0
        for prompt in self.work.batch_prompts:
            tokens += len(self.llm.generate(prompt, max_tokens=n, temperature=0).tokens)
        return {"tokens": tokens, "seconds": time.perf_counter() - t0}

    def outside(self, n: int, b: int) -> Reply:
        return self._outside.run(n, b)

    def close(self) -> None:
        pass


def outside_us(ctx: Any, run: Callable[[], int]) -> float:
    """us per generated token outside llama.cpp's decode: the wall time of run() (which
    returns the tokens it generated) minus the eval times of ctx's perf counters."""
    ctx.perf_reset()
    t0 = time.perf_counter()
    tokens = run()
    wall = time.perf_counter() - t0
    perf = ctx.perf()
    return float((wall - (perf["t_eval_ms"] + perf["t_p_eval_ms"]) / 1e3) / max(1, tokens) * 1e6)


class ArgmaxSampler:
    """A sampler written in Python (greedy over the candidates with numpy)."""

    def apply(self, candidates: Any) -> None:
        import numpy as np

        candidates.selected = int(np.argmax(candidates.logits))


class OutsideDecode:
    """The per-token cost outside decode of llamanb's generating paths (see outside_us).
    (The server is llama-server's own engine: bench/serve.py measures it against llama-server.)"""

    def __init__(self, llamanb: Any, llm: Any, work: Workload, settings: Settings) -> None:
        self.llamanb, self.llm, self.work, self.settings = llamanb, llm, work, settings
        self._batch_tokens = -1

    def run(self, n: int, b: int) -> Reply:
        llm, prompt = self.llm, self.work.prompt
        chat = [{"role": "user", "content": prompt}]

        def fresh(count: Callable[[], int]) -> Callable[[], int]:
            def go() -> int:
                llm.reset()  # the whole prompt each time, as the native driver does
                return count()

            return go

        cases: dict[str, Callable[[], int]] = {
            "gen_greedy": fresh(lambda: len(llm.generate(prompt, max_tokens=n, temperature=0).tokens)),
            "stream_greedy": fresh(lambda: self._stream(n, 0.0)),
            "gen_chain": fresh(lambda: len(llm.generate(prompt, max_tokens=n, seed=1).tokens)),
            "stream_chain": fresh(lambda: self._stream(n, 0.8)),
            "chat_stream": fresh(lambda: self._chat_stream(chat, n)),
            "py_sampler": fresh(lambda: self._python_sampler(n)),
        }
        reply: Reply = {name: outside_us(llm.context, run) for name, run in cases.items()}
        reply["batch"] = self._batch(b)
        return reply

    def _options(self, n: int) -> Any:
        from llamanb.generation import GenerateOptions

        return GenerateOptions(max_tokens=n)

    def _sampling(self, temperature: float) -> Any:
        return self.llamanb.SamplingParams(temperature=temperature, seed=1)

    def _stream(self, n: int, temperature: float) -> int:
        """What Llama.stream does (start(...).texts()), keeping the run to count its tokens."""
        run = self.llm.start(self.work.prompt, options=self._options(n), sampling=self._sampling(temperature))
        for _ in run.texts():
            pass
        return int(run.completion().completion_tokens)

    def _chat_stream(self, chat: list[dict[str, str]], n: int) -> int:
        run = self.llm.start_chat(chat, options=self._options(n), sampling=self._sampling(0.8))
        for _ in run.deltas():
            pass
        return int(run.seq.completion().completion_tokens)

    def _python_sampler(self, n: int) -> int:
        """The facade's per-token step (SequenceText.advance) with a chain holding a
        Python sampler, on the Llama's context."""
        from llamanb.generation import SequenceText

        core, llm = self.llamanb.core, self.llm
        chain = core.Sampler.chain()
        chain.add(core.Sampler.from_python(ArgmaxSampler()))
        seq = SequenceText(llm.vocab, self._options(n))
        ctx = llm.context
        ctx.decode_tokens(llm.tokenize(self.work.prompt, parse_special=True))
        while True:
            seq.advance(ctx, chain, -1, room_left=True)
            if seq.done:
                break
            ctx.decode_tokens(seq.to_decode)
        chain.close()
        llm.reset()  # the Llama's prompt cache does not know these tokens
        return len(seq.tokens)

    def _batch(self, b: int) -> float:
        llm = self.llm

        def run() -> int:
            return sum(len(c.tokens) for c in llm.generate_batch(self.work.batch_prompts, max_tokens=b, temperature=0))

        if self._batch_tokens != b:  # a first run makes the batch context of this size (a new size replaces it)
            run()
            self._batch_tokens = b
        ctx = llm._batcher._ctx  # generate_batch's own context (private: only its perf counters are read)
        return outside_us(ctx, run)


class LlamaCppBackend:
    """llama-cpp-python through its high-level ``Llama`` class, the way its users call
    it; its ctypes layer (``llama_cpp.llama_*``) for the single-call rows."""

    def __init__(self, settings: Settings, work: Workload) -> None:
        import llama_cpp

        self.llama_cpp = llama_cpp
        self.settings = settings
        self.work = work
        self.llm = self._new_llama()
        self.corpus_ids: list[int] = self.llm.tokenize(work.corpus.encode("utf-8"), add_bos=True, special=False)
        self._embedder: Any = None

    def _new_llama(self, **extra: Any) -> Any:
        s = self.settings
        return self.llama_cpp.Llama(
            model_path=s.model,
            n_ctx=s.n_ctx,
            n_batch=s.n_batch,
            n_ubatch=min(s.n_batch, 512),  # what llamanb.Llama and the native driver use
            n_threads=s.threads,
            n_threads_batch=s.threads,
            # llamanb and the native driver keep llama.cpp's default (flash attention
            # "auto", which enables it on CPU); llama-cpp-python would force it off.
            flash_attn=True,
            verbose=False,
            **extra,
        )

    def info(self) -> Reply:
        return {"version": self.llama_cpp.__version__, "module": self.llama_cpp.__file__}

    def gen(self, n: int) -> Reply:
        # reset() drops llama-cpp-python's prompt-prefix cache, so it evaluates the prompt
        # like the others do instead of reusing the previous run's KV cache.
        self.llm.reset()
        t0 = time.perf_counter()
        out = self.llm.create_completion(self.work.prompt, max_tokens=n, temperature=0.0)
        seconds = time.perf_counter() - t0
        usage = out["usage"]
        return {"tokens": usage["completion_tokens"], "seconds": seconds, "prompt_tokens": usage["prompt_tokens"]}

    def pp(self) -> Reply:
        self.llm.reset()
        tokens = self.work.pp_tokens
        t0 = time.perf_counter()
        self.llm.eval(tokens)
        self.llama_cpp.llama_synchronize(self.llm.ctx)
        return {"tokens": len(tokens), "seconds": time.perf_counter() - t0}

    def load(self) -> Reply:
        return time_load(self._new_llama)

    def call(self) -> Reply:
        lc = self.llama_cpp
        ns = {"llama_cpp": lc, "model": self.llm.model, "vocab": lc.llama_model_get_vocab(self.llm.model), "t": 5}
        return {
            "ns": per_call_ns("llama_cpp.llama_model_n_embd(model)", ns, CALLS_PER_SAMPLE),
            "per_token_ns": per_call_ns("llama_cpp.llama_vocab_is_eog(vocab, t)", ns, CALLS_PER_SAMPLE),
            "empty_loop_ns": per_call_ns("pass", ns, CALLS_PER_SAMPLE),
        }

    def logits(self) -> Reply:
        # What llama-cpp-python itself does to read logits (Llama.eval): a ctypes pointer
        # wrapped as a numpy array.
        import numpy as np

        self.llm.reset()
        self.llm.eval(self.work.pp_tokens[:8])
        ns = {"np": np, "llama_cpp": self.llama_cpp, "ctx": self.llm.ctx, "n_vocab": self.llm.n_vocab()}
        stmt = "np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))"
        return {"ns": per_call_ns(stmt, ns, LOGITS_PER_SAMPLE)}

    def tok(self) -> Reply:
        text = self.work.corpus
        t0 = time.perf_counter()
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        seconds = time.perf_counter() - t0
        return {"bytes": len(text.encode("utf-8")), "tokens": len(ids), "seconds": seconds}

    def detok(self) -> Reply:
        ids = self.corpus_ids
        t0 = time.perf_counter()
        text = self.llm.detokenize(ids).decode("utf-8", errors="replace")
        seconds = time.perf_counter() - t0
        return detok_reply(self.work.corpus, text, len(ids), seconds)

    def embed(self) -> Reply:
        if self._embedder is None:
            # Mean pooling and L2 normalization: what llamanb's embed does for this model.
            self._embedder = self._new_llama(embedding=True, pooling_type=self.llama_cpp.LLAMA_POOLING_TYPE_MEAN)
        t0 = time.perf_counter()
        out = self._embedder.embed(self.work.texts, normalize=True)
        seconds = time.perf_counter() - t0
        return {"n": len(out), "seconds": seconds}

    def batch(self, n: int) -> Reply:
        return {"skipped": "no batched generation API"}

    def outside(self, n: int, b: int) -> Reply:
        return {"skipped": "not measured"}

    def close(self) -> None:
        pass

    def seq(self, n: int) -> Reply:
        t0 = time.perf_counter()
        tokens = 0
        for prompt in self.work.batch_prompts:
            self.llm.reset()
            out = self.llm.create_completion(prompt, max_tokens=n, temperature=0.0)
            tokens += out["usage"]["completion_tokens"]
        return {"tokens": tokens, "seconds": time.perf_counter() - t0}


def dispatch(backend: Backend, line: str) -> Reply | None:
    """The reply to one command line, or None for quit."""
    parts = line.split()
    if not parts:
        return {"error": "empty command"}
    name, args = parts[0], [int(a) for a in parts[1:]]
    if name == "quit":
        return None
    no_arg = {
        "pp": backend.pp,
        "load": backend.load,
        "call": backend.call,
        "logits": backend.logits,
        "tok": backend.tok,
        "detok": backend.detok,
        "embed": backend.embed,
    }
    with_n = {"gen": backend.gen, "batch": backend.batch, "seq": backend.seq}
    if name in no_arg:
        return no_arg[name]()
    if name in with_n:
        return with_n[name](args[0])
    if name == "outside":
        return backend.outside(args[0], args[1])
    return {"error": f"unknown command {name!r}"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["llamanb", "llama_cpp"], required=True)
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--n-ctx", type=int, required=True)
    p.add_argument("--n-batch", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument(
        "--no-repack",
        dest="repack",
        action="store_false",
        help="llamanb only: weights in the file's layout (no AMX / CPU_REPACK buffers)",
    )
    p.add_argument(
        "--n-gpu-layers",
        type=int,
        default=None,
        help="llamanb only: layers on the GPU (-1: all; default: Llama's, none)",
    )
    a = p.parse_args()
    settings = Settings(a.model, a.n_ctx, a.n_batch, a.threads, a.repack, a.n_gpu_layers)
    work = Workload.read(a.workdir)
    backend: Backend = (LlamanbBackend if a.backend == "llamanb" else LlamaCppBackend)(settings, work)
    print(json.dumps({"ready": True, **backend.info()}), flush=True)
    for line in sys.stdin:
        try:
            reply = dispatch(backend, line)
        except Exception as e:  # reported to run.py, which shows it instead of a number
            reply = {"error": f"{type(e).__name__}: {e}"}
        if reply is None:
            break
        print(json.dumps(reply), flush=True)
    backend.close()


if __name__ == "__main__":
    main()
