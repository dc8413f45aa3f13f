"""Per-request LoRA in the server (llama-server's ``--lora`` and ``"lora"`` field), with a
real adapter GGUF written by gguf-py. Loopback only."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llamanb import core
from llamanb.server import ServerConfig

from .fuzz.serve import running_server
from .lora_file import write_lora

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "The capital of France is"
BASE: list[dict[str, Any]] = []  # names no adapter: every adapter at scale 0
ADAPTED = [{"id": 0, "scale": 1.0}]


@pytest.fixture(scope="module")
def server(model_path: Path, model: core.Model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    lora = tmp_path_factory.mktemp("lora") / "q_proj.gguf"
    write_lora(lora, model, scale_b=0.05)  # changes the reply, keeps it confident
    # --lora PATH: requests that name no adapters get it at scale 1.
    config = ServerConfig(model=model_path, parallel=4, n_ctx=2048, n_threads=2, lora=((lora, 1.0),))
    with running_server(config) as (url, _):
        yield url


def complete(url: str, lora: list[dict[str, Any]] | None, prompt: str = PROMPT, *, cache: bool = False,
             logprobs: int | None = None) -> Any:
    body: dict[str, Any] = {"model": MODEL, "prompt": prompt, "max_tokens": 8, "temperature": 0,
                            "cache_prompt": cache, "logprobs": logprobs}
    if lora is not None:
        body["lora"] = lora
    response = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def first_logprob(url: str, lora: list[dict[str, Any]]) -> float:
    value: float = complete(url, lora, logprobs=1)["choices"][0]["logprobs"]["token_logprobs"][0]
    return value


def text(url: str, lora: list[dict[str, Any]] | None) -> str:
    out: str = complete(url, lora)["choices"][0]["text"]
    return out


def test_lora_adapters_route(server: str) -> None:
    listed = httpx.get(f"{server}/lora-adapters").json()
    assert len(listed) == 1 and listed[0]["id"] == 0 and listed[0]["scale"] == 1.0
    assert listed[0]["path"].endswith("q_proj.gguf")


def test_posting_lora_adapters_sets_the_default_scales(server: str) -> None:
    base, adapted = text(server, BASE), text(server, ADAPTED)
    try:
        assert httpx.post(f"{server}/lora-adapters", json=[{"id": 0, "scale": 0}]).json() == {"success": True}
        assert httpx.get(f"{server}/lora-adapters").json()[0]["scale"] == 0
        assert text(server, None) == base  # requests naming no adapters now get scale 0
        assert text(server, ADAPTED) == adapted  # a request's own choice still wins
        httpx.post(f"{server}/lora-adapters", json=[])  # ids left out: 0, as llama-server does
        assert httpx.get(f"{server}/lora-adapters").json()[0]["scale"] == 0
        for bad, param in (([{"id": 3, "scale": 1}], "lora"), ({"id": 0, "scale": 1}, "lora"),
                           ([{"id": 0, "scale": "x"}], "lora[0].scale")):
            r = httpx.post(f"{server}/lora-adapters", json=bad)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    finally:
        httpx.post(f"{server}/lora-adapters", json=[{"id": 0, "scale": 1.0}])
    assert httpx.get(f"{server}/lora-adapters").json()[0]["scale"] == 1.0
    assert text(server, None) == adapted


def test_the_adapter_changes_greedy_output_and_scale_0_is_none(server: str) -> None:
    base, adapted = text(server, BASE), text(server, ADAPTED)
    assert base != adapted
    assert text(server, ADAPTED) == adapted  # the same request twice
    assert text(server, [{"id": 0, "scale": 0}]) == base
    assert text(server, None) == adapted  # no "lora" field: the server's default (--lora: scale 1)
    # A scale between gives a first-token log-probability between (the scale reaches llama.cpp).
    lp = [first_logprob(server, [{"id": 0, "scale": s}]) for s in (0.0, 0.5, 1.0)]
    assert lp[0] < lp[1] < lp[2] or lp[0] > lp[1] > lp[2], lp


def test_requests_under_different_adapters_run_together(server: str) -> None:
    # Sent at once, alternating: each decode holds one adapter set, and each request
    # still gets its own adapters' first-token log-probability (within rounding: a
    # sequence decoded beside others rounds slightly differently).
    base, adapted = first_logprob(server, BASE), first_logprob(server, ADAPTED)
    assert abs(base - adapted) > 0.2, (base, adapted)

    async def run_all() -> list[float]:
        async with openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0,
                                      timeout=120) as client:
            async def one(lora: list[dict[str, Any]]) -> float:
                out = await client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=4, temperature=0,
                                                      logprobs=1, extra_body={"lora": lora, "cache_prompt": False})
                assert out.choices[0].logprobs is not None and out.choices[0].logprobs.token_logprobs is not None
                return out.choices[0].logprobs.token_logprobs[0]
            return await asyncio.gather(*(one(BASE if i % 2 else ADAPTED) for i in range(6)))

    for i, value in enumerate(asyncio.run(run_all())):
        assert abs(value - (base if i % 2 else adapted)) < 0.05, (i, value, base, adapted)


def test_a_cache_made_under_other_adapters_is_not_reused(server: str) -> None:
    prompt = "A short poem about the lighthouse keeper and the storm"
    first = complete(server, ADAPTED, prompt, cache=True)
    other = complete(server, BASE, prompt, cache=True)
    assert other["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    again = complete(server, ADAPTED, prompt, cache=True)
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == first["usage"]["prompt_tokens"] - 1


@pytest.mark.parametrize(("lora", "param"), [
    ([{"id": 1, "scale": 1.0}], "lora"),
    ([{"id": -1, "scale": 1.0}], "lora"),
    ([{"id": 0, "scale": "high"}], "lora[0].scale"),
    ([{"id": "0", "scale": 1.0}], "lora[0].id"),
    ({"id": 0, "scale": 1.0}, "lora"),
])
def test_bad_lora_fields_are_400(server: str, lora: object, param: str) -> None:
    for route, extra in (("completions", {"prompt": PROMPT}),
                         ("chat/completions", {"messages": [{"role": "user", "content": "Hi"}]})):
        body = {"model": MODEL, "max_tokens": 2, "lora": lora, **extra}
        response = httpx.post(f"{server}/v1/{route}", json=body, timeout=60)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


