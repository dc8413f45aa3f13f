"""Shared fixtures: the real default model, loaded once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
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
