"""The llamanb benchmark suite: one command, one table of ratios measured in one run.

    python bench/run.py                      # default model, 2 threads, 5 rounds
    python bench/run.py --model M.gguf --threads 4 --runs 7 --update-docs

It builds the native C++ reference (bench/native_greedy.cpp) against the static
llama.cpp libraries that llamanb.core links, starts one long-lived process per
implementation (native, llamanb, and llama-cpp-python when it is installed), warms
them up, then runs every benchmark in rounds, alternating the implementations inside
each round so that background load hits all of them alike. Every figure is the median
over rounds; every ratio is the median of the per-round ratios (each taken from two
measurements made back to back).

Writes bench/results/results.json and bench/results/benchmarks.png and prints the
table (with --update-docs also into docs/benchmarks.md). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from native import REPO, build_driver
from report import Row, Target, evaluate, load_warning, render_chart, render_markdown, run_record, update_docs

WORKDIR = REPO / "build" / "bench" / "work"
LOGDIR = REPO / "build" / "bench" / "logs"
RESULTS = REPO / "bench" / "results"
DEFAULT_LCP_VENV = REPO / "build" / "lcp-venv" / "bin" / "python"
LCP_VERSION = "0.3.36"  # its newest release: llama.cpp b11312, older than vendor/llama.cpp/pin.json

NATIVE, LLAMANB, LCP = "native", "llamanb", "llama_cpp"
# On CPUs with AMX: native and llamanb once more with repack=False (no AMX buffers),
# reported in the native/llamanb columns of the *_plain rows.
NATIVE_PLAIN, LLAMANB_PLAIN = "native_plain", "llamanb_plain"
COLUMN = {NATIVE_PLAIN: NATIVE, LLAMANB_PLAIN: LLAMANB}

# One greedy prompt that does not hit end-of-generation within 128 tokens on the
# default model; the batch prompts are eight different starts.
GEN_PROMPT = "The history of the Roman Empire"
BATCH_PROMPTS = [
    "The history of the Roman Empire",
    "Once upon a time, in a small village by the sea,",
    "The three primary colors are",
    "List the numbers from 1 to 200: 1, 2, 3,",
    "The best way to learn a new programming language is",
    "In the year 2050, cities will",
    "A simple recipe for chocolate cake:",
    "The theory of relativity explains",
]
CORPUS_BYTES = 1_000_000
N_TEXTS = 256
PP_TOKENS = 512


@dataclass(frozen=True)
class Config:
    model: Path
    threads: int
    runs: int
    n_ctx: int
    n_batch: int
    gen_tokens: int
    batch_tokens: int
    lcp_python: Path | None
    only: tuple[str, ...] = ()  # benchmark keys to run (empty: all)


# --- workload ----------------------------------------------------------------------


def corpus_text() -> str:
    """~1 MB of English prose that every Python has: the reference manual topics that
    ship with the stdlib (pydoc_data), repeated to length."""
    from pydoc_data.topics import topics

    base = "\n\n".join(topics[k] for k in sorted(topics))
    text = base
    while len(text.encode("utf-8")) < CORPUS_BYTES:
        text += "\n\n" + base
    out = text[:CORPUS_BYTES]
    while len(out.encode("utf-8")) > CORPUS_BYTES:  # non-ASCII characters take 2+ bytes
        out = out[:-1]
    return out


def short_texts(corpus: str, n: int) -> list[str]:
    """``n`` distinct sentences of 40-120 characters from the corpus."""
    seen: list[str] = []
    for line in corpus.replace(". ", ".\n").splitlines():
        s = " ".join(line.split())
        if 40 <= len(s) <= 120 and s not in seen:
            seen.append(s)
            if len(seen) == n:
                return seen
    raise RuntimeError(f"the corpus has fewer than {n} short sentences")


def write_workload(model: Path) -> None:
    """Write the inputs all implementations read, so they see the very same data."""
    from llamanb import core

    core.log_disable()
    WORKDIR.mkdir(parents=True, exist_ok=True)
    corpus = corpus_text()
    params = core.ModelParams()
    params.vocab_only = True
    vocab = core.Model(model, params).vocab
    # The prompt-processing input: the corpus' first 512 token ids (no special parsing).
    pp_ids = vocab.tokenize(corpus[:20_000], True, False)[:PP_TOKENS].tolist()
    if len(pp_ids) < PP_TOKENS:
        raise RuntimeError("the corpus start is shorter than 512 tokens")
    (WORKDIR / "corpus.txt").write_text(corpus, encoding="utf-8")
    (WORKDIR / "prompt.txt").write_text(GEN_PROMPT, encoding="utf-8")
    (WORKDIR / "pp_tokens.txt").write_text(" ".join(map(str, pp_ids)))
    (WORKDIR / "texts.json").write_text(json.dumps(short_texts(corpus, N_TEXTS)), encoding="utf-8")
    (WORKDIR / "batch_prompts.json").write_text(json.dumps(BATCH_PROMPTS), encoding="utf-8")


# --- worker processes --------------------------------------------------------------


class Worker:
    """One implementation in its own process, answering one JSON line per command."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        LOGDIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGDIR / f"{name}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1, cwd=REPO
        )
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); log tail:\n{tail}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def python_worker(cfg: Config, python: Path | str, backend: str, repack: bool = True) -> Worker:
    argv = [
        str(python),
        str(REPO / "bench" / "worker.py"),
        "--backend",
        backend,
        "--workdir",
        str(WORKDIR),
        "--model",
        str(cfg.model),
        "--n-ctx",
        str(cfg.n_ctx),
        "--n-batch",
        str(cfg.n_batch),
        "--threads",
        str(cfg.threads),
    ] + ([] if repack else ["--no-repack"])
    return Worker(backend if repack else LLAMANB_PLAIN, argv)


