#!/usr/bin/env python3
"""Build the per-backend distributions of llamanb from this one source tree.

    python tools/build_dist.py --backend cpu              # llamanb: CPU-dispatch wheel (+ auditwheel)
    python tools/build_dist.py --backend cuda --sdist     # llamanb-cuda sdist
    python tools/build_dist.py --backend vulkan --out dist -C cmake.define.X=Y

The import name is `llamanb` in every distribution; only the project name differs
(`llamanb`, `llamanb-cuda`, `llamanb-vulkan`). scikit-build-core cannot rename a
project from config settings, so this script:

1. brings vendor/llama.cpp and the web UI in sync (vendor/llama.cpp/sync.py,
   vendor/llama-ui/sync.py) and makes the plain
   `llamanb` sdist of this checkout with scikit-build-core (no isolation, no network:
   the sdist carries the patched llama.cpp source, see pyproject.toml);
2. unpacks it into a temporary directory and, for a GPU backend, rewrites that copy's
   pyproject.toml: the project name, and the default of LLAMANB_BACKEND, so the renamed
   sdist builds its own backend without any environment variable;
3. builds an sdist (--sdist) or a wheel there. Wheels are for redistribution: they are
   built with LLAMANB_CPU_DISPATCH=ON (shared ggml, every x86-64 CPU variant picked at
   runtime, the GPU backend loaded from the package directory). CPU wheels are then
   repaired with auditwheel when it is installed, to the most compatible manylinux tag
   the build machine's toolchain allows (--plat to ask for one: the build fails if the
   wheel needs newer symbols). Every wheel is first checked for shared libraries that
   neither it nor the system provides.

Builds run without build isolation: install the build dependencies first (the
Makefile's BUILD_DEPS: scikit-build-core, nanobind, cmake, ninja, numpy).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("cpu", "cuda", "vulkan")


def dist_name(backend: str) -> str:
    return "llamanb" if backend == "cpu" else f"llamanb-{backend}"


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def build_sdist(source: Path, out: Path) -> Path:
    """The sdist of `source` into `out`, with scikit-build-core in this interpreter."""
    out.mkdir(parents=True, exist_ok=True)
    code = "import sys; from scikit_build_core.build import build_sdist; print(build_sdist(sys.argv[1]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out)], cwd=source, check=True, capture_output=True, text=True
    )
    name = proc.stdout.strip().splitlines()[-1]
    return out / name


# Libraries a wheel may need from the system: glibc's, the C++ runtime, and the GPU
# drivers and runtimes a GPU backend links (its wheel says which to install).
SYSTEM_LIBRARIES = re.compile(
    r"^(libc|libm|libdl|librt|libpthread|ld-linux-x86-64|libstdc\+\+|libgcc_s)\.so\.\d+$"
    r"|^lib(cuda|cudart|cublas|cublasLt|nvidia-ml|vulkan)\.so(\.\d+)*$"
)


def missing_libraries(wheel: Path) -> list[str]:
    """The shared libraries the wheel's own libraries need (ELF DT_NEEDED, read with
    readelf) that neither the wheel nor SYSTEM_LIBRARIES provides: each would be an
    ImportError on the user's machine."""
    missing = []
    with zipfile.ZipFile(wheel) as whl, tempfile.TemporaryDirectory() as tmp:
        libraries = [n for n in whl.namelist() if n.endswith(".so") or ".so." in Path(n).name]
        shipped = {Path(n).name for n in libraries}
        for name in libraries:
            path = Path(whl.extract(name, tmp))
            dynamic = subprocess.run(["readelf", "-d", str(path)], check=True, capture_output=True, text=True).stdout
            for needed in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic):
                if needed not in shipped and not SYSTEM_LIBRARIES.match(needed):
                    missing.append(f"{name} needs {needed}")
    return missing


def rename_project(pyproject: Path, backend: str) -> None:
    text = pyproject.read_text()
    text, n = re.subn(r'(?m)^name = "llamanb"$', f'name = "{dist_name(backend)}"', text)
    if n != 1:
        raise SystemExit(f'build_dist: expected one `name = "llamanb"` line in {pyproject}')
    text, n = re.subn(r'(LLAMANB_BACKEND = \{ env = "LLAMANB_BACKEND", default = )"cpu"', rf'\1"{backend}"', text)
    if n != 1:
        raise SystemExit(f"build_dist: expected the LLAMANB_BACKEND define in {pyproject}")
    pyproject.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, required=True)
    parser.add_argument("--sdist", action="store_true", help="build the sdist instead of a wheel")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory (default: dist/)")
    parser.add_argument(
        "-C",
        "--config-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra scikit-build-core setting for the wheel build (repeatable)",
    )
    parser.add_argument("--no-repair", action="store_true", help="skip auditwheel for CPU wheels")
    parser.add_argument(
        "--plat",
        default="auto",
        help="auditwheel's target tag, e.g. manylinux_2_34_x86_64 in a manylinux_2_34 image "
        "(default: auto, the most compatible one the build's symbols allow)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary source copy")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    run([sys.executable, str(ROOT / "vendor" / "llama.cpp" / "sync.py")], cwd=ROOT)
    # llama.cpp's web UI (docs/web-ui.md): into the sdist and so into every wheel
    run([sys.executable, str(ROOT / "vendor" / "llama-ui" / "sync.py")], cwd=ROOT)
    tmp = Path(tempfile.mkdtemp(prefix=f"llamanb-{args.backend}-"))
    try:
        base = build_sdist(ROOT, tmp / "base")
        with tarfile.open(base) as tar:
            top = tar.getnames()[0].split("/")[0]
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(tmp)
        src = tmp / top
        (src / "PKG-INFO").unlink()  # regenerated from the (renamed) pyproject.toml
        if args.backend != "cpu":
            rename_project(src / "pyproject.toml", args.backend)

        if args.sdist:
            made = build_sdist(src, out)
            print(f"build_dist: {made}")
            return 0

        env = dict(os.environ, LLAMANB_BACKEND=args.backend)
        wheels = tmp / "wheels"
        settings = ["-Ccmake.define.LLAMANB_CPU_DISPATCH=ON"] + [f"-C{s}" for s in args.config_setting]
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                str(src),
                "--no-build-isolation",
                "--no-deps",
                "-w",
                str(wheels),
                *settings,
            ],
            cwd=tmp,
            env=env,
        )
        (wheel,) = wheels.glob("*.whl")
        missing = missing_libraries(wheel)
        if missing:
            raise SystemExit("build_dist: the wheel lacks libraries its own need:\n  " + "\n  ".join(missing))
        if args.backend == "cpu" and not args.no_repair and shutil.which("auditwheel"):
            run(["auditwheel", "repair", "--plat", args.plat, "-w", str(out), str(wheel)], cwd=tmp)
        else:
            if args.backend == "cpu" and not args.no_repair:
                print("build_dist: auditwheel not installed; the wheel is not repaired", flush=True)
            shutil.copy2(wheel, out)
            print(f"build_dist: {out / wheel.name}")
        return 0
    finally:
        if args.keep:
            print(f"build_dist: sources kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
