"""Build llama.cpp's own server, ``llama-server``, from the vendored tree (the pinned
source with our patches, as vendor/llama.cpp/sync.py leaves it) into build/llama-server.

The reference for bench/serve.py: the same llama.cpp commit and patches as
``llamanb.core``, built the way the extension builds llama.cpp on this machine (static
libraries, Release, the CPU backend with -march=native, OpenMP), so any difference is
the serving layer. Only the ``llama-server`` target is built (no tests, examples, or
web UI, which would need npm or a download); ccache is used when installed. A second
call is a no-op while the binary is newer than every source file CMake tracks (CMake
decides, so an edited patch rebuilds what it touches).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENDOR = REPO / "vendor" / "llama.cpp"
BUILD = REPO / "build" / "llama-server"
BINARY = BUILD / "bin" / "llama-server"

CMAKE_DEFINES = {
    "CMAKE_BUILD_TYPE": "Release",
    "BUILD_SHARED_LIBS": "OFF",  # as llamanb links llama.cpp (LLAMANB_CPU_DISPATCH off)
    "LLAMA_BUILD_COMMON": "ON",
    "LLAMA_BUILD_TOOLS": "ON",  # tools/ holds the server
    "LLAMA_BUILD_SERVER": "ON",
    "LLAMA_BUILD_TESTS": "OFF",
    "LLAMA_BUILD_EXAMPLES": "OFF",
    "LLAMA_BUILD_APP": "OFF",
    "LLAMA_OPENSSL": "OFF",
    "GGML_OPENMP": "OFF",  # as llamanb builds ggml (CMakeLists.txt): thread pools, patch 0051's barrier
    # The web UI: no npm build and no download (this machine has no network for it);
    # llama-server then serves its API without the page.
    "LLAMA_BUILD_UI": "OFF",
    "LLAMA_USE_PREBUILT_UI": "OFF",
}


def sync_vendor() -> None:
    """Extract and patch the pinned llama.cpp when it is missing or stale."""
    subprocess.run([sys.executable, str(VENDOR / "sync.py")], check=True)


def build(jobs: int = 2, verbose: bool = True) -> Path:
    """The path of build/llama-server/bin/llama-server, configured and built if needed."""
    sync_vendor()
    cmake = shutil.which("cmake") or str(Path(sys.executable).parent / "cmake")
    defines = dict(CMAKE_DEFINES)
    ccache = shutil.which("ccache")
    if ccache:
        defines["CMAKE_C_COMPILER_LAUNCHER"] = defines["CMAKE_CXX_COMPILER_LAUNCHER"] = ccache
    nice = ["nice", "-n", "5"] if shutil.which("nice") else []
    out = None if verbose else subprocess.DEVNULL
    # Configured every time (seconds when nothing changed), so that a build dir made
    # before a define changed (GGML_OPENMP) takes the new value.
    if verbose:
        print(f"configuring {BUILD.relative_to(REPO)} (llama-server from vendor/llama.cpp)", flush=True)
    configure = [cmake, "-S", str(VENDOR), "-B", str(BUILD), *(f"-D{k}={v}" for k, v in defines.items())]
    if not (BUILD / "CMakeCache.txt").exists() and (
        shutil.which("ninja") or (Path(sys.executable).parent / "ninja").exists()
    ):
        configure += ["-G", "Ninja"]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    subprocess.run(configure, check=True, stdout=out, env=env)
    if verbose:
        print(
            f"building llama-server in {BUILD.relative_to(REPO)} ({jobs} jobs; up-to-date parts are reused)", flush=True
        )
    subprocess.run(
        [*nice, cmake, "--build", str(BUILD), "--target", "llama-server", "-j", str(jobs)],
        check=True,
        stdout=out,
        env=env,
    )
    if not BINARY.exists():
        raise SystemExit(f"the build finished but {BINARY} is missing")
    return BINARY


if __name__ == "__main__":
    print(build())
