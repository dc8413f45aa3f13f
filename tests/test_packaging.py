"""Types ship and stay true: committed stubs match stubgen, mypy --strict passes."""

from __future__ import annotations

import importlib.resources
import os
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from .conftest import ROOT

COMMITTED_STUBS = ROOT / "stubs" / "llamanb" / "core"
STUB_FILES = ("__init__.pyi", "common.pyi", "fast.pyi", "ggml.pyi", "gguf.pyi", "mtmd.pyi", "server.pyi")


def test_committed_stub_is_fresh(tmp_path: Path) -> None:
    import llamanb.core

    subprocess.run(
        [sys.executable, str(ROOT / "cmake" / "stubgen.py"), llamanb.core.__file__, str(tmp_path)], check=True
    )
    fresh = sorted(p.name for p in (tmp_path / "core").iterdir())
    assert fresh == sorted(STUB_FILES)
    for name in STUB_FILES:
        assert (tmp_path / "core" / name).read_text() == (COMMITTED_STUBS / name).read_text(), (
            f"stubs/llamanb/core/{name} is stale: run `make stubs` and commit the result"
        )


def test_package_ships_types() -> None:
    package = importlib.resources.files("llamanb")
    assert package.joinpath("py.typed").is_file()
    for name in STUB_FILES:
        shipped = package.joinpath("core", name)
        assert shipped.is_file(), name
        assert shipped.read_text() == (COMMITTED_STUBS / name).read_text()


