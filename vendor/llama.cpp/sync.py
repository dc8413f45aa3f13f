#!/usr/bin/env python3
"""Fetch the pinned llama.cpp source into this directory.

llama.cpp is not committed. `pin.json` names where its source comes from and how it
is checked ("source"), and which llama.cpp that is ("llama_cpp": build number, commit,
date). Two kinds of source:

- "sdist": a package registry's sdist that carries a whole llama.cpp tree at some
  member path (llama-cpp-python's `vendor/llama.cpp/`, xllamacpp's
  `thirdparty/llama.cpp/`): downloaded with pip by name and version;
- "archive": a source archive of llama.cpp itself (GitHub's tarball of a tag or commit,
  `https://github.com/ggml-org/llama.cpp/archive/<tag>.tar.gz`), by URL or local path.

Either is verified by sha256, its llama.cpp members (under "member") are extracted
here, then our patches (`patches/*.patch`, in name order) are applied.

Idempotent: a stamp records the source and the patch set; when it matches the tree is
left alone. A changed pin or patch set re-extracts from scratch.

    python vendor/llama.cpp/sync.py            # sync if needed
    python vendor/llama.cpp/sync.py --force    # re-extract
    python vendor/llama.cpp/sync.py --check    # exit 1 if not in sync
    python vendor/llama.cpp/sync.py --bump SOURCE [--build bNNNNN] [--commit SHA] [--date D]
        # move the pin: SOURCE is pypi:PACKAGE==VERSION, or an archive's URL or path.
        # Re-extracts, re-applies every patch (applied / already upstream / needs a
        # rebase), prints the llama.h delta, then `make install`, `make stubs` and the
        # coverage check (`--no-build` stops after the delta).

Downloads are cached in $LLAMANB_CACHE (default ~/.cache/llamanb) so clean clones
on one machine fetch them once.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PIN_FILE = HERE / "pin.json"
OURS = {"pin.json", "sync.py", "patches"}
STAMP = HERE / ".llamanb-sync"

# Parts of the tree we never build or read: left out to keep it small.
SKIP_DIRS = ("docs/", "media/", "examples/", "tests/", "benches/", ".github/", "app/")
KEEP_MODELS = ("models/ggml-vocab-", "models/templates/")
# What marks a directory of an archive as a llama.cpp tree.
TREE_MARKERS = ("CMakeLists.txt", "include/llama.h", "src/llama.cpp", "ggml/CMakeLists.txt")


def say(*parts: object) -> None:
    print("llamanb sync:", *parts, flush=True)


def load_pin() -> dict:
    return json.loads(PIN_FILE.read_text())


def cache_dir() -> Path:
    root = os.environ.get("LLAMANB_CACHE") or Path.home() / ".cache" / "llamanb"
    return Path(root) / "sdist"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, expected: str) -> Path:
    actual = sha256(path)
    if actual != expected:
        raise SystemExit(f"llamanb sync: sha256 mismatch for {path}: expected {expected}, got {actual}")
    return path


def _local_path(url: str) -> Path | None:
    """The file an archive "url" names on this machine (a path or file:// URL), if any."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if not parsed.scheme:
        return Path(url).expanduser().resolve()
    return None


def pip_download(package: str, version: str, dest: Path) -> Path:
    """pip's copy of PACKAGE==VERSION's sdist in DEST (the only file there)."""
    # --no-binary for this package only: its build dependencies come as wheels.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", package,
           f"{package}=={version}", "-d", str(dest)]
    say(" ".join(cmd))
    subprocess.run(cmd, check=True)
    got = [p for p in dest.iterdir() if p.is_file()]
    if len(got) != 1:
        raise SystemExit(f"llamanb sync: pip download of {package}=={version} gave {got}")
    return got[0]


def fetch(source: dict) -> Path:
    """The pinned source file, downloaded (or found) and verified."""
    kind = source["kind"]
    if kind == "archive":
        local = _local_path(source["url"])
        if local is not None:
            if not local.exists():
                raise SystemExit(f"llamanb sync: archive {local} not found")
            return _verified(local, source["sha256"])
    elif kind != "sdist":
        raise SystemExit(f"llamanb sync: unknown source kind {kind!r} in pin.json")
    target = cache_dir() / source["file"]
    if target.exists() and sha256(target) == source["sha256"]:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sdist":
            got = pip_download(source["package"], source["version"], Path(tmp))
            if got.name != source["file"]:
                raise SystemExit(f"llamanb sync: pip gave {got.name}, pin.json names {source['file']}")
        else:
            got = Path(tmp) / source["file"]
            say("downloading", source["url"])
            with urllib.request.urlopen(source["url"]) as r, got.open("wb") as f:
                shutil.copyfileobj(r, f)
        _verified(got, source["sha256"])
        shutil.move(str(got), target)
    return target


