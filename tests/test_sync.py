"""vendor/llama.cpp/sync.py on a source archive: the pin, the bump and the patch report.

No download and no build: a small llama.cpp-shaped tree is packed as GitHub packs a tag
(`llama.cpp-bNNNNN/` with the commit in the pax header) and given to a copy of sync.py
by path, as a user without registry access would give a downloaded archive.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # no conftest: this test needs no build
SYNC = ROOT / "vendor" / "llama.cpp" / "sync.py"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
MTIME = 1790000000  # 2026-09-21 UTC

OLD_HEADER = """\
#define LLAMA_SESSION_VERSION 10
struct llama_model_params {
    int32_t n_gpu_layers;
    bool use_mmap;
};
enum llama_vocab_type {
    LLAMA_VOCAB_TYPE_NONE = 0,
    LLAMA_VOCAB_TYPE_SPM  = 1,
};
LLAMA_API int32_t llama_model_n_embd(const struct llama_model * model);
LLAMA_API void llama_gone(void);
LLAMA_API int32_t llama_changes(int32_t a);
"""

NEW_HEADER = """\
#define LLAMA_SESSION_VERSION 11
struct llama_model_params {
    int32_t n_gpu_layers;
    bool use_mmap;
    uint32_t moe_cache_size; // new
};
enum llama_vocab_type {
    LLAMA_VOCAB_TYPE_NONE = 0,
    LLAMA_VOCAB_TYPE_SPM  = 1,
    LLAMA_VOCAB_TYPE_NEW  = 2,
};
LLAMA_API int32_t llama_model_n_embd(const struct llama_model * model);
LLAMA_API int32_t llama_changes(int32_t a, int32_t b);
LLAMA_API bool llama_added(void);
"""


def pack(path: Path, top: str, files: dict[str, str], commit: str | None = COMMIT) -> Path:
    """A .tar.gz of FILES under TOP/, like `git archive` (pax header, commit-time mtimes)."""
    pax = {"comment": commit} if commit else {}
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, pax_headers=pax) as tar:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime = len(data), MTIME
            tar.addfile(info, io.BytesIO(data))
    return path


def tree(header: str, source: str = "int a = 1;\nint b = 2;\nint c = 3;\n") -> dict[str, str]:
    return {
        "CMakeLists.txt": "project(llama)\n",
        "include/llama.h": header,
        "src/llama.cpp": source,
        "ggml/CMakeLists.txt": "project(ggml)\n",
        "models/ggml-vocab-x.gguf": "vocab",
        "models/big-model.gguf": "not extracted",
        "docs/readme.md": "not extracted",
    }


def patch_text(old: str, new: str) -> str:
    return (
        "why: a test patch\n"
        "--- a/src/llama.cpp\n+++ b/src/llama.cpp\n"
        f"@@ -1,3 +1,3 @@\n int a = 1;\n-{old}\n+{new}\n int c = 3;\n"
    )


@pytest.fixture()
def vendor(tmp_path: Path) -> Path:
    """A copy of vendor/llama.cpp/ (sync.py, an empty pin, one patch) in a scratch repo."""
    here = tmp_path / "repo" / "vendor" / "llama.cpp"
    (here / "patches").mkdir(parents=True)
    shutil.copy(SYNC, here / "sync.py")
    (here / "patches" / "0001-b.patch").write_text(patch_text("int b = 2;", "int b = 20;"))
    return here


def sync(here: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "LLAMANB_CACHE": str(here.parents[2] / "cache")}
    return subprocess.run([sys.executable, str(here / "sync.py"), *args], capture_output=True, text=True, env=env)


def test_bump_to_a_local_archive(vendor: Path, tmp_path: Path) -> None:
    old = pack(tmp_path / "old.tar.gz", "llama.cpp-b100", tree(OLD_HEADER))
    first = sync(vendor, "--bump", str(old), "--no-build")
    assert first.returncode == 0, first.stdout + first.stderr
    pin = json.loads((vendor / "pin.json").read_text())
    assert pin["source"] == {
        "kind": "archive",
        "url": str(old),
        "file": "old.tar.gz",
        "sha256": pin["source"]["sha256"],
        "member": "llama.cpp-b100/",
    }
    assert len(pin["source"]["sha256"]) == 64
    assert pin["llama_cpp"]["build"] == "b100"
    assert pin["llama_cpp"]["commit"] == COMMIT
    assert pin["llama_cpp"]["date"] == "2026-09-21"
    assert "patch 0001-b.patch: applied" in first.stdout
    assert "int b = 20;" in (vendor / "src" / "llama.cpp").read_text()
    assert (vendor / "models" / "ggml-vocab-x.gguf").exists()
    # Extraction time, not the archive's: an incremental build must see a changed file.
    assert (vendor / "include" / "llama.h").stat().st_mtime > MTIME + 86400
    assert not (vendor / "models" / "big-model.gguf").exists() and not (vendor / "docs").exists()
    assert sync(vendor, "--check").returncode == 0

    # Idempotent: in sync, nothing is re-extracted or re-patched.
    again = sync(vendor)
    assert again.returncode == 0 and again.stdout == ""
    # --force re-extracts and re-applies the patch from the pinned archive.
    (vendor / "src" / "llama.cpp").write_text("edited")
    forced = sync(vendor, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "applying 0001-b.patch" in forced.stdout
    assert "int b = 20;" in (vendor / "src" / "llama.cpp").read_text()

    # The next tree: the header delta against the previous pin is reported.
    new = pack(tmp_path / "new.tar.gz", "llama.cpp-b200", tree(NEW_HEADER))
    bumped = sync(vendor, "--bump", str(new), "--no-build")
    assert bumped.returncode == 0, bumped.stdout + bumped.stderr
    out = bumped.stdout
    assert "pin: b100 (old.tar.gz) -> b200 (new.tar.gz" in out
    assert "+ function llama_added" in out
    assert "- function llama_gone" in out
    assert "~ function llama_changes" in out and "int32_t b" in out
    assert "~ struct llama_model_params: + uint32_t moe_cache_size" in out
    assert "~ enum llama_vocab_type: + LLAMA_VOCAB_TYPE_NEW = 2" in out
    assert "~ define LLAMA_SESSION_VERSION: 10  ->  11" in out
    assert "llama_model_n_embd" not in out
    pin = json.loads((vendor / "pin.json").read_text())
    assert pin["llama_cpp"]["build"] == "b200"
    assert pin["bumped_from"]["build"] == "b100" and pin["bumped_from"]["source"]["file"] == "old.tar.gz"
    assert sync(vendor, "--check").returncode == 0
    # The same bump again (as after mending a patch) still compares with b100.
    rerun = sync(vendor, "--bump", str(new), "--no-build")
    assert rerun.returncode == 0 and "+ function llama_added" in rerun.stdout
    assert "pin: b100 (old.tar.gz) -> b200" in rerun.stdout


def test_a_changed_archive_is_refused(vendor: Path, tmp_path: Path) -> None:
    archive = pack(tmp_path / "a.tar.gz", "llama.cpp-b100", tree(OLD_HEADER))
    assert sync(vendor, "--bump", str(archive), "--no-build").returncode == 0
    pack(archive, "llama.cpp-b100", tree(OLD_HEADER, "int a = 1;\nint b = 2;\nint c = 4;\n"))
    out = sync(vendor, "--force")
    assert out.returncode != 0 and "sha256 mismatch" in out.stdout + out.stderr


def test_patches_already_upstream_or_needing_a_rebase(vendor: Path, tmp_path: Path) -> None:
    # Upstream made the change of 0001 itself, and changed the line 0002 changes.
    (vendor / "patches" / "0002-c.patch").write_text(
        "why: a test patch\n--- a/src/llama.cpp\n+++ b/src/llama.cpp\n"
        "@@ -1,3 +1,3 @@\n int a = 1;\n int b = 2;\n-int c = 3;\n+int c = 30;\n"
    )
    src = "int a = 1;\nint b = 20;\nint c = 5;\n"
    archive = pack(tmp_path / "up.tar.gz", "llama.cpp-b300", tree(NEW_HEADER, src))
    out = sync(vendor, "--bump", str(archive), "--no-build")
    assert "patch 0001-b.patch: already applied upstream: drop it" in out.stdout
    assert "patch 0002-c.patch: FAILS: needs a rebase" in out.stdout
    assert out.returncode == 1 and "STOP: 0002-c.patch no longer apply" in out.stdout
    assert sync(vendor, "--check").returncode == 1  # no stamp until the patches are mended
    # Mended: 0001 dropped, 0002 rebased onto the new tree.
    (vendor / "patches" / "0001-b.patch").unlink()
    (vendor / "patches" / "0002-c.patch").write_text(
        "why: a test patch\n--- a/src/llama.cpp\n+++ b/src/llama.cpp\n"
        "@@ -1,3 +1,3 @@\n int a = 1;\n int b = 20;\n-int c = 5;\n+int c = 30;\n"
    )
    again = sync(vendor, "--bump", str(archive), "--no-build")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "patch 0002-c.patch: applied" in again.stdout
    assert "llama.h: no previous pin's header to compare with" in again.stdout


def test_an_archive_that_does_not_say_its_build(vendor: Path, tmp_path: Path) -> None:
    """A commit archive of an sdist-like layout: the tree is found at any depth, the
    build number must then be given."""
    files = {f"pkg/third_party/llama.cpp/{k}": v for k, v in tree(OLD_HEADER).items()}
    files["pkg/src/llama.cpp/include/llama.h"] = "a binding's own copy, not a tree"
    archive = pack(tmp_path / "pkg-1.0.tar.gz", "pkg-1.0", files, commit=None)
    refused = sync(vendor, "--bump", str(archive), "--no-build")
    assert refused.returncode != 0 and "pass --build" in refused.stdout + refused.stderr
    given = sync(vendor, "--bump", str(archive), "--no-build", "--build", "b123", "--date", "2026-01-02")
    assert given.returncode == 0, given.stdout + given.stderr
    pin = json.loads((vendor / "pin.json").read_text())
    assert pin["source"]["member"] == "pkg-1.0/pkg/third_party/llama.cpp/"
    assert pin["llama_cpp"]["build"] == "b123" and pin["llama_cpp"]["date"] == "2026-01-02"
    assert "commit" not in pin["llama_cpp"]
    assert (vendor / "include" / "llama.h").read_text() == OLD_HEADER
