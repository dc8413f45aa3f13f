"""``llamanb serve``: llama-server's engine in process, behind llamanb's HTTP front.

One server process for the module, started with a llama-server command line as
llama-server's own suite writes them, and talked to through the official openai and
anthropic clients and plain HTTP. The front's own rules (API key, CORS, Host, body
type and size, the bounded queue, remote media) each get a test; llama-server's
behaviour is checked by its own suite (tests/test_llama_server_suite.py)."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from llamanb import core
from llamanb.server.command import llama_server_args

from .support.mmproj_file import noise_png
from .support.server_process import START_LIMIT_S, free_port, start_server, stop_server

API_KEY = "sk-llamanb-test"
http = httpx.Client(timeout=120.0)  # a shared 2-core machine can be slow; the limits tested are the front's


@pytest.fixture(scope="module")
def server(model_path: Path, mmproj_path: Path) -> Iterator[str]:
    # a llama-server command line, as its own suite builds one. The module's own: its tests
    # fill the one-place queue (--max-queue 1) and count the front's requests.
    proc, url = start_server(
        [
            "--model",
            str(model_path),
            "--mmproj",
            str(mmproj_path),
            "--ctx-size",
            "2048",
            "--parallel",
            "2",
            "--threads",
            "2",
            "--temp",
            "0.0",
            "--seed",
            "42",
            "--jinja",
            "--alias",
            "smollm",
            "--host",
            "127.0.0.1",
            "--max-queue",
            "1",
        ]
    )
    try:
        yield url
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def keyed_server(model_path: Path) -> Iterator[str]:
    # the module's own: no other file needs a key or this body limit
    proc, url = start_server(
        ["-m", str(model_path), "-c", "512", "-np", "1", "-t", "1", "--api-key", API_KEY, "--max-request-bytes", "4096"]
    )
    try:
        yield url
    finally:
        stop_server(proc)


def test_openai_client_chat_and_stream(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused")
    reply = client.chat.completions.create(
        model="smollm", max_tokens=8, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens == 8
    assert reply.system_fingerprint  # llama-server's own: the pinned build
    pieces = [
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="any-name", max_tokens=8, stream=True, messages=[{"role": "user", "content": "Say hello"}]
        )
        if c.choices
    ]
    assert "".join(pieces) == reply.choices[0].message.content  # greedy: the same text streamed


def test_anthropic_client_messages(server: str) -> None:
    client = anthropic.Anthropic(base_url=server, api_key="unused")
    message = client.messages.create(model="smollm", max_tokens=8, messages=[{"role": "user", "content": "Say hello"}])
    assert message.content[0].type == "text" and message.content[0].text
    with client.messages.stream(
        model="smollm", max_tokens=8, messages=[{"role": "user", "content": "Say hello"}]
    ) as stream:
        assert "".join(stream.text_stream) == message.content[0].text


def test_llama_server_routes_and_props(server: str) -> None:
    props = http.get(f"{server}/props").json()
    assert props["default_generation_settings"]["n_ctx"] == 1024  # 2048 split over 2 slots
    assert "params" in props["default_generation_settings"]
    completion = http.post(f"{server}/completion", json={"prompt": "Hello", "n_predict": 4}).json()
    assert completion["tokens_predicted"] == 4 and "timings" in completion
    tokens = http.post(f"{server}/tokenize", json={"content": "Hello world"}).json()["tokens"]
    assert http.post(f"{server}/detokenize", json={"tokens": tokens}).json()["content"] == "Hello world"
    assert http.get(f"{server}/nowhere").status_code == 404


def test_health_answers_while_generating(server: str) -> None:
    """/health runs on the front's own threads: a long generation does not delay it."""
    done = threading.Event()
    replies: list[int] = []

    def generate() -> None:
        try:
            r = http.post(f"{server}/completion", json={"prompt": "Once", "n_predict": 64, "ignore_eos": True})
            replies.append(r.status_code)
        finally:
            done.set()  # a failed request ends the probing too (the loop below waits for it)

    worker = threading.Thread(target=generate)
    worker.start()
    time.sleep(0.3)
    worst = 0.0
    probes = 0
    while not done.is_set() or probes == 0:
        t0 = time.monotonic()
        assert http.get(f"{server}/health").status_code == 200
        worst = max(worst, time.monotonic() - t0)
        probes += 1
        time.sleep(0.05)
    worker.join()
    assert replies == [200], replies
    assert worst < 0.1, f"/health took {worst:.3f} s during a generation"