def patches() -> list[Path]:
    return sorted((HERE / "patches").glob("*.patch"))


def wanted_stamp(pin: dict) -> str:
    source = json.dumps(pin["source"], sort_keys=True)
    parts = [source] + [f"{p.name}:{sha256(p)}" for p in patches()]
    return "\n".join(parts) + "\n"


def in_sync(pin: dict) -> bool:
    return STAMP.exists() and STAMP.read_text() == wanted_stamp(pin)


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


def extract(archive: Path, prefix: str) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = []
        for member in tar.getmembers():
            if not member.name.startswith(prefix):
                continue
            rel = member.name[len(prefix):]
            if not keep(rel) or (rel.split("/")[0] in OURS):
                continue
            member.name = rel
            members.append(member)
        if not members:
            raise SystemExit(f"llamanb sync: nothing under {prefix!r} in {archive}")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(HERE, members=members, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tar.extractall(HERE, members=members)
    # Files get the time of extraction, not the archive's: a new tree's file can be older
    # than the object an incremental build made from the old one (ninja would keep it).
    for member in members:
        if member.isfile():
            os.utime(HERE / member.name)


def _patch(patch: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["patch", "-p1", "--forward", "--no-backup-if-mismatch", *flags, "-i", str(patch)],
                          cwd=HERE, capture_output=True, text=True)


def apply_patches() -> None:
    for patch in patches():
        say(f"applying {patch.name}")
        r = _patch(patch)
        if r.returncode != 0:
            sys.stdout.write(r.stdout + r.stderr)
            raise SystemExit(f"llamanb sync: {patch.name} does not apply to this tree "
                             "(see docs/upgrading-llama-cpp.md)")


def reapply_patches() -> list[tuple[str, str]]:
    """Apply each patch, saying for each whether it applied, is already upstream, or fails.

    A patch that does not apply forward but reverse-applies cleanly is already in the
    tree (upstream took it or an equivalent): it can be dropped. One that does neither
    needs a rebase. Every patch is tried, so one run lists them all.
    """
    report: list[tuple[str, str]] = []
    for patch in patches():
        dry = _patch(patch, "--dry-run")
        if dry.returncode == 0:
            fuzzy = re.search(r"with fuzz|offset", dry.stdout)
            _patch(patch).check_returncode()
            status = "applied" + (" (with offset/fuzz: refresh it)" if fuzzy else "")
        elif subprocess.run(["patch", "-p1", "-R", "--dry-run", "-f", "-i", str(patch)], cwd=HERE,
                            capture_output=True, text=True).returncode == 0:
            status = "already applied upstream: drop it"
        else:
            failed, current = [], "?"
            for line in dry.stdout.splitlines():
                if line.startswith(("patching file ", "checking file ")):  # GNU patch, --dry-run: checking
                    current = line.split(" ", 2)[2]
                elif "FAILED" in line or "can't find file" in line:
                    failed.append(f"{current}: {line.strip()}")
            status = "FAILS: needs a rebase (" + "; ".join(failed or ["see `patch --dry-run`"]) + ")"
        say(f"patch {patch.name}: {status}")
        report.append((patch.name, status))
    return report


# --- llama.h declarations, for the delta a bump prints

def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)


def header_decls(text: str) -> dict[str, dict[str, str]]:
    """llama.h's functions, structs, enums and #defines, each with a normalized body."""
    out: dict[str, dict[str, str]] = {"function": {}, "struct": {}, "enum": {}, "define": {}}
    for m in re.finditer(r"^\s*#\s*define\s+(LLAMA_\w+)[ \t]+([^\n]*)$", text, flags=re.M):
        out["define"][m.group(1)] = " ".join(_strip_comments(m.group(2)).split())
    code = _strip_comments(text)
    for m in re.finditer(r"((?:DEPRECATED\s*\(\s*)?LLAMA_API\b[^;{]*?\b(llama_\w+)\s*\([^;{]*);", code):
        out["function"][m.group(2)] = " ".join(m.group(1).split())
    for kind in ("struct", "enum"):
        for m in re.finditer(rf"\b{kind}\s+(llama_\w+)\s*\{{([^{{}}]*(?:\{{[^{{}}]*\}}[^{{}}]*)*)\}}", code):
            out[kind][m.group(1)] = " ".join(m.group(2).split())
    return out


