"""Images in the server (``llamanb serve --mmproj``) with the official ``openai``
client: data: URLs work, remote and local-file URLs are refused, bodies are bounded.
The projector is the synthetic one of tests/mmproj_file.py. Loopback only."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import llamanb
from llamanb import core
from llamanb.server import ServerConfig

from .fuzz.serve import running_server
from .mmproj_file import noise_png, write_mmproj

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def mmproj(model: core.Model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mmproj(tmp_path_factory.mktemp("mmproj") / "mmproj.gguf", model.n_embd)


@pytest.fixture(scope="module")
def server(model_path: Path, mmproj: Path) -> Iterator[str]:
    config = ServerConfig(model=model_path, parallel=2, n_ctx=2048, n_threads=2, mmproj=mmproj,
                          max_request_bytes=256 << 10)
    with running_server(config) as (url, _):
        yield url


def image_messages(url: str, text: str = "What is in this image?") -> list[Any]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": text}]}]


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_chat_with_an_image_through_the_openai_client(server: str, model_path: Path, mmproj: Path) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="none", max_retries=0)
    messages = image_messages(data_url(noise_png(1)))
    first = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, temperature=0)
    second = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, temperature=0)
    content = first.choices[0].message.content
    assert content and content == second.choices[0].message.content
    assert first.usage is not None and second.usage is not None
    # The repeat is served from the slot's cache: the image is not encoded again.
    assert second.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details.cached_tokens == first.usage.prompt_tokens - 1
    # A follow-up about the same image reuses it too.
    follow_up = [*messages, {"role": "assistant", "content": content}, {"role": "user", "content": "And then?"}]
    third = client.chat.completions.create(model=MODEL, messages=follow_up, max_tokens=2, temperature=0)
    assert third.usage is not None and third.usage.prompt_tokens_details is not None
    assert (third.usage.prompt_tokens_details.cached_tokens or 0) > 16
    text_only = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is in this image?"}], max_tokens=1, temperature=0)
    assert text_only.usage is not None
    assert first.usage.prompt_tokens == text_only.usage.prompt_tokens + 16  # the image's 16 tokens
    # The facade gives the same greedy reply.
    with llamanb.Llama(model_path, n_ctx=1024, n_threads=2, mmproj=mmproj) as llm:
        assert llm.chat(messages, max_tokens=8, temperature=0).text == content
    # Streaming works too.
    stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == content
    props = httpx.get(f"{server}/props").json()
    assert props["modalities"] == {"vision": True, "audio": False}


def test_remote_and_local_urls_are_refused(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="none", max_retries=0)
    for url, why in (("https://example.com/cat.png", "remote"), ("http://127.0.0.1:9/x.png", "remote"),
                     ("file:///etc/passwd", "not allowed"), ("/etc/hostname", "not allowed"),
                     (data_url(b"not an image"), "decode"), ("data:image/png;base64,%%%", "base64")):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=MODEL, messages=image_messages(url), max_tokens=1)
        assert why in str(info.value), (url, info.value)
    with pytest.raises(openai.BadRequestError, match="audio"):
        client.chat.completions.create(model=MODEL, max_tokens=1, messages=[{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"RIFF").decode(), "format": "wav"}}]}])
    # the server still answers
    ok = client.chat.completions.create(model=MODEL, messages=image_messages(data_url(noise_png(2))), max_tokens=2)
    assert ok.choices[0].message.content is not None


def test_request_size_is_bounded(server: str) -> None:
    big = data_url(b"\0" * (300 << 10))
    response = httpx.post(f"{server}/v1/chat/completions", timeout=60,
                          json={"model": MODEL, "messages": image_messages(big), "max_tokens": 1})
    assert response.status_code == 413 and "limit" in response.json()["error"]["message"]


def test_a_server_without_projector_says_so(model_path: Path) -> None:
    with running_server(ServerConfig(model=model_path, parallel=1, n_ctx=512, n_threads=2)) as (url, _):
        response = httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
            "model": MODEL, "messages": image_messages(data_url(noise_png(1))), "max_tokens": 1})
        assert response.status_code == 400 and "--mmproj" in response.json()["error"]["message"]
        assert httpx.get(f"{url}/props").json()["modalities"] == {"vision": False, "audio": False}
