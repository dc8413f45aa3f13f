"""Every function of the pinned llama.h is mapped to llamanb.core or excluded with a reason."""

from __future__ import annotations

import subprocess
import sys

from llamanb import coverage
from llamanb.coverage import COVERAGE, is_excluded, resolve, summary

from .conftest import ROOT

HEADER = ROOT / "vendor" / "llama.cpp" / "include" / "llama.h"


def header_functions() -> tuple[set[str], set[str]]:
    """(all LLAMA_API functions, those declared DEPRECATED(LLAMA_API ...))."""
    return coverage.header_functions(HEADER.read_text())


def test_every_function_is_mapped() -> None:
    functions, deprecated = header_functions()
    assert len(functions) > 200
    missing = sorted(functions - COVERAGE.keys())
    assert not missing, f"llama.h functions missing from llamanb.coverage: {missing}"
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
    out = subprocess.run([sys.executable, "-m", "llamanb.coverage"], capture_output=True, text=True, check=True)
    bound, excluded, total = summary()
    assert f"{bound} bound, {excluded} excluded, {total} functions" in out.stdout
    assert "llama_model_n_embd" in out.stdout and "llamanb.core.Model.n_embd" in out.stdout


def test_coverage_check_cli() -> None:
    """The check a llama.cpp bump runs (make coverage): 100% of the pinned header."""
    out = subprocess.run([sys.executable, "-m", "llamanb.coverage", "--check", str(HEADER)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    assert "(100%), 0 problem(s)" in out.stdout
