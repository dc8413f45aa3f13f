"""Code run in a fresh interpreter, so that a crash, a deadlock or a signal fails the
test instead of the suite."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass

import pytest


def run_isolated(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )


@dataclass(frozen=True)
class Interrupted:
    line: str  # the first line the code printed after SIGINT
    latency: float  # seconds from SIGINT to that line
    out: str  # what it printed after that line
    err: str
    returncode: int


def interrupt_after(code: str, delay: float) -> Interrupted:
    """Run ``code``, which prints "ready" before its long call; send SIGINT ``delay``
    seconds after that line and time the next one (30 s at most: a missed interrupt
    fails the test, never hangs the suite)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        proc.kill()
        pytest.fail(f"no KeyboardInterrupt within 30 s: {proc.communicate()[1][-1000:]}")
    line = proc.stdout.readline()
    latency = time.monotonic() - sent
    out, err = proc.communicate(timeout=60)
    return Interrupted(line, latency, out, err, proc.returncode)