def native_worker(cfg: Config, driver: Path, repack: bool = True) -> Worker:
    argv = [
        str(driver),
        str(cfg.model),
        str(cfg.n_ctx),
        str(cfg.n_batch),
        str(cfg.threads),
        str(WORKDIR / "prompt.txt"),
        str(WORKDIR / "pp_tokens.txt"),
        str(WORKDIR / "corpus.txt"),
    ]
    return Worker(NATIVE if repack else NATIVE_PLAIN, argv + ([] if repack else ["no-repack"]))


# --- llama-cpp-python ----------------------------------------------------------------


def find_lcp(requested: str | None) -> tuple[Path | None, str]:
    """The Python that has llama_cpp, and a line saying what was found (or why not)."""
    if requested == "none":
        return None, "llama-cpp-python column skipped (--lcp-python none)"
    candidates = [Path(requested)] if requested else [DEFAULT_LCP_VENV, Path(sys.executable)]
    for python in candidates:
        if not python.exists():
            continue
        probe = subprocess.run(
            [str(python), "-c", "import llama_cpp; print(llama_cpp.__version__)"], capture_output=True, text=True
        )
        if probe.returncode == 0:
            version = probe.stdout.strip()
            note = f"llama-cpp-python {version} from {python}"
            if version != LCP_VERSION:
                note += f" (expected {LCP_VERSION}: a different llama.cpp commit)"
            return python, note
    where = ", ".join(str(c) for c in candidates)
    return None, f"llama-cpp-python not installed (looked in {where}): its column is skipped"


# --- measurements --------------------------------------------------------------------


