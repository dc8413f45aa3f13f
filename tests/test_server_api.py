"""The server at llama-server's level: prompt reuse across requests (cached_tokens),
the API key, the bounded queue, /metrics, /tokenize, /detokenize, /props, /slots,
/v1/rerank, /apply-template and llama-server's route aliases. Loopback only; one small server per setting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llamanb import core
from llamanb.server import ServerConfig

from .fuzz.serve import running_server

KEY = "sk-test-0123456789"
SYSTEM = "You are a helpful assistant who answers in one short sentence about geography and history."


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[tuple[str, Any]]:
    config = ServerConfig(model=model_path, parallel=2, n_ctx=4096, n_threads=2, alias="smollm2", api_key=KEY)
    with running_server(config) as started:
        yield started


def client(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def test_api_key(server: tuple[str, Any]) -> None:
    url, _ = server
    assert httpx.get(f"{url}/health").status_code == 200  # open for load balancers
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        r = httpx.get(f"{url}/v1/models", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client(url, "wrong").models.list()
    assert client(url).models.list().data[0].id == "smollm2"


def test_follow_up_turn_reuses_the_cached_prompt(server: tuple[str, Any]) -> None:
    url, api = server
    c = client(url)
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is Paris?"}]
    first = c.chat.completions.create(model="smollm2", messages=messages, temperature=0, max_tokens=24)
    assert first.usage is not None and first.usage.prompt_tokens_details is not None
    messages += [{"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "And Rome?"}]
    second = c.chat.completions.create(model="smollm2", messages=messages, temperature=0, max_tokens=24)
    assert second.usage is not None and second.usage.prompt_tokens_details is not None
    cached = second.usage.prompt_tokens_details.cached_tokens or 0
    # The whole first turn (system, question, answer) is in a slot's KV cache.
    assert cached >= first.usage.prompt_tokens, (cached, first.usage)
    assert cached < second.usage.prompt_tokens
    # Streamed, with usage: the same figure is reported.
    messages += [{"role": "assistant", "content": second.choices[0].message.content},
                 {"role": "user", "content": "And Madrid?"}]
    stream = c.chat.completions.create(model="smollm2", messages=messages, temperature=0, max_tokens=8,
                                       stream=True, stream_options={"include_usage": True})
    usage = [chunk.usage for chunk in stream if chunk.usage is not None]
    assert usage[-1].prompt_tokens_details is not None
    assert (usage[-1].prompt_tokens_details.cached_tokens or 0) >= second.usage.prompt_tokens
    # The reused prefix gives the reply a fresh evaluation gives. (Only its confident
    # start is compared: the last prompt token, decoded alone instead of in the prompt's
    # batch, rounds differently, which can flip a later near-tie.)
    text = c.completions.create(model="smollm2", prompt="The capital of Italy is", temperature=0, max_tokens=8)
    again = c.completions.create(model="smollm2", prompt="The capital of Italy is", temperature=0, max_tokens=8)
    assert again.choices[0].text.split()[:1] == text.choices[0].text.split()[:1]
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1
    emb = c.embeddings.create(model="smollm2", input=["a", "b"])
    assert len(emb.data) == 2


def test_metrics_parse_as_prometheus_text(server: tuple[str, Any]) -> None:
    url, _ = server
    client(url).completions.create(model="smollm2", prompt="Hi", max_tokens=4, temperature=0)
    r = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["llamanb_tokens_predicted"].samples[0].value >= 4
    assert families["llamanb_requests_finished"].samples[0].value >= 1
    ttft = families["llamanb_time_to_first_token_seconds"]
    assert ttft.type == "histogram"
    count = [s for s in ttft.samples if s.name.endswith("_count")][0].value
    assert count >= 1
    for name in ("llamanb_requests_processing", "llamanb_requests_deferred", "llamanb_prompt_tokens_cached",
                 "llamanb_time_per_output_token_seconds", "llamanb_slots"):
        assert name in families, name


def test_tokenize_detokenize_props_slots(server: tuple[str, Any], model: core.Model) -> None:
    url, _ = server
    auth = {"Authorization": f"Bearer {KEY}"}
    r = httpx.post(f"{url}/tokenize", json={"content": "Hello <|im_end|> world"}, headers=auth)
    ids = r.json()["tokens"]
    assert ids == model.vocab.tokenize("Hello <|im_end|> world", False, True).tolist()
    pieces = httpx.post(f"{url}/tokenize", json={"content": "Hello", "with_pieces": True}, headers=auth).json()
    assert pieces["tokens"][0]["piece"] == "Hello"
    back = httpx.post(f"{url}/detokenize", json={"tokens": ids}, headers=auth).json()
    assert back["content"] == "Hello <|im_end|> world"
    bad = httpx.post(f"{url}/detokenize", json={"tokens": [10**9]}, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens"
    props = httpx.get(f"{url}/props", headers=auth).json()
    assert props["total_slots"] == 2 and props["default_generation_settings"]["n_ctx"] == 2048
    assert "im_start" in props["chat_template"]
    slots = httpx.get(f"{url}/slots", headers=auth).json()
    assert [s["id"] for s in slots] == [0, 1] and all(not s["is_processing"] for s in slots)
    rerank = httpx.post(f"{url}/v1/rerank", json={"query": "q", "documents": ["a"]}, headers=auth)
    assert rerank.status_code == 400 and "not a reranker" in rerank.json()["error"]["message"]


def test_apply_template_and_llama_server_aliases(server: tuple[str, Any], model: core.Model) -> None:
    url, _ = server
    auth = {"Authorization": f"Bearer {KEY}"}
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is Lima?"}]
    rendered = httpx.post(f"{url}/apply-template", json={"messages": messages}, headers=auth).json()["prompt"]
    assert SYSTEM in rendered and rendered.rstrip().endswith("assistant")
    # It is the prompt a completion evaluates: the same tokens.
    out = client(url).chat.completions.create(model="smollm2", messages=messages, temperature=0, max_tokens=1)
    assert out.usage is not None
    assert len(model.vocab.tokenize(rendered, False, True)) == out.usage.prompt_tokens
    bad = httpx.post(f"{url}/apply-template", json={"messages": "nope"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
    # llama-server's other paths for the OpenAI handlers answer as the /v1 ones.
    assert httpx.get(f"{url}/models", headers=auth).json() == httpx.get(f"{url}/v1/models", headers=auth).json()
    alias = httpx.post(f"{url}/chat/completions", headers=auth, timeout=60,
                       json={"model": "smollm2", "messages": messages, "temperature": 0, "max_tokens": 1}).json()
    assert alias["object"] == "chat.completion" and alias["usage"]["prompt_tokens"] == out.usage.prompt_tokens
    for path in ("/rerank", "/reranking", "/v1/reranking"):
        r = httpx.post(f"{url}{path}", json={"query": "q", "documents": ["a"]}, headers=auth)
        assert r.status_code == 400 and "not a reranker" in r.json()["error"]["message"]


def _eog_bias(model: core.Model) -> dict[str, int]:
    vocab = model.vocab
    return {str(t): -100 for t in range(vocab.n_tokens) if vocab.is_eog(t)}


def test_a_full_queue_gives_503(model_path: Path, model: core.Model) -> None:
    config = ServerConfig(model=model_path, parallel=1, n_ctx=1024, n_threads=2, max_queue=1)
    long = {"model": model_path.name, "prompt": "Count: 1, 2, 3,", "max_tokens": 400, "temperature": 0,
            "logit_bias": _eog_bias(model), "stream": True}
    with running_server(config) as (url, api):
        async def scenario() -> httpx.Response:
            async with httpx.AsyncClient(timeout=120) as http:
                first = asyncio.create_task(http.post(f"{url}/v1/completions", json=long))
                await _until(lambda: api.backend.engine.stats().busy == 1)
                second = asyncio.create_task(http.post(f"{url}/v1/completions", json=long))
                await _until(lambda: api.backend.engine.stats().waiting == 1)
                third = await http.post(f"{url}/v1/completions", json=long)
                first.cancel()
                second.cancel()
                await asyncio.gather(first, second, return_exceptions=True)
                return third

        third = asyncio.run(scenario())
        assert third.status_code == 503 and third.headers["Retry-After"] == "1"
        assert third.json()["error"]["code"] == "queue_full"
        deadline = time.monotonic() + 30
        while (stats := api.backend.engine.stats()).busy or stats.waiting:
            assert time.monotonic() < deadline, stats
            time.sleep(0.05)


async def _until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def test_timeout_ends_slow_requests_with_408(model_path: Path, model: core.Model) -> None:
    """--timeout bounds a generation, waiting for a slot included: the running request
    and the one queued behind it both end with 408 (a stream with an error event), the
    slot is freed, and a short request then succeeds."""
    config = ServerConfig(model=model_path, parallel=1, n_ctx=1024, n_threads=2, timeout=1.0)
    long = {"model": model_path.name, "prompt": "Count: 1, 2, 3,", "max_tokens": 1000, "temperature": 0,
            "logit_bias": _eog_bias(model)}
    with running_server(config) as (url, api):
        async def scenario() -> tuple[httpx.Response, httpx.Response, str]:
            async with httpx.AsyncClient(timeout=120) as http:
                first = asyncio.create_task(http.post(f"{url}/v1/completions", json=long))
                await _until(lambda: api.backend.engine.stats().busy == 1)
                queued = asyncio.create_task(http.post(f"{url}/v1/completions", json=long))
                await _until(lambda: api.backend.engine.stats().waiting == 1)
                running, waiting = await asyncio.gather(first, queued)
                streamed = await http.post(f"{url}/v1/completions", json={**long, "stream": True})
                return running, waiting, streamed.text

        started = time.monotonic()
        running, waiting, streamed = asyncio.run(scenario())
        assert time.monotonic() - started < 30
        for response in (running, waiting):
            assert response.status_code == 408, response.text
            error = response.json()["error"]
            assert error["code"] == "request_timeout" and "1 s" in error["message"]
        events = [line[len("data: "):] for line in streamed.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        assert '"request_timeout"' in events[-2]
        assert any('"text"' in e for e in events[:-2])  # tokens came before the limit
        stats = api.backend.engine.stats()
        assert stats.busy == 0 and stats.waiting == 0
        assert api.backend.engine.metrics.timed_out == 3
        short = httpx.post(f"{url}/v1/completions", json={**long, "max_tokens": 2}, timeout=60)
        assert short.status_code == 200 and short.json()["usage"]["completion_tokens"] == 2
        assert "llamanb_requests_timed_out_total 3" in httpx.get(f"{url}/metrics").text
