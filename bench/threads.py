"""Decoding speed by calling thread: is a decode as fast from any thread as from the
thread that loaded the model? One fresh process per case, so that no case measures
another case's threads. (llamanb builds ggml without OpenMP, whose libgomp kept a thread
team per calling thread: each context now runs on a ggml pool of its own, issue 27.)

    python bench/threads.py                    # default model, 2 threads, 3 rounds
    python bench/threads.py --rounds 5 --contention

Each case times ``generate_batch`` (8 prompts x 64 tokens, greedy) or one greedy
``generate`` of 128 tokens, and prints tok/s with its ratio to the main-thread figure of
the same workload, measured in the same run (medians over rounds, cases alternating
inside each round). ``--contention`` adds the main-thread case and llama-server's engine beside one
CPU-bound process (``while True: pass``), whose fair share is 0.5x on 2 cores; the
engine's ratio is to its own quiet figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from contention import cpu_hog  # noqa: E402
from run import BATCH_PROMPTS  # noqa: E402  (the eight prompts of make bench's batch rows)

BATCH_TOKENS = 64
GEN_TOKENS = 128


# --- the workloads (run inside one case process) -------------------------------------


def load(model: str | None, threads: int) -> Any:
    import llamanb

    return llamanb.Llama(model, n_ctx=2048, n_threads=threads)


def batch(llm: Any) -> float:
    """tok/s of generate_batch over the eight prompts."""
    start = time.perf_counter()
    out = llm.generate_batch(BATCH_PROMPTS, max_tokens=BATCH_TOKENS, temperature=0)
    seconds = time.perf_counter() - start
    return sum(len(c.tokens) for c in out) / seconds


def single(llm: Any) -> float:
    """tok/s of one greedy generate (this prompt does not end within 128 tokens)."""
    start = time.perf_counter()
    done = llm.generate(BATCH_PROMPTS[0], max_tokens=GEN_TOKENS, temperature=0)
    return len(done.tokens) / (time.perf_counter() - start)


def on_thread(fn: Callable[[], float]) -> float:
    """``fn()`` on a new threading.Thread."""
    out: list[float] = []
    worker = threading.Thread(target=lambda: out.append(fn()))
    worker.start()
    worker.join()
    return out[0]


def engine(model: str | None, threads: int) -> float:
    """tok/s of llama-server's engine (``core.server.Server`` in process, no HTTP) over the same
    eight prompts, one /completion each, all at once: the engine decodes on its own thread."""
    import llamanb
    from llamanb import core

    path = model or str(llamanb.default_model())
    server = core.server.Server(
        [
            "-m",
            path,
            "-np",
            str(len(BATCH_PROMPTS)),
            "-c",
            str(256 * len(BATCH_PROMPTS)),
            "-t",
            str(threads),
            "-b",
            "512",
            "--temp",
            "0",
            "--no-warmup",
        ]
    )
    server.start()
    if not server.wait_ready(300):
        raise RuntimeError(f"llama-server's engine did not load ({server.state})")

    def one(prompt: str, n: int) -> int:
        response = core.server.ServerResponse()
        body = json.dumps({"prompt": prompt, "n_predict": n, "ignore_eos": True, "cache_prompt": False})
        server.handle(response, "POST", "/completion", {}, {"content-type": "application/json"}, "", body.encode())
        reply = json.loads(response.body)
        response.close()
        return int(reply["tokens_predicted"])

    def run(n: int) -> float:
        done: list[int] = []
        workers = [threading.Thread(target=lambda p=p: done.append(one(p, n))) for p in BATCH_PROMPTS]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return sum(done) / (time.perf_counter() - start)

    try:
        run(4)  # warm-up
        return run(BATCH_TOKENS)
    finally:
        server.stop()


def run_case(case: str, model: str | None, threads: int) -> dict[str, float]:
    """The figures of one case; every case warms up once on the thread it measures."""
    if case == "main":
        llm = load(model, threads)
        batch(llm)
        return {"batch": batch(llm), "single": single(llm)}
    if case == "worker":  # loaded on main, decoded on a worker thread
        llm = load(model, threads)
        return {"batch": on_thread(lambda: (batch(llm), batch(llm))[1]), "single": on_thread(lambda: single(llm))}
    if case == "main-worker-main":  # every thread that decodes leaves its team behind
        llm = load(model, threads)
        batch(llm)
        first = batch(llm)
        on_worker = on_thread(lambda: (batch(llm), batch(llm))[1])
        return {"batch": min(batch(llm), on_worker), "main-first": first, "worker": on_worker}
    if case == "loaded-on-worker":
        return {"batch": on_thread(lambda: (lambda llm: (batch(llm), batch(llm))[1])(load(model, threads)))}
    if case == "agenerate":
        llm = load(model, threads)

        async def timed() -> float:
            await llm.agenerate(BATCH_PROMPTS[0], max_tokens=8, temperature=0)
            start = time.perf_counter()
            done = await llm.agenerate(BATCH_PROMPTS[0], max_tokens=GEN_TOKENS, temperature=0)
            return len(done.tokens) / (time.perf_counter() - start)

        return {"single": asyncio.run(timed())}
    if case == "two-llamas":  # two Llamas, each with half the threads, each on its own thread
        half = max(1, threads // 2)
        llms = [load(model, half), load(model, half)]
        rates: list[float] = []

        def one(llm: Any) -> None:
            batch(llm)
            rates.append(batch(llm))

        workers = [threading.Thread(target=one, args=(llm,)) for llm in llms]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return {"batch": sum(rates)}
    if case == "engine":
        return {"batch": engine(model, threads)}
    if case == "contended":  # main thread, beside one CPU-bound process
        with cpu_hog():
            llm = load(model, threads)
            batch(llm)
            return {"batch": batch(llm), "single": single(llm)}
    if case == "engine-contended":  # llama-server's engine, beside the same process
        with cpu_hog():
            return {"batch": engine(model, threads)}
    raise ValueError(f"unknown case {case!r}")


# --- the driver --------------------------------------------------------------------

CASES = ["main", "worker", "main-worker-main", "loaded-on-worker", "agenerate", "two-llamas", "engine"]


def measure(case: str, model: str | None, threads: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--case", case, "--threads", str(threads)]
    if model:
        cmd += ["--model", model]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--contention", action="store_true")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    parser.add_argument("--json", type=Path, help="also write the table's figures here")
    args = parser.parse_args()
    if args.case:
        from llamanb import core

        core.log_disable()
        print(json.dumps(run_case(args.case, args.model, args.threads)))
        return 0
    cases = args.cases.split(",") + (["contended", "engine-contended"] if args.contention else [])
    if "main" not in cases:
        cases.insert(0, "main")
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in cases}
    for r in range(args.rounds):
        for case in cases:
            runs[case].append(measure(case, args.model, args.threads))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    median = {c: {k: statistics.median(run[k] for run in runs[c]) for k in runs[c][0]} for c in cases}
    base = median["main"]
    print(f"cpu: {cpu_name()}, amx: {has_amx()}, threads: {args.threads}, rounds: {args.rounds}")
    print(f"{'case':<18} {'workload':<12} {'tok/s':>8} {'x main':>7}")
    rows = []
    for case in cases:
        for key, value in median[case].items():
            ref = base.get("batch" if key in ("main-first", "worker") else key)
            if case == "engine-contended" and "engine" in median:
                ref = median["engine"]["batch"]  # the engine beside a hog, to the quiet engine
            ratio = value / ref if ref else float("nan")
            rows.append({"case": case, "workload": key, "tok_s": value, "ratio": ratio})
            print(f"{case:<18} {key:<12} {value:8.1f} {ratio:6.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "amx": has_amx(), "rows": rows}, indent=1))
    return 0


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return os.uname().machine


def has_amx() -> bool:
    return "amx_tile" in Path("/proc/cpuinfo").read_text()


if __name__ == "__main__":
    sys.exit(main())