def test_open_streams_are_bounded_and_stall_no_get_route(server: str) -> None:
    """Each open stream has a thread pulling it (src/llamanb/server/stream_feed.py), GET
    replays of a live conversation (/v1/stream) too: while they wait for tokens /health
    answers at once, and beyond the front's bound (requests at work plus GET threads:
    3 + 4 for this server) another is a 503 with Retry-After, not one more thread."""
    conversation = {"X-Conversation-Id": "llamanb-feed-bound"}
    chat = {"messages": [{"role": "user", "content": "Count"}], "max_tokens": 400, "stream": True, "ignore_eos": True}
    replay = {"conv_id": "llamanb-feed-bound", "from": "0"}
    with contextlib.ExitStack() as streams:
        live = streams.enter_context(
            http.stream("POST", f"{server}/v1/chat/completions", json=chat, headers=conversation)
        )
        assert live.status_code == 200
        assert next(line for line in live.iter_lines() if line.startswith("data: "))  # the session is live
        replays = [streams.enter_context(http.stream("GET", f"{server}/v1/stream", params=replay)) for _ in range(6)]
        assert [r.status_code for r in replays] == [200] * 6
        t0 = time.monotonic()
        assert http.get(f"{server}/health").status_code == 200
        assert time.monotonic() - t0 < 0.25
        refused = http.get(f"{server}/v1/stream", params=replay)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1", refused.text
        assert "too many open streams" in refused.json()["error"]["message"]
        assert next(line for line in replays[0].iter_lines() if line.startswith("data: "))  # replays stream
    # all closed: the threads end, and streams are served again
    deadline = time.monotonic() + 30
    while (r := http.get(f"{server}/v1/stream", params=replay)).status_code == 503:
        assert time.monotonic() < deadline, "closed streams kept their places"
        time.sleep(0.1)
    assert r.status_code in (200, 404)  # the replay, or the session already gone


def test_json_only_bodies(server: str) -> None:
    """Finding 11: a text/plain or form POST (which a web page sends to any origin without a
    CORS preflight) is refused on every route, so no page drives a keyless server (chat,
    slot actions, LoRA scales); JSON, or a body with no Content-Type, still works."""
    chat = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1})
    for route in (
        "/v1/chat/completions",
        "/completion",
        "/lora-adapters",
        "/tokenize",
        "/v1/messages",
        "/slots/0?action=erase",
    ):
        for content_type in (
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ):
            r = http.post(f"{server}{route}", content=chat, headers={"Content-Type": content_type})
            assert r.status_code == 415, (route, content_type, r.status_code)
    assert http.post(f"{server}/v1/chat/completions", content=chat).status_code == 200
    assert (
        http.post(
            f"{server}/v1/chat/completions", content=chat, headers={"Content-Type": "application/json"}
        ).status_code
        == 200
    )


def test_host_header_on_a_loopback_bind(server: str) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host."""
    r = http.get(f"{server}/props", headers={"Host": "evil.example"})
    assert r.status_code == 403
    assert http.get(f"{server}/props", headers={"Host": "localhost:1234"}).status_code == 200


def test_keyless_server_cors_is_localhost_only(server: str) -> None:
    ok = http.options(f"{server}/v1/chat/completions", headers={"Origin": "http://localhost:3000"})
    assert ok.headers.get("access-control-allow-origin") == "http://localhost:3000"
    other = http.options(f"{server}/v1/chat/completions", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_remote_media_is_refused_by_default(server: str) -> None:
    """llama-server would fetch any http(s) URL (loopback included); llamanb's front turns
    that off unless --allow-remote-media (patch 0020): a 400, and nothing connects."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/secret.png"
        body = {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
            "max_tokens": 1,
        }
        r = http.post(f"{server}/v1/chat/completions", json=body)
        assert r.status_code == 400 and "data: URL" in r.json()["error"]["message"]
        with pytest.raises(TimeoutError):
            listener.accept()
    image = "data:image/png;base64," + base64.b64encode(noise_png()).decode()
    body["messages"][0]["content"][1]["image_url"]["url"] = image  # type: ignore[index]
    assert http.post(f"{server}/v1/chat/completions", json=body).status_code == 200


def test_bounded_queue_gives_503(server: str) -> None:
    """--parallel 2 --max-queue 1: a fourth request at work gets 503 with Retry-After."""
    results: list[int] = []

    def generate() -> None:
        r = http.post(f"{server}/completion", json={"prompt": "Once", "n_predict": 48, "ignore_eos": True})
        results.append(r.status_code)

    workers = [threading.Thread(target=generate) for _ in range(3)]
    for w in workers:
        w.start()
    time.sleep(0.5)
    r = http.post(f"{server}/completion", json={"prompt": "Once", "n_predict": 1})
    for w in workers:
        w.join()
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert results == [200, 200, 200]


