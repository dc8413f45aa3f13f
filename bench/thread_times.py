"""Where a process's CPU went during a load, thread by thread (Linux only).

/proc/PID/task/TID/schedstat gives each thread's time on a CPU and its time waiting
for one (runnable, not running), in ns. For a server on as many cores as it has
compute threads, the compute threads' wait is the cores that something else took from
them mid-graph: the process's own other threads (an event loop, HTTP threads) or the
load generator beside it. /proc/stat gives the whole machine's CPU over the same
window: what neither the server nor the load generator used is other work on the
machine (the other, idle server included). bench/serve.py prints and keeps this per
server and round, so a throughput gap comes with where it went, and a run shared with
other work says so.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Snapshot:
    at: float  # time.monotonic()
    threads: dict[int, tuple[int, int]]  # thread id -> (ns on a CPU, ns runnable but waiting)
    own_cpu_s: float  # CPU time of the measuring process itself (the load generator)
    machine_busy_s: float  # CPU time of the whole machine (every process, the kernel), /proc/stat


@dataclass(frozen=True)
class ThreadTime:
    cpu_s: float
    wait_s: float


@dataclass(frozen=True)
class LoadTimes:
    wall_s: float
    threads: list[ThreadTime]  # busiest first; threads that used no CPU are left out
    client_cpu_s: float  # the load generator's CPU over the same window
    other_cpu_s: float  # the machine's CPU used by neither the server nor the load generator

    def text(self, shown: int = 3) -> str:
        """`wall 10.2 s; threads CPU/wait s: 9.5/0.8, 9.4/0.9, 0.3/0.1, +5 more 0.1/0.0;
        client CPU 4.1 s`."""
        parts = [f"{t.cpu_s:.1f}/{t.wait_s:.1f}" for t in self.threads[:shown]]
        rest = self.threads[shown:]
        if rest:
            parts.append(f"+{len(rest)} more {sum(t.cpu_s for t in rest):.1f}/{sum(t.wait_s for t in rest):.1f}")
        return (
            f"wall {self.wall_s:.1f} s; server threads CPU/wait s: {', '.join(parts) or 'none'}; "
            f"client CPU {self.client_cpu_s:.1f} s; other processes {self.other_cpu_s:.1f} s"
        )

    def record(self) -> dict[str, object]:
        return {
            "wall_s": round(self.wall_s, 3),
            "client_cpu_s": round(self.client_cpu_s, 3),
            "other_cpu_s": round(self.other_cpu_s, 3),
            "threads_cpu_wait_s": [[round(t.cpu_s, 3), round(t.wait_s, 3)] for t in self.threads],
        }


def available() -> bool:
    return Path(f"/proc/{os.getpid()}/task/{os.getpid()}/schedstat").exists()


def snapshot(pid: int) -> Snapshot:
    """Every thread of ``pid`` now (threads that end before the next snapshot drop out)."""
    threads: dict[int, tuple[int, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            run_ns, wait_ns, _ = (int(x) for x in (task / "schedstat").read_text().split())
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        threads[int(task.name)] = (run_ns, wait_ns)
    return Snapshot(time.monotonic(), threads, time.process_time(), _machine_busy_s())


def _machine_busy_s() -> float:
    """All CPUs' non-idle time since boot (/proc/stat's first line, in clock ticks)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq (steal: the hypervisor's, not this machine's)
    user, nice, system, _idle, _iowait, irq, softirq = (fields + [0] * 7)[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def between(before: Snapshot, after: Snapshot) -> LoadTimes:
    times = []
    for tid, (run_ns, wait_ns) in after.threads.items():
        run0, wait0 = before.threads.get(tid, (0, 0))
        if run_ns > run0:
            times.append(ThreadTime((run_ns - run0) / 1e9, (wait_ns - wait0) / 1e9))
    times.sort(key=lambda t: t.cpu_s, reverse=True)
    client = after.own_cpu_s - before.own_cpu_s
    other = after.machine_busy_s - before.machine_busy_s - client - sum(t.cpu_s for t in times)
    return LoadTimes(after.at - before.at, times, client, max(0.0, other))
