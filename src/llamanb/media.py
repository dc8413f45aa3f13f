"""Images and audio in chat, through llama.cpp's libmtmd: a projector (mmproj GGUF)
next to the text model, OpenAI content parts (``image_url``, ``input_audio``) loaded
into bitmaps, and prompts made of text and media chunks.

The chat template places the media: each media part becomes a ``media_marker`` part
(as llama-server does), the engine renders it where the template puts the message's
content, and the rendered prompt is split at the markers. The marker is random per
projector, so message text cannot spell one.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import core

MEDIA_TYPES = frozenset({"image_url", "input_audio"})
"""The OpenAI content-part types that carry media."""

DEFAULT_MAX_MEDIA_BYTES = 20 << 20
DEFAULT_MAX_PIXELS = 1 << 26  # 67 million (8192 x 8192): 192 MiB of RGB


@dataclass(frozen=True)
class ProjectorParams:
    """How a projector is loaded (libmtmd's ``mtmd_context_params``).

    ``n_threads`` defaults to the ``Llama``'s; ``image_min_tokens`` /
    ``image_max_tokens`` bound the tokens per image of dynamic-resolution models
    (None: the file's); ``warmup`` runs one encode at load so the first image is not slow.
    """

    use_gpu: bool = True
    n_threads: int | None = None
    image_min_tokens: int | None = None
    image_max_tokens: int | None = None
    warmup: bool = True

    def __post_init__(self) -> None:
        if self.n_threads is not None and self.n_threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {self.n_threads}")
        for name in ("image_min_tokens", "image_max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None: the file's), got {value}")


@dataclass(frozen=True)
class MediaPolicy:
    """Where media may come from. A library call may read local files (``file://``
    URLs and plain paths); a server must not (it refuses them). Remote ``http(s)``
    URLs are refused unless ``allow_remote``: fetching arbitrary URLs on request is a
    server-side request forgery risk. ``max_bytes`` bounds each media item's encoded
    size, ``max_pixels`` an image's (read from its header, before decoding: a small
    file may declare a huge image)."""

    allow_files: bool = True
    allow_remote: bool = False
    max_bytes: int = DEFAULT_MAX_MEDIA_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    remote_timeout: float = 10.0


class MediaError(ValueError):
    """A media part that cannot be used: bad URL or data, refused source, undecodable."""


class Projector:
    """A ``Llama``'s projector: libmtmd's context for its model and the loading of
    content parts into bitmaps."""

    def __init__(
        self, path: str | os.PathLike[str], model: core.Model, params: ProjectorParams, n_threads: int
    ) -> None:
        cparams = core.mtmd.MtmdContextParams()
        cparams.use_gpu = params.use_gpu
        cparams.n_threads = params.n_threads or n_threads
        cparams.print_timings = False
        cparams.warmup = params.warmup
        if params.image_min_tokens is not None:
            cparams.image_min_tokens = params.image_min_tokens
        if params.image_max_tokens is not None:
            cparams.image_max_tokens = params.image_max_tokens
        # Random, so that no message text can spell it (llama-server does the same).
        self.marker = f"<__media_{secrets.token_hex(8)}__>"
        cparams.media_marker = self.marker
        self.context = core.mtmd.MtmdContext(path, model, cparams)

    def close(self) -> None:
        self.context.close()

    @property
    def supports_vision(self) -> bool:
        return self.context.supports_vision

    @property
    def supports_audio(self) -> bool:
        return self.context.supports_audio

    def load(self, part: Mapping[str, Any], policy: MediaPolicy) -> core.mtmd.Bitmap:
        """The bitmap of an ``image_url`` or ``input_audio`` content part."""
        kind = part.get("type")
        if kind == "image_url":
            if not self.supports_vision:
                raise MediaError("this projector does not take images")
            spec = part.get("image_url")
            url = spec.get("url") if isinstance(spec, Mapping) else spec
            if not isinstance(url, str) or not url:
                raise MediaError("an image_url part needs {'image_url': {'url': ...}}")
        elif kind == "input_audio":
            if not self.supports_audio:
                raise MediaError("this projector does not take audio")
            spec = part.get("input_audio")
            url = spec.get("data", spec.get("url")) if isinstance(spec, Mapping) else None
            if not isinstance(url, str) or not url:
                raise MediaError("an input_audio part needs {'input_audio': {'data': <base64>, 'format': ...}}")
        else:
            raise MediaError(f"not a media part: {kind!r}")
        try:
            return self.context.bitmap_from_bytes(media_bytes(url, policy), max_pixels=policy.max_pixels)
        except MediaError:
            raise
        except ValueError as err:
            raise MediaError(f"{kind}: {err}") from None


def media_bytes(url: str, policy: MediaPolicy) -> bytes:
    """The bytes a media URL names: a ``data:`` URL (base64), a ``file://`` URL or a
    path (when files are allowed), an ``http(s)`` URL (when remote media is allowed),
    or bare base64 (as llama-server takes it)."""
    if url.startswith("data:"):
        header, sep, payload = url.partition(",")
        if not sep or not header.endswith(";base64"):
            raise MediaError("a data URL must be data:<type>;base64,<data>")
        return _b64(payload, policy)
    lowered = url[:8].lower()
    if lowered.startswith(("http://", "https://")):
        if not policy.allow_remote:
            raise MediaError(
                "remote media URLs (http, https) are refused; send the data as a data: URL "
                "(a server allows them with --allow-remote-media)"
            )
        return _fetch(url, policy)
    if "://" in url[:16] and not lowered.startswith("file://"):
        raise MediaError(f"unsupported media URL scheme: {url.split('://', 1)[0]!r}")
    if lowered.startswith("file://"):
        return _read_file(url[7:], policy)
    if policy.allow_files and len(url) < 4096 and os.path.isfile(url):
        return _read_file(url, policy)
    try:
        return _b64(url, policy)
    except MediaError:
        if len(url) < 4096 and url.startswith(("/", ".", "~")) and not policy.allow_files:
            raise MediaError("local files are not allowed here; send the data as a data: URL") from None
        if len(url) < 4096 and url.startswith(("/", ".", "~")):
            raise MediaError(f"no such media file: {url!r}") from None
        raise


def _read_file(name: str, policy: MediaPolicy) -> bytes:
    if not policy.allow_files:
        raise MediaError("local files are not allowed here; send the data as a data: URL")
    path = Path(name).expanduser()
    try:
        size = path.stat().st_size
    except OSError as err:
        raise MediaError(f"cannot read media file {str(path)!r}: {err.strerror}") from None
    if size > policy.max_bytes:
        raise MediaError(f"media file of {size} bytes is over the limit of {policy.max_bytes}")
    return path.read_bytes()


def _b64(payload: str, policy: MediaPolicy) -> bytes:
    if len(payload) * 3 // 4 > policy.max_bytes + 3:
        raise MediaError(f"media data is over the limit of {policy.max_bytes} bytes")
    try:
        data = base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("media data is not valid base64") from None
    if not data:
        raise MediaError("media data is empty")
    return data


def _fetch(url: str, policy: MediaPolicy) -> bytes:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=policy.remote_timeout) as response:  # noqa: S310 (http(s) only)
            data: bytes = response.read(policy.max_bytes + 1)
    except OSError as err:
        raise MediaError(f"could not fetch {url!r}: {err}") from None
    if len(data) > policy.max_bytes:
        raise MediaError(f"media at {url!r} is over the limit of {policy.max_bytes} bytes")
    return data


def has_media(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any message holds a media content part."""
    for m in messages:
        content = m.get("content") if isinstance(m, Mapping) else None
        if isinstance(content, list) and any(isinstance(p, Mapping) and p.get("type") in MEDIA_TYPES for p in content):
            return True
    return False


def replace_media(
    messages: Sequence[Mapping[str, Any]], marker: str
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The messages with every media part replaced by a ``media_marker`` part, and the
    media parts in order."""
    parts: list[Mapping[str, Any]] = []
    out: list[Mapping[str, Any]] = []
    for m in messages:
        content = m.get("content") if isinstance(m, Mapping) else None
        if not isinstance(content, list):
            out.append(m)
            continue
        new_content: list[Any] = []
        for p in content:
            if isinstance(p, Mapping) and p.get("type") in MEDIA_TYPES:
                parts.append(p)
                new_content.append({"type": "media_marker", "text": marker})
            else:
                if isinstance(p, Mapping) and isinstance(p.get("text"), str) and marker in p["text"]:
                    raise MediaError("message text spells the media marker")
                new_content.append(p)
        out.append({**m, "content": new_content})
    return out, parts


@dataclass(frozen=True)
class MediaPrompt:
    """A prompt of text and media chunks (``core.mtmd.InputChunks``) for one projector.

    ``text_tokens`` are its text tokens in order (the sampler's history); ``n_pos`` the
    positions it takes."""

    projector: Projector = field(repr=False)
    chunks: core.mtmd.InputChunks = field(repr=False)
    text_tokens: list[int]
    text: str

    @property
    def n_pos(self) -> int:
        return self.chunks.n_pos

    @property
    def n_media(self) -> int:
        return sum(1 for i in range(len(self.chunks)) if self.chunks[i].type != core.mtmd.ChunkType.TEXT)


def build_prompt(
    projector: Projector, pieces: Sequence[tuple[str, bool] | core.mtmd.Bitmap], text: str, bos: int | None
) -> MediaPrompt:
    """Tokenize text pieces ``(text, parse_special)`` and bitmaps into chunks with
    libmtmd (each piece is tokenized on its own, as mtmd_tokenize does between markers);
    ``bos`` is put first when given."""
    parts: list[str | tuple[str, bool] | core.mtmd.Bitmap] = [
        p for p in pieces if not (isinstance(p, tuple) and not p[0])
    ]
    chunks = projector.context.tokenize_parts(parts, add_special=False)
    tokens: list[int] = []
    for i in range(len(chunks)):
        chunk = chunks[i]
        if chunk.type == core.mtmd.ChunkType.TEXT:
            tokens += chunk.tokens.tolist()
    if bos is not None and (not tokens or tokens[0] != bos or chunks[0].type != core.mtmd.ChunkType.TEXT):
        bos_piece = projector.context.model.vocab.token_to_piece(bos, 0, True).decode("utf-8", errors="replace")
        chunks = projector.context.tokenize_parts([(bos_piece, True), *parts], add_special=False)
        tokens = []
        for i in range(len(chunks)):
            if chunks[i].type == core.mtmd.ChunkType.TEXT:
                tokens += chunks[i].tokens.tolist()
        if not tokens or tokens[0] != bos:
            raise ValueError("could not put the BOS token in front of the prompt")
    return MediaPrompt(projector, chunks, tokens, text)
