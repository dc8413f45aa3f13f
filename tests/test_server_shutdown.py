"""Graceful shutdown: ``python -m llamanb.server`` in its own process, stopped with
SIGTERM or SIGINT while a reply streams. The stream ends cleanly (it finishes, or ends
with an error event and ``[DONE]``), new requests are refused, and the process exits
in bounded time. Loopback only."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .support.server_process import free_port

EXIT_LIMIT_S = 15.0


@pytest.fixture()
def server(model_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llamanb.server",
        "--model",
        str(model_path),
        "--port",
        str(port),
        "--parallel",
        "2",
        "--ctx-size",
        "8192",
        "--threads",
        "1",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def long_stream(url: str) -> httpx.Response:
    """A streamed completion far longer than a shutdown may wait for (end of text banned)."""
    body = {
        "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "prompt": "Once upon a time",
        "max_tokens": 3000,
        "temperature": 0.8,
        "seed": 1,
        "stream": True,
        "ignore_eos": True,
    }
    client = httpx.Client(timeout=60)
    return client.send(client.build_request("POST", f"{url}/v1/completions", json=body), stream=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_streams_cleanly_and_the_process_exits(
    server: tuple[subprocess.Popen[str], str], sig: signal.Signals
) -> None:
    proc, url = server
    response = long_stream(url)
    assert response.status_code == 200
    events: list[str] = []
    lines = response.iter_lines()
    while len(events) < 5:  # generation is under way
        line = next(lines)
        if line.startswith("data: "):
            events.append(line[6:])
    sent = time.monotonic()
    proc.send_signal(sig)
    # A request that arrives during shutdown is refused (or finds the port closed).
    refused: list[int | str] = []

    def late_request() -> None:
        time.sleep(0.5)
        try:
            refused.append(
                httpx.post(
                    f"{url}/v1/completions",
                    timeout=10,
                    json={"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "prompt": "Hi", "max_tokens": 2},
                ).status_code
            )
        except httpx.TransportError as error:
            refused.append(type(error).__name__)

    late = threading.Thread(target=late_request)
    late.start()
    for line in lines:  # must end (no hang) and without a protocol error
        if line.startswith("data: "):
            events.append(line[6:])
    response.close()
    late.join(30)
    proc.wait(EXIT_LIMIT_S)
    took = time.monotonic() - sent
    output = proc.communicate(timeout=30)[0]
    assert events[-1] == "[DONE]", events[-3:]
    last = json.loads(events[-2])
    assert "error" in last and "shutting down" in last["error"]["message"], last
    assert last["error"]["type"] == "server_error"
    assert took < EXIT_LIMIT_S
    assert refused and refused[0] in (503, "ConnectError"), refused
    assert proc.returncode in (0, -sig) and "Traceback" not in output, output
