"""llamanb's server against llama.cpp's ``llama-server``, same model, same settings.

    python bench/serve.py                           # default model, 2 threads, 3 rounds
    python bench/serve.py --rounds 5 --model M.gguf --threads 2 --update-docs
    python bench/serve.py --contention              # every round beside one CPU-bound process

Builds llama-server from the vendored llama.cpp (bench/llama_server.py), starts it and
``python -m llamanb.server`` (llama-server's engine in process, the same arguments) side by side on loopback (8 slots, 8192 context cells in
all, n_batch 512, the same thread count), warms both up, then measures in rounds, the
two servers taking turns in an order that alternates from round to round:

  (a) aggregate generated tokens/s of 32 concurrent streaming chats of 64 tokens each;
  (b) the median time to first token of those 32 chats;
  (c) the time to first token of turn 6 of a 6-turn conversation (a ~200-token system
      prompt and a growing history; each turn adds the reply and a new question), run
      alone, twice per round.

Figures are medians over rounds; ratios (llamanb / llama-server) are medians of the
per-round ratios. Writes bench/results/serve.json and prints the table (with
--update-docs also into docs/benchmarks.md). Both servers are stopped however the run
ends.

``--contention`` runs every round (not the warm-up) beside one CPU-bound process
(bench/contention.py), as users' machines rarely are quiet, and writes
serve-contended.json: set beside a quiet run's serve.json it gives each server's
contended / quiet figure (issue 27).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import thread_times
from contention import cpu_hog
from llama_server import build as build_llama_server
from report import load_warning, run_record, update_docs
from serve_load import Sampling, concurrent_chats, conversation

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
LOGDIR = REPO / "build" / "bench" / "logs"
DOCS = REPO / "docs" / "benchmarks.md"
DOCS_MARKERS = ("<!-- serve:begin -->", "<!-- serve:end -->")
LLAMANB, LLAMA_SERVER = "llamanb", "llama-server"
REQUEST_LIMIT_S = 300.0  # one load or one conversation turn; a slower one fails the run


@dataclass(frozen=True)
class Settings:
    model: Path
    threads: int
    rounds: int
    slots: int = 8
    n_ctx: int = 8192  # KV cells in all, split evenly between the slots (both servers' -c)
    n_batch: int = 512
    streams: int = 32
    tokens: int = 64
    turns: int = 6
    conversations: int = 2  # per round and server
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    seed: int = 1234


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    ratio: float  # llamanb / llama-server must be >= (higher is better) or <= this

    def text(self) -> str:
        return f"{'≥' if self.higher_is_better else '≤'} {self.ratio:g}×"


TARGETS = [
    Target("tok_per_s", "aggregate generation, 32 streaming chats x 64 tokens", "tok/s", True, 0.95),
    Target("ttft_p50", "time to first token, median under that load", "ms", False, 1.1),
    Target("turn6_ttft", "time to first token, turn 6 of a 6-turn conversation", "ms", False, 1.2),
]


# --- the servers -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """A server in its own process on a loopback port, ready once /health says 200."""

    def __init__(self, name: str, argv: list[str], port: int, start_limit_s: float = 180.0) -> None:
        self.name = name
        self.port = port
        self.argv = argv
        LOGDIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGDIR / f"serve-{name}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + start_limit_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({self.proc.returncode}) while starting; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not become healthy in {start_limit_s:g} s; see {self.log_path}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self._log.close()


def llama_server_argv(binary: Path, s: Settings, port: int) -> list[str]:
    # -c is the whole KV cache, split across -np slots, as llamanb's --n-ctx. -kvu: one
    # unified KV cache, the layout llamanb's engine uses (llama-server's default for an
    # explicit -np is one KV stream per slot, which ran several times slower here).
    return [
        str(binary),
        "-m",
        str(s.model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-np",
        str(s.slots),
        "-c",
        str(s.n_ctx),
        "-kvu",
        "-b",
        str(s.n_batch),
        "-ub",
        str(s.n_batch),
        "-t",
        str(s.threads),
        "-tb",
        str(s.threads),
        "--no-webui",
    ]


def llamanb_argv(s: Settings, port: int) -> list[str]:
    # llamanb serve is llama-server in process: the very same command line
    return [sys.executable, "-m", "llamanb.server", *llama_server_argv(Path("llama-server"), s, port)[1:]]


def eog_tokens(model: Path) -> tuple[int, ...]:
    """The model's end-of-generation tokens, banned in every request."""
    from llamanb import core

    core.log_disable()
    params = core.ModelParams()
    params.vocab_only = True
    vocab = core.Model(model, params).vocab
    return tuple(t for t in range(vocab.n_tokens) if vocab.is_eog(t))


