"""Vertex AI's prediction protocol, as llama-server serves it with ``AIP_MODE=PREDICTION``
(https://cloud.google.com/vertex-ai/docs/predictions/custom-container-requirements).

``POST $AIP_PREDICT_ROUTE`` (default ``/predict``) takes ``{"instances": [...]}``, at most
128 of them. Each instance is the body of another route, named by its ``@requestFormat``:
- a route's camelCase name (``chatCompletions`` for ``/v1/chat/completions``);
- or its path.

The reply is ``{"predictions": [...]}``, one per instance, in order: that route's JSON
reply, or ``{"error": {...}}`` for the instance alone. Instances never stream.
``AIP_HEALTH_ROUTE`` answers as ``/health`` does, and ``AIP_HTTP_PORT`` (default 8080)
is the port served.

llama-server does this in its HTTP layer (``server-http.cpp``, cpp-httplib), which llamanb
does not build, so it is written here, over the same route handlers. Each instance also
goes through the front's own checks of a body (body_vetting.py).

Where it differs: a camelCase name two routes share (``completions``: ``/completions``
and ``/v1/completions``) is the ``/v1/`` route here. llama-server's choice depends on the
order of a hash map.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .asgi_io import error_body
from .body_vetting import ANTHROPIC_PATHS, needs_vetting, thread_refusal, vet_body

if TYPE_CHECKING:
    from .. import core
    from .front_options import FrontOptions

MAX_INSTANCES = 128  # llama-server's bound


@dataclass(frozen=True)
class VertexRoutes:
    """The routes and port Vertex AI's environment names (``AIP_*``)."""

    predict: str = "/predict"
    health: str | None = None  # an alias of /health
    port: int = 8080

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> VertexRoutes | None:
        """The routes when ``AIP_MODE`` is ``PREDICTION`` (else None). ValueError for a
        port that is not a number."""
        env = os.environ if environ is None else environ
        if env.get("AIP_MODE", "") != "PREDICTION":
            return None
        port = env.get("AIP_HTTP_PORT") or "8080"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"AIP_HTTP_PORT must be a port number, got {port!r}")
        return cls(
            predict=_route(env.get("AIP_PREDICT_ROUTE")) or "/predict",
            health=_route(env.get("AIP_HEALTH_ROUTE")),
            port=int(port),
        )


def _route(value: str | None) -> str | None:
    if not value:
        return None
    return value if value.startswith("/") else "/" + value


def request_format(path: str) -> str:
    """A route's camelCase name, as llama-server derives it:
    ``/v1/chat/completions`` is ``chatCompletions``, ``/apply-template`` is ``applyTemplate``."""
    name = path[3:] if path.startswith("/v1") and len(path) > 3 else path
    name = name.removeprefix("/").split(":", 1)[0]
    out: list[str] = []
    upper = False
    for char in name:
        if char in "/-_":
            upper = True
        else:
            out.append(char.upper() if upper else char)
            upper = False
    return "".join(out)


def request_formats(routes: Iterable[tuple[str, str]]) -> dict[str, str]:
    """camelCase name -> path, for every POST route; a name two routes share is the
    ``/v1/`` route's."""
    out: dict[str, str] = {}
    for method, path in routes:
        if method != "POST" or ":" in path:
            continue
        name = request_format(path)
        if name not in out or path.startswith("/v1/"):
            out[name] = path
    return out


def parse_instances(body: bytes) -> list[Any] | str:
    """The request's instances, or why it is refused (a 400)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:
        return f"invalid JSON: {err}"
    if not isinstance(data, dict):
        return "request body must be a JSON object"
    instances = data.get("instances")
    if not isinstance(instances, list):
        return "request body must include an array field named instances"
    if len(instances) > MAX_INSTANCES:
        return f"instances array exceeds maximum size of {MAX_INSTANCES}"
    return instances


@dataclass(frozen=True)
class PredictRequest:
    """What every instance of one request shares."""

    server: core.server.Server
    formats: Mapping[str, str]  # request_formats(server.routes)
    headers: dict[str, str]
    query: dict[str, str]
    query_string: str
    options: FrontOptions


def predict_one(request: PredictRequest, response: core.server.ServerResponse, instance: Any) -> Any:
    """One instance's prediction (run on a worker thread): the reply of the route it
    names, or ``{"error": ...}``. ``response`` is closed when it returns."""
    try:
        if response.cancelled:  # the client left, or the server stops, before its turn
            return None
        if not isinstance(instance, dict):
            return _error("each instance must be a JSON object")
        name = instance.get("@requestFormat")
        if not isinstance(name, str):
            return _error("each instance must include a string @requestFormat")
        path = request.formats.get(name) or (name if name in request.formats.values() else None)
        if path is None:
            return _error(f"no handler registered for @requestFormat: {name}")
        payload = {k: v for k, v in instance.items() if k != "@requestFormat"}
        if "stream" in payload:
            payload["stream"] = False  # as llama-server: this route never streams
        body = json.dumps(payload).encode()
        if path in ANTHROPIC_PATHS and b'"thread"' in body:
            refused = thread_refusal(body)
            if refused is not None:
                return json.loads(refused)
        if needs_vetting(path, request.options):
            vetted = vet_body(path, body, request.options)
            if isinstance(vetted, tuple):
                return _error(vetted[1], vetted[0])
            body = vetted
        request.server.handle(response, "POST", path, request.query, request.headers, request.query_string, body)
        if response.is_stream:
            response.cancel()
            return _error("predict route does not support streaming responses")
        if not response.body:
            return None
        try:
            return json.loads(response.body)
        except ValueError:
            return response.body.decode("utf-8", "replace")
    except RuntimeError as err:  # as llama-server: a failure of this instance alone
        return _error(str(err), 500, "server_error")
    finally:
        response.close()


def _error(message: str, status: int = 400, kind: str = "invalid_request_error") -> Any:
    return json.loads(error_body(status, message, kind))


def predictions_body(predictions: list[Any]) -> bytes:
    return json.dumps({"predictions": predictions}).encode()