def header_delta(old: str, new: str) -> list[str]:
    """Lines saying what llama.h added, removed or changed (empty when nothing did)."""
    a, b = header_decls(old), header_decls(new)
    lines = []
    for kind in ("function", "struct", "enum", "define"):
        for name in sorted(b[kind].keys() - a[kind].keys()):
            lines.append(f"  + {kind} {name}: {b[kind][name]}")
        for name in sorted(a[kind].keys() - b[kind].keys()):
            lines.append(f"  - {kind} {name}")
        for name in sorted(a[kind].keys() & b[kind].keys()):
            if a[kind][name] != b[kind][name]:
                if kind in ("struct", "enum"):
                    sa = {s.strip() for s in re.split(r"[;,]", a[kind][name]) if s.strip()}
                    sb = {s.strip() for s in re.split(r"[;,]", b[kind][name]) if s.strip()}
                    what = "; ".join([f"+ {s}" for s in sorted(sb - sa)] + [f"- {s}" for s in sorted(sa - sb)])
                    lines.append(f"  ~ {kind} {name}: {what or 'reordered'}")
                else:
                    lines.append(f"  ~ {kind} {name}: {a[kind][name]}  ->  {b[kind][name]}")
    # Comments are documentation too (a function's contract, a field's unit): their changes, verbatim.
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0):
        text = line[1:].strip()
        if line[:1] in "+-" and not line.startswith(("+++", "---")) and text.startswith(("//", "/*", "*")):
            lines.append(f"  {line[0]} comment: {text}")
    return lines


# --- bump: a new source into pin.json

def find_member_prefix(names: list[str]) -> str:
    """The archive directory that holds a llama.cpp tree (the shallowest, if nested)."""
    have = set(names)
    candidates = sorted({n[: -len("include/llama.h")] for n in names if n.endswith("include/llama.h")},
                        key=lambda p: (p.count("/"), p))
    found = [p for p in candidates if all(p + marker in have for marker in TREE_MARKERS)]
    if not found:
        raise SystemExit("llamanb sync: no llama.cpp tree (" + ", ".join(TREE_MARKERS) + ") in the archive")
    return found[0]


def detect_identity(archive: Path, prefix: str, source: dict) -> dict[str, str | None]:
    """Build number, commit and date of the tree, from what the archive itself says.

    - a GitHub/`git archive` tarball carries its commit in the pax header ("comment")
      and the commit's time as every member's mtime; its top directory names the tag
      (`llama.cpp-b11549/`) or the commit;
    - xllamacpp's versions end in the llama.cpp build they carry (2026.10.11549);
    - otherwise the member times only bound the date (when the sdist was packed).
    """
    found: dict[str, str | None] = {"build": None, "commit": None, "date": None, "version": None, "evidence": None}
    with tarfile.open(archive, "r:*") as tar:
        comment = (tar.pax_headers or {}).get("comment", "")
        member = tar.getmember(prefix + "include/llama.h")
        mtime = member.mtime
        f = tar.extractfile(prefix + "CMakeLists.txt")
        cmake = f.read().decode(errors="replace") if f else ""
    # The release line the tree is on: LLAMA_VERSION_* (a tag vX.Y.Z sets them; "-dev" in between).
    parts = [re.search(rf"set\(LLAMA_VERSION_{k}\s+(\d+)\)", cmake) for k in ("MAJOR", "MINOR", "PATCH")]
    if all(parts):
        dev = re.search(r'option\(LLAMA_BUILD_IS_DEV\b[^)]*\bON\)', cmake)
        found["version"] = ".".join(m.group(1) for m in parts if m) + ("-dev" if dev else "")
    top = prefix.rstrip("/").split("/")[-1]
    evidence = []
    if re.fullmatch(r"[0-9a-f]{40}", comment):
        found["commit"] = comment
        found["date"] = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).strftime("%Y-%m-%d")
        evidence.append("commit and date from the git archive's pax header and member times")
    m = re.search(r"(?:^|[-_])(b\d+)$", top)
    if m:
        found["build"] = m.group(1)
        evidence.append(f"build from the archive's top directory {top}/")
    elif source.get("package") == "xllamacpp" and (v := re.fullmatch(r"\d{4}\.\d+\.(\d{4,6})(?:\.\d+)?",
                                                                        source.get("version", ""))):
        found["build"] = "b" + v.group(1)
        evidence.append("build from xllamacpp's version scheme (YYYY.M.BUILD)")
    if found["date"] is None:
        found["date"] = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).strftime("%Y-%m-%d")
        found["date_is"] = "packed"  # an upper bound: when the sdist was made
        evidence.append("date: the archive's file times (when it was packed, not the commit's date)")
    found["evidence"] = "; ".join(evidence)
    return found