def import_seconds(python: Path | str, statement: str) -> float:
    """In-process import time in a fresh interpreter (interpreter start-up excluded)."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, cwd="/")
    return float(out.stdout.strip())


@dataclass
class Bench:
    """One benchmark: the command sent to each worker and how a reply becomes a value."""

    key: str
    command: str
    workers: tuple[str, ...]
    value: str  # which figure of the reply: see figure()


def figure(kind: str, reply: dict[str, Any]) -> float:
    if kind == "tok_per_s":
        return float(reply["tokens"]) / float(reply["seconds"])
    if kind == "mb_per_s":
        return float(reply["bytes"]) / 1e6 / float(reply["seconds"])
    if kind == "per_s":
        return float(reply["n"]) / float(reply["seconds"])
    if kind in ("ns", "per_token_ns", "seconds"):
        return float(reply[kind])
    raise ValueError(kind)


@dataclass
class Samples:
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # key -> worker -> samples
    notes: dict[str, dict[str, str]] = field(default_factory=dict)  # key -> worker -> why no number

    def add(self, key: str, worker: str, value: float) -> None:
        self.values.setdefault(key, {}).setdefault(worker, []).append(value)

    def note(self, key: str, worker: str, text: str) -> None:
        self.notes.setdefault(key, {})[worker] = text


# The outside-decode rows: llamanb's case -> the native figure shown next to it (the
# native driver's loop with greedy, or with the same default chain).
OUTSIDE_NATIVE = {
    "gen_greedy": "greedy",
    "stream_greedy": "greedy",
    "gen_chain": "chain",
    "stream_chain": "chain",
    "chat_stream": "chain",
    "py_sampler": "greedy",
    "batch": "greedy",
}


def add_outside(samples: Samples, column: str, reply: dict[str, Any]) -> None:
    """One round of the outside-decode figures: llamanb's reply has one per case, the
    native driver's one per chain (greedy, chain), each shown in the rows that compare to it."""
    for case, native_case in OUTSIDE_NATIVE.items():
        key = reply.get(native_case if column == NATIVE else case)
        if key is not None:
            samples.add(f"out_{case}", column, float(key))


def benches(cfg: Config) -> list[Bench]:
    py = (LLAMANB, LCP)
    return [
        Bench("gen", f"gen {cfg.gen_tokens}", (NATIVE, *py), "tok_per_s"),
        Bench("pp", "pp", (NATIVE, *py), "tok_per_s"),
        Bench("call", "call", py, "ns"),
        Bench("logits", "logits", py, "ns"),
        Bench("tok", "tok", (NATIVE, *py), "mb_per_s"),
        Bench("detok", "detok", (NATIVE, *py), "mb_per_s"),
        Bench("embed", "embed", py, "per_s"),
        Bench("batch", f"batch {cfg.batch_tokens}", py, "tok_per_s"),
        Bench("seq", f"seq {cfg.batch_tokens}", py, "tok_per_s"),
        Bench("load", "load", (NATIVE, *py), "seconds"),
        Bench("outside", f"outside {cfg.gen_tokens} {cfg.batch_tokens}", (NATIVE, LLAMANB), "outside"),
        Bench("gen_plain", f"gen {cfg.gen_tokens}", (NATIVE_PLAIN, LLAMANB_PLAIN), "tok_per_s"),
        Bench("pp_plain", "pp", (NATIVE_PLAIN, LLAMANB_PLAIN), "tok_per_s"),
    ]


def selected(cfg: Config) -> list[Bench]:
    """The benchmarks this run measures (--only)."""
    return [b for b in benches(cfg) if not cfg.only or b.key in cfg.only]


def warm_up(workers: dict[str, Worker], cfg: Config) -> None:
    """One untimed pass of every command at a small size: page cache, first-decode
    graph allocation, lazily created embedding contexts, CPU clocks."""
    small = {"gen": "gen 16", "gen_plain": "gen 16", "batch": "batch 8", "seq": "seq 8", "outside": "outside 16 8"}
    for b in selected(cfg):
        for name in b.workers:
            if name in workers:
                workers[name].ask(small.get(b.key, b.command))


