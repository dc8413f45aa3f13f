"""The code is formatted: ruff (imports and layout) over the Python of src/ tests/ bench/
tools/, clang-format over cpp/, with the versions pinned in pyproject's `test` extra.
tools/format.sh applies the same formatters to the same files; this is its check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

# The folders tools/format.sh formats (vendor/ and stubs/ stay as they are).
PY_DIRS = ("src", "tests", "bench", "tools")
SCRIPT = ROOT / "tools" / "format.sh"
TIMEOUT_S = 120  # each formatter takes about a second here; a hang is a failure, not a stall


def tool(name: str) -> str:
    """The formatter installed next to this interpreter (the pinned one), else PATH's."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found is not None, f"{name} is missing: it comes with the test extra (pip install -e '.[test]')"
    return found


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)


def test_python_imports_are_sorted() -> None:
    proc = run(tool("ruff"), "check", *PY_DIRS)
    assert proc.returncode == 0, "run tools/format.sh:\n" + proc.stdout + proc.stderr


def test_python_is_formatted() -> None:
    proc = run(tool("ruff"), "format", "--check", *PY_DIRS)
    assert proc.returncode == 0, "run tools/format.sh:\n" + proc.stdout + proc.stderr


def test_cpp_is_formatted() -> None:
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "cpp").iterdir() if p.suffix in (".cpp", ".h"))
    assert len(sources) > 20, sources
    proc = run(tool("clang-format"), "--dry-run", "-Werror", *sources)
    assert proc.returncode == 0, "run tools/format.sh:\n" + proc.stdout + proc.stderr[-20000:]


def test_format_script_is_clean() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=TIMEOUT_S)
    proc = run(tool("shellcheck"), str(SCRIPT))
    assert proc.returncode == 0, proc.stdout
    usage = run("bash", str(SCRIPT), "--nope")
    assert usage.returncode == 2 and "usage" in usage.stderr
