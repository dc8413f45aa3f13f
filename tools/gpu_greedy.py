#!/usr/bin/env python3
"""Greedy tokens on the GPU against the CPU, with one build: the first 32 tokens of
several prompts from `Llama.generate(temperature=0)` with every layer offloaded
(n_gpu_layers=-1) and with none (n_gpu_layers=0, weights in the file's layout).

Where the two differ, the first differing step is explained from the logits there:
both devices decode the prompt and the common prefix the way generate does (prefill,
then one token at a time); the difference is rounding when the CPU's choice was a near
tie and the two logit vectors agree overall (see TOP_K and MAX_REL_RMS below), not a
wrong kernel.

    python tools/gpu_greedy.py --out greedy.json [--model M] [--tokens 32] [--threads 8]

Run by tools/gpu_check.sh test. Exit status 0 when every prompt matches or each
difference is explained as rounding, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import llamanb

# Prose, a short list, code, a chat turn spelled with special tokens, a numeric series
# and a story: different parts of the vocabulary and different logit shapes.
PROMPTS = [
    "The history of the Roman Empire",
    "The three primary colors are",
    "def fibonacci(n):",
    "<|im_start|>user\nName three rivers in Europe.<|im_end|>\n<|im_start|>assistant\n",
    "List the numbers from 1 to 200: 1, 2, 3,",
    "Once upon a time, in a small village by the sea,",
]


# A difference is rounding when (1) the CPU's margin between its token and the GPU's is
# within the devices' logit differences among the CPU's top TOP_K tokens (a near tie),
# and (2) the devices compute the same function: the RMS of the logit difference over the
# vocabulary is under MAX_REL_RMS of the logits' spread. Measured on a CPU for scale:
# AMX-repacked against plain weights (each its own rounding of the activations) gave
# 0.025-0.07 here; logits of a wrong kernel would differ by about their spread (~1).
TOP_K = 10
MAX_REL_RMS = 0.1


def generate_all(llm: llamanb.Llama, tokens: int) -> list[list[int]]:
    out = []
    for prompt in PROMPTS:
        llm.reset()  # no prompt-cache reuse between prompts: each run starts alike
        out.append(llm.generate(prompt, max_tokens=tokens, temperature=0).tokens)
    return out


def logits_after(llm: llamanb.Llama, prompt: str, prefix: list[int]) -> np.ndarray:
    """The logits generate sees before choosing the token after ``prefix``."""
    llm.reset()
    ctx = llm.context
    ctx.memory_clear(True)
    ctx.decode_tokens(llm.tokenize(prompt, parse_special=True))
    for t in prefix:
        ctx.decode_tokens([t])
    logits: np.ndarray = ctx.get_logits_ith(-1, copy=True)
    llm.reset()
    return logits


def explain(cpu: llamanb.Llama, gpu: llamanb.Llama, prompt: str, a: list[int], b: list[int]) -> dict[str, Any]:
    """The first step where the CPU's tokens ``a`` and the GPU's ``b`` differ."""
    step = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    if step >= min(len(a), len(b)):  # one stopped (end of generation) where the other went on
        return {"step": step, "why": "one run ended earlier (end-of-generation token)", "explained": False}
    lc, lg = logits_after(cpu, prompt, a[:step]), logits_after(gpu, prompt, a[:step])
    t_cpu, t_gpu = a[step], b[step]
    diff = lc - lg
    top = np.argsort(-lc)[:TOP_K]
    margin = float(lc[t_cpu] - lc[t_gpu])
    top_diff = float(np.max(np.abs(diff[top])))
    rel_rms = float(np.sqrt(np.mean(diff**2)) / np.std(lc))
    return {
        "step": step,
        "cpu_token": t_cpu,
        "gpu_token": t_gpu,
        "cpu_logits": [float(lc[t_cpu]), float(lc[t_gpu])],
        "gpu_logits": [float(lg[t_cpu]), float(lg[t_gpu])],
        "cpu_margin": margin,
        "max_abs_diff_top": top_diff,
        "rel_rms_diff": rel_rms,
        "near_tie": margin <= top_diff,
        "same_function": rel_rms < MAX_REL_RMS,
        "explained": margin <= top_diff and rel_rms < MAX_REL_RMS,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="GGUF (default: llamanb.default_model())")
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=8, help="CPU threads for the n_gpu_layers=0 run")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    model = a.model or llamanb.default_model()
    llamanb.core.log_disable()
    started = time.perf_counter()
    # repack=False: the CPU run keeps the file's layout (no AMX repacking, whose own
    # rounding would blur what the comparison is about).
    with (
        llamanb.Llama(model, n_ctx=512, n_threads=a.threads, n_gpu_layers=0, repack=False) as cpu,
        llamanb.Llama(model, n_ctx=512, n_threads=a.threads, n_gpu_layers=-1) as gpu,
    ):
        cpu_ids, gpu_ids = generate_all(cpu, a.tokens), generate_all(gpu, a.tokens)
        results = []
        for prompt, c, g in zip(PROMPTS, cpu_ids, gpu_ids):
            row: dict[str, Any] = {"prompt": prompt, "equal": c == g, "cpu": c, "gpu": g}
            if c != g:
                row["first_difference"] = explain(cpu, gpu, prompt, c, g)
            results.append(row)
        devices = [str(d) for d in getattr(llamanb.core.ggml, "backends", lambda: [])()]
    equal = sum(r["equal"] for r in results)
    explained = all(r["equal"] or r["first_difference"]["explained"] for r in results)
    report = {
        "tokens": a.tokens,
        "prompts": len(results),
        "equal": equal,
        "ok": explained,
        "backends": devices,
        "seconds": round(time.perf_counter() - started, 2),
        "results": results,
    }
    a.out.write_text(json.dumps(report, indent=1) + "\n")
    for r in results:
        d = r.get("first_difference")
        if d is None:
            note = "equal"
        elif "cpu_margin" not in d:
            note = f"differs at step {d['step']}: {d['why']}"
        else:
            note = (
                f"differs at step {d['step']}: margin {d['cpu_margin']:.3f} vs top-{TOP_K} |dlogit| "
                f"{d['max_abs_diff_top']:.3f}, rel RMS {d['rel_rms_diff']:.3f} "
                f"({'rounding' if d['explained'] else 'NOT explained'})"
            )
        print(f"  {r['prompt'][:40]!r:44} {note}")
    print(
        f"greedy: {equal}/{len(results)} prompts equal for {a.tokens} tokens; {'ok' if explained else 'FAIL'} ({a.out})"
    )
    return 0 if explained else 1


if __name__ == "__main__":
    sys.exit(main())
