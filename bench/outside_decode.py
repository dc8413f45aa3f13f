"""Microseconds per generated token spent outside llama.cpp's decode (wall time minus
the context's t_eval_ms + t_p_eval_ms), median of 5 runs of 128 tokens each, for
`generate` and `stream` (greedy) and `generate` with the default sampler chain.

    .venv/bin/python bench/outside_decode.py [--model PATH] [--threads N]

`make bench` (bench/run.py) reports these and more next to the native driver's own figure.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import llamanb

PROMPT = "The three primary colors are"


def outside_us(llm: llamanb.Llama, run: Callable[[], object]) -> float:
    llm.reset()
    ctx = llm._cache.context  # the Llama's main context: its perf counters
    ctx.perf_reset()
    start = time.perf_counter()
    run()
    wall = time.perf_counter() - start
    perf = ctx.perf()
    decode = (perf["t_eval_ms"] + perf["t_p_eval_ms"]) / 1000
    return (wall - decode) / max(1.0, perf["n_eval"]) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with llamanb.Llama(args.model, n_threads=args.threads) as llm:
        cases: dict[str, Callable[[], object]] = {
            "generate, greedy": lambda: llm.generate(PROMPT, max_tokens=128, temperature=0),
            "stream, greedy": lambda: "".join(llm.stream(PROMPT, max_tokens=128, temperature=0)),
            "generate, default chain": lambda: llm.generate(PROMPT, max_tokens=128, seed=1),
        }
        for name, run in cases.items():
            runs = [outside_us(llm, run) for _ in range(5)]
            print(f"{name:24s} {statistics.median(runs):6.0f} us/token outside decode  (runs: "
                  f"{', '.join(f'{r:.0f}' for r in runs)})")


if __name__ == "__main__":
    main()
