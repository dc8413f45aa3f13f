"""Request validation: JSON bodies into typed requests, or OpenAI-style errors.

Fields llamanb does not know are ignored (clients send extras such as ``user``);
fields it knows are checked for type and range, and a request it cannot honour
(``n > 1``, token-array embeddings) is refused rather than half-served.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from ..chat import ChatOptions, Message
from ..generation import GenerateOptions, Prompt
from ..openai_api import response_schema
from ..openai_types import ResponseFormat
from .engine import LORA_RECORD_SUFFIX
from ..sampling import SamplingParams

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a request may have (tool schemas included);
deeper bodies are refused, since every later step (validation, templates, schema to
grammar) walks them recursively."""


class ApiError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def request_timeout(message: str) -> ApiError:
    """A generation that ran past the server's time limit (``--timeout``)."""
    return ApiError(408, f"{message} (the server's --timeout); ask for fewer tokens, or retry later",
                    type="timeout_error", code="request_timeout")


def shutting_down(message: str) -> ApiError:
    """A request refused, or cut short, because the server is stopping."""
    return ApiError(503, message, type="server_error", code="shutting_down")


@dataclass(frozen=True)
class GenerationRequest:
    """What completions and chat completions share."""

    model: str
    options: GenerateOptions
    sampling: SamplingParams
    stream: bool
    include_usage: bool
    cache_prompt: bool  # llama-server's: reuse a slot's cached prefix (default true)
    lora: dict[int, float] | None  # llama-server's: LoRA adapter scales by id (None: the server's defaults)


@dataclass(frozen=True)
class CompletionRequest(GenerationRequest):
    prompt: Prompt


@dataclass(frozen=True)
class ChatRequest(GenerationRequest):
    messages: list[Message]
    chat: ChatOptions


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    texts: list[str]
    encoding_format: Literal["float", "base64"]
    dimensions: int | None


@dataclass(frozen=True)
class RerankRequest:
    model: str | None
    query: str
    documents: list[str]
    top_n: int | None


@dataclass(frozen=True)
class TokenizeRequest:
    content: str
    add_special: bool
    parse_special: bool
    with_pieces: bool


def load_json(raw: bytes) -> Any:
    """A request body's JSON value; 400 when it is not JSON or nests too deep."""
    try:
        data = json.loads(raw, parse_int=_json_int)
    except (ValueError, UnicodeDecodeError) as err:
        raise invalid(f"the request body is not valid JSON: {err}") from None
    except RecursionError:  # nested deeper than the parser's recursion limit
        data = too_deep = True
    else:
        too_deep = _depth(data) > MAX_JSON_DEPTH
    if too_deep:
        raise invalid(f"the request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep")
    return data


def _json_int(text: str) -> int:
    """A JSON integer within 64 bits: a larger one fits no field, and ``float()`` of one
    above 1e308 raised OverflowError deep in a handler (a 500)."""
    value = int(text)
    if not -(2**63) <= value < 2**64:
        raise ValueError(f"the integer {text[:32]}{'...' if len(text) > 32 else ''} is out of range")
    return value


class Body:
    """A JSON object with typed getters; each failure names its field. JSON null
    counts as absent, as the OpenAI API treats it."""

    def __init__(self, raw: bytes) -> None:
        data = load_json(raw)
        if not isinstance(data, dict):
            raise invalid("the request body must be a JSON object")
        self.data: dict[str, Any] = data

    def get(self, name: str) -> object:
        return self.data.get(name)

    def required(self, name: str) -> object:
        value = self.data.get(name)
        if value is None:
            raise invalid(f"'{name}' is a required property", name, "missing_required_parameter")
        return value

    def string(self, name: str) -> str:
        value = self.required(name)
        if not isinstance(value, str):
            raise _type_error(name, "a string", value)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.optional_boolean(name)
        return default if value is None else value

    def optional_boolean(self, name: str) -> bool | None:
        value = self.get(name)
        if value is not None and not isinstance(value, bool):
            raise _type_error(name, "a boolean", value)
        return value

    def integer(self, name: str, lo: int | None = None, hi: int | None = None) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(name, "an integer", value)
        _check_range(name, value, lo, hi)
        return value

    def number(self, name: str, lo: float | None = None, hi: float | None = None) -> float | None:
        value = self.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _type_error(name, "a number", value)
        _check_range(name, value, lo, hi)
        return float(value)


def parse_completion(raw: bytes) -> CompletionRequest:
    body = Body(raw)
    model = body.string("model")
    prompt = _prompt(body.required("prompt"))
    if body.get("suffix") is not None:
        raise invalid("'suffix' (fill-in-the-middle) is not supported", "suffix", "unsupported_parameter")
    _only_one(body, "best_of")
    logprobs = body.integer("logprobs", 0, 20)
    max_tokens = body.integer("max_tokens", 0)
    options = GenerateOptions(16 if max_tokens is None else max_tokens, _stop(body), logprobs, body.boolean("echo", False))
    return CompletionRequest(model, options, _sampling(body), body.boolean("stream", False), _include_usage(body),
                             body.boolean("cache_prompt", True), _lora(body.get("lora")), prompt)


