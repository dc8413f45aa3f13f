"""Shared fixtures: the real default model, loaded once per session."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def llm(model_path: Path) -> Iterator[llamanb.Llama]:
    with llamanb.Llama(model_path, n_ctx=1024, n_threads=2) as llm:
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
