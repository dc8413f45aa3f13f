"""``/metrics``: the server's counters in Prometheus' text format (version 0.0.4).

The engine thread observes latencies into histograms; the event loop renders them
with the engine's counters. Names follow llama-server's where it has the same figure
(``llamacpp:`` prefix there, ``llamanb_`` here).
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

# Seconds: time to first token spans queueing and prompt decoding, token time one decode.
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TOKEN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Histogram:
    """Cumulative-bucket histogram, safe to observe from one thread and read from another."""

    buckets: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0
    n: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf

    def observe(self, value: float) -> None:
        with self._lock:
            self.counts[bisect.bisect_left(self.buckets, value)] += 1
            self.total += value
            self.n += 1

    def lines(self, name: str, help_text: str) -> list[str]:
        with self._lock:
            counts, total, n = list(self.counts), self.total, self.n
        out = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        running = 0
        for bound, count in zip((*self.buckets, float("inf")), counts):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{le="{le}"}} {running}')
        out += [f"{name}_sum {total!r}", f"{name}_count {n}"]
        return out


@dataclass
class Metrics:
    """What the engine measures as it runs."""

    ttft_seconds: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    token_seconds: Histogram = field(default_factory=lambda: Histogram(TOKEN_BUCKETS))
    rejected: int = 0  # requests refused because the queue was full
    timed_out: int = 0  # requests ended by the server's time limit (written by the engine thread)


def render(metrics: Metrics, *, finished: int, cancelled: int, tokens: int, prompt_tokens: int,
           cached_tokens: int, decodes: int, busy: int, slots: int, waiting: int) -> str:
    """The exposition text."""
    lines: list[str] = []

    def scalar(name: str, kind: str, help_text: str, value: float) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"])

    scalar("llamanb_requests_finished_total", "counter", "Requests that ran to their end.", finished)
    scalar("llamanb_requests_cancelled_total", "counter", "Requests dropped by their client.", cancelled)
    scalar("llamanb_requests_rejected_total", "counter", "Requests refused with 503: the queue was full.",
           metrics.rejected)
    scalar("llamanb_requests_timed_out_total", "counter", "Requests ended by the server's time limit.",
           metrics.timed_out)
    scalar("llamanb_tokens_predicted_total", "counter", "Tokens sampled.", tokens)
    scalar("llamanb_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", prompt_tokens)
    scalar("llamanb_prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's KV cache.",
           cached_tokens)
    scalar("llamanb_decode_total", "counter", "Decodes (batches) run.", decodes)
    scalar("llamanb_requests_processing", "gauge", "Slots with a request.", busy)
    scalar("llamanb_slots", "gauge", "Slots (parallel sequences).", slots)
    scalar("llamanb_requests_deferred", "gauge", "Requests waiting for a slot.", waiting)
    lines += metrics.ttft_seconds.lines("llamanb_time_to_first_token_seconds",
                                        "From submission to the first sampled token.")
    lines += metrics.token_seconds.lines("llamanb_time_per_output_token_seconds",
                                         "Between two sampled tokens of one request.")
    return "\n".join(lines) + "\n"