def parse_chat(raw: bytes) -> ChatRequest:
    body = Body(raw)
    model = body.string("model")
    messages = _messages(body.required("messages"))
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise _type_error("tools", "an array of objects", tools)
    n_top = body.integer("top_logprobs", 0, 20)
    logprobs = (n_top or 0) if body.boolean("logprobs", False) else None
    if n_top is not None and logprobs is None:
        raise invalid("'top_logprobs' needs 'logprobs': true", "top_logprobs")
    # max_completion_tokens is the newer name; None generates until the model stops.
    max_tokens = body.integer("max_completion_tokens", 0)
    if max_tokens is None:
        max_tokens = body.integer("max_tokens", 0)
    options = GenerateOptions(max_tokens, _stop(body), logprobs, False)
    return ChatRequest(model, options, _sampling(body), body.boolean("stream", False), _include_usage(body),
                       body.boolean("cache_prompt", True), _lora(body.get("lora")), messages,
                       _chat_options(body, tools))


def _chat_options(body: Body, tools: list[Mapping[str, Any]] | None) -> ChatOptions:
    """tools, tool_choice, parallel_tool_calls, response_format, and llama-server's
    reasoning_format, chat_template_kwargs and reasoning_effort ("none": no thinking)."""
    response_format = body.get("response_format")
    if response_format is not None and not isinstance(response_format, dict):
        raise _type_error("response_format", "an object", response_format)
    try:
        schema = response_schema(cast(ResponseFormat, response_format))
    except (ValueError, TypeError) as err:
        raise invalid(str(err), "response_format") from None
    reasoning = body.get("reasoning_format")
    if reasoning is None:
        reasoning = "auto"
    kwargs = body.get("chat_template_kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise _type_error("chat_template_kwargs", "an object", kwargs)
    kwargs = dict(kwargs or {})
    enable_thinking = kwargs.pop("enable_thinking", True)
    if not isinstance(enable_thinking, bool):
        raise _type_error("chat_template_kwargs.enable_thinking", "a boolean", enable_thinking)
    effort = body.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str):
            raise _type_error("reasoning_effort", "a string", effort)
        if effort == "none":
            enable_thinking = False
        else:
            kwargs["reasoning_effort"] = effort
    try:
        return ChatOptions(tools=tools, tool_choice=cast(Any, body.get("tool_choice")),
                           parallel_tool_calls=body.optional_boolean("parallel_tool_calls"),
                           json_schema=schema, reasoning=cast(Any, reasoning), enable_thinking=enable_thinking,
                           template_kwargs=kwargs)
    except (ValueError, TypeError) as err:
        param = "tool_choice" if "tool_choice" in str(err) else "reasoning_format" if "reasoning" in str(err) else None
        raise invalid(str(err), param) from None


def parse_embeddings(raw: bytes) -> EmbeddingRequest:
    body = Body(raw)
    model = body.string("model")
    value = body.required("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise _type_error("input", "a string or a non-empty array of strings", value)
    if not all(isinstance(t, str) for t in texts):
        raise invalid("'input' must be text: token-array input is not supported", "input", "unsupported_parameter")
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise invalid(f"'encoding_format' must be 'float' or 'base64', got {encoding!r}", "encoding_format")
    fmt: Literal["float", "base64"] = "base64" if encoding == "base64" else "float"
    return EmbeddingRequest(model, texts, fmt, body.integer("dimensions", 1))


def parse_rerank(raw: bytes) -> RerankRequest:
    """llama-server's (and Jina's/Cohere's) shape: query, documents, optional top_n."""
    body = Body(raw)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _type_error("model", "a string", model)
    documents = body.required("documents")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        raise _type_error("documents", "a non-empty array of strings", documents)
    return RerankRequest(model, body.string("query"), documents, body.integer("top_n", 1))


def parse_tokenize(raw: bytes) -> TokenizeRequest:
    body = Body(raw)
    return TokenizeRequest(body.string("content"), body.boolean("add_special", False),
                           body.boolean("parse_special", True), body.boolean("with_pieces", False))


def parse_detokenize(raw: bytes) -> list[int]:
    body = Body(raw)
    tokens = body.required("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        raise _type_error("tokens", "an array of token ids", tokens)
    return cast(list[int], tokens)


def _prompt(value: object) -> Prompt:
    # One prompt per request: text, token ids, or a one-element array of either.
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (str, list)):
        value = value[0]
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        return cast(list[int], value)
    if isinstance(value, list) and len(value) > 1 and all(isinstance(p, (str, list)) for p in value):
        raise invalid("send one prompt per request (prompt arrays are not supported)", "prompt", "unsupported_parameter")
    raise _type_error("prompt", "a string or a non-empty array of token ids", value)


def _messages(value: object) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise _type_error("messages", "a non-empty array of messages", value)
    for i, message in enumerate(value):
        name = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _type_error(name, "an object", message)
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"'{name}.role' must be one of {sorted(ROLES)}, got {role!r}", f"{name}.role")
        content = message.get("content")
        if content is None and role != "assistant":
            raise invalid(f"'{name}.content' is a required property", f"{name}.content", "missing_required_parameter")
        if content is not None and not isinstance(content, (str, list)):
            raise _type_error(f"{name}.content", "a string or an array of content parts", content)
    return cast(list[Message], value)


