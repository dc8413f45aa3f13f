"""Shared fixtures: the real default model, loaded once per session; the session's
servers, one per command line; and the suite's duration, printed at the end."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

import llamanb
from llamanb import core

ROOT = Path(__file__).resolve().parents[1]
VOCAB_DIR = ROOT / "vendor" / "llama.cpp" / "models"


@pytest.fixture(scope="session")
def model_path() -> Path:
    return llamanb.default_model()


# tools/gpu_check.sh runs part of the suite on a GPU with LLAMANB_TEST_N_GPU_LAYERS=-1:
# the shared Llama then offloads its layers, as core.Model's defaults already do.
GPU_LAYERS = os.environ.get("LLAMANB_TEST_N_GPU_LAYERS")


@pytest.fixture(scope="session")
def llm(model_path: Path) -> Iterator[llamanb.Llama]:
    n_gpu_layers = int(GPU_LAYERS) if GPU_LAYERS else None
    with llamanb.Llama(model_path, n_ctx=1024, n_threads=2, n_gpu_layers=n_gpu_layers) as llm:
        yield llm


@pytest.fixture(scope="session")
def model(model_path: Path) -> Iterator[core.Model]:
    core.log_disable()
    with core.Model(model_path) as m:
        yield m


@pytest.fixture()
def ctx(model: core.Model) -> Iterator[core.Context]:
    params = core.ContextParams()
    params.n_ctx = 512
    params.n_threads = 2
    params.n_threads_batch = 2
    with core.Context(model, params) as c:
        yield c


@pytest.fixture(scope="session")
def mmproj_path(model: core.Model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic projector for the default model, written once: server command lines
    that name it are the same command line, so the pool shares their server."""
    from .support.mmproj_file import write_mmproj  # gguf-py: only where a test needs it

    return write_mmproj(tmp_path_factory.mktemp("mmproj") / "mmproj.gguf", model.n_embd)


@pytest.fixture(scope="session")
def server_for() -> Iterator[Callable[[Sequence[str]], str]]:
    """``server_for(args)``: the URL of ``python -m llamanb.server ARGS``, started the
    first time any test asks for that command line and kept for the session."""
    from .support.server_process import ServerPool  # httpx: only where a test needs it

    pool = ServerPool()
    try:
        yield pool.url_for
    finally:
        pool.close()


# The suite's duration, on which CPU: `make test` ends with this line (docs/testing.md).
_started = time.monotonic()


def _cpu() -> tuple[str, bool]:
    """The CPU's model name and whether it has AMX (llama.cpp's fastest x86 matmul path)."""
    name, amx = "unknown CPU", False
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name == "unknown CPU":
                name = value.strip()
            elif key.strip() == "flags":
                amx = "amx_int8" in value.split()
                break
    except OSError:
        pass
    return name, amx


def pytest_sessionstart(session: pytest.Session) -> None:
    global _started
    _started = time.monotonic()


def pytest_unconfigure(config: pytest.Config) -> None:
    """The last line of the run (after pytest's own summary, whose "in N s" stops earlier)."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None:
        return
    name, amx = _cpu()
    # pytest's own clock where this pytest has it (started at its session start); ours otherwise
    clock = getattr(terminal, "_session_start", None)
    seconds = clock.elapsed().seconds if clock is not None else time.monotonic() - _started
    selection = f', -m "{config.option.markexpr}"' if config.option.markexpr else ""
    terminal.write_line(
        f"llamanb suite: {seconds:.0f} s on {name} ({os.cpu_count()} CPUs), AMX {'yes' if amx else 'no'}{selection}"
    )
