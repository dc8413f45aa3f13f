"""One mapping from an OpenAI chat request to ChatOptions (openai_api.chat_options),
read as llama-server reads it (server-common.cpp, oaicompat_chat_params_parse), and
the same through ``Llama.create_chat_completion`` and ``llamanb.compat``: checked on
the prompt a real thinking template renders and on the prompt each API feeds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llamanb
from llamanb import compat, openai_api

TEMPLATES = Path(__file__).resolve().parents[1] / "vendor" / "llama.cpp" / "models" / "templates"
QWEN3 = (TEMPLATES / "Qwen-Qwen3-0.6B.jinja").read_text()
GPT_OSS = (TEMPLATES / "openai-gpt-oss-120b.jinja").read_text()
USER = [{"role": "user", "content": "Hi"}]
EMPTY_THINKING = "<|im_start|>assistant\n<think>\n\n</think>\n\n"  # Qwen3's prompt with thinking off


@pytest.fixture(scope="module")
def qwen3(model_path: Path) -> Iterator[llamanb.Llama]:
    with llamanb.Llama(model_path, n_ctx=512, n_threads=2, chat_template=QWEN3) as llm:
        yield llm


@pytest.fixture(scope="module")
def qwen3_compat(model_path: Path) -> Iterator[compat.Llama]:
    llama = compat.Llama(str(model_path), n_ctx=512, n_threads=2, verbose=False)
    # llama-cpp-python takes a template only from the GGUF or as a Python chat handler;
    # this gives the wrapped llamanb.Llama the Qwen3 template llama.cpp renders.
    llama._llm._chat_override, llama._llm._chat_template = QWEN3, None
    yield llama
    llama.close()


THINKING_FIELDS: list[tuple[dict[str, Any], bool]] = [
    ({}, True),
    ({"reasoning_effort": "none"}, False),
    ({"chat_template_kwargs": {"enable_thinking": False}}, False),
    ({"chat_template_kwargs": {"enable_thinking": True}}, True),
    ({"reasoning_effort": "high"}, True),
    # llama-server: "none" wins over the template variable
    ({"reasoning_effort": "none", "chat_template_kwargs": {"enable_thinking": True}}, False),
]


@pytest.mark.parametrize(("fields", "thinking"), THINKING_FIELDS, ids=[str(f) for f, _ in THINKING_FIELDS])
def test_thinking_fields_through_both_apis(
    qwen3: llamanb.Llama, qwen3_compat: compat.Llama, fields: dict[str, Any], thinking: bool
) -> None:
    options = openai_api.chat_options(dict(fields))  # type: ignore[arg-type]
    assert options.enable_thinking is thinking
    prompt = qwen3.render_chat(USER, chat=options)
    assert prompt.endswith(EMPTY_THINKING) is not thinking
    n_prompt = len(qwen3.tokenize(prompt, add_special=False, parse_special=True))
    ours = qwen3.create_chat_completion(USER, max_tokens=2, temperature=0, **fields)
    theirs = qwen3_compat.create_chat_completion(USER, max_tokens=2, temperature=0, **fields)
    assert ours["usage"]["prompt_tokens"] == theirs["usage"]["prompt_tokens"] == n_prompt
    assert ours["choices"][0]["message"]["content"] == theirs["choices"][0]["message"]["content"]


def test_reasoning_effort_reaches_the_template(model_path: Path) -> None:
    with llamanb.Llama(model_path, n_ctx=512, n_threads=2, chat_template=GPT_OSS) as llm:
        assert "Reasoning: medium" in llm.render_chat(USER, chat=openai_api.chat_options({}))
        high = openai_api.chat_options({"reasoning_effort": "high"})
        assert high.template_kwargs == {"reasoning_effort": "high"}
        assert "Reasoning: high" in llm.render_chat(USER, chat=high)


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"chat_template_kwargs": {"enable_thinking": "false"}}, ValueError, "expected boolean, got string"),
        ({"reasoning_effort": 1}, TypeError, "reasoning_effort must be a string"),
        ({"reasoning_format": "loud"}, ValueError, "reasoning must be one of"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"schema": {"type": "integer", "multipleOf": 2}},
                }
            },
            ValueError,
            "multipleOf",
        ),
    ],
)
def test_bad_fields_raise_through_both_apis(
    qwen3: llamanb.Llama, qwen3_compat: compat.Llama, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        openai_api.chat_options(dict(fields))  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        qwen3.create_chat_completion(USER, max_tokens=1, **fields)
    with pytest.raises(error, match=message):
        qwen3_compat.create_chat_completion(USER, max_tokens=1, **fields)


def test_fields_are_taken_out() -> None:
    fields: dict[str, Any] = {"reasoning_effort": "low", "chat_template_kwargs": {"x": 1}, "max_tokens": 3}
    options = openai_api.chat_options(fields)  # type: ignore[arg-type]
    assert fields == {"max_tokens": 3}  # what is left is the caller's (generation options)
    assert options.template_kwargs == {"x": 1, "reasoning_effort": "low"}