# --- measuring -----------------------------------------------------------------------


@dataclass
class Samples:
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # figure -> server -> per round
    load_times: list[dict[str, object]] = field(default_factory=list)  # per server and round: thread_times

    def add(self, key: str, server: str, value: float) -> None:
        self.values.setdefault(key, {}).setdefault(server, []).append(value)


def measure(
    server: ServerProcess,
    s: Settings,
    sampling: Sampling,
    model_id: str,
    round_no: int,
    samples: Samples,
    warnings: list[str],
) -> None:
    before = thread_times.snapshot(server.proc.pid) if thread_times.available() else None
    load = asyncio.run(
        concurrent_chats(server.base_url, model_id, s.streams, sampling, s.seed + 1000 * round_no, REQUEST_LIMIT_S)
    )
    times = None if before is None else thread_times.between(before, thread_times.snapshot(server.proc.pid))
    short = [n for n in load.tokens if n != s.tokens]
    if short:
        warnings.append(f"round {round_no + 1}: {server.name} generated {short} tokens in some streams, not {s.tokens}")
    samples.add("tok_per_s", server.name, load.tok_per_s)
    samples.add("ttft_p50", server.name, load.ttft_p50 * 1000)
    turn_ttfts = []
    for c in range(s.conversations):
        conv = asyncio.run(
            conversation(
                server.base_url, model_id, s.turns, sampling, s.seed, f"{round_no + 1}-{c + 1}", REQUEST_LIMIT_S
            )
        )
        turn_ttfts.append(conv.ttft[-1])
        samples.add("turn1_ttft", server.name, conv.ttft[0] * 1000)
    samples.add("turn6_ttft", server.name, statistics.median(turn_ttfts) * 1000)
    print(
        f"  {server.name:>12}: {load.tok_per_s:7.1f} tok/s, TTFT p50 {load.ttft_p50 * 1000:7.1f} ms, "
        f"turn-{s.turns} TTFT {statistics.median(turn_ttfts) * 1000:6.1f} ms",
        flush=True,
    )
    if times is not None:
        print(f"  {'':>12}  load: {times.text()}", flush=True)
        samples.load_times.append({"server": server.name, "round": round_no + 1, **times.record()})


def warm_up(server: ServerProcess, s: Settings, sampling: Sampling, model_id: str) -> None:
    """Untimed: first decodes (graph allocation), page cache, the client's imports."""
    small = Sampling(8, sampling.temperature, sampling.top_p, sampling.top_k, sampling.min_p, sampling.banned)
    asyncio.run(concurrent_chats(server.base_url, model_id, s.slots, small, 1, REQUEST_LIMIT_S))
    asyncio.run(conversation(server.base_url, model_id, 2, small, 1, "warm-up", REQUEST_LIMIT_S))


def shared_machine_warnings(
    load_times: list[dict[str, Any]], load_before: tuple[float, float, float], hog_cpus: int
) -> list[str]:
    """Other work on the machine while a load ran: more CPU than 5% of the machine used
    by neither the measured server, the load generator nor the ``hog_cpus`` of
    --contention. (The load average after a run only shows the benchmark itself: it
    keeps every core busy.) Without /proc, the load average before and after."""
    if not load_times and hog_cpus:
        return []
    if not load_times:
        warning = load_warning(load_before)
        return [] if warning is None else [warning]
    cpus = len(os.sched_getaffinity(0))
    return [
        f"round {t['round']}, {t['server']}: other work on the machine used {t['other_cpu_s']:.1f} CPU-s "
        f"during the {t['wall_s']:.1f} s load, so this round's figures are noisy (rerun on a quiet machine)"
        for t in load_times
        if t["other_cpu_s"] - hog_cpus * t["wall_s"] > 0.05 * cpus * t["wall_s"]
    ]


