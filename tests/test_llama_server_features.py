"""What the earlier Python server's tests covered, now through ``llamanb serve``
(llama-server's engine): LoRA adapters and their scales, slot save/restore/erase,
speculative decoding with a draft model, and an image through the projector. One
server for the module, with every one of those features on."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamanb import core

from .support.lora_file import write_lora
from .support.mmproj_file import noise_png, write_mmproj
from .support.server_process import start_server, stop_server
from .test_llama_server import http

PROMPT = {"prompt": "The capital of France is", "n_predict": 8, "temperature": 0, "cache_prompt": False}


@pytest.fixture(scope="module")
def server(model: core.Model, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # the module's own: its tests set the adapter's scale and save and restore slots
    work = tmp_path_factory.mktemp("features")
    lora = work / "lora.gguf"
    write_lora(lora, model, scale_b=0.5)
    mmproj = write_mmproj(work / "mmproj.gguf", model.n_embd)
    (work / "slots").mkdir()
    proc, url = start_server(
        [
            "-m",
            str(model_path),
            "-c",
            "2048",
            "-np",
            "2",
            "-t",
            "2",
            "--temp",
            "0",
            "--lora",
            str(lora),
            "--mmproj",
            str(mmproj),
            "--slot-save-path",
            str(work / "slots"),
        ]
    )
    try:
        yield url
    finally:
        stop_server(proc)


def complete(url: str) -> str:
    reply = http.post(f"{url}/completion", json=PROMPT)
    assert reply.status_code == 200, reply.text[:300]
    text: str = reply.json()["content"]
    return text


def test_lora_adapters_and_scales(server: str) -> None:
    adapters = http.get(f"{server}/lora-adapters").json()
    assert [(a["id"], a["scale"]) for a in adapters] == [(0, 1.0)]
    with_lora = complete(server)
    assert http.post(f"{server}/lora-adapters", json=[{"id": 0, "scale": 0.0}]).status_code == 200
    assert http.get(f"{server}/lora-adapters").json()[0]["scale"] == 0.0
    without = complete(server)
    assert with_lora != without  # the adapter changes the reply (greedy, same prompt)
    per_request = http.post(f"{server}/completion", json={**PROMPT, "lora": [{"id": 0, "scale": 1.0}]}).json()
    assert per_request["content"] == with_lora  # a request's own scales win for that request
    assert http.post(f"{server}/lora-adapters", json=[{"id": 7, "scale": 1.0}]).status_code < 500  # (ignored)
    assert [a["id"] for a in http.get(f"{server}/lora-adapters").json()] == [0]
    http.post(f"{server}/lora-adapters", json=[{"id": 0, "scale": 1.0}])


def test_slot_save_restore_erase(server: str) -> None:
    http.post(f"{server}/completion", json={**PROMPT, "cache_prompt": True, "id_slot": 0})
    saved = http.post(f"{server}/slots/0?action=save", json={"filename": "one.bin"})
    assert saved.status_code == 200 and saved.json()["n_saved"] > 0, saved.text
    erased = http.post(f"{server}/slots/0?action=erase", json={})
    assert erased.status_code == 200 and erased.json()["n_erased"] > 0
    restored = http.post(f"{server}/slots/0?action=restore", json={"filename": "one.bin"})
    assert restored.status_code == 200 and restored.json()["n_restored"] == saved.json()["n_saved"]
    again = http.post(f"{server}/completion", json={**PROMPT, "cache_prompt": True, "id_slot": 0}).json()
    assert again["tokens_cached"] > 0  # the restored prompt was reused (its text may differ in the last
    # bits: a reused prefix is not evaluated in the same batches, and this adapter is random)
    missing = http.post(f"{server}/slots/0?action=restore", json={"filename": "absent.bin"})
    assert 400 <= missing.status_code < 500


def test_speculative_decoding_with_a_draft_model(model_path: Path) -> None:
    """The default model drafts for itself: drafts are made and accepted, and the reply is
    the plain greedy one."""
    proc, url = start_server(
        [
            "-m",
            str(model_path),
            "-c",
            "1024",
            "-np",
            "1",
            "-t",
            "2",
            "--temp",
            "0",
            "--model-draft",
            str(model_path),
            "--spec-type",
            "draft-simple",
            "--spec-draft-n-min",
            "2",
            "--spec-draft-n-max",
            "4",
        ]
    )
    try:
        reply = http.post(f"{url}/completion", json={**PROMPT, "n_predict": 24}).json()
    finally:
        stop_server(proc)
    timings = reply["timings"]
    assert reply["tokens_predicted"] == 24
    assert timings["draft_n"] > 0 and timings["draft_n_accepted"] > 0, timings


def test_an_image_through_the_projector(server: str) -> None:
    url = "data:image/png;base64," + base64.b64encode(noise_png(32, 32)).decode()
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
        "max_tokens": 4,
    }
    reply = http.post(f"{server}/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text[:300]
    plain = http.post(
        f"{server}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "What is this?"}], "max_tokens": 4},
    ).json()
    assert reply.json()["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"]  # the image's tokens
