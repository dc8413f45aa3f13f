"""Greedy generation on a GPU: llamanb against the native CUDA driver built from the same
tree (bench/native_greedy.cpp, linked by tools/gpu_check.sh against the very libraries
the extension links), both with every layer on the GPU.

    python bench/gpu.py --driver build/gpucheck/cuda/native_greedy --out bench.json [--model M]

As bench/run.py does: one long-lived process each (the same workers and workload
files), a warm-up, then rounds in which the two take turns (the order rotates). Per
round: `gen N` (greedy, same prompt) and `pp` (512 prompt tokens in one batch). Reports
the medians, the median of the per-round ratios llamanb/native, microseconds per token
spent outside llama.cpp's decode (wall time minus its t_eval + t_p_eval), and whether
both produced the same tokens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from native import REPO
from run import LLAMANB, NATIVE, WORKDIR, Worker, write_workload


def outside_us(reply: dict[str, Any]) -> float:
    decode = (float(reply["t_eval_ms"]) + float(reply["t_p_eval_ms"])) / 1000
    return (float(reply["seconds"]) - decode) / max(1, int(reply["n_eval"])) * 1e6


def summary(values: dict[str, list[float]], ratios: list[float]) -> dict[str, Any]:
    return {
        "native_tok_s": statistics.median(values[NATIVE]),
        "llamanb_tok_s": statistics.median(values[LLAMANB]),
        "ratio": statistics.median(ratios),
        "samples": values,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--driver", type=Path, required=True, help="native_greedy built against the CUDA libraries")
    p.add_argument("--model", type=Path, help="GGUF (default: llamanb.default_model())")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--gen-tokens", type=int, default=128)
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--n-batch", type=int, default=512)
    a = p.parse_args()

    import llamanb

    model = str((a.model or llamanb.default_model()).resolve())
    write_workload(Path(model))
    shared = [model, str(a.n_ctx), str(a.n_batch), str(a.threads)]
    files = [str(WORKDIR / n) for n in ("prompt.txt", "pp_tokens.txt", "corpus.txt")]
    started = time.time()
    workers = {
        NATIVE: Worker(NATIVE, [str(a.driver), *shared, *files]),  # llama.cpp's default: every layer offloaded
        LLAMANB: Worker(
            LLAMANB,
            [
                sys.executable,
                str(REPO / "bench" / "worker.py"),
                "--backend",
                "llamanb",
                "--workdir",
                str(WORKDIR),
                "--model",
                model,
                "--n-ctx",
                str(a.n_ctx),
                "--n-batch",
                str(a.n_batch),
                "--threads",
                str(a.threads),
                "--n-gpu-layers",
                "-1",
            ],
        ),
    }
    gen: dict[str, list[float]] = {NATIVE: [], LLAMANB: []}
    pp: dict[str, list[float]] = {NATIVE: [], LLAMANB: []}
    outside: dict[str, list[float]] = {NATIVE: [], LLAMANB: []}
    gen_ratios: list[float] = []
    pp_ratios: list[float] = []
    same_tokens = True
    try:
        for w in workers.values():  # graphs, CUDA kernels' first launch, clocks
            w.ask("gen 16")
            w.ask("pp")
        order = [NATIVE, LLAMANB]
        for r in range(a.runs):
            names = order[r % 2 :] + order[: r % 2]
            replies = {n: workers[n].ask(f"gen {a.gen_tokens}") for n in names}
            pps = {n: workers[n].ask("pp") for n in names}
            for n in names:
                gen[n].append(replies[n]["tokens"] / replies[n]["seconds"])
                pp[n].append(pps[n]["tokens"] / pps[n]["seconds"])
                outside[n].append(outside_us(replies[n]))
            gen_ratios.append(gen[LLAMANB][-1] / gen[NATIVE][-1])
            pp_ratios.append(pp[LLAMANB][-1] / pp[NATIVE][-1])
            same_tokens &= replies[NATIVE]["ids"] == replies[LLAMANB]["ids"]
    finally:
        for w in workers.values():
            w.close()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
        "settings": {
            "model": model,
            "threads": a.threads,
            "runs": a.runs,
            "gen_tokens": a.gen_tokens,
            "n_ctx": a.n_ctx,
            "n_batch": a.n_batch,
        },
        "native_system_info": workers[NATIVE].info.get("system_info", ""),
        "gen": summary(gen, gen_ratios),
        "pp": summary(pp, pp_ratios),
        "outside_decode_us": {n: statistics.median(v) for n, v in outside.items()},
        "outside_decode_samples": outside,
        "same_tokens": same_tokens,
    }
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    g, q, o = result["gen"], result["pp"], result["outside_decode_us"]
    print(
        f"gen {a.gen_tokens}: native {g['native_tok_s']:.0f} tok/s, llamanb {g['llamanb_tok_s']:.0f} tok/s, "
        f"ratio {g['ratio']:.3f}"
    )
    print(
        f"pp 512: native {q['native_tok_s']:.0f} tok/s, llamanb {q['llamanb_tok_s']:.0f} tok/s, ratio {q['ratio']:.3f}"
    )
    print(
        f"outside decode: native {o[NATIVE]:.1f} us/token, llamanb {o[LLAMANB]:.1f} us/token; "
        f"same tokens: {same_tokens}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