def test_api_key_guards_every_route_but_health(keyed_server: str) -> None:
    assert http.get(f"{keyed_server}/health").status_code == 200
    r = http.get(f"{keyed_server}/props")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert http.get(f"{keyed_server}/props", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert http.get(f"{keyed_server}/props", headers={"x-api-key": API_KEY}).status_code == 200


def test_request_body_limit(keyed_server: str) -> None:
    r = http.post(
        f"{keyed_server}/completion",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"prompt": "x" * 5000, "n_predict": 1},
    )
    assert r.status_code == 413


def test_empty_api_key_is_refused(model_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "llamanb.server", "-m", str(model_path), "--api-key", ""],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--api-key must not be empty" in r.stderr


def test_a_model_that_does_not_load_ends_the_process(tmp_path: Path) -> None:
    """As llama-server: a missing or broken model is a non-zero exit, not a server that
    answers 503 forever."""
    for model in (tmp_path / "missing.gguf", tmp_path / "empty.gguf"):
        if model.name == "empty.gguf":
            model.write_bytes(b"GGUF")
        r = subprocess.run(
            [sys.executable, "-m", "llamanb.server", "-m", str(model), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 1, (model, r.returncode, r.stderr[-500:])
        assert "Traceback" not in r.stderr, r.stderr[-2000:]


def test_llama_server_help_and_bad_flags() -> None:
    r = subprocess.run([sys.executable, "-m", "llamanb.server", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "--ctx-size" in r.stdout + r.stderr and "--max-queue" in r.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "llamanb.server", "--ctx-size", "lots"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode != 0


def test_llamanb_flag_names_and_defaults(monkeypatch: pytest.MonkeyPatch, model_path: Path) -> None:
    """llamanb's earlier flag names are aliases of llama-server's; no model flag means the
    default model; an empty API key, from the flag or $LLAMANB_API_KEY, is refused."""
    monkeypatch.delenv("LLAMANB_API_KEY", raising=False)
    monkeypatch.delenv("LLAMA_API_KEY", raising=False)
    args = llama_server_args(
        [
            "-m",
            "x.gguf",
            "--n-ctx",
            "4096",
            "--n-batch=256",
            "--draft-max",
            "12",
            "--rpc-servers",
            "h:1",
            "--lora-scaled",
            "b.gguf",
            "0.5",
            "--lora-scaled",
            "c.gguf:2",
        ]
    )
    assert args == [
        "-m",
        "x.gguf",
        "--ctx-size",
        "4096",
        "--batch-size=256",
        "--spec-draft-n-max",
        "12",
        "--rpc",
        "h:1",
        "--lora-scaled",
        "b.gguf:0.5",
        "--lora-scaled",
        "c.gguf:2",
    ]
    assert llama_server_args(["-c", "512"])[:2] == ["--model", str(model_path)]
    with pytest.raises(ValueError, match="must not be empty"):
        llama_server_args(["-m", "x.gguf", "--api-key", ""])
    monkeypatch.setenv("LLAMANB_API_KEY", "")
    with pytest.raises(ValueError, match="must not be empty"):
        llama_server_args(["-m", "x.gguf"])
    monkeypatch.setenv("LLAMANB_API_KEY", "k")
    assert llama_server_args(["-m", "x.gguf"])[-2:] == ["--api-key", "k"]
    # llama-server's own parser takes the result: its flags and their checks
    server = core.server.Server(
        [
            "-m",
            str(model_path),
            "--slot-save-path",
            "/tmp",
            "--spec-type",
            "ngram-mod",
            "--lora-scaled",
            f"{model_path}:0.5",
            "-np",
            "3",
        ]
    )
    assert server.n_parallel == 3 and server.state == "loading"
    with pytest.raises(ValueError):
        core.server.Server(["-m", str(model_path), "--spec-type", "no-such-type"])


def test_create_app_mounts_in_starlette(model_path: Path) -> None:
    """create_app() is an ASGI app: mounted under a path in another Starlette app it serves
    llama-server's routes there (the model loads on the first request; 503 until then)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    from llamanb.server import FrontOptions, create_app

    llm = create_app(["-m", str(model_path), "-c", "512", "-np", "1", "-t", "2"], FrontOptions(max_queue=4))
    outer = Starlette(routes=[Mount("/llm", app=llm)])
    try:
        with TestClient(outer, base_url="http://localhost") as client:
            deadline = time.monotonic() + START_LIMIT_S
            while client.get("/llm/health").status_code != 200:
                assert time.monotonic() < deadline, "the mounted engine did not load"
                time.sleep(0.1)
            r = client.post("/llm/completion", json={"prompt": "Hello", "n_predict": 3})
            assert r.status_code == 200 and r.json()["tokens_predicted"] == 3
            with client.stream(
                "POST",
                "/llm/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True},
            ) as s:
                events = [line for line in s.iter_lines() if line.startswith("data: ")]
            assert events[-1] == "data: [DONE]" and len(events) >= 3
            assert client.get("/health").status_code == 404  # only under the mount
    finally:
        llm.stop()
