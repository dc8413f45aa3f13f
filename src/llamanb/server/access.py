"""Who may use the server, and from where: the front's access policy (docs/server.md,
"Where llamanb's front differs from llama-server").

- API keys: llama-server's rule (every route but /health needs one when set; the UI's
  own files are open too);
- the ``Host`` check on a loopback bind (DNS rebinding);
- CORS: llama-server's, except that a server without an API key answers cross-origin
  calls from localhost pages only unless ``--cors-origins`` says otherwise;
- JSON bodies only: a ``text/plain`` or form POST, which a web page may send without a
  CORS preflight, is a 415; but the audio upload routes take a multipart form
  (multipart_form.py) from clients that are not web pages, or from pages CORS allows;
- the prompt cache scope per API key (``CACHE_SCOPE_HEADER``, patch 0040).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from .. import core
from .asgi_io import error_body
from .front_options import FrontOptions
from .multipart_form import FORM_PATHS
from .ui import Assets

PUBLIC_PATHS = frozenset({"/health", "/v1/health"})  # llama-server's: open without the API key
JSON_TYPES = ("application/json", "application/vnd.api+json")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# read by llama-server's handlers (patch 0040): whose cached prompts a request may reuse;
# always set here, whatever a client sends
CACHE_SCOPE_HEADER = "x-llamanb-cache-scope"


@dataclass(frozen=True)
class AccessPolicy:
    """The access rules of one server, read once from its arguments and the front's options."""

    api_keys: tuple[str, ...]
    loopback_bind: bool  # every address the server binds is loopback: the Host check applies
    cors_origins: str  # "*", "localhost" or a list of origins, as llama-server's --cors-origins
    cors_credentials: bool
    cors_methods: str
    cors_headers: str
    cache_share_across_keys: bool
    ui: Assets  # its files are open without a key (llama-server lets its UI through)

    @classmethod
    def of(cls, server: core.server.Server, options: FrontOptions, ui: Assets) -> AccessPolicy:
        api_keys = tuple(server.api_keys)
        origins = server.cors_origins
        if not api_keys and not server.cors_origins_explicit:
            origins = "localhost"  # a keyless server: web pages elsewhere cannot drive it
        return cls(
            api_keys=api_keys,
            loopback_bind=all(_is_loopback(h) for h in server.hostnames),
            cors_origins=origins,
            cors_credentials=server.cors_credentials,
            cors_methods=server.cors_methods,
            cors_headers=server.cors_headers,
            cache_share_across_keys=options.cache_share_across_keys,
            ui=ui,
        )

    def refusal(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes] | None:
        """The status and body of a request turned away before its body is read, or None."""
        if self.loopback_bind and not _loopback_host(headers.get("host", "")):
            return 403, error_body(
                403, "the Host header does not name this server (a loopback address)", "permission_error"
            )
        if (
            self.api_keys
            and path not in PUBLIC_PATHS
            and not self._key_ok(headers)
            and not (method in ("GET", "HEAD") and self.ui.is_public(path))
        ):
            return 401, error_body(401, "Invalid API Key", "authentication_error")
        if method == "POST":
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type and content_type not in JSON_TYPES and not self._form_ok(path, content_type, headers):
                return 415, error_body(
                    415,
                    f"the request body must be JSON (Content-Type: application/json), got {content_type}",
                    "invalid_request_error",
                )
        return None

    def _form_ok(self, path: str, content_type: str, headers: dict[str, str]) -> bool:
        """A multipart form (OpenAI's audio uploads) is taken on the routes that read one,
        from a client that is not a web page (no Origin) or from a page CORS lets read the
        reply: a page may send a form without a preflight, and so drive a keyless server."""
        if content_type != "multipart/form-data" or path not in FORM_PATHS:
            return False
        origin = headers.get("origin", "")
        return not origin or self.allowed_origin(headers) in ("*", origin)

    def cache_scope(self, headers: dict[str, str]) -> str:
        """Whose cached prompts this request may reuse: one scope per API key (a digest
        of it), one for all on a keyless server or with ``cache_share_across_keys``."""
        if not self.api_keys or self.cache_share_across_keys:
            return ""
        key = _request_key(headers)
        if not any(_same(key, k) for k in self.api_keys):
            return "public"  # a public path (/health): it caches nothing
        return "key:" + hashlib.sha256(key.encode()).hexdigest()

    def allowed_origin(self, headers: dict[str, str]) -> str:
        """The ``Access-Control-Allow-Origin`` of a reply to this request ("": none)."""
        origin = headers.get("origin", "")
        if self.cors_credentials and self.cors_origins == "*":
            return origin
        if self.cors_origins == "localhost":
            return origin if origin and _origin_is_localhost(origin) else ""
        return self.cors_origins

    def cors(self, headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
        """The CORS headers of every reply to this request."""
        value = self.allowed_origin(headers)
        return [(b"Access-Control-Allow-Origin", value.encode())] if value else []

    def preflight(self, cors: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The headers of an OPTIONS reply (llama-server answers every preflight, key or not)."""
        return [
            *cors,
            (b"Access-Control-Allow-Credentials", b"true" if self.cors_credentials else b"false"),
            (b"Access-Control-Allow-Methods", self.cors_methods.encode()),
            (b"Access-Control-Allow-Headers", self.cors_headers.encode()),
        ]

    def _key_ok(self, headers: dict[str, str]) -> bool:
        key = _request_key(headers)
        return any(_same(key, k) for k in self.api_keys)


def _request_key(headers: dict[str, str]) -> str:
    key = headers.get("authorization", "") or headers.get("x-api-key", "")
    return key.removeprefix("Bearer ")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())  # constant time: a key is not guessed byte by byte


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _loopback_host(host_header: str) -> bool:
    """Whether a Host header names a loopback address (with or without a port)."""
    if not host_header:
        return True  # HTTP/1.0 clients send none; a browser always does
    host = urlsplit("//" + host_header).hostname or ""
    return _is_loopback(host)


def _origin_is_localhost(origin: str) -> bool:
    return _is_loopback(urlsplit(origin).hostname or "")
