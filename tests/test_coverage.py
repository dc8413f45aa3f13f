"""Every function of the pinned llama.h is mapped to llamanb.core or excluded with a reason."""

from __future__ import annotations

import re
import subprocess
import sys

from llamanb import core
from llamanb.coverage import COVERAGE, is_excluded, summary

from .conftest import ROOT

HEADER = ROOT / "vendor" / "llama.cpp" / "include" / "llama.h"


def header_functions() -> tuple[set[str], set[str]]:
    """(all LLAMA_API functions, those declared DEPRECATED(LLAMA_API ...))."""
    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    found: set[str] = set()
    deprecated: set[str] = set()
    for m in re.finditer(r"(DEPRECATED\s*\(\s*)?LLAMA_API\b[^;{]*?\b(llama_\w+)\s*\(", text):
        (deprecated if m.group(1) else found).add(m.group(2))
    return found - deprecated, deprecated


def resolve(path: str) -> object:
    obj: object = core
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


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
