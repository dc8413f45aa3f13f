"""Turning samples into the benchmark table: medians, paired ratios, targets, the
Markdown table, the PNG chart and the docs update."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

NATIVE, LLAMANB, LCP = "native", "llamanb", "llama_cpp"
PP = 512  # prompt-processing tokens (bench/run.py PP_TOKENS)
DOCS_BEGIN, DOCS_END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclass(frozen=True)
class Target:
    """native/lcp: llamanb at least `value` times the reference; row: llamanb's figure
    at least `value` times its own figure in row `row`; at_most: llamanb's median at
    most `value` (in the row's unit); outside: llamanb's median (a time) at most `value`
    times the native median of row `row`, plus `plus` (shown as the speed-up over that
    native figure it needs)."""

    kind: Literal["native", "lcp", "row", "at_most", "outside"]
    value: float
    row: str | None = None
    plus: float = 0.0

    def text(self, unit: str) -> str:
        if self.kind == "native":
            return f"≥ {self.value:g}× native"
        if self.kind == "lcp":
            return f"≥ {self.value:g}× llama-cpp-python"
        if self.kind == "row":
            return f"≥ {self.value:g}× sequential"
        if self.kind == "outside":
            limit = "native greedy" if self.value == 1.0 else f"{self.value:g}× native greedy"
            return f"≤ {limit}" + (f" + {self.plus:g} µs" if self.plus else "")
        return f"≤ {self.value:g} {unit}"


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: Target | None


@dataclass
class Result:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    median: dict[str, float] = field(default_factory=dict)  # worker -> median
    runs: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # worker -> why there is no figure
    vs_native: float | None = None  # > 1: llamanb is faster (throughput, or time inverted)
    vs_lcp: float | None = None
    target: str | None = None  # the target as text
    target_kind: str | None = None
    target_value: float | None = None
    achieved: float | None = None  # the figure the target is checked against
    met: bool | None = None


def speedup(ours: float, ref: float, higher_is_better: bool) -> float:
    return ours / ref if higher_is_better else ref / ours


def paired_ratio(ours: list[float], ref: list[float], higher_is_better: bool) -> float | None:
    """Median of per-round ratios: round i of both lists was measured back to back, so
    load that drifts during the run cancels out of each ratio."""
    pairs = [speedup(a, b, higher_is_better) for a, b in zip(ours, ref)]
    return statistics.median(pairs) if pairs else None


def evaluate(row: Row, values: dict[str, dict[str, list[float]]], notes: dict[str, dict[str, str]]) -> Result:
    samples = values.get(row.key, {})
    r = Result(row.key, row.label, row.unit, row.higher_is_better)
    r.median = {w: statistics.median(v) for w, v in samples.items() if v}
    r.runs = {w: len(v) for w, v in samples.items()}
    r.notes = dict(notes.get(row.key, {}))
    ours = samples.get(LLAMANB, [])
    if ours and samples.get(NATIVE):
        r.vs_native = paired_ratio(ours, samples[NATIVE], row.higher_is_better)
    if ours and samples.get(LCP):
        r.vs_lcp = paired_ratio(ours, samples[LCP], row.higher_is_better)
    t = row.target
    if t is None:
        return r
    r.target, r.target_kind, r.target_value = t.text(row.unit), t.kind, t.value
    if t.kind == "native":
        r.achieved = r.vs_native
    elif t.kind == "lcp":
        r.achieved = r.vs_lcp
    elif t.kind == "row" and t.row is not None and ours:
        other = values.get(t.row, {}).get(LLAMANB, [])
        r.achieved = paired_ratio(ours, other, row.higher_is_better) if other else None
    elif t.kind == "at_most" and ours:
        r.achieved = r.median[LLAMANB]
    elif t.kind == "outside" and ours and t.row is not None:
        ref = values.get(t.row, {}).get(NATIVE, [])
        if ref:
            # As a speed-up over the native figure: needed native / limit, got native / ours.
            native = statistics.median(ref)
            r.target_value = native / (t.value * native + t.plus)
            r.achieved = native / r.median[LLAMANB]
            r.met = r.achieved >= r.target_value
        return r
    if r.achieved is not None:
        r.met = r.achieved <= t.value if t.kind == "at_most" else r.achieved >= t.value
    return r


# --- Markdown ------------------------------------------------------------------------


def fmt(value: float, unit: str) -> str:
    if unit == "ns":
        return f"{value:.0f}"
    if unit == "s":
        return f"{value:.3f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(r: Result, worker: str) -> str:
    if worker in r.median:
        return fmt(r.median[worker], r.unit)
    if worker in r.notes:
        return f"n/a ({r.notes[worker]})"
    return "–"


def ratio_cell(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def met_cell(r: Result) -> str:
    if r.target is None:
        return ""
    if r.achieved is None:
        return "n/a"
    shown = fmt(r.achieved, r.unit) + f" {r.unit}" if r.target_kind == "at_most" else f"{r.achieved:.2f}×"
    if r.target_kind == "outside" and r.target_value is not None:
        shown = f"native greedy / llamanb {r.achieved:.2f}×, needs ≥ {r.target_value:.2f}×"
    return f"{'met' if r.met else '**missed**'} ({shown})"


def render_markdown(table: list[Result], result: dict[str, Any]) -> str:
    lines = [
        "| benchmark | unit | llamanb | native | llamanb vs native | llama-cpp-python "
        "| llamanb vs llama-cpp-python | target | result |",
        "|---|---|--:|--:|--:|--:|--:|---|---|",
    ]
    for r in table:
        lines.append(
            f"| {r.label} | {r.unit} | {cell(r, LLAMANB)} | {cell(r, NATIVE)} | {ratio_cell(r.vs_native)} "
            f"| {cell(r, LCP)} | {ratio_cell(r.vs_lcp)} | {r.target or ''} | {met_cell(r)} |"
        )
    s, m, mach = result["settings"], result["model"], result["machine"]
    load = ", ".join(f"{x:.2f}" for x in result["load_average_before"])
    load_after = ", ".join(f"{x:.2f}" for x in result["load_average_after"])
    lines += [
        "",
        'Figures are medians over rounds; "vs" columns are medians of per-round ratios, '
        "oriented so that > 1 means llamanb is faster (for ns and s rows: reference time / llamanb time).",
        "",
        f"- run: {result['date']}, {s['runs']} rounds, {result['duration_s']} s; "
        f"load average {load} before, {load_after} after",
        f"- model: `{m['name']}` ({m['bytes'] / 1e6:.1f} MB, sha256 `{m['sha256'][:12]}…`)",
        f"- settings: {s['threads']} threads, n_ctx {s['n_ctx']}, n_batch {s['n_batch']}, greedy",
        f"- machine: {mach['cpu']}, {mach['cpus_available']} CPUs available, {mach['platform']}",
        amx_line(result.get("amx")),
        f"- Python {mach['python']}, numpy {mach['numpy']}, {mach['compiler']}; llama.cpp "
        f"`{mach['llama_cpp_commit']}`; llamanb {mach['llamanb']} ({mach['llamanb_install']} install)",
        f"- ggml: `{mach['ggml_system_info'].strip()}`",
        f"- {mach['llama_cpp_python']}",
    ]
    for w in result["warnings"]:
        lines.append(f"- warning: {w}")
    return "\n".join(lines)


def amx_line(amx: dict[str, dict[str, float]] | None) -> str:
    if amx is None:
        return "- AMX: not on this CPU (or not in this build): weights stay in the CPU (and CPU_REPACK) buffers"
    parts = []
    for key, label in (("pp", f"pp{PP}"), ("gen", "tg")):
        figures = amx.get(key, {})
        if figures:
            parts.append(f"{label} " + ", ".join(f"{w} {x:.2f}×" for w, x in figures.items()))
    return "- AMX on vs off (repack=True vs False, same run): " + ("; ".join(parts) or "n/a")


def run_record(started: float, load_before: tuple[float, float, float], settings: Any) -> dict[str, Any]:
    """When a run started, how long it took, the load average around it, and its
    settings (a dataclass; paths as text): the head of every results file."""
    import dataclasses
    import os
    import time

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(settings).items()},
    }


def load_warning(load_before: tuple[float, float, float]) -> str | None:
    """A warning when other work shared the machine during the run."""
    import os

    busy = max(load_before[0], os.getloadavg()[0])
    cpus = len(os.sched_getaffinity(0))
    if busy <= 0.5 * cpus:
        return None
    return (
        f"load average reached {busy:.1f} on {cpus} CPUs: other work shared the machine, so these figures "
        "are noisy (rerun on a quiet machine)"
    )


def update_docs(path: Path, markdown: str, markers: tuple[str, str] = (DOCS_BEGIN, DOCS_END)) -> None:
    """Replace what lies between the two marker lines of ``path`` with ``markdown``."""
    text = path.read_text(encoding="utf-8")
    first, last = markers
    begin, end = text.find(first), text.find(last)
    if begin < 0 or end < begin:
        raise SystemExit(f"{path} lacks the {first} … {last} markers")
    new = text[: begin + len(first)] + "\n" + markdown + "\n" + text[end:]
    path.write_text(new, encoding="utf-8")


# --- chart ---------------------------------------------------------------------------


def render_chart(table: list[Result], path: Path, subtitle: str) -> None:
    """Left: llamanb's speed ratios against their targets, as bars from 1× (parity) on a
    log scale. Right: the two absolute budgets (trivial call, import) as a share of
    their limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratio_rows = [r for r in table if r.target_value is not None and r.target_kind != "at_most"]
    budget_rows = [r for r in table if r.target_value is not None and r.target_kind == "at_most"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})

    ys = list(range(len(ratio_rows)))[::-1]
    extremes = [1.0]
    for y, r in zip(ys, ratio_rows):
        goal = r.target_value or 1.0
        extremes.append(goal)
        if r.achieved is None:
            left.text(1.0, y, "  n/a", va="center", fontsize=8, color="gray")
        else:
            extremes.append(r.achieved)
            left.barh(y, r.achieved - 1.0, left=1.0, color="tab:green" if r.met else "tab:red", height=0.55)
            left.text(max(r.achieved, goal, 1.0) * 1.08, y, f"{r.achieved:.2f}×", va="center", fontsize=8)
        left.plot([goal, goal], [y - 0.38, y + 0.38], color="black", linewidth=2.5)
    left.set_yticks(ys, [f"{r.label}\n({r.target})" for r in ratio_rows], fontsize=7)
    left.set_xscale("log")
    left.set_xlim(min(extremes) / 1.5, max(extremes) * 2.5)
    left.axvline(1.0, color="gray", linewidth=0.8, linestyle=":")
    left.set_xlabel("llamanb speed-up over the reference (black tick: target)", fontsize=8)

    ys2 = list(range(len(budget_rows)))[::-1]
    shares = [1.0]
    for y, r in zip(ys2, budget_rows):
        limit = r.target_value or 1.0
        if r.achieved is None:
            right.text(0.02, y, "n/a", va="center", fontsize=8, color="gray")
            continue
        share = r.achieved / limit
        shares.append(share)
        right.barh(y, share, color="tab:green" if r.met else "tab:red", height=0.55)
        right.text(share, y, f" {fmt(r.achieved, r.unit)} {r.unit}", va="center", fontsize=8)
    right.set_yticks(ys2, [f"{r.label}\n({r.target})" for r in budget_rows], fontsize=7)
    right.set_ylim(-0.8, len(budget_rows) - 0.2)
    right.axvline(1.0, color="black", linewidth=2)
    right.set_xlim(0, max(shares) * 1.3)
    right.set_xlabel("share of the budget (black line: limit)", fontsize=8)

    fig.suptitle(f"llamanb benchmarks: {subtitle}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