@pytest.mark.slow  # mypy --strict over the package
@pytest.mark.parametrize("target", ["src/llamanb", "tests/typing"])
def test_mypy_strict(target: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"), target],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_generate_and_info() -> None:
    gen = subprocess.run(
        [
            sys.executable,
            "-m",
            "llamanb",
            "generate",
            "The capital of France is",
            "--max-tokens",
            "8",
            "--temperature",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gen.returncode == 0, gen.stderr
    assert "Paris" in gen.stdout
    info = subprocess.run([sys.executable, "-m", "llamanb", "info"], capture_output=True, text=True, timeout=300)
    assert info.returncode == 0 and "n_embd:      576" in info.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "llamanb", "generate", "x", "--model", "/nope.gguf"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1 and "not found" in bad.stderr


@pytest.mark.parametrize("stub_name", STUB_FILES)
def test_stub_and_module_agree_name_for_name(stub_name: str) -> None:
    """What mypy.stubtest would check, for nanobind objects (stubtest does not
    recognise nanobind functions): every stub name exists at runtime with the same
    kind, and every public runtime name is in the stub."""
    import ast
    import inspect

    import llamanb.core

    module: object = llamanb.core
    if stub_name != "__init__.pyi":
        module = getattr(llamanb.core, stub_name.removesuffix(".pyi"))
    tree = ast.parse((COMMITTED_STUBS / stub_name).read_text())
    problems: list[str] = []

    def stub_members(node: ast.ClassDef | ast.Module) -> dict[str, ast.AST]:
        out: dict[str, ast.AST] = {}
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.ClassDef)):
                out[item.name] = item
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                out[item.target.id] = item
            elif isinstance(item, ast.Assign):
                for t in item.targets:
                    if isinstance(t, ast.Name):
                        out[t.id] = item
            elif isinstance(item, ast.ImportFrom) and item.module == "llamanb.core":
                for alias in item.names:
                    out[alias.asname or alias.name] = item
        return out

    top = stub_members(tree)
    for name, node in top.items():
        if not hasattr(module, name):
            problems.append(f"stub has {name}, module does not")
            continue
        value = getattr(module, name)
        if isinstance(node, ast.ClassDef):
            if not inspect.isclass(value):
                problems.append(f"{name}: class in stub, not at runtime")
                continue
            members = stub_members(node)
            for member in members:
                if not member.startswith("__") and not hasattr(value, member):
                    problems.append(f"stub has {name}.{member}, runtime does not")
            own = {n for n in vars(value) if not n.startswith("_")}
            for member in own - set(members):
                problems.append(f"runtime has {name}.{member}, stub does not")
        elif isinstance(node, ast.FunctionDef) and not callable(value):
            problems.append(f"{name}: function in stub, not callable at runtime")
    for name in {n for n in dir(module) if not n.startswith("_")} - set(top):
        problems.append(f"runtime has {name}, stub does not")
    assert not problems, problems


@pytest.mark.slow  # builds the sdist, llama.cpp's tree included
def test_sdist_builds_offline_from_its_own_llama_cpp(tmp_path: Path) -> None:
    """The sdist carries the patched llama.cpp it was made from, stamped in sync, and
    leaves out what the build never reads (tests/test vocabularies, most tools, docs); common/
    (llama.cpp's chat engine), libmtmd's library sources (tools/mtmd) and llama-server's
    engine (tools/server/server-*) are in, and every file the build compiles or includes."""
    pytest.importorskip("scikit_build_core")
    code = "import sys; from scikit_build_core.build import build_sdist; build_sdist(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "dist")], cwd=ROOT, check=True, capture_output=True)
    (sdist,) = (tmp_path / "dist").glob("llamanb-*.tar.gz")
    # llama.cpp's web UI (vendor/llama-ui/sync.py), when the tree has it, is ~3 MB more
    ui_dist = ROOT / "src" / "llamanb" / "server" / "ui_dist"
    ui_files = sorted(p.relative_to(ROOT).as_posix() for p in ui_dist.rglob("*") if p.is_file())
    limit = (8 << 20) + (4 << 20 if ui_files else 0)
    assert sdist.stat().st_size < limit, f"sdist grew to {sdist.stat().st_size} bytes"
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        top = names[0].split("/")[0]
        missing_ui = set(ui_files) - {n[len(top) + 1 :] for n in names}
        assert not missing_ui, f"git-ignored UI assets left out of the sdist: {sorted(missing_ui)[:3]}"
        llama = {n[len(top) + len("/vendor/llama.cpp/") :] for n in names if n.startswith(f"{top}/vendor/llama.cpp/")}
        for needed in (
            "CMakeLists.txt",
            "include/llama.h",
            "src/llama.cpp",
            "LICENSE",
            "pin.json",
            "sync.py",
            ".llamanb-sync",
            "ggml/CMakeLists.txt",
            "ggml/src/ggml-cpu/CMakeLists.txt",
            "ggml/src/ggml-cuda/CMakeLists.txt",
            "ggml/src/ggml-vulkan/CMakeLists.txt",
            "vendor/CMakeLists.txt",
            "cmake/build-info.cmake",
            "common/CMakeLists.txt",
            "common/chat.cpp",
            "common/jinja/runtime.cpp",
            "vendor/cpp-httplib/CMakeLists.txt",
            "tools/mtmd/CMakeLists.txt",
            "tools/mtmd/mtmd.cpp",
            "tools/mtmd/clip.cpp",
            "tools/mtmd/models/llava.cpp",
            "vendor/miniaudio/miniaudio.h",
            "vendor/stb/stb_image.h",
            "tools/server/server-context.cpp",
            "tools/server/server-context.h",
        ):
            assert needed in llama, needed
        assert f"{top}/CMakeLists.txt" in names and f"{top}/PKG-INFO" in names
        for left_out in (
            "models/",
            "docs/",
            "gguf-py/",
            ".git",
            "ggml/src/ggml-metal/",
            "tools/mtmd/test-",
            "tools/mtmd/mtmd-cli.cpp",
            "tools/server/tests/",
            "tools/server/main.cpp",
        ):
            assert not [n for n in llama if n.startswith(left_out)], left_out
        # Of tools/, only libmtmd's library sources and llama-server's engine.
        assert not [
            n for n in llama if n.startswith("tools/") and not n.startswith(("tools/mtmd/", "tools/server/server-"))
        ]
        assert not [n for n in names if "ggml-vocab-" in n]
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tar.extractall(tmp_path)
    sync = tmp_path / top / "vendor" / "llama.cpp" / "sync.py"
    # No cache and no index: anything but "already in sync" would have to download.
    env = dict(
        os.environ,
        LLAMANB_CACHE=str(tmp_path / "empty-cache"),
        PIP_NO_INDEX="1",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
    )
    check = subprocess.run([sys.executable, str(sync), "--check"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, (
        f"{check.stdout}{check.stderr}: the sdist's llama.cpp is not in sync with its patches; "
        "run `python vendor/llama.cpp/sync.py` before making an sdist"
    )
    again = subprocess.run([sys.executable, str(sync)], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "pip" not in again.stdout + again.stderr, again.stdout + again.stderr
    assert not (tmp_path / "empty-cache").exists()
    assert_every_source_is_there(tmp_path / top, tmp_path / "build")
    assert_wheel_libraries_are_plain_files(tmp_path / top, tmp_path / "build-dispatch")


VENV_BIN = Path(sys.executable).parent  # the venv's cmake and ninja (make's BUILD_DEPS)


def configure(source: Path, build: Path, *defines: str) -> None:
    """CMake's configure step of the unpacked sdist."""
    done = subprocess.run(
        [
            str(VENV_BIN / "cmake"),
            "-S",
            str(source),
            "-B",
            str(build),
            "-G",
            "Ninja",
            f"-DCMAKE_MAKE_PROGRAM={VENV_BIN / 'ninja'}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dnanobind_DIR={subprocess.check_output([sys.executable, '-m', 'nanobind', '--cmake_dir'], text=True).strip()}",
            *defines,
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def assert_every_source_is_there(source: Path, build: Path) -> None:
    """Configures the unpacked sdist and runs the preprocessor over every translation unit
    the default build compiles (seconds, where compiling them takes most of an hour on 2
    cores): a source or header the sdist left out fails here, not on a user's pip install."""
    configure(source, build)
    commands = subprocess.check_output([str(VENV_BIN / "ninja"), "-C", str(build), "-t", "commands", "all"], text=True)
    compiles = [shlex.split(line) for line in commands.splitlines() if " -c " in line]
    assert len(compiles) > 100, commands[-2000:]
    missing = []
    for argv in compiles:
        preprocess, skip = [], 0
        for arg in argv:
            if skip:
                skip -= 1
            elif arg in ("-o", "-MT", "-MF"):
                skip = 1
            elif arg != "-MD":
                preprocess.append("-E" if arg == "-c" else arg)
        run = subprocess.run([*preprocess, "-o", os.devnull], cwd=build, capture_output=True, text=True)
        if run.returncode != 0:
            missing.append(run.stderr.strip().splitlines()[0])
    assert not missing, missing[:5]


def assert_wheel_libraries_are_plain_files(source: Path, build: Path) -> None:
    """A wheel (LLAMANB_CPU_DISPATCH=ON) holds plain files, so each shared library the
    module loads must be built unversioned: a versioned one reaches the wheel only as a
    dangling SONAME symlink, and `import llamanb` fails (libllama-common did)."""
    configure(source, build, "-DLLAMANB_CPU_DISPATCH=ON")
    outputs = set(re.findall(r"bin/(lib[\w.+-]+\.so[.\d]*)", (build / "build.ninja").read_text()))
    assert {"libllama.so", "libllama-common.so", "libggml-base.so", "libmtmd.so"} <= outputs, sorted(outputs)
    assert not [name for name in outputs if not name.endswith(".so")], sorted(outputs)
