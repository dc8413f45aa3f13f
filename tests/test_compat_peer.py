"""llama-cpp-python 0.3.36's own test suite against llamanb.compat, through
install_as_llama_cpp(): its tests/*.py are extracted from the pinned sdist (sha256
checked, never committed) and run in a child pytest with tests/support/compat_peer_plugin.py.
The tests listed in compat_peer_excluded.txt, with their reasons, are deselected;
every other one must pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PEER_DIR = ROOT / "build" / "peer-tests" / "llama-cpp-python"
EXCLUDED = Path(__file__).with_name("compat_peer_excluded.txt")

pytestmark = pytest.mark.slow  # a whole test suite in a child pytest


def excluded() -> dict[str, str]:
    out = {}
    for line in EXCLUDED.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            test, _, reason = line.partition("#")
            out[test.strip()] = reason.strip()
    return out


def test_llama_cpp_python_suite() -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "vendor" / "llama.cpp" / "sync.py"), "--peer-tests", str(PEER_DIR)],
        check=True,
        capture_output=True,
    )
    listed = excluded()
    assert all(reason for reason in listed.values())
    # the plugin deselects exactly these ids (pytest's --deselect takes prefixes: it would
    # drop test_real_llama_embeddings along with test_real_llama)
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "compat_peer_plugin",
        "--rootdir",
        str(PEER_DIR),
        str(PEER_DIR.relative_to(ROOT)),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "support"), os.environ.get("PYTHONPATH", "")]),
        "LLAMANB_PEER_DESELECT": "\n".join(listed),
    }
    # cwd: the tests open ./vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "failed" not in summary and "error" not in summary and f"{len(listed)} deselected" in summary, summary