def resolve_source(spec: str, workdir: Path) -> tuple[dict, Path]:
    """pin.json's "source" for SPEC, and the downloaded file."""
    if spec.startswith("pypi:"):
        m = re.fullmatch(r"pypi:([A-Za-z0-9_.\-]+)==([^\s]+)", spec)
        if not m:
            raise SystemExit("llamanb sync: a registry source is pypi:PACKAGE==VERSION")
        got = pip_download(m.group(1), m.group(2), workdir)
        source = {"kind": "sdist", "package": m.group(1), "version": m.group(2), "file": got.name}
    else:
        local = _local_path(spec)
        if local is not None:
            if not local.exists():
                raise SystemExit(f"llamanb sync: {local} not found")
            got = local
            url = str(local)
        else:
            url = spec
            name = Path(urllib.parse.urlparse(spec).path).name or "llama.cpp.tar.gz"
            got = workdir / name
            say("downloading", spec)
            with urllib.request.urlopen(spec) as r, got.open("wb") as f:
                shutil.copyfileobj(r, f)
        source = {"kind": "archive", "url": url, "file": got.name}
    source["sha256"] = sha256(got)
    with tarfile.open(got, "r:*") as tar:
        source["member"] = find_member_prefix(tar.getnames())
    return source, got


def pinned_header(pin: dict) -> str:
    """llama.h as PIN's source carries it (from the download cache), or "" if unavailable."""
    try:
        archive = fetch(pin["source"])
        with tarfile.open(archive, "r:*") as tar:
            f = tar.extractfile(pin["source"]["member"] + "include/llama.h")
            return f.read().decode() if f else ""
    except (SystemExit, OSError, KeyError, subprocess.CalledProcessError) as e:
        say(f"no llama.h of the previous pin to compare with ({e})")
        return ""


def bump(spec: str, build: str | None, commit: str | None, date: str | None, run_build: bool) -> int:
    old_pin = load_pin() if PIN_FILE.exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        source, got = resolve_source(spec, Path(tmp))
        if old_pin and old_pin.get("source") == source:  # the same bump again (after mending patches)
            previous = old_pin.get("bumped_from")
        else:
            previous = {"build": old_pin["llama_cpp"].get("build"), "source": old_pin["source"]} if old_pin else None
        old_text = pinned_header(previous) if previous else ""
        ident = detect_identity(got, source["member"], source)
        if build:
            ident["build"], ident["evidence"] = build, f"{ident['evidence']}; build given (--build)"
        if commit:
            ident["commit"] = commit
        if date:
            ident["date"], ident["date_is"] = date, None
        if not ident["commit"]:
            ident["evidence"] += "; commit: the source does not say it (--commit)"
        if not ident["build"]:
            raise SystemExit("llamanb sync: the archive does not say its llama.cpp build number: "
                             "pass --build bNNNNN (and --commit, --date when known)")
        llama_cpp = {k: v for k, v in ident.items() if v is not None}
        pin = {"source": source, "llama_cpp": llama_cpp}
        if previous:
            pin["bumped_from"] = previous
        if source["kind"] == "sdist" or _local_path(source["url"]) is None:  # where fetch() looks
            cache_dir().mkdir(parents=True, exist_ok=True)
            shutil.copyfile(got, cache_dir() / source["file"])
        PIN_FILE.write_text(json.dumps(pin, indent=2) + "\n")
    was = f"{previous['build']} ({previous['source']['file']})" if previous else "none"
    say(f"pin: {was} -> {llama_cpp['build']} ({source['file']}, member {source['member']})")
    say(f"llama.cpp {llama_cpp['build']} ({llama_cpp.get('version', 'version unknown')}), "
        f"commit {llama_cpp.get('commit', 'unknown')}, "
        f"date {llama_cpp['date']}{' (packed)' if llama_cpp.get('date_is') else ''}; {llama_cpp['evidence']}")

    STAMP.unlink(missing_ok=True)
    clear_tree()
    extract(fetch(source), source["member"])
    report = reapply_patches()
    failed = [name for name, status in report if status.startswith("FAILS")]
    dropped = [name for name, status in report if status.startswith("already")]

    delta = header_delta(old_text, (HERE / "include" / "llama.h").read_text()) if old_text else []
    if not old_text:
        say("llama.h: no previous pin's header to compare with")
    else:
        say(f"llama.h delta against the previous pin ({previous['build']}):" if delta
            else "llama.h: no change in declarations")
    for line in delta:
        print(line)
    if failed:
        say(f"STOP: {', '.join(failed)} no longer apply. Rebase them onto the new tree "
            "(edit the files here, `diff -u`, keep each patch's header), then run the bump again.")
        return 1
    if dropped:
        say(f"STOP: upstream has {', '.join(dropped)}: delete them (and their README entries), "
            "then run the bump again")
        return 1
    STAMP.write_text(wanted_stamp(load_pin()))
    if not run_build:
        return 0
    for step in (["make", "install"], ["make", "stubs"], ["make", "coverage"]):
        say("$ " + " ".join(step))
        if subprocess.run(step, cwd=ROOT).returncode != 0:
            say(f"`{' '.join(step)}` failed: follow the llama.h delta above in cpp/ and llamanb.llama_h_coverage")
            return 1
    return 0


