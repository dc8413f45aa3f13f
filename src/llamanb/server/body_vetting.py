"""What the front checks in a request body before llama-server reads it (run on worker
threads, never on the event loop): the bound on stop strings (stop_limits.py), remote
media fetched and inlined (remote_media.py), and Anthropic's ``thread``, which this
server cannot keep."""

from __future__ import annotations

import json

from .front_options import FrontOptions
from .remote_media import MAX_URLS, MediaFetchError, fetch_as_data_url, media_urls
from .stop_limits import STOP_ROUTES, stop_refusal

ANTHROPIC_PATHS = frozenset({"/v1/messages", "/v1/messages/count_tokens"})
# the routes whose bodies llama-server reads media URLs from (chat, Anthropic, Responses)
MEDIA_ROUTES = frozenset(
    {
        "/chat/completions",
        "/v1/chat/completions",
        "/responses",
        "/v1/responses",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/apply-template",
        "/chat/completions/input_tokens",
        "/v1/chat/completions/input_tokens",
        "/responses/input_tokens",
        "/v1/responses/input_tokens",
    }
)


def needs_vetting(path: str, options: FrontOptions) -> bool:
    """Whether a POST to ``path`` goes through ``vet_body``."""
    return path in STOP_ROUTES or (options.allow_remote_media and path in MEDIA_ROUTES)


def vet_body(path: str, body: bytes, options: FrontOptions) -> bytes | tuple[int, str]:
    """The body to hand llama-server (its remote media fetched and inlined), or the
    status and message of a refusal. Only a body that may hold stop strings or, with
    remote media allowed, media URLs is parsed (a byte search first: most bodies are not
    parsed twice). One that is not a JSON object goes on unchanged: llama-server's parser
    answers it."""
    if path in STOP_ROUTES:
        refusal = stop_refusal(body, options.max_stop_strings, options.max_stop_bytes)
        if refusal is not None:
            return 400, refusal
    if not (options.allow_remote_media and path in MEDIA_ROUTES and b"http" in body):
        return body
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return body
    if not isinstance(data, dict):
        return body
    found = list(media_urls(data))
    if not found:
        return body
    if len(found) > MAX_URLS:
        return 400, f"at most {MAX_URLS} remote media URLs per request"
    budget = options.max_request_bytes
    for url, kind, replace in found:
        try:
            data_url = fetch_as_data_url(url, kind, allow_private=options.remote_media_allow_private)
        except MediaFetchError as err:
            return 400, str(err)
        budget -= len(data_url)
        if budget < 0:
            return 413, f"the request with its remote media inlined is larger than {options.max_request_bytes} bytes"
        replace(data_url)
    return json.dumps(data).encode()


def thread_refusal(body: bytes) -> bytes | None:
    """Anthropic's error for a ``thread`` this server cannot keep (it stores no conversations):
    the ``anthropic`` library's thread helpers then send the whole conversation unthreaded."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        return None  # llama-server answers malformed (or too deeply nested) JSON itself
    if not isinstance(request, dict) or "thread" not in request:
        return None
    return json.dumps(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "message threads are not supported by this server: send the whole conversation without `thread`",
                "details": {"error_code": "thread_unsupported_request", "unsupported": []},
            },
        }
    ).encode()
