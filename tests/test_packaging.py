"""Types ship and stay true: committed stubs match stubgen, mypy --strict passes."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

COMMITTED_STUB = ROOT / "stubs" / "llamanb" / "core.pyi"


def test_committed_stub_is_fresh(tmp_path: Path) -> None:
    import llamanb.core

    fresh = tmp_path / "core.pyi"
    subprocess.run([sys.executable, str(ROOT / "cmake" / "stubgen.py"), llamanb.core.__file__, str(fresh)], check=True)
    assert fresh.read_text() == COMMITTED_STUB.read_text(), (
        "stubs/llamanb/core.pyi is stale: run `make stubs` and commit the result"
    )


def test_package_ships_types() -> None:
    package = importlib.resources.files("llamanb")
    assert package.joinpath("py.typed").is_file()
    assert package.joinpath("core.pyi").is_file()
    assert package.joinpath("core.pyi").read_text() == COMMITTED_STUB.read_text()


@pytest.mark.parametrize("target", ["src/llamanb", "tests/typing"])
def test_mypy_strict(target: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"), target],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_generate_and_info() -> None:
    gen = subprocess.run(
        [sys.executable, "-m", "llamanb", "generate", "The capital of France is", "--max-tokens", "8",
         "--temperature", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert gen.returncode == 0, gen.stderr
    assert "Paris" in gen.stdout
    info = subprocess.run([sys.executable, "-m", "llamanb", "info"], capture_output=True, text=True, timeout=300)
    assert info.returncode == 0 and "n_embd:      576" in info.stdout
    bad = subprocess.run([sys.executable, "-m", "llamanb", "generate", "x", "--model", "/nope.gguf"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "not found" in bad.stderr
