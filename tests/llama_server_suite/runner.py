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
    exe.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.llama_server_suite.shim import main\nmain()\n"
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


# Files the suite downloads into its tmp/ with download_file() (which skips a file that is
# there): each is replaced by a link to the default model.
DOWNLOAD_STAND_INS = ("stories15M-q4_0.gguf",)  # test_speculative's draft model


def place_download_stand_ins(model: Path) -> None:
    tmp = SUITE / "tmp"
    tmp.mkdir(exist_ok=True)
    for name in DOWNLOAD_STAND_INS:
        link = tmp / name
        if link.is_symlink() and link.resolve() != model.resolve():
            link.unlink()
        if not link.exists():
            link.symlink_to(model.resolve())


def run(pytest_args: list[str], model: Path, mmproj: Path | None = None) -> int:
    place_download_stand_ins(model)
    with tempfile.TemporaryDirectory(prefix="llamanb-suite-") as tmp:
        env = {
            **os.environ,
            "LLAMA_SERVER_BIN_PATH": str(write_executable(Path(tmp))),
            "LLAMANB_SUITE_MODEL": str(model),
            "LLAMA_CACHE": tmp,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        if mmproj is not None:
            env["LLAMANB_SUITE_MMPROJ"] = str(mmproj)
        return subprocess.call(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-p",
                "tests.llama_server_suite.plugin",
                *pytest_args,
            ],
            cwd=SUITE,
            env=env,
        )


def synthetic_mmproj(model: Path, directory: Path) -> Path:
    """The synthetic projector of tests/support/mmproj_file.py, sized for ``model``: the stand-in
    for the suite's vision models (the tests that need real vision are listed)."""
    from llamanb import core

    from ..support.mmproj_file import write_mmproj

    core.log_disable()
    return write_mmproj(directory / "mmproj.gguf", core.Model(str(model)).n_embd)  # (vocab_only has no n_embd)


def main(pytest_args: list[str]) -> int:
    import llamanb

    model = llamanb.default_model()
    with tempfile.TemporaryDirectory(prefix="llamanb-mmproj-") as tmp:
        return run(pytest_args, model, synthetic_mmproj(model, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
