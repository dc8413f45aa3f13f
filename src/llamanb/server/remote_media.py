"""Remote media for ``--allow-remote-media``, fetched by the front, never by llama-server.

llama-server's own download (``handle_media`` in server-common.cpp) fetched any URL: a
loopback or private address, a redirect to one, a server that drips one byte every few
seconds; and its errors told which ports were open (issue 30, finding 12). Its download
stays off (patch 0020, ``core.server.set_remote_media(False)``). When remote media is
allowed, the front fetches each http(s) image, audio or video URL of a request on a worker
thread and hands llama-server a ``data:`` URL instead:

- every address the host name resolves to must be public (not private, loopback,
  link-local, multicast, reserved or unspecified), checked after DNS resolution and again
  for every redirect; the connection goes to the address that was checked (no second
  lookup, so no DNS rebinding);
- connect and read timeouts, and a total deadline per URL that a slow drip cannot stretch;
- a size cap per URL (llama-server's, 10 MiB);
- one error message whatever went wrong, so that answers do not map a network.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

MAX_MEDIA_BYTES = 10 << 20  # per URL, as llama-server's download
DEADLINE_S = 10.0  # per URL, redirects included (llama-server's timeout)
IO_TIMEOUT_S = 5.0  # connect, and each read
MAX_REDIRECTS = 5
MAX_URLS = 64  # per request
FETCH_ERROR = (
    "a remote media URL could not be fetched (it must be an http(s) URL of a public address "
    f"that answers 200 with at most {MAX_MEDIA_BYTES} bytes within {DEADLINE_S:g} s)"
)


class MediaFetchError(Exception):
    """Any failure to fetch a media URL; its message is the same whatever the cause."""

    def __init__(self) -> None:
        super().__init__(FETCH_ERROR)


def address_allowed(address: str, allow_private: bool = False) -> bool:
    """Whether a resolved address may be fetched from: a public unicast address, unless
    ``allow_private`` (then anything but multicast, unspecified and reserved)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return False
    return allow_private or (ip.is_global and not ip.is_private and not ip.is_loopback and not ip.is_link_local)


def media_urls(body: Any) -> Iterator[tuple[str, str, Callable[[str], None]]]:
    """The http(s) media URLs of a chat, Anthropic or Responses request body, each with a
    function that replaces it: where llama-server's parsers read them (content parts
    ``image_url.url``, ``input_audio.data``/``url``, ``input_video``/``video_url``,
    Responses ``input_image.image_url``, Anthropic ``image.source.url``), in messages,
    Responses input items and Anthropic tool results alike. Each comes as (url, kind:
    "image", "audio" or "video", replace)."""
    stack: list[Any] = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "image_url" and isinstance(node.get("image_url"), dict):
            yield from _slot(node["image_url"], "url", "image")
        elif kind == "input_image":
            yield from _slot(node, "image_url", "image")
        elif kind in ("input_audio", "input_video", "video_url") and isinstance(node.get(kind), dict):
            media = "audio" if kind == "input_audio" else "video"
            yield from _slot(node[kind], "data" if isinstance(node[kind].get("data"), str) else "url", media)
        elif kind == "image" and isinstance(node.get("source"), dict) and node["source"].get("type") == "url":
            yield from _slot(node["source"], "url", "image")
        for key, value in node.items():
            if (
                key not in ("tools", "functions", "response_format", "json_schema", "input_schema", "parameters")
                and kind not in ("tool_use", "function_call")
                and isinstance(value, (list, dict))
            ):
                stack.append(value)


def _slot(holder: dict[str, Any], key: str, kind: str) -> Iterator[tuple[str, str, Callable[[str], None]]]:
    value = holder.get(key)
    if isinstance(value, str) and value.startswith("http"):  # what llama-server takes for a download
        yield value, kind, lambda new: holder.__setitem__(key, new)


def fetch_as_data_url(
    url: str,
    kind: str = "image",
    *,
    allow_private: bool = False,
    max_bytes: int = MAX_MEDIA_BYTES,
    deadline_s: float = DEADLINE_S,
    io_timeout_s: float = IO_TIMEOUT_S,
    allowed: Callable[[str], bool] | None = None,
) -> str:
    """``url`` fetched under the rules above, as a base64 ``data:`` URL; MediaFetchError
    whatever fails. ``allowed(address)`` replaces :func:`address_allowed` (tests)."""
    deadline = time.monotonic() + deadline_s
    check = allowed or (lambda address: address_allowed(address, allow_private))
    try:
        for _ in range(MAX_REDIRECTS + 1):
            status, location, content_type, data = _get_once(url, check, max_bytes, deadline, io_timeout_s)
            if status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                continue
            if status != 200:
                raise MediaFetchError()
            mime = content_type.split(";")[0].strip().lower()
            if not mime.startswith(("image/", "audio/", "video/")):
                mime = {"image": "image/png", "audio": "audio/wav", "video": "video/mp4"}.get(kind, "image/png")
            return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    except MediaFetchError:
        raise
    except (OSError, ValueError, http.client.HTTPException, UnicodeError) as err:
        raise MediaFetchError() from err
    raise MediaFetchError()  # too many redirects


def _get_once(
    url: str, check: Callable[[str], bool], max_bytes: int, deadline: float, io_timeout_s: float
) -> tuple[int, str, str, bytes]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise MediaFetchError()
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos or not all(check(str(info[4][0])) for info in infos):
        raise MediaFetchError()
    left = deadline - time.monotonic()
    if left <= 0:
        raise MediaFetchError()
    family, _, _, _, address = infos[0]
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = _PinnedHTTPS(host, port, family, address, timeout=min(io_timeout_s, left))
    else:
        conn = _PinnedHTTP(host, port, family, address, timeout=min(io_timeout_s, left))
    # the total deadline: a server that drips a byte per read timeout is cut off by it
    watchdog = threading.Timer(left, _shut, (conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers={"Accept": "image/*, audio/*, video/*", "User-Agent": "llamanb"})
        response = conn.getresponse()
        if response.status != 200:
            return response.status, response.getheader("Location", "") or "", "", b""
        declared = response.getheader("Content-Length", "") or ""
        if declared.isdigit() and int(declared) > max_bytes:
            raise MediaFetchError()
        chunks: list[bytes] = []
        size = 0
        while chunk := response.read1(65536):
            size += len(chunk)
            if size > max_bytes or time.monotonic() > deadline:
                raise MediaFetchError()
            chunks.append(chunk)
        if time.monotonic() > deadline:
            raise MediaFetchError()
        return 200, "", response.getheader("Content-Type", "") or "", b"".join(chunks)
    finally:
        watchdog.cancel()
        conn.close()


def _shut(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the address that was checked, not to a second lookup of the name."""

    def __init__(self, host: str, port: int, family: int, address: Any, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._family = family
        self._address = address

    def connect(self) -> None:
        self.sock = _connected(self._family, self._address, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, family: int, address: Any, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._family = family
        self._address = address

    def connect(self) -> None:
        sock = _connected(self._family, self._address, self.timeout)
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
        except OSError:
            sock.close()
            raise


def _connected(family: int, address: Any, timeout: float | None) -> socket.socket:
    """A socket connected to ``address`` (the one that was checked)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock
