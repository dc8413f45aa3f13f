"""Runs llama-server's own test suite (tools/server/tests of the pinned tree) against
``llamanb serve``: ``python -m tests.llama_server_suite.runner [pytest args]``.

It writes an executable ``llama-server`` that runs shim.py in this interpreter, points the
suite at it (LLAMA_SERVER_BIN_PATH) and runs pytest in the suite's directory.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "vendor" / "llama.cpp" / "tools" / "server" / "tests"


def write_executable(directory: Path) -> Path:
    exe = directory / "llama-server"
    exe.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                   "from tests.llama_server_suite.shim import main\nmain()\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def run(pytest_args: list[str], model: Path, mmproj: Path | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="llamanb-suite-") as tmp:
        env = {**os.environ, "LLAMA_SERVER_BIN_PATH": str(write_executable(Path(tmp))),
               "LLAMANB_SUITE_MODEL": str(model), "LLAMA_CACHE": tmp,
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        if mmproj is not None:
            env["LLAMANB_SUITE_MMPROJ"] = str(mmproj)
        return subprocess.call([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                                "-p", "tests.llama_server_suite.plugin", *pytest_args],
                               cwd=SUITE, env=env)


if __name__ == "__main__":
    import llamanb
    sys.exit(run(sys.argv[1:], llamanb.default_model()))