def run_rounds(workers: dict[str, Worker], cfg: Config, samples: Samples) -> list[str]:
    """cfg.runs rounds of every benchmark; inside a round the workers take turns in an
    order that rotates from round to round. Returns warnings (e.g. token mismatches)."""
    warnings: list[str] = []
    for r in range(cfg.runs):
        print(f"round {r + 1}/{cfg.runs}", flush=True)
        for b in selected(cfg):
            names = [n for n in b.workers if n in workers]
            if not names:  # e.g. a llama-cpp-python-only row with --lcp-python none
                continue
            names = names[r % len(names) :] + names[: r % len(names)]
            ids: dict[str, list[int]] = {}
            for name in names:
                reply = workers[name].ask(b.command)
                if "skipped" in reply or "error" in reply:
                    samples.note(b.key, name, reply.get("skipped") or f"error: {reply['error']}")
                    continue
                column = COLUMN.get(name, name)
                if b.value == "outside":
                    add_outside(samples, column, reply)
                    continue
                samples.add(b.key, column, figure(b.value, reply))
                if b.key == "call":
                    samples.add("call_token", name, figure("per_token_ns", reply))
                    samples.add("call_loop", name, float(reply["empty_loop_ns"]))
                if "ids" in reply:
                    ids[column] = reply["ids"]
                if reply.get("roundtrip") is False:
                    warning = f"{name}: detokenizing the corpus' tokens did not give the corpus back"
                    if warning not in warnings:
                        warnings.append(warning)
            if NATIVE in ids and LLAMANB in ids and ids[NATIVE] != ids[LLAMANB]:
                warnings.append(f"round {r + 1}: llamanb and native generated different tokens")
    return warnings


def measure_imports(cfg: Config, samples: Samples) -> None:
    # "import" is the package alone (llamanb loads its facade lazily); "import_llama"
    # what a program that uses the model pays (numpy included).
    import_cmds = [
        ("import", LLAMANB, sys.executable, "import llamanb"),
        ("import_llama", LLAMANB, sys.executable, "from llamanb import Llama"),
    ]
    if cfg.lcp_python:
        import_cmds += [
            ("import", LCP, str(cfg.lcp_python), "import llama_cpp"),
            ("import_llama", LCP, str(cfg.lcp_python), "from llama_cpp import Llama"),
        ]
    for _, _, python, statement in import_cmds:  # warm the page cache
        import_seconds(python, statement)
    for _ in range(cfg.runs):
        for key, name, python, statement in import_cmds:
            samples.add(key, name, import_seconds(python, statement))


# --- the table -----------------------------------------------------------------------


