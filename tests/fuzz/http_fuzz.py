"""Property-based HTTP fuzzing of ``llamanb serve`` (llama-server's engine behind llamanb's
front), on loopback.

    python tests/fuzz/http_fuzz.py [--requests 2000] [--model PATH]

hypothesis generates request bodies (every field the API knows, with values of every
JSON type, plus raw bytes); each goes to a route at random. Every response must be
well-formed JSON in OpenAI's shape (or an SSE stream for a 200 with stream=true), never
a 5xx, and /health must stay OK. Prints the counts by status. (/v1/embeddings is not
fuzzed: a server started without --embeddings answers it with llama-server's 501.)
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llamanb

# run as a script: the shared in-process server lives in tests/support
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from in_process_server import load, running_server  # noqa: E402

ROUTES = ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
parts = st.lists(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "nope"]), "text": st.text(max_size=30)}),
    max_size=3,
)
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "user", "assistant", "tool", "robot"]),
            "content": st.one_of(st.text(max_size=60), parts, st.none(), json_values),
        }
    ),
    max_size=4,
)
# Small or odd max_tokens: a valid request then finishes quickly.
max_tokens = st.one_of(st.integers(-3, 4), st.none(), st.text(max_size=3), st.floats())
MODEL = "m"  # llama-server serves any model name
body = st.fixed_dictionaries(
    {"model": st.one_of(st.just(MODEL), st.just(MODEL), st.just(MODEL), json_values)},
    optional={
        "messages": st.one_of(messages, messages, json_values),
        "prompt": st.one_of(st.text(max_size=60), st.lists(st.integers(-5, 60000), max_size=8), json_values),
        "input": st.one_of(st.text(max_size=60), st.lists(st.text(max_size=20), max_size=3), json_values),
        "max_tokens": max_tokens,
        "stream": st.one_of(st.booleans(), json_values),
        "temperature": json_values,
        "top_p": json_values,
        "top_k": json_values,
        "seed": json_values,
        "stop": st.one_of(st.text(max_size=5), st.lists(st.text(max_size=5), max_size=5), json_values),
        "logprobs": json_values,
        "top_logprobs": json_values,
        "logit_bias": json_values,
        "response_format": st.one_of(st.just({"type": "json_object"}), json_values),
        "grammar": st.one_of(st.text(max_size=40), json_values),
        "tools": json_values,
        "n": json_values,
        "presence_penalty": json_values,
        "frequency_penalty": json_values,
        "echo": json_values,
        "encoding_format": st.one_of(st.sampled_from(["float", "base64"]), json_values),
        "instructions": json_values,
        "text": json_values,
        "tool_choice": json_values,
        "max_output_tokens": max_tokens,
        "system": json_values,
        "stop_sequences": json_values,
        "output_config": json_values,
        "thinking": json_values,
    },
)
# A valid request of each route with one field set to a fuzzed value: reaches past validation.
VALID = {
    "/v1/chat/completions": {"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "Hi"}]},
    "/v1/completions": {"model": MODEL, "max_tokens": 3, "prompt": "Once upon a time"},
    "/v1/responses": {"model": MODEL, "max_output_tokens": 3, "input": "Hi"},
    "/v1/messages": {"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "Hi"}]},
}


@st.composite
def one_field_off(draw: st.DrawFn) -> tuple[str, bytes]:
    route = draw(st.sampled_from(ROUTES))
    request = dict(VALID[route])
    field = draw(
        st.sampled_from(
            [
                "stop",
                "temperature",
                "top_p",
                "top_k",
                "seed",
                "logprobs",
                "top_logprobs",
                "logit_bias",
                "response_format",
                "grammar",
                "stream",
                "echo",
                "n",
                "presence_penalty",
                "frequency_penalty",
                "encoding_format",
                "messages",
                "prompt",
                "input",
                "max_tokens",
                "instructions",
                "text",
                "tool_choice",
                "max_output_tokens",
                "system",
                "stop_sequences",
                "output_config",
            ]
        )
    )
    request[field] = draw(max_tokens if field.startswith("max_") else st.one_of(json_values, messages, parts))
    return route, json.dumps(request).encode()


requests = st.one_of(
    one_field_off(),
    st.tuples(st.sampled_from(ROUTES), st.one_of(body.map(lambda b: json.dumps(b).encode()), st.binary(max_size=200))),
)


def check_reply(route: str, reply: httpx.Response, streamed: bool) -> None:
    assert reply.status_code < 500, (route, reply.status_code, reply.text[:500])
    if reply.status_code == 200 and streamed and route in ("/v1/responses", "/v1/messages"):
        # Responses and Messages streams: "event:" and "data:" lines, no [DONE]; the last
        # event ends it.
        events = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: ")]
        ends = ("response.completed", "response.incomplete", "message_stop", "error")
        assert events and events[-1]["type"] in ends, events[-1:]
        return
    if reply.status_code == 200 and streamed:
        lines = [line for line in reply.text.splitlines() if line]
        assert lines and lines[-1] == "data: [DONE]", reply.text[-300:]
        for line in lines[:-1]:
            assert line.startswith("data: "), line
            json.loads(line[6:])
        return
    data = reply.json()
    assert isinstance(data, dict)
    if reply.status_code >= 400:
        assert isinstance(data["error"]["message"], str) and data["error"]["type"], data


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--model", type=Path, default=None)
    a = p.parse_args()
    statuses: collections.Counter[int] = collections.Counter()
    model = str(a.model or llamanb.default_model())
    args = ["-m", model, "-np", "4", "-c", "1024", "-t", "2", "--jinja"]
    with running_server(args) as (url, app), httpx.Client(base_url=url, timeout=120) as client:

        @settings(
            max_examples=a.requests,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(requests)
        def one(request: tuple[str, bytes]) -> None:
            route, raw = request
            try:
                streamed = json.loads(raw).get("stream") is True
            except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
                streamed = False
            reply = client.post(route, content=raw, headers={"content-type": "application/json"})
            statuses[reply.status_code] += 1
            check_reply(route, reply, streamed)

        one()
        health = client.get("/health")
        assert health.status_code == 200, health.text
        stats = load(url, app)
    total = sum(statuses.values())
    print(
        f"http fuzz: {total} requests, by status {dict(sorted(statuses.items()))}; no 5xx; /health OK; "
        f"engine after: busy {stats.busy}, waiting {stats.waiting}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
