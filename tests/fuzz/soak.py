"""Soak test of ``llamanb serve`` (llama-server's engine behind llamanb's front), on loopback: many streamed chats, a third of them dropped by
the client mid-stream.

    python tests/fuzz/soak.py [--requests 1000] [--clients 8] [--model PATH]

Afterwards no slot may be busy, nothing may wait, and the process' RSS may not have grown
by 50 MB or more since the warm-up. Prints the figures.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import httpx

# run as a script: the shared in-process server lives in tests/support
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from in_process_server import load, running_server  # noqa: E402

import llamanb  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def one_chat(client: httpx.Client, model: str, i: int, dropped: list[int], done: list[int]) -> None:
    body = {
        "model": model,
        "stream": True,
        "max_tokens": 24,
        "seed": i,
        "messages": [{"role": "user", "content": f"Tell me fact number {i} about the sea."}],
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        assert reply.status_code == 200, reply.read()[:300]
        if i % 3 == 0:  # the client goes away after the first chunks
            for n, _ in enumerate(reply.iter_lines()):
                if n >= 2:
                    break
            dropped.append(i)
            return
        lines = [line for line in reply.iter_lines() if line]
        assert lines[-1] == "data: [DONE]", lines[-3:]
        done.append(i)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--model", type=Path, default=None)
    a = p.parse_args()
    # --cache-ram 0: llama-server's RAM prompt cache (8 GiB by default) would grow by design
    args = ["-m", str(a.model or llamanb.default_model()), "-np", "8", "-c", "2048", "-t", "2", "--cache-ram", "0"]
    with running_server(args) as (url, app):
        model = "m"
        dropped: list[int] = []
        done: list[int] = []
        errors: list[BaseException] = []

        def client_loop(indices: range) -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                for i in indices:
                    try:
                        one_chat(client, model, i, dropped, done)
                    except BaseException as err:  # noqa: BLE001 - reported below
                        errors.append(err)

        def batch(start: int, n: int) -> None:
            threads = [
                threading.Thread(target=client_loop, args=(range(start + k, start + n, a.clients),))
                for k in range(a.clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        warm = min(48, a.requests // 4)
        batch(0, warm)  # warm-up (part of the count): caches, allocator pools, first-decode graphs
        time.sleep(0.5)
        before = rss_mb()
        started = time.monotonic()
        batch(warm, a.requests - warm)
        seconds = time.monotonic() - started
        deadline = time.monotonic() + 30
        while (stats := load(url, app)).busy or stats.waiting:
            assert time.monotonic() < deadline, stats
            time.sleep(0.05)
        after = rss_mb()
        health = httpx.get(f"{url}/health").status_code
    growth = after - before
    print(
        f"soak: {len(done) + len(dropped)} requests ({len(dropped)} dropped mid-stream, {len(errors)} errors) "
        f"in {seconds:.0f} s; afterwards busy {stats.busy}, waiting {stats.waiting}; "
        f"RSS {before:.0f} -> {after:.0f} MB ({growth:+.1f} MB); /health {health}"
    )
    if errors:
        raise errors[0]
    assert stats.busy == 0 and stats.waiting == 0 and growth < 50 and health == 200
    return 0


if __name__ == "__main__":
    sys.exit(main())
