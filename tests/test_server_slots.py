"""llama-server's slot actions: POST /slots/{id}?action=save|restore|erase. A slot's
KV cache goes to a state file in --slot-save-path and comes back, so that a later
request finds its prompt cached; erase empties it; every bad request is a 4xx."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import llamanb
from llamanb import core
from llamanb.generation import GenerateOptions, SequenceText
from llamanb.server import ServerConfig
from llamanb.server.engine import Engine, Job, ShuttingDown, SlotAction

from .fuzz.serve import running_server
from .lora_file import write_lora

MODEL = "smollm2"
PROMPT = "A short story about a lighthouse keeper who finds a message in a bottle on the shore"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slots")


@pytest.fixture(scope="module")
def server(model_path: Path, saved: Path) -> Iterator[str]:
    config = ServerConfig(model=model_path, parallel=2, n_ctx=2048, n_threads=2, alias=MODEL, slot_save_path=saved)
    with running_server(config) as (url, _api):
        yield url


def complete(url: str) -> dict[str, Any]:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 4, "temperature": 0}
    reply: dict[str, Any] = httpx.post(f"{url}/v1/completions", json=body, timeout=120).json()
    return reply


def cached(url: str) -> dict[int, int]:
    return {s["id"]: s["n_cached"] for s in httpx.get(f"{url}/slots").json()}


def action(url: str, slot: int, kind: str, filename: str | None = None) -> httpx.Response:
    body = {} if filename is None else {"filename": filename}
    # json.dumps escapes a lone surrogate as \\ud800, which httpx's json= cannot encode
    return httpx.post(f"{url}/slots/{slot}", params={"action": kind}, content=json.dumps(body),
                      headers={"Content-Type": "application/json"}, timeout=120)


def test_save_erase_restore(server: str, saved: Path) -> None:
    first = complete(server)
    slot, n = max(cached(server).items(), key=lambda kv: kv[1])
    assert n >= first["usage"]["prompt_tokens"]
    out = action(server, slot, "save", "story.bin").json()
    assert out["id_slot"] == slot and out["filename"] == "story.bin" and out["n_saved"] == n
    assert out["n_written"] == (saved / "story.bin").stat().st_size > 0
    for i in cached(server):  # nothing cached anywhere now
        assert action(server, i, "erase").json()["id_slot"] == i
    assert set(cached(server).values()) == {0}
    assert complete(server)["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    for i in cached(server):
        action(server, i, "erase")
    back = action(server, slot, "restore", "story.bin").json()
    assert back["n_restored"] == n and back["n_read"] == out["n_written"]
    assert cached(server)[slot] == n
    again = complete(server)  # finds its prompt in the restored slot
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == again["usage"]["prompt_tokens"] - 1
    assert again["choices"][0]["text"].split()[:1] == first["choices"][0]["text"].split()[:1]


@pytest.mark.parametrize(("slot", "kind", "filename", "status", "param"), [
    ("0", "nope", None, 400, "action"),
    ("x", "erase", None, 400, "id_slot"),
    ("7", "erase", None, 400, "id_slot"),
    ("0", "save", "../escape.bin", 400, "filename"),
    ("0", "save", "", 400, "filename"),
    ("0", "restore", "missing.bin", 404, "filename"),
])
def test_bad_slot_actions(server: str, slot: str, kind: str, filename: str | None, status: int,
                          param: str) -> None:
    body = {} if filename is None else {"filename": filename}
    r = httpx.post(f"{server}/slots/{slot}", params={"action": kind}, json=body, timeout=60)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param


@pytest.mark.parametrize("filename", ["\ud800", "story.bin.lora.json", "a\nb", "-rf", "a\u2215b", ".hidden",
                                      "caf\u00e9.bin", "x" * 201])
def test_hostile_slot_file_names_are_refused(server: str, filename: str) -> None:
    """Hardening: a lone surrogate once killed the engine thread (every later request hung
    or got 503); a name ending in .lora.json overwrote another save's LoRA record; a
    newline, a leading '-' or '.', and look-alike slashes were accepted."""
    for kind in ("save", "restore"):
        r = action(server, 0, kind, filename)
        assert r.status_code == 400 and r.json()["error"]["param"] == "filename", r.text
    assert httpx.get(f"{server}/health", timeout=10).status_code == 200
    assert complete(server)["choices"][0]["text"]  # the engine is alive


def test_a_file_that_is_not_a_state_is_refused(server: str, saved: Path) -> None:
    (saved / "junk.bin").write_bytes(b"not a llama.cpp state file" * 10)
    r = action(server, 0, "restore", "junk.bin")
    assert r.status_code == 400 and "cannot restore slot 0" in r.json()["error"]["message"], r.text
    assert cached(server)[0] == 0
    assert complete(server)["choices"][0]["text"]  # the server still works


def test_without_a_save_path_only_erase_works(model_path: Path) -> None:
    config = ServerConfig(model=model_path, parallel=1, n_ctx=512, n_threads=2, alias=MODEL)
    with running_server(config) as (url, _api):
        r = action(url, 0, "save", "a.bin")
        assert r.status_code == 400 and "--slot-save-path" in r.json()["error"]["message"]
        assert action(url, 0, "erase").json() == {"id_slot": 0, "n_erased": 0}


def test_an_action_on_a_busy_slot_waits_for_it(server: str, model: core.Model) -> None:
    # End-of-generation banned: the job runs all its tokens, long enough to be seen busy.
    no_eog = {str(t): -100 for t in range(model.vocab.n_tokens) if model.vocab.is_eog(t)}

    async def run() -> tuple[dict[str, Any], float, float]:
        async with httpx.AsyncClient(base_url=server, timeout=120) as client:
            body = {"model": MODEL, "prompt": PROMPT + " and the sea", "max_tokens": 96, "temperature": 0,
                    "stream": True, "logit_bias": no_eog}
            ended = 0.0

            async def stream() -> None:
                nonlocal ended
                async with client.stream("POST", "/v1/completions", json=body) as reply:
                    async for _ in reply.aiter_lines():
                        pass
                ended = time.monotonic()

            task = asyncio.create_task(stream())
            busy: list[int] = []
            while not busy and not task.done():  # bounded: a job that ended unseen fails the test
                busy = [s["id"] for s in (await client.get("/slots")).json() if s["is_processing"]]
                await asyncio.sleep(0.01)
            assert busy, "the job ended before a /slots poll saw it running"
            out = (await client.post(f"/slots/{busy[0]}", params={"action": "save"},
                                     json={"filename": "busy.bin"})).json()
            answered = time.monotonic()
            await task
            return out, ended, answered

    out, ended, answered = asyncio.run(run())
    assert answered >= ended  # saved once the job had ended: the whole sequence the slot keeps
    assert out["n_saved"] == cached(server)[out["id_slot"]]


def test_engine_shutdown_answers_waiting_slot_actions(llm: llamanb.Llama, tmp_path: Path) -> None:
    """An action waiting for a busy slot gets ShuttingDown when the engine stops: its
    client is answered (503), not left hanging."""
    engine = Engine(llm.model, slots=1, n_ctx_slot=512, n_batch=64, n_threads=2)

    async def run() -> BaseException | None:
        loop = asyncio.get_running_loop()
        ids = llm.tokenize(PROMPT)
        seq = SequenceText(llm.vocab, GenerateOptions(max_tokens=400))
        job = Job(ids, seq, llamanb.SamplingParams(temperature=0).build(llm.vocab, ids), loop)
        engine.submit(job)
        steps = job.steps()
        await steps.__anext__()  # the job holds the slot now
        done: asyncio.Future[dict[str, object]] = loop.create_future()
        with pytest.raises(ValueError, match="no slot has id 3"):
            engine.submit_action(SlotAction("erase", 3, None, loop, done))
        engine.submit_action(SlotAction("save", 0, str(tmp_path / "s.bin"), loop, done))
        await asyncio.to_thread(engine.close)
        try:
            await asyncio.wait_for(done, 30)
        except ShuttingDown as error:
            return error
        return None

    assert isinstance(asyncio.run(run()), ShuttingDown)
    assert not (tmp_path / "s.bin").exists()


def test_a_restored_cache_keeps_its_adapters(model_path: Path, model: core.Model, tmp_path: Path) -> None:
    """A cache saved under LoRA adapters comes back under them (a record beside the
    state file), so that a request under other adapters does not reuse it."""
    lora = tmp_path / "q_proj.gguf"
    write_lora(lora, model, scale_b=0.05)
    saved = tmp_path / "slots"
    saved.mkdir()
    config = ServerConfig(model=model_path, parallel=1, n_ctx=1024, n_threads=2, alias=MODEL,
                          slot_save_path=saved, lora=((lora, 1.0),))
    with running_server(config) as (url, _api):
        complete(url)  # under the default adapters: id 0 at scale 1
        assert action(url, 0, "save", "adapted.bin").status_code == 200
        assert json.loads((saved / "adapted.bin.lora.json").read_text()) == [[0, 1.0]]
        action(url, 0, "erase")
        action(url, 0, "restore", "adapted.bin")
        assert httpx.get(f"{url}/slots").json()[0]["lora"] == [{"id": 0, "scale": 1.0}]
        body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 2, "temperature": 0, "lora": []}
        other = httpx.post(f"{url}/v1/completions", json=body, timeout=120).json()
        assert other["usage"]["prompt_tokens_details"]["cached_tokens"] == 0  # not under the same adapters
        (saved / "bad.bin").write_bytes((saved / "adapted.bin").read_bytes())
        (saved / "bad.bin.lora.json").write_text('{"not": "pairs"}')
        r = action(url, 0, "restore", "bad.bin")
        assert r.status_code == 400 and "LoRA record" in r.json()["error"]["message"]
