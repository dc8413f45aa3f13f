"""Speculative decoding against plain decoding: tokens/s and acceptance, per type.

    python bench/speculative.py                 # 3 rounds, 2 threads
    python bench/speculative.py --runs 5 --types ngram-mod ngram-map-k --update-docs

Two greedy tasks: a repetitive one (rewrite a given code block with one change, ~300
tokens), where n-gram lookup should win, and free prose, where it should cost little.
The n-gram types run on the default model (Q4_1) against its plain decoding; the
draft-simple type runs a Q8_0 target made from it (core.model_quantize, cached) with
the Q4_1 file as the draft, against the Q8_0's plain decoding.

Each round loads a fresh Llama per configuration (so no n-gram pool or prompt cache
carries over from the last round), and alternates plain and speculative runs so that
background load hits both alike. Only the generation is timed (from the first token to
the last: the prompt's evaluation is the same for both). Figures are medians over
rounds; the ratio is the median of per-round ratios. The load average is printed with
them: figures from a loaded machine are not targets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import llamanb  # noqa: E402
from llamanb import Llama, SpeculativeOptions, core  # noqa: E402
from llamanb.speculative import SPECULATIVE_TYPES  # noqa: E402

sys.path.insert(0, str(REPO))
from tests.support.batch_rounding import unexplained_difference  # noqa: E402
from tests.support.draft_pair import q8_target  # noqa: E402

RESULTS = REPO / "bench" / "results"

CODE_BLOCK = """def parse_config(path):
    config = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, value = line.split("=", 1)
            config[key.strip()] = value.strip()
    return config


def load_users(path):
    users = []
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, email = line.split(",", 1)
            users.append({"name": name.strip(), "email": email.strip()})
    return users


def load_groups(path):
    groups = []
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, members = line.split(":", 1)
            groups.append({"name": name.strip(), "members": members.split()})
    return groups
