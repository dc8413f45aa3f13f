"""Hardening round 3, finding 9: small bodies must not make the server's memory explode.

Measured on the server process's peak resident size (VmHWM in /proc/PID/status):

- ``/tokenize`` with ``with_pieces`` built a JSON object per token (3.1 GB for 12 MB);
- compressed images that declare huge sizes were decoded whatever their size, and
  nothing bounded a request's total (16 PNGs of 8192x8192, 1.1 MB: +3.3 GB);
- audio is resampled to the projector's rate whatever its length (a 400 KB WAV at 20 Hz,
  10,000 s: 160 M samples at 16 kHz, +1.5 GB).

Patch 0042 writes the pieces as text, refuses an image above 8192x8192 pixels before
decoding it, and a request whose images add up to more (a 400, counted from the files'
headers before decoding). Patch 0046 does the same for audio: at most 600 s a clip and a
request, read from the header before a sample is decoded or resampled (libmtmd's helper,
which the core's MtmdContext.bitmap_from_bytes shares: a ValueError there)."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llamanb import core

from .support.mmproj_file import noise_png, tone_wav, write_audio_mmproj, write_mmproj
from .support.server_process import start_server, stop_server

MB = 1 << 20
http = httpx.Client(timeout=300.0)


def peak_rss(pid: int) -> int:
    """The process's peak resident set size, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def flat_png(width: int, height: int) -> bytes:
    """A black RGB PNG: a few hundred KB that decode to width * height * 3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def server(model: core.Model, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    # the module's own: its tests read the process's peak memory, which other files'
    # requests would raise
    mmproj = write_mmproj(tmp_path_factory.mktemp("mmproj") / "mmproj.gguf", model.n_embd)
    proc, url = start_server(["-m", str(model_path), "--mmproj", str(mmproj), "-c", "2048", "-np", "1", "-t", "2"])
    try:
        yield url, proc.pid
    finally:
        stop_server(proc)


def chat_with_images(url: str, images: list[bytes]) -> httpx.Response:
    parts = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(i).decode()}}
        for i in images
    ]
    return http.post(
        url + "/v1/chat/completions",
        json={
            "model": "m",
            "max_tokens": 1,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, *parts]}],
        },
    )


def test_tokenize_with_pieces_stays_small(server: tuple[str, int]) -> None:
    url, pid = server
    text = "The quick brown fox jumps over the lazy dog. " * 140_000  # 6.3 MB, 1.4 M tokens
    plain = http.post(url + "/tokenize", json={"content": text})
    assert plain.status_code == 200
    before = peak_rss(pid)
    r = http.post(url + "/tokenize", json={"content": text, "with_pieces": True})
    grown = peak_rss(pid) - before
    assert r.status_code == 200
    tokens = r.json()["tokens"]
    assert [t["id"] for t in tokens] == plain.json()["tokens"]
    assert (
        "".join(t["piece"] for t in tokens[:10])
        == "The quick brown fox jumps over the lazy dog."[: len("".join(t["piece"] for t in tokens[:10]))]
    )
    assert grown < 100 * MB, f"+{grown // MB} MB"  # over plain /tokenize: +206 MB before patch 0042, +37 MB after


def test_an_image_too_large_is_refused_before_decoding(server: tuple[str, int]) -> None:
    url, pid = server
    huge = flat_png(16384, 8192)  # 134 Mpx: 400 MB decoded
    before = peak_rss(pid)
    r = chat_with_images(url, [huge])
    grown = peak_rss(pid) - before
    assert r.status_code == 400 and "pixels" in r.json()["error"]["message"], r.text
    assert grown < 150 * MB, f"+{grown // MB} MB"


def test_a_requests_images_are_bounded_in_all(server: tuple[str, int]) -> None:
    url, pid = server
    big = flat_png(8192, 8192)  # 192 MiB decoded, the most one image may have
    before = peak_rss(pid)
    r = chat_with_images(url, [big] * 8)
    grown = peak_rss(pid) - before
    assert r.status_code == 400 and "pixels" in r.json()["error"]["message"], r.text
    assert grown < 600 * MB, f"+{grown // MB} MB"  # 16 such images took +2,994 MB and 117 s
    # the server goes on: a small image still works
    assert chat_with_images(url, [noise_png()]).status_code == 200


# --- audio (patch 0046) ----------------------------------------------------------------------

MAX_AUDIO_S = 600  # MTMD_HELPER_MAX_AUDIO_SECONDS
LONG_WAV = tone_wav(seconds=10_000, hz=1.0, rate=20)  # 400 KB: 160 M samples at 16 kHz


@pytest.fixture(scope="module")
def audio_mmproj(model: core.Model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_audio_mmproj(tmp_path_factory.mktemp("mmproj-audio") / "mmproj-audio.gguf", model.n_embd)


@pytest.fixture(scope="module")
def audio_server(model_path: Path, audio_mmproj: Path) -> Iterator[tuple[str, int]]:
    proc, url = start_server(
        ["-m", str(model_path), "--mmproj", str(audio_mmproj), "-c", "2048", "-np", "1", "-t", "2"]
    )
    try:
        yield url, proc.pid
    finally:
        stop_server(proc)


def chat_with_audio(url: str, clips: list[bytes]) -> httpx.Response:
    parts = [
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(c).decode(), "format": "wav"}} for c in clips
    ]
    return http.post(
        url + "/v1/chat/completions",
        json={
            "model": "m",
            "max_tokens": 1,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, *parts]}],
        },
    )


def test_audio_too_long_is_refused_before_resampling(audio_server: tuple[str, int]) -> None:
    url, pid = audio_server
    assert chat_with_audio(url, [tone_wav(seconds=1.0)]).status_code == 200  # warm: the encoder's buffers
    before = peak_rss(pid)
    r = chat_with_audio(url, [LONG_WAV])
    grown = peak_rss(pid) - before
    assert r.status_code == 400 and "seconds" in r.json()["error"]["message"], r.text
    assert grown < 50 * MB, f"+{grown // MB} MB"


def test_a_requests_audio_is_bounded_in_all(audio_server: tuple[str, int]) -> None:
    """Two clips of 2/3 of the bound each: each may be decoded, not both in one request
    (counted from their headers before either is decoded)."""
    url, _ = audio_server
    clip = tone_wav(seconds=MAX_AUDIO_S * 2 // 3, hz=1.0, rate=20)
    r = chat_with_audio(url, [clip, clip])
    assert r.status_code == 400 and f"longer than {MAX_AUDIO_S} seconds in all" in r.json()["error"]["message"], r.text
    assert chat_with_audio(url, [tone_wav(seconds=1.0)]).status_code == 200  # the server goes on


def test_the_core_decodes_no_audio_longer_than_the_bound(audio_mmproj: Path, model: core.Model) -> None:
    """The same helper behind the core's MtmdContext.bitmap_from_bytes: a ValueError, and
    a clip within the bound still decodes (resampled to the projector's 16 kHz)."""
    with core.mtmd.MtmdContext(audio_mmproj, model) as mtmd:
        with pytest.raises(ValueError, match="seconds"):
            mtmd.bitmap_from_bytes(LONG_WAV)
        assert mtmd.bitmap_from_bytes(tone_wav(seconds=2.0, rate=8000)).nx == 32000