# --- the table -----------------------------------------------------------------------


def evaluate(samples: Samples, servers: list[str]) -> list[dict[str, Any]]:
    rows = []
    for t in TARGETS:
        per = samples.values.get(t.key, {})
        row: dict[str, Any] = {
            "key": t.key,
            "label": t.label,
            "unit": t.unit,
            "target": t.text(),
            "median": {n: statistics.median(v) for n, v in per.items() if v},
        }
        if LLAMANB in per and LLAMA_SERVER in per:
            ratios = [a / b for a, b in zip(per[LLAMANB], per[LLAMA_SERVER])]
            ratio = statistics.median(ratios)
            row["ratio"], row["ratios"] = ratio, ratios
            row["met"] = ratio >= t.ratio if t.higher_is_better else ratio <= t.ratio
        rows.append(row)
    return rows


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if unit == "tok/s" else f"{value:.0f}"


def markdown(rows: list[dict[str, Any]], result: dict[str, Any]) -> str:
    lines = [
        "| figure | unit | llamanb | llama-server | llamanb / llama-server | target | result |",
        "|---|---|--:|--:|--:|---|---|",
    ]
    for r in rows:
        ratio = r.get("ratio")
        verdict = "–" if ratio is None else ("met" if r["met"] else "**missed**")
        lines.append(
            f"| {r['label']} | {r['unit']} | {fmt(r['median'].get(LLAMANB), r['unit'])} | "
            f"{fmt(r['median'].get(LLAMA_SERVER), r['unit'])} | "
            f"{'–' if ratio is None else f'{ratio:.2f}×'} | {r['target']} | {verdict} |"
        )
    s = result["settings"]
    lines += [
        "",
        "Figures are medians over rounds; ratios are medians of per-round ratios (for ms rows, lower is better).",
        "",
        f"- run: {result['date']}, {s['rounds']} rounds, {result['duration_s']} s; load average "
        f"{', '.join(f'{x:.2f}' for x in result['load_average_before'])} before, "
        f"{', '.join(f'{x:.2f}' for x in result['load_average_after'])} after",
        f"- model: `{Path(s['model']).name}`; {s['threads']} threads; {s['slots']} slots; {s['n_ctx']} KV cells "
        f"in all; n_batch {s['n_batch']}; sampling: temperature {s['temperature']}, top_p {s['top_p']}, "
        f"top_k {s['top_k']}, min_p {s['min_p']}, fixed seeds, end-of-generation banned (logit_bias)",
        f"- machine: {result['machine']['cpu']}, {result['machine']['cpus_available']} CPUs available; "
        f"llama.cpp `{result['machine']['llama_cpp_commit']}` for both",
        f"- llama-server: `{' '.join(result['commands'][LLAMA_SERVER])}`"
        if LLAMA_SERVER in result["commands"]
        else "- llama-server: not run",
        f"- llamanb: `{' '.join(result['commands'][LLAMANB])}`"
        if LLAMANB in result["commands"]
        else "- llamanb: not run",
    ]
    for name in (LLAMANB, LLAMA_SERVER):
        runs = sorted((t for t in result["load_times"] if t["server"] == name), key=lambda t: t["wall_s"])
        if runs:
            t = runs[len(runs) // 2]  # the round of median wall time
            threads = ", ".join(f"{c:.1f}/{w:.1f}" for c, w in t["threads_cpu_wait_s"][:3])
            lines.append(
                f"- {name} during the 32-stream load (round {t['round']}, {t['wall_s']:.1f} s): its "
                f"busiest threads' CPU/run-queue wait s {threads}; the load generator's CPU "
                f"{t['client_cpu_s']:.1f} s; other processes {t['other_cpu_s']:.1f} s "
                "(bench/thread_times.py)"
            )
    if result.get("contention"):
        lines.append(
            "- every round ran beside one CPU-bound process (`--contention`, bench/contention.py); "
            "its CPU is in the other processes' figure"
        )
    lines += [f"- warning: {w}" for w in result["warnings"]]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    pin = json.loads((REPO / "vendor" / "llama.cpp" / "pin.json").read_text())
    llama_cpp = f"{pin['llama_cpp']['build']} {pin['llama_cpp'].get('commit', '')}".strip()
    return {"cpu": cpu, "cpus_available": len(os.sched_getaffinity(0)), "llama_cpp_commit": llama_cpp}


def short_command(argv: list[str]) -> list[str]:
    return [str(Path(a).relative_to(REPO)) if a.startswith(str(REPO)) else a for a in argv]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="any GGUF (default: llamanb.default_model())")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--slots",
        type=int,
        default=Settings.slots,
        help="slots of each server (fewer slots: shorter decode steps, so per-step overhead shows)",
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds (at least 2); medians are taken over them")
    p.add_argument(
        "--conversations",
        type=int,
        default=2,
        help="6-turn conversations per round and server (turn-6 TTFT is their median)",
    )
    p.add_argument(
        "--servers",
        default=f"{LLAMANB},{LLAMA_SERVER}",
        help="which servers to run (comma-separated; one alone is useful for profiling)",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--update-docs", action="store_true", help="rewrite the server table in docs/benchmarks.md")
    p.add_argument(
        "--contention",
        action="store_true",
        help="run every round beside one CPU-bound process; writes serve-contended.json",
    )
    a = p.parse_args()
    if a.contention and a.update_docs:
        p.error("--update-docs writes the quiet table; run it without --contention")
    if a.rounds < 1:
        p.error("--rounds must be >= 1")
    if a.slots < 1:
        p.error("--slots must be >= 1")
    if a.conversations < 1:
        p.error("--conversations must be >= 1")
    names = [n.strip() for n in a.servers.split(",") if n.strip()]
    if not names or set(names) - {LLAMANB, LLAMA_SERVER}:
        p.error(f"--servers takes {LLAMANB} and/or {LLAMA_SERVER}")

    import llamanb

    model = (a.model or llamanb.default_model()).resolve()
    s = Settings(model, a.threads, a.rounds, slots=a.slots, conversations=a.conversations)
    binary = build_llama_server() if LLAMA_SERVER in names else None
    sampling = Sampling(s.tokens, s.temperature, s.top_p, s.top_k, s.min_p, eog_tokens(model))
    load_before = os.getloadavg()
    started = time.time()
    samples, warnings = Samples(), list[str]()
    servers: dict[str, ServerProcess] = {}
    try:
        for name in names:
            port = free_port()
            argv = llamanb_argv(s, port) if name == LLAMANB else llama_server_argv(binary, s, port)  # type: ignore[arg-type]
            print(f"starting {name}: {' '.join(short_command(argv))}", flush=True)
            servers[name] = ServerProcess(name, argv, port)
        for name in names:
            print(f"warm-up {name}", flush=True)
            warm_up(servers[name], s, sampling, model.name)
        with cpu_hog() if a.contention else contextlib.nullcontext():
            for r in range(s.rounds):
                print(f"round {r + 1}/{s.rounds}{' beside a CPU-bound process' if a.contention else ''}", flush=True)
                for name in names if r % 2 == 0 else names[::-1]:
                    measure(servers[name], s, sampling, model.name, r, samples, warnings)
    finally:
        for server in servers.values():
            server.stop()

    warnings += shared_machine_warnings(samples.load_times, load_before, 1 if a.contention else 0)
    rows = evaluate(samples, names)
    result = {
        **run_record(started, load_before, s),
        "machine": machine(),
        "contention": a.contention,
        "commands": {n: short_command(srv.argv) for n, srv in servers.items()},
        "warnings": warnings,
        "rows": rows,
        "samples": samples.values,
        "load_times": samples.load_times,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    out = a.out / ("serve-contended.json" if a.contention else "serve.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(rows, result)
    print()
    print(table)
    print(f"\nwrote {out}")
    if a.update_docs:
        update_docs(DOCS, table, DOCS_MARKERS)
        print("updated docs/benchmarks.md")


if __name__ == "__main__":
    main()
