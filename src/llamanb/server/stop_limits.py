"""The front's bound on stop strings (hardening round 3, finding 7): llama-server checks
every stop string against the text of every token, so millions of them slowed every
client's decoding. At most ``max_strings`` of ``max_bytes`` in all; beyond, a 400.
"""

from __future__ import annotations

import json
import re

# llama-server's generating routes: where `stop` (Anthropic: `stop_sequences`) is read
STOP_ROUTES = frozenset(
    {
        "/completion",
        "/completions",
        "/v1/completions",
        "/chat/completions",
        "/v1/chat/completions",
        "/responses",
        "/v1/responses",
        "/v1/messages",
        "/infill",
        "/v1/audio/transcriptions",  # its form's fields go on into a chat completion
        "/audio/transcriptions",
    }
)
# a `stop` or `stop_sequences` key, its letters plain or \u-escaped (JSON allows either in a key)
_STOP_KEY = re.compile(
    (
        '"('
        + "".join(f"(?:{c}|\\\\u00(?i:{ord(c):02x}))" for c in "stop")
        + "(?:"
        + "".join(f"(?:{c}|\\\\u00(?i:{ord(c):02x}))" for c in "_sequences")
        + ')?)"'
    ).encode()
)
_JSON_COLON = re.compile(rb"[ \t\r\n]*:[ \t\r\n]*")
_SCAN_WINDOW = 1 << 18  # bytes a regex call scans (it holds the GIL; the loop waits meanwhile)
_DECODER = json.JSONDecoder()


def stop_refusal(body: bytes, max_strings: int, max_bytes: int) -> str | None:
    """Why the stop strings of a body are refused, or None. Without parsing the whole
    body: json.loads holds the GIL for all its work (0.6 s for 14 MB of small messages
    here), and the event loop would wait that long. The keys are found by a regex, run
    a window at a time, and only their values are decoded, each within the most text
    that a value inside the bounds takes. A `stop` key nested deeper than the top level
    is checked too (over-cautious: llama-server reads the top level only)."""
    if b"stop" not in body and b"\\u00" not in body:
        return None
    keys: dict[int, tuple[bytes, int]] = {}  # on the bytes: decoding 30 MB would hold the GIL too
    for start in range(0, len(body), _SCAN_WINDOW):
        for match in _STOP_KEY.finditer(body, start, min(len(body), start + _SCAN_WINDOW + 256)):
            colon = _JSON_COLON.match(body, match.end())
            if colon is not None:
                keys[match.start()] = (match.group(1), colon.end())
    longest = 6 * max_bytes + 8 * max_strings + 64  # escapes, quotes, commas
    for key, at in keys.values():
        name = json.loads(b'"' + key + b'"')
        try:
            value = _DECODER.raw_decode(body[at : at + longest].decode("utf-8", "replace"))[0]
        except RecursionError:  # arrays nested thousands deep: not a list of strings
            return f"'{name}' must be a string or a list of strings"
        except ValueError:  # not JSON there, or longer than any value inside the bounds
            if body[at : at + 1] in (b'"', b"["):
                return f"'{name}' is too long: at most {max_strings} strings of {max_bytes} bytes in all are allowed"
            continue
        refusal = _stop_value_refusal(name, value, max_strings, max_bytes)
        if refusal is not None:
            return refusal
    return None


def _stop_value_refusal(key: str, stop: object, max_strings: int, max_bytes: int) -> str | None:
    if isinstance(stop, str):
        words: list[object] = [stop]
    elif isinstance(stop, list):
        words = stop
    else:
        return None
    limit, byte_limit = max_strings, max_bytes
    if len(words) > limit:
        return f"'{key}' has {len(words)} strings; at most {limit} are allowed"
    size = sum(len(w.encode("utf-8", "surrogatepass")) if isinstance(w, str) else len(json.dumps(w)) for w in words)
    if size > byte_limit:
        return f"'{key}' strings total {size} bytes; at most {byte_limit} are allowed"
    return None
