#!/usr/bin/env python3
"""Fetch the pinned llama.cpp source into this directory.

llama.cpp is not committed. Its source comes from the pinned PyPI sdist of
llama-cpp-python (which carries `vendor/llama.cpp` at a known commit): downloaded
with pip by name and version, verified by sha256, extracted here, then our patches
(`patches/*.patch`, in name order) are applied.

Idempotent: a stamp records the sdist hash and the patch set; when it matches the
tree is left alone. A changed pin or patch set re-extracts from scratch.

    python vendor/llama.cpp/sync.py            # sync if needed
    python vendor/llama.cpp/sync.py --force    # re-extract
    python vendor/llama.cpp/sync.py --check    # exit 1 if not in sync

The sdist is cached in $LLAMANB_CACHE (default ~/.cache/llamanb) so clean clones
on one machine download it once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIN = json.loads((HERE / "pin.json").read_text())
OURS = {"pin.json", "sync.py", "patches"}
STAMP = HERE / ".llamanb-sync"

# Parts of the sdist we never build or read: left out to keep the tree small.
SKIP_DIRS = ("docs/", "media/", "examples/", "tests/", "benches/", ".github/", "app/")
KEEP_MODELS = ("models/ggml-vocab-", "models/templates/")


def cache_dir() -> Path:
    root = os.environ.get("LLAMANB_CACHE") or Path.home() / ".cache" / "llamanb"
    return Path(root) / "sdist"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_sdist() -> Path:
    target = cache_dir() / PIN["sdist"]
    if target.exists() and sha256(target) == PIN["sha256"]:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # --no-binary for this package only: its build dependencies come as wheels.
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps",
            "--no-binary", PIN["package"],
            f"{PIN['package']}=={PIN['version']}", "-d", tmp,
        ]
        print("llamanb sync:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        got = Path(tmp) / PIN["sdist"]
        actual = sha256(got)
        if actual != PIN["sha256"]:
            raise SystemExit(
                f"llamanb sync: sha256 mismatch for {PIN['sdist']}: "
                f"expected {PIN['sha256']}, got {actual}"
            )
        shutil.move(str(got), target)
    return target


def patches() -> list[Path]:
    return sorted((HERE / "patches").glob("*.patch"))


def wanted_stamp() -> str:
    parts = [PIN["sha256"]] + [f"{p.name}:{sha256(p)}" for p in patches()]
    return "\n".join(parts) + "\n"


def in_sync() -> bool:
    return STAMP.exists() and STAMP.read_text() == wanted_stamp()


def clear_tree() -> None:
    for entry in HERE.iterdir():
        if entry.name in OURS:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def keep(relpath: str) -> bool:
    if relpath.startswith(SKIP_DIRS):
        return False
    if relpath.startswith("models/"):
        return relpath.startswith(KEEP_MODELS)
    return bool(relpath)


def extract(sdist: Path) -> None:
    prefix = PIN["member"]
    with tarfile.open(sdist, "r:gz") as tar:
        members = []
        for member in tar.getmembers():
            if not member.name.startswith(prefix):
                continue
            rel = member.name[len(prefix):]
            if not keep(rel) or (rel.split("/")[0] in OURS):
                continue
            member.name = rel
            members.append(member)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(HERE, members=members, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tar.extractall(HERE, members=members)


def apply_patches() -> None:
    for patch in patches():
        print(f"llamanb sync: applying {patch.name}", flush=True)
        subprocess.run(["patch", "-p1", "--forward", "-i", str(patch)], cwd=HERE, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="re-extract even if in sync")
    parser.add_argument("--check", action="store_true", help="only report whether in sync")
    args = parser.parse_args()
    if args.check:
        ok = in_sync()
        print("in sync" if ok else "not in sync")
        return 0 if ok else 1
    if in_sync() and not args.force:
        return 0
    sdist = fetch_sdist()
    clear_tree()
    extract(sdist)
    apply_patches()
    STAMP.write_text(wanted_stamp())
    print(f"llamanb sync: llama.cpp {PIN['llama_cpp_commit']} ready in {HERE}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
