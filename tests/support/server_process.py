"""``python -m llamanb.server`` as a child process on a free loopback port, and the
session's pool of them: one server per distinct command line, started on first use and
stopped when the session ends (conftest's ``server_for`` fixture)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence

import httpx

START_LIMIT_S = 120.0  # a shared 2-core machine can be slow to load the model

# The command line (after -m MODEL) of the shared chat server: test_llama_server_tools.py,
# test_llama_server_turn_forging.py and test_tool_calls.py all talk to the one server
# started with it (their requests change nothing another file's tests look at; the prompt
# cache they leave is why test_llama_server_cache_scope.py keeps its own). Two slots,
# greedy unless a request says.
SHARED_CHAT = ("-c", "4096", "-np", "2", "-t", "2", "--temp", "0", "--jinja", "--alias", "smollm2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(
    args: Sequence[str], env: Mapping[str, str] | None = None, served_port: int | None = None
) -> tuple[subprocess.Popen[str], str]:
    """``python -m llamanb.server ARGS`` on a free port, once /health answers. Its log goes
    to a file: an undrained pipe would block the server's logging, and the server with it.
    ``env`` is added to this process's environment; ``served_port``: the port it serves
    when that environment overrides ``--port`` (AIP_HTTP_PORT)."""
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llamanb.server", *args, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env=None if env is None else {**os.environ, **env},
    )
    url = f"http://127.0.0.1:{served_port or port}"
    deadline = time.monotonic() + START_LIMIT_S
    with httpx.Client(timeout=10.0) as probe:
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                log.seek(0)
                raise AssertionError(f"the server did not start:\n{log.read()[-3000:]}")
            try:
                if probe.get(f"{url}/health").status_code == 200:
                    return proc, url
            except httpx.TransportError:
                pass
            time.sleep(0.1)


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ServerPool:
    """One server per distinct command line for the whole session. A test file that only
    reads from a server (no state that another file's tests would see: adapters, slots
    saved or erased, a crash) asks the pool; one that changes it starts its own."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, ...], tuple[subprocess.Popen[str], str]] = {}

    def url_for(self, args: Sequence[str]) -> str:
        key = tuple(args)
        if key not in self._running:
            self._running[key] = start_server(key)
        proc, url = self._running[key]
        if proc.poll() is not None:
            raise AssertionError(f"the shared server {list(key)} has exited ({proc.returncode})")
        return url

    def close(self) -> None:
        """Stops every server; raises if one had died along the way (a crash a test caused)."""
        died = [(list(key), proc.returncode) for key, (proc, _) in self._running.items() if proc.poll() is not None]
        for proc, _ in self._running.values():
            stop_server(proc)
        self._running.clear()
        if died:
            raise AssertionError(f"shared servers exited during the session: {died}")