def rows(cfg: Config, amx: bool) -> list[Row]:
    b = cfg.batch_tokens
    plain = (
        [
            Row(
                "gen_plain", f"greedy generation, {cfg.gen_tokens} tokens, AMX off (repack=False)", "tok/s", True, None
            ),
            Row("pp_plain", f"prompt processing, {PP_TOKENS} tokens, AMX off (repack=False)", "tok/s", True, None),
        ]
        if amx
        else []
    )
    table = [
        Row("gen", f"greedy generation, {cfg.gen_tokens} tokens (generate)", "tok/s", True, Target("native", 0.99)),
        Row("pp", f"prompt processing, {PP_TOKENS} tokens (decode_tokens)", "tok/s", True, Target("native", 0.99)),
        Row("call", "trivial core call (model.n_embd)", "ns", False, Target("at_most", 60.0)),
        Row("call_token", "per-token call (vocab.is_eog(t))", "ns", False, None),
        Row("logits", "one row of logits as numpy (get_logits_ith)", "ns", False, None),
        Row("tok", "tokenize 1 MB", "MB/s", True, Target("lcp", 3.0)),
        Row("detok", "detokenize 1 MB", "MB/s", True, Target("lcp", 10.0)),
        Row("embed", f"embeddings, {N_TEXTS} short texts (embed)", "texts/s", True, Target("lcp", 2.0)),
        Row("batch", f"8 prompts x {b} tokens, generate_batch", "tok/s", True, Target("row", 3.0, "seq")),
        Row("seq", f"8 prompts x {b} tokens, sequential generate", "tok/s", True, None),
        Row("import", "import llamanb / llama_cpp", "s", False, Target("at_most", 0.1)),
        Row("import_llama", "from ... import Llama (numpy included)", "s", False, None),
        Row("load", "model load + context", "s", False, None),
    ]
    g, b = cfg.gen_tokens, cfg.batch_tokens
    greedy = "out_gen_greedy"  # the targets' reference: the native greedy loop
    outside = [
        Row(
            "out_gen_greedy",
            f"outside decode: generate, greedy, {g} tokens",
            "µs/token",
            False,
            Target("outside", 0.5, greedy),
        ),
        Row("out_stream_greedy", "outside decode: stream, greedy", "µs/token", False, Target("outside", 0.5, greedy)),
        Row(
            "out_gen_chain",
            "outside decode: generate, default chain (native: same chain)",
            "µs/token",
            False,
            Target("outside", 1.0, greedy, 20.0),
        ),
        Row(
            "out_stream_chain",
            "outside decode: stream, default chain (native: same chain)",
            "µs/token",
            False,
            Target("outside", 1.0, greedy, 20.0),
        ),
        Row(
            "out_chat_stream",
            "outside decode: chat_stream, default chain (native: same chain)",
            "µs/token",
            False,
            None,
        ),
        Row(
            "out_batch",
            f"outside decode: generate_batch, 8 x {b}, per sequence-step",
            "µs/token",
            False,
            Target("outside", 1.0, greedy),
        ),
        Row("out_py_sampler", "outside decode: a Python sampler (numpy argmax), greedy", "µs/token", False, None),
    ]
    return table[:2] + plain + table[2:] + outside


def amx_speedups(samples: Samples) -> dict[str, dict[str, float]]:
    """{"pp"/"gen": {column: AMX-on median / AMX-off median}}."""
    import statistics

    out: dict[str, dict[str, float]] = {}
    for key in ("pp", "gen"):
        on, off = samples.values.get(key, {}), samples.values.get(key + "_plain", {})
        out[key] = {
            c: statistics.median(on[c]) / statistics.median(off[c])
            for c in (NATIVE, LLAMANB)
            if on.get(c) and off.get(c)
        }
    return out


def machine_info(native_info: dict[str, Any], lcp_note: str) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy

    import llamanb

    pin = json.loads((REPO / "vendor" / "llama.cpp" / "pin.json").read_text())
    gxx = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    package_file = Path(llamanb.__file__).resolve()
    return {
        "cpu": cpu,
        "cpus_available": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "compiler": gxx,
        "llamanb": llamanb.__version__,
        # An editable install imports through scikit-build-core's redirect hook.
        "llamanb_install": "editable" if REPO in package_file.parents else "wheel",
        "llama_cpp_commit": f"{pin['llama_cpp']['build']} {pin['llama_cpp'].get('commit', '')}".strip(),
        "ggml_system_info": native_info.get("system_info", ""),
        "llama_cpp_python": lcp_note,
    }


