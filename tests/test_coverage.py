"""Every function of the pinned llama.h is mapped to llamanb.core or excluded with a reason,
and llamanb.core's top level holds llama.h's mirror only (the rest is in submodules)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llamanb import core, llama_h_coverage
from llamanb.llama_h_coverage import COVERAGE, is_excluded, resolve, summary

from .conftest import ROOT

HEADER = ROOT / "vendor" / "llama.cpp" / "include" / "llama.h"


def header_functions() -> tuple[set[str], set[str]]:
    """(all LLAMA_API functions, those declared DEPRECATED(LLAMA_API ...))."""
    return llama_h_coverage.header_functions(HEADER.read_text())


def test_every_function_is_mapped() -> None:
    functions, deprecated = header_functions()
    assert len(functions) > 200
    missing = sorted(functions - COVERAGE.keys())
    assert not missing, f"llama.h functions missing from llamanb.llama_h_coverage: {missing}"
    stale = sorted(COVERAGE.keys() - functions - deprecated)
    assert not stale, f"mapped names that llama.h does not declare: {stale}"


def test_every_path_exists() -> None:
    broken = [(name, path) for name, path in COVERAGE.items() if not is_excluded(path) and not _exists(path)]
    assert not broken, broken


def _exists(path: str) -> bool:
    try:
        resolve(path)
    except AttributeError:
        return False
    return True


def test_exclusions_give_reasons() -> None:
    for name, path in COVERAGE.items():
        if is_excluded(path):
            assert len(path) > len("excluded: ") + 8, name


def test_coverage_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "llamanb.llama_h_coverage"], capture_output=True, text=True, check=True)
    bound, excluded, total = summary()
    assert f"{bound} bound, {excluded} excluded, {total} functions" in out.stdout
    assert "llama_model_n_embd" in out.stdout and "llamanb.core.Model.n_embd" in out.stdout


def test_coverage_check_cli() -> None:
    """The check a llama.cpp bump runs (make coverage): 100% of the pinned header."""
    out = subprocess.run(
        [sys.executable, "-m", "llamanb.llama_h_coverage", "--check", str(HEADER)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout
    assert "(100%), 0 problem(s)" in out.stdout


def test_top_level_is_llama_h() -> None:
    """Every top-level name of llamanb.core mirrors llama.h or is listed with its reason;
    the rest lives in the submodules (core.common, core.mtmd, core.server, core.fast, ...)."""
    problems = llama_h_coverage.top_level_problems(HEADER.read_text())
    assert not problems, "\n".join(problems)
    assert core.common.ChatTemplates.__module__ == "llamanb.core.common"
    assert core.mtmd.MtmdContext.__module__ == "llamanb.core.mtmd"
    assert core.server.Server.__module__ == "llamanb.core.server"
    assert not hasattr(core, "sample_and_decode") and callable(core.fast.sample_and_decode)


def test_top_level_check_finds_strays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "stray_helper", lambda: None, raising=False)
    monkeypatch.delattr(core, "LLAMA_CPP_BUILD")
    problems = llama_h_coverage.top_level_problems(HEADER.read_text())
    assert any("llamanb.core.stray_helper mirrors nothing in llama.h" in p for p in problems), problems
    assert "TOP_LEVEL_EXTRAS: llamanb.core has no LLAMA_CPP_BUILD" in problems
    renamed = HEADER.read_text().replace("llama_process_type", "llama_batch_process_type")
    assert (
        "TOP_LEVEL_TYPES: llama.h has no llama_process_type (llamanb.core.ProcessType)"
        in llama_h_coverage.top_level_problems(renamed)
    )
