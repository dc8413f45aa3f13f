"""Short versions of the server's HTTP fuzzer and soak test (tests/fuzz/http_fuzz.py
and soak.py; the full runs: 2,000 fuzzed requests, 1,000 soak requests). Each runs in a
fresh interpreter with its own server on a loopback port."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each starts a server and sends it 120 to 150 requests

FUZZ = Path(__file__).resolve().parent / "fuzz"


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(FUZZ / script), *args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (
        f"{script}: exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout


def test_fuzzed_requests_get_no_5xx() -> None:
    out = run("http_fuzz.py", "--requests", "150")
    match = re.search(r"http fuzz: (\d+) requests", out)
    assert match and int(match.group(1)) >= 140, out  # hypothesis may stop a few short
    assert "no 5xx" in out and "busy 0, waiting 0" in out


def test_soak_with_dropped_streams_leaves_nothing_behind() -> None:
    out = run("soak.py", "--requests", "120", "--clients", "6")
    assert "soak: 120 requests" in out and "busy 0, waiting 0" in out, out