"""
TASKS = {
    "repetitive": (
        "<|im_start|>user\nRewrite this Python code, renaming the variable `handle` to `f`. "
        "Output only the code.\n\n" + CODE_BLOCK + "<|im_end|>\n<|im_start|>assistant\n",
        320,
    ),
    "prose": (
        "<|im_start|>user\nWrite a short story about a lighthouse keeper who finds a message in a "
        "bottle.<|im_end|>\n<|im_start|>assistant\n",
        200,
    ),
}


@dataclass
class Row:
    task: str
    type: str
    plain_tok_s: float
    spec_tok_s: float
    speedup: float
    drafted: int
    accepted: int
    acceptance: float
    tokens: int
    same_tokens: bool
    difference: str = ""  # where same_tokens is False: batched rounding (proved), or why not


def timed(llm: Llama, prompt: str, max_tokens: int) -> tuple[float, llamanb.Completion]:
    """Tokens per second from the first token to the last, and the completion."""
    run = llm.start(
        prompt, options=llamanb.GenerateOptions(max_tokens=max_tokens), sampling=llamanb.SamplingParams(temperature=0)
    )
    t0: float | None = None
    for step in run:
        if t0 is None and step.token is not None:
            t0 = time.perf_counter()
    t1 = time.perf_counter()
    done = run.completion()
    n = done.completion_tokens - 1
    return (n / (t1 - t0) if t0 is not None and n > 0 else 0.0), done


def options(kind: str, draft_max: int | None, ngram_size: int | None) -> SpeculativeOptions:
    return SpeculativeOptions(
        (kind,),
        draft_max=draft_max,  # type: ignore[arg-type]
        ngram_size=None if kind == "draft-simple" else ngram_size,
    )


def measure(
    kind: str, task: str, runs: int, threads: int, n_ctx: int, draft_max: int | None, ngram_size: int | None
) -> Row:
    prompt, max_tokens = TASKS[task]
    path = q8_target() if kind == "draft-simple" else llamanb.default_model()
    extra: dict[str, object] = {"draft_model": llamanb.default_model()} if kind == "draft-simple" else {}
    plain_s, spec_s, ratios = [], [], []
    drafted = accepted = 0
    same = True
    differing: tuple[list[int], list[int]] | None = None  # (plain, speculative) tokens of a run that differed
    n_tokens = 0
    for _ in range(runs):
        with Llama(path, n_ctx=n_ctx, n_threads=threads) as plain:
            p_rate, p_done = timed(plain, prompt, max_tokens)
        with Llama(
            path, n_ctx=n_ctx, n_threads=threads, speculative=options(kind, draft_max, ngram_size), **extra
        ) as spec:  # type: ignore[arg-type]
            s_rate, s_done = timed(spec, prompt, max_tokens)
        plain_s.append(p_rate)
        spec_s.append(s_rate)
        ratios.append(s_rate / p_rate if p_rate else 0.0)
        drafted += s_done.drafted_tokens or 0
        accepted += s_done.accepted_tokens or 0
        if s_done.tokens != p_done.tokens:
            same, differing = False, (p_done.tokens, s_done.tokens)
        n_tokens = s_done.completion_tokens
    why = ""
    if differing is not None:  # batched rounding (proved), or a real divergence (said)
        with Llama(path, n_ctx=n_ctx, n_threads=threads) as plain:
            reason = unexplained_difference(plain, prompt, *differing, n_ctx=n_ctx)
        why = "batched rounding, proved" if reason is None else f"UNEXPLAINED: {reason}"
    return Row(
        task,
        kind,
        statistics.median(plain_s),
        statistics.median(spec_s),
        statistics.median(ratios),
        drafted // runs,
        accepted // runs,
        accepted / drafted if drafted else 0.0,
        n_tokens,
        same,
        why,
    )


def markdown(rows: list[Row], header: str) -> str:
    lines = [
        header,
        "",
        "| task | type | plain tok/s | speculative tok/s | speedup | drafted | accepted | acceptance | "
        "tokens | same tokens |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.task} | {r.type} | {r.plain_tok_s:.1f} | {r.spec_tok_s:.1f} | {r.speedup:.2f}x | "
            f"{r.drafted} | {r.accepted} | {r.acceptance:.0%} | {r.tokens} | "
            f"{'yes' if r.same_tokens else 'NO (' + r.difference + ')'} |"
        )
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- speculative:begin -->", "<!-- speculative:end -->"


def update_docs(path: Path, table: str) -> None:
    text = path.read_text()
    block = f"{BEGIN}\n{table}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Speculative decoding\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--types", nargs="+", default=list(SPECULATIVE_TYPES), choices=SPECULATIVE_TYPES)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument(
        "--draft-max",
        type=int,
        default=None,
        help="cap on drafted tokens per step (default: each type's llama.cpp default)",
    )
    p.add_argument(
        "--ngram-size",
        type=int,
        default=None,
        help="n-gram length the n-gram types look up or match (default: llama.cpp's, 12 and for ngram-mod 24)",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--update-docs", action="store_true", help="write the table into docs/benchmarks.md")
    a = p.parse_args()
    core.log_disable()
    load_before = os.getloadavg()
    t0 = time.time()
    rows = []
    for task in a.tasks:
        for kind in a.types:
            row = measure(kind, task, a.runs, a.threads, a.n_ctx, a.draft_max, a.ngram_size)
            print(
                f"{task:10s} {kind:13s} plain {row.plain_tok_s:6.1f} tok/s  spec {row.spec_tok_s:6.1f} tok/s  "
                f"{row.speedup:.2f}x  acceptance {row.acceptance:.0%}  same={row.same_tokens}",
                flush=True,
            )
            rows.append(row)
    load_after = os.getloadavg()
    header = (
        f"Greedy, {a.threads} threads, median of {a.runs} rounds, {time.strftime('%Y-%m-%d %H:%M')}; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        f"({os.cpu_count()} CPUs). Types at llama.cpp's default draft lengths"
        + (f", capped at {a.draft_max}" if a.draft_max else "")
        + (f"; n-grams of {a.ngram_size}" if a.ngram_size else "")
        + "."
    )
    table = markdown(rows, header)
    print()
    print(table)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "speculative.json").write_text(
        json.dumps(
            {
                "rows": [asdict(r) for r in rows],
                "loadavg_before": load_before,
                "loadavg_after": load_after,
                "runs": a.runs,
                "threads": a.threads,
                "seconds": time.time() - t0,
                "system": core.system_info(),
            },
            indent=1,
        )
    )
    if a.update_docs:
        update_docs(REPO / "docs" / "benchmarks.md", table)


if __name__ == "__main__":
    main()
