"""OpenAI's audio transcriptions (``/v1/audio/transcriptions``), a multipart upload, on
``llamanb serve`` with an audio projector (the synthetic one of tests/support/mmproj_file.py,
so the text is noise; llama-server's handler turns the upload into a chat completion):
- through the official openai client;
- the form's rules (src/llamanb/server/multipart_form.py, access.py): the upload routes
  only, not from web pages that CORS does not allow, a bounded number of parts, and the
  front's bound on stop strings held inside a form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from llamanb import core

from .support.mmproj_file import tone_wav, write_audio_mmproj
from .support.server_process import start_server, stop_server

http = httpx.Client(timeout=120.0)


@pytest.fixture(scope="module")
def server(model: core.Model, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    mmproj = write_audio_mmproj(tmp_path_factory.mktemp("mmproj-audio") / "mmproj-audio.gguf", model.n_embd)
    proc, url = start_server(["-m", str(model_path), "--mmproj", str(mmproj), "-c", "2048", "-np", "1", "-t", "2"])
    try:
        yield url
    finally:
        stop_server(proc)


def upload(url: str, path: str = "/v1/audio/transcriptions", **kwargs: object) -> httpx.Response:
    data = kwargs.pop("data", {"model": "m", "max_tokens": "4"})
    files = kwargs.pop("files", {"file": ("tone.wav", tone_wav(seconds=1.0), "audio/wav")})
    return http.post(url + path, data=data, files=files, **kwargs)  # type: ignore[arg-type]


def test_the_openai_client_transcribes(server: str) -> None:
    client = openai.OpenAI(base_url=server + "/v1", api_key="none", max_retries=0)
    result = client.audio.transcriptions.create(
        model="m", file=("tone.wav", tone_wav(seconds=1.0), "audio/wav"), language="en", extra_body={"max_tokens": 4}
    )
    assert isinstance(result.text, str)
    # llama-server's own route and reply, the file read from the form
    r = upload(server, "/audio/transcriptions")
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["text"], str)


def test_what_the_form_must_be(server: str) -> None:
    r = upload(server, files={"note": (None, "no file")})  # llama-server's error: the form has no file
    assert r.status_code == 400 and "No input file" in r.json()["error"]["message"], r.text
    r = upload(server, data={"model": "m", "response_format": "text"})  # llama-server's: json only
    assert r.status_code == 400 and "response_format" in r.json()["error"]["message"], r.text
    r = http.post(
        server + "/v1/audio/transcriptions",
        content=b"--b\r\n" * 100,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 400 and "parts" in r.json()["error"]["message"]
    r = http.post(server + "/v1/audio/transcriptions", content=b"x", headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 400 and "boundary" in r.json()["error"]["message"]
    # the front's bound on stop strings (32 KiB in all) holds for a form's fields too
    r = upload(server, data={"model": "m", "stop": "x" * 40_000})
    assert r.status_code == 400 and "stop" in r.json()["error"]["message"], r.text


def test_forms_are_refused_elsewhere_and_from_other_pages(server: str) -> None:
    # a web page may send a form without a CORS preflight: only pages CORS allows (on a
    # keyless server, localhost ones) may upload, and no other route takes a form
    assert upload(server, headers={"Origin": "https://elsewhere.example"}).status_code == 415
    assert upload(server, headers={"Origin": "http://localhost:3000"}).status_code == 200
    assert upload(server, "/v1/chat/completions").status_code == 415
    assert http.get(server + "/health").status_code == 200
