"""llama.cpp's own multimodal CLI, ``llama-mtmd-cli``, built from the same tree and the
same libraries as ``llamanb.core`` (the EXCLUDE_FROM_ALL target of CMakeLists.txt, in
the extension's build dir build/<wheel tag>): the reference of the libmtmd equality
check, tests/test_mtmd_reference.py (``make mtmd-check``).

Building it compiles all of upstream's common/ (argument parsing, downloads with
cpp-httplib, ...) besides what the extension already built: minutes on 2 cores, which
is why the regular test run does not do it.
"""

from __future__ import annotations

import glob
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def build_dir() -> Path:
    """The extension's scikit-build-core build dir (the newest build/cp*)."""
    found = sorted(
        glob.glob(str(REPO / "build" / "cp*" / "CMakeCache.txt")), key=lambda p: Path(p).stat().st_mtime, reverse=True
    )
    if not found:
        raise RuntimeError("no build/cp*/CMakeCache.txt: build llamanb first (make install)")
    return Path(found[0]).parent


def find() -> Path | None:
    """The built CLI, or None (also with no extension build dir here: `make asan`
    builds into build/asan)."""
    try:
        root = build_dir()
    except RuntimeError:
        return None
    hits = sorted(root.rglob("llama-mtmd-cli"))
    return next((p for p in hits if p.is_file() and os.access(p, os.X_OK)), None)


def build(jobs: int = 2) -> Path:
    """Build (or bring up to date) llama-mtmd-cli; its path."""
    cmake = shutil.which("cmake") or str(Path(sys.executable).parent / "cmake")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    subprocess.run(
        [*nice, cmake, "--build", str(build_dir()), "--target", "llama-mtmd-cli", "-j", str(jobs)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    path = find()
    if path is None:
        raise RuntimeError("the build finished but llama-mtmd-cli is missing")
    return path


@dataclass(frozen=True)
class CliRun:
    text: str  # what it generated
    embeddings: np.ndarray  # the image's embeddings, n_tokens x n_embd (MTMD_DEBUG_EMBEDDINGS)
    log: str


def run(cli: Path, model: Path, mmproj: Path, image: Path, prompt: str, n_predict: int, workdir: Path) -> CliRun:
    """One greedy single-turn run: the user message is the image's marker and ``prompt``
    (what ``chat`` renders for ``[image part, text part]``)."""
    dump = workdir / "embeddings.bin"
    marker = "<<llamanb-response>>"
    env = dict(os.environ, MTMD_DEBUG_EMBEDDINGS=str(dump), MTMD_TEST_RESPONSE_MARKER=marker)
    proc = subprocess.run(
        [
            str(cli),
            "-m",
            str(model),
            "--mmproj",
            str(mmproj),
            "--image",
            str(image),
            "-p",
            prompt,
            "-n",
            str(n_predict),
            "--temp",
            "0",
            "-t",
            "2",
            "-c",
            "1024",
            "--seed",
            "0",
            "--jinja",
        ],  # the model's Jinja template, as llamanb and llama-server render it (the CLI defaults to off)
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"llama-mtmd-cli failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = proc.stdout
    text = out.split(marker, 1)[1] if marker in out else out
    data = dump.read_bytes()
    n_tokens, n_embd = struct.unpack("<ii", data[:8])
    embeddings = np.frombuffer(data[8:], dtype=np.float32).reshape(n_tokens, n_embd)
    return CliRun(text.strip(), embeddings, proc.stderr)
