"""Vertex AI's prediction route (``AIP_MODE=PREDICTION``; src/llamanb/server/vertex.py) on a
real server. llama-server's own tests of it (unit/test_compat_gcp.py) run in
tests/test_llama_server_suite.py. These check the rest:
- the environment's routes and port;
- dispatch to each kind of route;
- hostile bodies: a 400 for the request, or an error for the one instance;
- the front's checks applied to each instance;
- a client that goes away stops every instance's generation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llamanb import core
from llamanb.server import FrontOptions, create_app
from llamanb.server.vertex import MAX_INSTANCES, VertexRoutes, request_formats

from .support.server_process import free_port, start_server, stop_server

API_KEY = "sk-vertex-test"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
PREDICT = "/predict-here"
http = httpx.Client(timeout=120.0)


@pytest.fixture(scope="module")
def vertex(model_path: Path) -> Iterator[str]:
    served = free_port()
    env = {
        "AIP_MODE": "PREDICTION",
        "AIP_HTTP_PORT": str(served),
        "AIP_HEALTH_ROUTE": "isalive",  # no leading slash: one is added, as llama-server does
        "AIP_PREDICT_ROUTE": PREDICT,
    }
    # 2048 cells per slot: an endless generation runs for many seconds (the disconnect test)
    args = ["-m", str(model_path), "-c", "4096", "-np", "2", "-t", "2", "--temp", "0"]
    proc, url = start_server([*args, "--api-key", API_KEY, "--max-stop-strings", "4"], env, served_port=served)
    try:
        yield url
    finally:
        stop_server(proc)


def predict(url: str, body: object, headers: dict[str, str] = AUTH) -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.post(url + PREDICT, content=data, headers={**headers, "Content-Type": "application/json"})


def test_environment_routes_and_port(vertex: str) -> None:
    # the health alias is /health itself: open without the API key, as /health is
    r = http.get(vertex + "/isalive")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert http.get(vertex + "/isalive", headers=AUTH).status_code == 200
    # the prediction route needs the key, as every route but /health does
    r = predict(vertex, {"instances": []}, headers={})
    assert r.status_code == 401
    assert predict(vertex, {"instances": []}).json() == {"predictions": []}


def test_each_instance_goes_to_the_route_it_names(vertex: str) -> None:
    chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": True}
    r = predict(
        vertex,
        {
            "instances": [
                {"@requestFormat": "chatCompletions", **chat},  # streaming is turned off
                {"@requestFormat": "/tokenize", "content": "Hello world"},  # a path works too
                {"@requestFormat": "completion", "prompt": "Once upon a time", "n_predict": 3},
                {"@requestFormat": "applyTemplate", "messages": [{"role": "user", "content": "Hi"}]},
                {"@requestFormat": "completions", "prompt": "Once upon a time", "max_tokens": 2},
            ]
        },
    )
    assert r.status_code == 200
    chat_reply, tokens, completion, template, oai = r.json()["predictions"]
    assert chat_reply["object"] == "chat.completion"
    assert chat_reply["choices"][0]["message"]["role"] == "assistant"
    assert chat_reply["usage"]["completion_tokens"] == 4
    assert (
        tokens["tokens"]
        == http.post(vertex + "/tokenize", json={"content": "Hello world"}, headers=AUTH).json()["tokens"]
    )
    assert completion["tokens_predicted"] == 3 and completion["content"]
    assert "<|im_start|>user\nHi" in template["prompt"]
    assert oai["object"] == "text_completion"  # the /v1/ route of a name two routes share


def test_hostile_bodies_are_400s(vertex: str) -> None:
    for body, message in [
        (b"{not json", "invalid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),  # nesting deeper than the parser goes
        ([], "must be a JSON object"),
        ({"instances": {"a": 1}}, "array field named instances"),
        ({"instances": [{}] * (MAX_INSTANCES + 1)}, f"maximum size of {MAX_INSTANCES}"),
    ]:
        r = predict(vertex, body)
        assert r.status_code == 400, (body[:40] if isinstance(body, bytes) else body, r.text)
        assert message in r.json()["error"]["message"]
    assert http.get(vertex + "/health").status_code == 200


def test_a_bad_instance_is_an_error_for_it_alone(vertex: str) -> None:
    r = predict(
        vertex,
        {
            "instances": [
                5,
                {"@requestFormat": 1},
                {"@requestFormat": "noSuchRoute"},
                # the front's own bound (--max-stop-strings 4) holds inside an instance
                {"@requestFormat": "completion", "prompt": "Hi", "n_predict": 2, "stop": ["a", "b", "c", "d", "e"]},
                {"@requestFormat": "tokenize", "content": "fine"},
            ]
        },
    )
    assert r.status_code == 200
    predictions = r.json()["predictions"]
    assert len(predictions) == 5
    for prediction, message in zip(
        predictions[:4], ["must be a JSON object", "string @requestFormat", "noSuchRoute", "stop"], strict=True
    ):
        assert prediction["error"]["code"] == 400 and message in prediction["error"]["message"], prediction
    assert predictions[4]["tokens"]


def test_a_client_that_leaves_stops_every_instance(vertex: str) -> None:
    # three generations that would each fill a slot's 2048 cells (many seconds on any CPU);
    # two run at once (-np 2), the third waits for a slot
    endless = {"@requestFormat": "completion", "prompt": "Count:", "n_predict": 100_000, "ignore_eos": True}

    def busy() -> int:
        return sum(slot["is_processing"] for slot in http.get(vertex + "/slots", headers=AUTH).json())

    with pytest.raises(httpx.ReadTimeout):
        httpx.post(vertex + PREDICT, json={"instances": [endless, endless, endless]}, headers=AUTH, timeout=2.0)
    left = time.monotonic()
    while busy():
        assert time.monotonic() - left < 5.0, "the instances went on generating after the client left"
        time.sleep(0.1)
    time.sleep(1.5)  # the third instance never starts
    assert busy() == 0


def test_request_format_names(model_path: Path) -> None:
    formats = request_formats(core.server.Server(["-m", str(model_path)]).routes)
    assert formats["chatCompletions"] == "/v1/chat/completions"
    assert formats["completions"] == "/v1/completions"
    assert formats["completion"] == "/completion"
    assert formats["applyTemplate"] == "/apply-template"
    assert formats["messages"] == "/v1/messages"
    assert formats["messagesCountTokens"] == "/v1/messages/count_tokens"
    assert "health" not in formats  # GET routes take no instance body


def test_environment_parsing_and_a_conflicting_route(model_path: Path) -> None:
    assert VertexRoutes.from_environ({}) is None
    assert VertexRoutes.from_environ({"AIP_MODE": "TRAINING"}) is None
    assert VertexRoutes.from_environ({"AIP_MODE": "PREDICTION"}) == VertexRoutes("/predict", None, 8080)
    with pytest.raises(ValueError, match="AIP_HTTP_PORT"):
        VertexRoutes.from_environ({"AIP_MODE": "PREDICTION", "AIP_HTTP_PORT": "80a"})
    with pytest.raises(ValueError, match="conflicts"):  # llama-server refuses to start too
        create_app(["-m", str(model_path)], FrontOptions(vertex=VertexRoutes(predict="/v1/models")))