# -- llama-cpp-python's own tests (tests/test_compat_peer.py runs them on llamanb.compat) --
# Kept apart from the llama.cpp pin: this sdist is the one pinned before the b11549 bump
# (pin.json's bumped_from), and only its tests/*.py are taken, into a git-ignored folder.
PEER_TESTS = {"kind": "sdist", "package": "llama-cpp-python", "version": "0.3.36",
              "file": "llama_cpp_python-0.3.36.tar.gz",
              "sha256": "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"}
# Edits made on extraction, each with its reason (tests/compat_peer_excluded.txt lists them too).
PEER_EDITS = {
    "test_llama.py": [
        # llama.cpp aborts making a context for a vocab-only model; llamanb has none to show.
        ("assert llama._ctx.ctx is not None", "assert llama._ctx is not None"),
    ],
}


def extract_peer_tests(dest: Path) -> Path:
    """llama-cpp-python 0.3.36's tests/*.py, verified by sha256, into DEST (returned)."""
    archive = fetch(PEER_TESTS)
    prefix = "llama_cpp_python-0.3.36/tests/"
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = member.name[len(prefix):]
            if member.isfile() and member.name.startswith(prefix) and "/" not in name and name.endswith(".py"):
                text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
                for old, new in PEER_EDITS.get(name, []):
                    if old not in text:
                        raise SystemExit(f"llamanb sync: {name} no longer has {old!r}")
                    text = text.replace(old, new)
                (dest / name).write_text(text)
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="re-extract even if in sync")
    parser.add_argument("--check", action="store_true", help="only report whether in sync")
    parser.add_argument("--bump", metavar="SOURCE",
                        help="move the pin to SOURCE: pypi:PACKAGE==VERSION, or an archive URL or path")
    parser.add_argument("--build", help="with --bump: the llama.cpp build (bNNNNN), if the source does not say")
    parser.add_argument("--commit", help="with --bump: the llama.cpp commit, if the source does not say")
    parser.add_argument("--date", help="with --bump: the llama.cpp commit's date (YYYY-MM-DD)")
    parser.add_argument("--no-build", action="store_true", help="with --bump: stop before make install")
    parser.add_argument("--peer-tests", metavar="DIR", type=Path,
                        help="only extract llama-cpp-python 0.3.36's tests/*.py into DIR")
    args = parser.parse_args()
    if args.peer_tests:
        say("llama-cpp-python tests in", extract_peer_tests(args.peer_tests))
        return 0
    if args.bump:
        return bump(args.bump, args.build, args.commit, args.date, not args.no_build)
    pin = load_pin()
    if args.check:
        ok = in_sync(pin)
        print("in sync" if ok else "not in sync")
        return 0 if ok else 1
    if in_sync(pin) and not args.force:
        return 0
    archive = fetch(pin["source"])
    STAMP.unlink(missing_ok=True)
    clear_tree()
    extract(archive, pin["source"]["member"])
    apply_patches()
    STAMP.write_text(wanted_stamp(pin))
    say(f"llama.cpp {pin['llama_cpp'].get('build')} ({pin['llama_cpp'].get('commit', '?')}) ready in {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
