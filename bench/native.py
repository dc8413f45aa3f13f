"""Build the native reference driver (bench/native_greedy.cpp) with g++ against the
static llama/ggml libraries that scikit-build-core already built for llamanb.core.

Linking the very same .a files as the extension makes the comparison apples to
apples: any difference is the binding layer, not compiler flags or a different
llama.cpp. We never run CMake here: the build dir belongs to `pip install -e .`.
"""

from __future__ import annotations

import glob
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "bench" / "native_greedy.cpp"
OUTPUT = REPO / "build" / "bench" / "native_greedy"

# Link order matters for static archives: users before the libraries they use.
LIBRARY_ORDER = ["libllama.a", "libggml.a", "libggml-cpu.a", "libggml-base.a"]


@dataclass(frozen=True)
class NativeBuild:
    build_dir: Path  # build/<wheel tag>
    libraries: list[Path]

    @property
    def newest_input(self) -> float:
        return max(p.stat().st_mtime for p in [SOURCE, *self.libraries])


def find_build() -> NativeBuild:
    """The scikit-build-core build dir of the extension (build/<wheel tag>, the newest
    if several) holding libllama.a; sanitizer and wheel builds are not references."""
    found = sorted(
        glob.glob(str(REPO / "build" / "cp*" / "llama.cpp" / "src" / "libllama.a")),
        key=lambda p: Path(p).stat().st_mtime,
        reverse=True,
    )
    if not found:
        raise SystemExit("no build/cp*/llama.cpp/src/libllama.a: build llamanb first (make install)")
    build_dir = Path(found[0]).parent.parent.parent
    libraries: list[Path] = []
    for name in LIBRARY_ORDER:
        matches = sorted((build_dir / "llama.cpp").rglob(name))
        if not matches:
            raise SystemExit(f"{name} not found under {build_dir / 'llama.cpp'}")
        libraries.append(matches[0])
    # Other backends (a CUDA or Vulkan build) come as further libggml-*.a; they link in
    # before ggml-base, though their own system libraries are not added here (CPU only).
    known = set(LIBRARY_ORDER)
    extra = sorted(p for p in (build_dir / "llama.cpp").rglob("libggml-*.a") if p.name not in known)
    libraries[3:3] = extra
    return NativeBuild(build_dir, libraries)


def build_driver(verbose: bool = True) -> Path:
    """Path of the driver, (re)compiled when its source or a library is newer."""
    b = find_build()
    if OUTPUT.exists() and OUTPUT.stat().st_mtime >= b.newest_input:
        return OUTPUT
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    vendor = REPO / "vendor" / "llama.cpp"
    cmd = [
        "g++",
        "-O3",
        "-DNDEBUG",
        "-std=c++17",
        f"-I{vendor / 'include'}",
        f"-I{vendor / 'ggml' / 'include'}",
        str(SOURCE),
        "-o",
        str(OUTPUT),
        *[str(p) for p in b.libraries],
        "-lpthread",
        "-ldl",
        "-lm",
    ]
    if verbose:
        print(f"building {OUTPUT.relative_to(REPO)} against {b.build_dir.relative_to(REPO)}", flush=True)
    subprocess.run(cmd, check=True)
    return OUTPUT


if __name__ == "__main__":
    print(build_driver())