def _stop(body: Body) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise _type_error("stop", "a string or an array of strings", value)
    return tuple(stops)


def _sampling(body: Body) -> SamplingParams:
    """OpenAI's sampling fields, plus llama.cpp's top_k, min_p and repeat_penalty.
    Fields left out keep llamanb's defaults (temperature 0.8, top_k 40, ...)."""
    _only_one(body, "n")
    fields: dict[str, Any] = {
        "temperature": body.number("temperature", 0.0, 2.0),
        "top_p": body.number("top_p", 0.0, 1.0),
        "top_k": body.integer("top_k", 0),
        "min_p": body.number("min_p", 0.0, 1.0),
        "presence_penalty": body.number("presence_penalty", -2.0, 2.0),
        "frequency_penalty": body.number("frequency_penalty", -2.0, 2.0),
        "repeat_penalty": body.number("repeat_penalty", 0.0),
        "seed": body.integer("seed", 0, 2**32 - 2),
        "logit_bias": _logit_bias(body.get("logit_bias")),
    }
    try:
        return SamplingParams().replace(**{k: v for k, v in fields.items() if v is not None})
    except (ValueError, TypeError) as err:
        raise invalid(str(err)) from None


def _logit_bias(value: object) -> dict[int, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _type_error("logit_bias", "an object mapping token ids to biases", value)
    bias: dict[int, float] = {}
    for key, b in value.items():
        if not (isinstance(key, str) and re.fullmatch(r"-?[0-9]{1,10}", key)):  # "²", "--5": int() raises
            raise invalid(f"'logit_bias' keys must be token ids, got {key!r}", "logit_bias")
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not -100 <= b <= 100:
            raise invalid(f"'logit_bias' values must be numbers in [-100, 100], got {b!r}", "logit_bias")
        bias[int(key)] = float(b)
    return bias


SLOT_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")


def parse_slot_file(raw: bytes) -> str:
    """The ``filename`` of a slot save or restore: a plain ASCII file name (letters, digits,
    ``.``, ``_``, ``-``; not starting with ``.`` or ``-``), so that no name can be a
    directory, an option, a look-alike slash, a surrogate the file system cannot encode,
    or the LoRA record (``NAME.lora.json``) that a save writes beside its state file."""
    name = Body(raw).string("filename")
    if not SLOT_FILE_NAME.fullmatch(name) or name.endswith(LORA_RECORD_SUFFIX):
        raise invalid("'filename' must be a plain file name of at most 200 ASCII letters, digits, '.', '_' "
                      f"and '-', not starting with '.' or '-' nor ending in {LORA_RECORD_SUFFIX!r}, got {name!r}",
                      "filename")
    return name


def parse_lora_adapters(raw: bytes) -> dict[int, float]:
    """POST /lora-adapters: llama-server's array of ``{"id", "scale"}``."""
    scales = _lora(load_json(raw))
    if scales is None:
        raise _type_error("lora", 'an array of {"id": ..., "scale": ...} objects', None)
    return scales


def _lora(value: object) -> dict[int, float] | None:
    """llama-server's ``[{"id": 0, "scale": 0.5}, ...]``: scales by adapter id (a later
    entry for an id wins; a missing scale is 0). Whether the ids exist is the backend's
    check."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise _type_error("lora", 'an array of {"id": ..., "scale": ...} objects', value)
    scales: dict[int, float] = {}
    for i, entry in enumerate(value):
        adapter, scale = entry.get("id"), entry.get("scale", 0.0)
        if isinstance(adapter, bool) or not isinstance(adapter, int):
            raise _type_error(f"lora[{i}].id", "an integer adapter id", adapter)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise _type_error(f"lora[{i}].scale", "a finite number", scale)
        scales[adapter] = float(scale)
    return scales


def _include_usage(body: Body) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise _type_error("stream_options", "an object", options)
    include = options.get("include_usage", False)
    if not isinstance(include, bool):
        raise _type_error("stream_options.include_usage", "a boolean", include)
    return include


def _only_one(body: Body, name: str) -> None:
    value = body.integer(name, 1)
    if value is not None and value != 1:
        raise invalid(f"'{name}' must be 1: one choice per request", name, "unsupported_parameter")


def _depth(value: object) -> int:
    """Nesting depth of a parsed JSON value (iterative: it must not recurse itself)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _check_range(name: str, value: float, lo: float | None, hi: float | None) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise invalid(f"'{name}' must be in {bounds}, got {value}", name, "invalid_value")


def _type_error(name: str, expected: str, value: object) -> ApiError:
    return invalid(f"'{name}' must be {expected}, got {json.dumps(value)[:80]}", name, "invalid_type")