def model_info(model: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with model.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(model), "name": model.name, "bytes": model.stat().st_size, "sha256": digest.hexdigest()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="any GGUF (default: llamanb.default_model())")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5, help="rounds per benchmark; medians are taken over them")
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--n-batch", type=int, default=512, help=f"at least {PP_TOKENS}: the prompt is one batch")
    p.add_argument("--gen-tokens", type=int, default=128)
    p.add_argument("--batch-tokens", type=int, default=64, help="tokens per prompt in the 8-prompt rows")
    p.add_argument(
        "--lcp-python",
        help=f"a Python with llama-cpp-python (default {DEFAULT_LCP_VENV} "
        "if present, else this Python if it has it); 'none' skips the column",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--update-docs", action="store_true", help="rewrite the table in docs/benchmarks.md")
    p.add_argument(
        "--only",
        nargs="+",
        metavar="BENCH",
        help="run only these benchmarks (e.g. outside, gen); the table shows only their rows, "
        "and --update-docs is refused",
    )
    a = p.parse_args()
    if a.n_batch < PP_TOKENS:
        p.error(f"--n-batch must be >= {PP_TOKENS}")
    if a.runs < 1:
        p.error("--runs must be >= 1")
    if a.only and a.update_docs:
        p.error("--only measures part of the table: it does not update the docs")

    import llamanb

    model = (a.model or llamanb.default_model()).resolve()
    lcp_python, lcp_note = find_lcp(a.lcp_python)
    print(lcp_note, flush=True)
    cfg = Config(
        model, a.threads, a.runs, a.n_ctx, a.n_batch, a.gen_tokens, a.batch_tokens, lcp_python, tuple(a.only or ())
    )

    driver = build_driver()
    from llamanb.loading import amx_available

    amx = amx_available()
    print("AMX: on and off are both measured" if amx else "AMX: not on this CPU (only the plain path runs)", flush=True)
    write_workload(model)
    load_before = os.getloadavg()
    started = time.time()
    samples = Samples()
    if not cfg.only or "import" in cfg.only:
        print("import times", flush=True)
        measure_imports(cfg, samples)
    keys = {b.key for b in selected(cfg)}

    workers: dict[str, Worker] = {}
    try:
        workers[NATIVE] = native_worker(cfg, driver)
        workers[LLAMANB] = python_worker(cfg, sys.executable, LLAMANB)
        if amx and keys & {"gen_plain", "pp_plain"}:
            workers[NATIVE_PLAIN] = native_worker(cfg, driver, repack=False)
            workers[LLAMANB_PLAIN] = python_worker(cfg, sys.executable, LLAMANB, repack=False)
        if lcp_python:
            try:
                workers[LCP] = python_worker(cfg, lcp_python, LCP)
            except RuntimeError as e:  # say so and go on without the column
                print(f"llama-cpp-python worker failed, its column is skipped: {e}", flush=True)
                lcp_note += f"; its worker failed to start: {str(e).splitlines()[0]}"
                lcp_python = None
        print("warm-up", flush=True)
        warm_up(workers, cfg)
        warnings = run_rounds(workers, cfg, samples)
    finally:
        for w in workers.values():
            w.close()
    if LCP not in workers:
        why = "not installed" if cfg.lcp_python is None else "worker failed"
        for key in (
            "gen",
            "pp",
            "call",
            "call_token",
            "logits",
            "tok",
            "detok",
            "embed",
            "seq",
            "import",
            "import_llama",
            "load",
        ):
            samples.note(key, LCP, why)

    if (warning := load_warning(load_before)) is not None:
        warnings.append(warning)
    shown = [r for r in rows(cfg, amx) if not cfg.only or r.key in samples.values]
    table = [evaluate(row, samples.values, samples.notes) for row in shown]
    result = {
        **run_record(started, load_before, cfg),
        "model": model_info(model),
        "machine": machine_info(workers[NATIVE].info, lcp_note),
        "warnings": warnings,
        "amx": amx_speedups(samples) if amx else None,
        "rows": [asdict(r) for r in table],
        "samples": samples.values,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    render_chart(table, a.out / "benchmarks.png", f"{model.name}, {cfg.threads} threads, {cfg.runs} runs")
    markdown = render_markdown(table, result)
    print()
    print(markdown)
    print(f"\nwrote {a.out / 'results.json'} and {a.out / 'benchmarks.png'}")
    if a.update_docs:
        update_docs(REPO / "docs" / "benchmarks.md", markdown)
        print("updated docs/benchmarks.md")


if __name__ == "__main__":
    main()
