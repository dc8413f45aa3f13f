"""Run a fuzz target.

    python tests/fuzz/run.py TARGET [libFuzzer flags]   # coverage-guided (atheris; see make fuzz)
    python tests/fuzz/run.py TARGET --replay FILE...    # each file once (the suite replays the regressions)
    python tests/fuzz/run.py TARGET --mutate N          # N seeded random mutations of the seeds, no atheris
                                                        # (a crash leaves its input in build/fuzz-out/TARGET/mutate-current)
    python tests/fuzz/run.py TARGET --minimize CRASH OUT  # shrink a crashing input (kept if it still crashes)

Seeds are written to build/fuzz-seeds/TARGET, findings to build/fuzz-out/TARGET. A
target may raise any Python exception; a crash, a sanitizer report or a hang (libFuzzer's
-timeout, 20 s here) is a finding.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seeds  # noqa: E402
import targets  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def run_one(target: str, data: bytes) -> None:
    try:
        targets.TARGETS[target](data)
    except targets.EXPECTED:
        pass


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Byte flips, overwrites with boundary values, cuts, splices and duplications."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not buf:
            buf = bytearray(rng.randbytes(16))
        op, i = rng.randrange(6), rng.randrange(len(buf))
        if op == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            width = rng.choice((1, 2, 4, 8))
            value = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 2**63 - 1, 2**64 - 1))
            buf[i : i + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
        elif op == 2:
            del buf[i:]
        elif op == 3:
            buf[i:i] = rng.randbytes(rng.randint(1, 32))
        elif op == 4:
            j = rng.randrange(len(buf))
            buf[i : i + 8] = buf[j : j + 8]
        else:
            del buf[i : i + rng.randint(1, 64)]
    return bytes(buf)


def crashes(target: str, data: bytes, scratch: Path) -> bool:
    """Whether the target dies on ``data`` (a signal: abort, segfault), in a fresh process."""
    scratch.write_bytes(data)
    result = subprocess.run(
        [sys.executable, __file__, target, "--replay", str(scratch)], capture_output=True, timeout=120
    )
    return result.returncode < 0 or result.returncode > 1


def minimize(target: str, data: bytes, scratch: Path, smallest_chunk: int = 512) -> bytes:
    """Delta debugging: drop ever smaller chunks (down to ``smallest_chunk`` bytes)
    while the input still crashes."""
    assert crashes(target, data, scratch), "the input does not crash"
    chunk = len(data) // 2
    while chunk >= smallest_chunk:
        start, shrunk = 0, False
        while start < len(data):
            trial = data[:start] + data[start + chunk :]
            if trial and crashes(target, trial, scratch):
                data, shrunk = trial, True
            else:
                start += chunk
        if not shrunk:
            chunk //= 2
    return data


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        print(__doc__, file=sys.stderr)
        return 2
    target, args = sys.argv[1], sys.argv[2:]
    from llamanb import core

    core.log_disable()
    if args[:1] == ["--replay"]:
        for path in args[1:]:
            run_one(target, Path(path).read_bytes())
        print(f"{target}: replayed {len(args) - 1} inputs")
        return 0
    if args[:1] == ["--minimize"]:
        out = Path(args[2])
        small = minimize(target, Path(args[1]).read_bytes(), out.with_suffix(".trial"))
        out.with_suffix(".trial").unlink()
        out.write_bytes(small)
        print(f"{target}: minimized to {len(small)} bytes: {out}")
        return 0
    if args[:1] == ["--mutate"]:
        n, rng = int(args[1]), random.Random(1234)
        pool = seeds.seeds(target)
        for seed in pool:
            run_one(target, seed)
        # Each input is written before it runs: after a crash this file holds it.
        current = REPO / "build" / "fuzz-out" / target / "mutate-current"
        current.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(n):
            data = mutate(rng.choice(pool), rng)
            current.write_bytes(data)
            run_one(target, data)
        print(f"{target}: {len(pool)} seeds and {n} mutations ran")
        return 0
    import atheris

    corpus = REPO / "build" / "fuzz-seeds" / target
    out = REPO / "build" / "fuzz-out" / target
    corpus.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds.seeds(target)):
        (corpus / f"seed-{i}").write_bytes(seed)
    regressions = Path(__file__).resolve().parent / "regressions" / target
    dirs = [str(corpus)] + ([str(regressions)] if regressions.is_dir() else [])
    if any(not a.startswith("-") for a in args):  # inputs given (e.g. -minimize_crash=1 FILE): no corpus
        dirs = []
    atheris.Setup(
        [
            sys.argv[0],
            f"-artifact_prefix={out}/",
            "-timeout=20",
            "-rss_limit_mb=4096",
            "-print_final_stats=1",
            *args,
            *dirs,
        ],
        lambda data: run_one(target, data),
    )
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
